import Foundation
import SwitchyardHost
import SwitchyardJSON

/// A pipeline run as `--json` prints it.
struct PipelineRunView: Encodable {
    struct Step: Encodable {
        var name, capability, state: String
        var engine: String?
        var jobID: String?
        var cacheHit: Bool
        var durationSeconds: Double?
        var estimateMinor: Int?
        var outputs: JSONValue?
        var error: JSONValue?
        var attempts: JSONValue?

        enum CodingKeys: String, CodingKey {
            case name, capability, state, engine, outputs, error, attempts
            case jobID = "job_id"
            case cacheHit = "cache_hit"
            case durationSeconds = "duration_seconds"
            case estimateMinor = "estimate_minor"
        }
    }
    var id, pipeline, source, state, quality: String
    var steps: [Step]
    var outputs: JSONValue?
    /// Where each output file is on disk (the artifact store, or --output-dir).
    var files: [String: String]
    var error: JSONValue?
    var durationSeconds: Double?
    var estimateMinor: Int

    enum CodingKeys: String, CodingKey {
        case id, pipeline, source, state, quality, steps, outputs, files, error
        case durationSeconds = "duration_seconds"
        case estimateMinor = "estimate_minor"
    }

    init(_ run: PipelineRunRecord, steps records: [PipelineStepRecord], artifacts: ArtifactDirectory, copied: [String: String]) {
        func json(_ text: String?) -> JSONValue? { text.flatMap { try? JSONValue(parsing: Data($0.utf8)) } }
        id = run.id; pipeline = run.pipelineID; source = run.source; state = run.state.rawValue; quality = run.quality
        steps = records.map { r in
            Step(name: r.name, capability: r.capability, state: r.state.rawValue, engine: r.engine, jobID: r.jobID, cacheHit: r.cacheHit,
                 durationSeconds: r.startedAt.flatMap { start in r.finishedAt.map { $0.timeIntervalSince(start) } },
                 estimateMinor: r.estimateMinor, outputs: json(r.outputsJSON), error: json(r.errorJSON),
                 attempts: json(r.attemptsJSON).flatMap { $0.arrayValue?.isEmpty == false ? $0 : nil })
        }
        outputs = json(run.outputsJSON)
        self.files = OutputFiles.stored(run.outputsJSON, artifacts: artifacts).merging(copied) { _, copied in copied }
        error = json(run.errorJSON)
        durationSeconds = run.finishedAt.map { $0.timeIntervalSince(run.createdAt) }
        estimateMinor = records.compactMap(\.estimateMinor).reduce(0, +)
    }
}

/// Live progress of a run on stderr: one line per step, redrawn in place on
/// a terminal; a line per change with --progress elsewhere; nothing otherwise.
final class PipelineProgressView: @unchecked Sendable {
    let mode: ProgressMode
    let runID: String
    private let lock = NSLock()
    private var order: [String] = []
    private var lines: [String: String] = [:]
    private var drawn = 0

    init(mode: ProgressMode, runID: String) {
        self.mode = mode
        self.runID = runID
    }

    func start(steps: [PipelineStepRecord]) {
        guard mode != .off else { return }
        Terminal.err("run \(runID)\n")
        lock.withLock {
            order = steps.map(\.name)
            for step in steps { lines[step.name] = Self.line(step, job: nil) }
            if mode == .live { redraw() }
        }
    }

    static func line(_ step: PipelineStepRecord, job: JobRecord?) -> String {
        var text = step.name.padding(toLength: 14, withPad: " ", startingAt: 0) + "  " + (step.engine ?? "-").padding(toLength: 14, withPad: " ", startingAt: 0)
            + "  " + step.state.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)
        if step.cacheHit { text += "  (cached)" }
        if let job, step.state == .running, !job.phase.isTerminal {
            text += "  \(Int(((job.progress ?? 0) * 100).rounded()))%"
            if let message = job.message { text += "  " + String(message.prefix(50)) }
        }
        return text
    }

    func update(_ update: PipelineStepUpdate) {
        guard mode != .off, update.runID == runID else { return }
        lock.withLock {
            let line = Self.line(update.step, job: update.job)
            let previous = lines[update.step.name]
            lines[update.step.name] = line
            if mode == .live { redraw() } else if update.job == nil && previous != line { Terminal.err("  " + line + "\n") }
        }
    }

    private func redraw() {
        var text = drawn > 0 ? "\u{1B}[\(drawn)A" : ""
        for name in order { text += "\r\u{1B}[2K  " + (lines[name] ?? name) + "\n" }
        drawn = order.count
        Terminal.err(text)
    }

    func finish() {}
}

enum PipelineText {
    static func printPlan(_ plan: PipelinePlan) {
        print("Plan for \(plan.pipeline) (\(plan.title)), quality \(plan.quality):")
        for step in plan.steps {
            var head = "  \(step.name) — \(step.capability)"
            if !step.dependsOn.isEmpty { head += " after \(step.dependsOn.joined(separator: ", "))" }
            switch step.runs {
            case .no: head += "  [skipped: when \(step.condition ?? "")]"
            case .conditional: head += "  [runs when \(step.condition ?? "its inputs exist")]"
            case .yes: break
            }
            print(head)
            for attempt in step.attempts {
                if attempt.ok {
                    print("      ✓ \(attempt.engine)\(step.estimate.map { "  cost \(Money.format($0.amountMinor, $0.currency)) (\($0.basis))" } ?? "")")
                    // What the plan could not check is said, not ticked.
                    for note in attempt.checkedWhenRun ?? [] { print("        ? \(note)") }
                } else {
                    print("      ✗ \(attempt.engine): \(attempt.code ?? "?"): \(attempt.message ?? "")")
                }
            }
        }
        if !plan.findings.isEmpty { print("Findings:") }
        for f in plan.findings {
            print("  \(f.severity == .error ? "FAIL" : f.severity.rawValue.uppercased())  \(f.step.map { "\($0): " } ?? "")\(f.code): \(f.message)\(f.field.map { " [\($0)]" } ?? "")")
            if !f.remediation.isEmpty { print("        fix: \(f.remediation)") }
        }
        if !plan.missingSecrets.isEmpty {
            let named = plan.missingSecrets.map { "\($0.secret) for \($0.engine)" }
            print("Missing secrets (engines passed over): " + named.enumerated().filter { !named[..<$0.offset].contains($0.element) }.map(\.element).joined(separator: ", "))
        }
        if !plan.unhealthyEngines.isEmpty {
            print("Unhealthy engines: " + plan.unhealthyEngines.map { "\($0.engine) (\($0.code))" }.joined(separator: ", "))
        }
        if let estimate = plan.estimate { print("Cost estimate: \(Money.format(estimate.amountMinor, estimate.currency))") }
        print(plan.ready ? "Verdict: ready to run." : plan.valid ? "Verdict: not ready — no usable engine for some steps; nothing was run or spent."
                                                             : "Verdict: the pipeline has errors; nothing was run or spent.")
    }

    static func printSummary(_ run: PipelineRunView) {
        let rows = run.steps.map { step -> [String] in
            let duration = step.cacheHit ? "cached" : step.durationSeconds.map { String(format: "%.2f s", $0) } ?? "-"
            let outputs = (step.outputs?.objectValue ?? [:]).keys.sorted().joined(separator: ", ")
            let detail = step.error.map { "\($0["code"]?.stringValue ?? "ERROR"): \($0["message"]?.stringValue ?? "")" } ?? outputs
            return [step.name, step.engine ?? "-", step.state, duration, step.estimateMinor.map { Money.format($0, "USD") } ?? "-", detail]
        }
        print(table(["STEP", "ENGINE", "STATE", "DURATION", "COST", "OUTPUTS"], rows))
        print("run \(run.id): \(run.state)\(run.durationSeconds.map { String(format: " in %.2f s", $0) } ?? ""), cost \(Money.format(run.estimateMinor, "USD")) (estimate)")
        for (name, path) in run.files.sorted(by: { $0.key < $1.key }) { print("output \(name): \(path)") }
        if let error = run.error {
            print("error: \(error["code"]?.stringValue ?? "ERROR"): \(error["message"]?.stringValue ?? "")")
            if let fix = error["remediation"]?.stringValue { print("  fix: \(fix)") }
            if let charged = error["charged"]?.stringValue, charged != "no" { print("  the provider may have billed for this (charged: \(charged)); no other engine was tried") }
            print("  retry the failed steps with `yard run --resume \(run.id)`")
        }
    }

    /// Copies the run's output files to DIR/NAME.EXT; returns name → path.
    static func copyOutputs(_ run: PipelineRunRecord, to directory: URL, artifacts: ArtifactDirectory) throws -> [String: String] {
        try OutputFiles.copy(run.outputsJSON, to: directory, artifacts: artifacts)
    }

    static func fileExtension(_ mediaType: String?) -> String { OutputFiles.fileExtension(mediaType) }

    static func printPreset(_ preset: PipelineDefinition, library: PresetLibrary) {
        print("\(preset.id) — \(preset.title)")
        if !preset.description.isEmpty { print(preset.description) }
        print("\nInputs:")
        for (name, input) in preset.inputs.sorted(by: { $0.key < $1.key }) {
            var line = "  \(name) (\(input.kind.rawValue)\(input.required ? ", required" : "")\(input.defaultValue.map { ", default \($0)" } ?? ""))"
            if !input.mediaTypes.isEmpty { line += " [\(input.mediaTypes.joined(separator: ", "))]" }
            if !input.description.isEmpty { line += ": \(input.description)" }
            print(line)
        }
        print("\nSteps (quality \(preset.defaultQuality) by default; --quality low|standard|pro):")
        for step in preset.steps {
            print("  \(step.name): \(step.capability) on \(step.engines.map(\.engine).joined(separator: " → "))\(step.when.map { "  when \($0)" } ?? "")")
            for level in PipelineDefinition.qualityLevels { if let q = step.quality[level] { print("      \(level): \(JSONValue.object(q))") } }
        }
        if !preset.identityInputs.isEmpty {
            print("\nConsent: \(preset.identityInputs.joined(separator: ", ")) carry a real person's likeness or voice; runs need --input consent_given=true.")
        }
        if !preset.safety.isEmpty { print("\nSafety:"); for note in preset.safety { print("  - \(note)") } }
        if !preset.failureModes.isEmpty {
            print("\nFailure modes:")
            for mode in preset.failureModes { print("  \(mode.code): \(mode.cause)\n      fix: \(mode.remediation)") }
        }
        if !preset.exampleInputs.isEmpty {
            let args = preset.exampleInputs.sorted(by: { $0.key < $1.key }).map { key, value -> String in
                let resolved = library.resolveSample(value)
                let text = resolved.stringValue ?? String(decoding: resolved.serialized(), as: UTF8.self)
                return "--input \(key)=\(text.contains(" ") ? "'\(text)'" : text)"
            }
            print("\nTry:\n  yard run \(preset.id) \(args.joined(separator: " "))")
        }
    }
}
