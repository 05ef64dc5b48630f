import ArgumentParser
import Foundation
import SwitchyardHost
import SwitchyardJSON

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one capability on an engine, or a pipeline (a file or a preset): validate everything first, then submit, follow and summarise.",
        discussion: """
            Inputs: --input key=value (value parsed as JSON when it is JSON, else a string), --input key=@file (stored as an artifact).
            Examples:
              yard run debug.echo --engine echo --input text=hello --input polls=3
              yard run debug.echo --input text=hi --dry-run      # the whole pre-flight verdict, nothing spent
              yard run ugc-product-clip --input product_image=@photo.png --input script="Meet the bottle."
              yard run my-pipeline.yaml --input k=v --quality pro --no-cache
              yard run --resume run_1234…                        # continue a run after a crash, or retry a failed one
            """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Capability id (e.g. debug.echo), pipeline file (.yaml/.json) or preset name (see `yard presets list`).") var capability: String?
    @Option(help: "Engine (plugin id). Default: the only installed engine offering the capability.") var engine: String?
    @Option(name: .customLong("input"), help: "An input as key=value or key=@file (repeatable).") var inputs: [String] = []
    @Option(help: "Engine configuration as a JSON object (merged over $YARD_HOME/config/ENGINE.json).") var config: String?
    @Option(name: .customLong("idempotency-key"), help: "Same key, same job: re-running returns the existing job instead of paying twice.")
    var idempotencyKey: String?
    @Flag(name: .customLong("dry-run"), help: "Show the pre-flight verdict and cost estimate; submit nothing.") var dryRun = false
    @Flag(help: "Submit and return at once; follow later with `yard jobs resume` or `yard jobs logs --follow`.") var detach = false
    @Option(help: "Account whose credits and budgets pay for the job (default: billing.json default_account).") var account: String?
    @Option(help: "An extra budget id the job counts against, e.g. a pipeline run's (repeatable).") var budget: [String] = []
    @OptionGroup var pipeline: PipelineRunOptions

    func run() async throws {
        do {
            if pipeline.resume != nil || capability.map({ PipelineDefinition.looksLikePipeline($0, presets: PresetLibrary.standard()) }) == true {
                return try await PipelineRunFlow(global: global, options: pipeline, reference: capability, rawInputs: inputs).run()
            }
            guard let capability else {
                throw YardError(.usage, "Name a capability, a pipeline file or a preset.", remediation: "Run e.g. `yard run debug.echo --input text=hi` or `yard presets list`.", field: "CAPABILITY")
            }
            let engineID = try engine ?? chooseEngine(capability)
            let jobEngine = try JobEngine.standard(paths: global.paths, registry: global.registry)
            var spec = JobSpec(pluginID: engineID, capability: capability, inputs: try Self.parseInputs(inputs, artifacts: jobEngine.artifacts),
                               config: try loadConfig(engineID), idempotencyKey: idempotencyKey)
            if account != nil || !budget.isEmpty { spec.billing = BillingScope(account: account, budgets: budget) }
            if dryRun {
                let verdict = await jobEngine.preflight(spec)
                if global.json { printJSON(verdict) } else { printVerdict(verdict) }
                if !verdict.ok { throw ExitCode(1) }
                return
            }
            let progress = ProgressPrinter(enabled: !global.json)
            var job: JobRecord
            do {
                job = try await jobEngine.start(spec)
            } catch let refusal as JobEngine.Refusal {
                if global.json { printJSON(refusal.verdict) } else { printVerdict(refusal.verdict) }
                throw ExitCode(1)
            }
            progress.show(job)
            if !detach && !job.phase.isTerminal {
                job = try await jobEngine.drive(job.id) { progress.show($0.job) }
            }
            progress.finish()
            await jobEngine.deliverUsage()
            if global.json { printJSON(JobView(job, cost: jobEngine.ledger.flatMap { try? $0.charge(jobID: job.id) })) } else { printSummary(job) }
            if job.phase != .succeeded && !(detach && !job.phase.isTerminal) { throw ExitCode(1) }
        } catch let exit as ExitCode { throw exit } catch { throw fail(error, json: global.json) }
    }

    func chooseEngine(_ capability: String) throws -> String {
        let offering = global.registry.list().filter { $0.status == .ok && $0.capabilities.contains(capability) }.map(\.id)
        guard let first = offering.first else {
            throw YardError(.contractMismatch, "No installed engine offers \(capability).",
                            remediation: "Install one (`yard plugin install`), or check the id with `yard plugin list`.", field: "capability")
        }
        guard offering.count == 1 else {
            throw YardError(.usage, "Several engines offer \(capability): \(offering.joined(separator: ", ")).",
                            remediation: "Choose one with --engine.", field: "--engine")
        }
        return first
    }

    func loadConfig(_ engineID: String) throws -> [String: JSONValue] {
        var merged = try EngineConfigs(paths: global.paths).config(for: engineID)
        if let config {
            guard let object = (try? JSONValue(parsing: Data(config.utf8)))?.objectValue else {
                throw YardError("CONFIG_INVALID", "--config is not a JSON object.", remediation: "Pass e.g. --config '{\"base_url\":\"http://127.0.0.1:8080\"}'.", field: "--config")
            }
            merged.merge(object) { _, new in new }
        }
        return merged
    }

    static func parseInputs(_ inputs: [String], artifacts: ArtifactDirectory) throws -> [String: JSONValue] {
        var result: [String: JSONValue] = [:]
        for raw in inputs {
            guard let eq = raw.firstIndex(of: "="), eq != raw.startIndex else {
                throw YardError(.usage, "--input \(raw) is not key=value.", remediation: "Write --input prompt=\"a red fox\" or --input image=@photo.png.", field: "--input")
            }
            let key = String(raw[..<eq]), value = String(raw[raw.index(after: eq)...])
            if value.hasPrefix("@") {
                let url = URL(fileURLWithPath: String(value.dropFirst()))
                guard let data = try? Data(contentsOf: url) else {
                    throw YardError(.usage, "Cannot read \(url.path) for input \(key).", remediation: "Check the path.", field: "$.inputs.\(key)")
                }
                let mediaType = Self.mediaType(for: url)
                let digest = try artifacts.put(data, mediaType: mediaType)
                result[key] = .object(["artifact": .string("sha256:\(digest)"), "media_type": .string(mediaType)])
            } else if let parsed = try? JSONValue(parsing: Data(value.utf8)) {
                result[key] = parsed
            } else {
                result[key] = .string(value)
            }
        }
        return result
    }

    static func mediaType(for url: URL) -> String {
        switch url.pathExtension.lowercased() {
        case "png": return "image/png"
        case "jpg", "jpeg": return "image/jpeg"
        case "webp": return "image/webp"
        case "mp4": return "video/mp4"
        case "wav": return "audio/wav"
        case "mp3": return "audio/mpeg"
        case "json": return "application/json"
        case "txt": return "text/plain"
        default: return "application/octet-stream"
        }
    }

    func printVerdict(_ verdict: PreflightVerdict) {
        print("Pre-flight for \(verdict.capability) on \(verdict.pluginID)\(verdict.pluginVersion.map { " \($0)" } ?? ""):")
        for step in verdict.stepsPassed { print("  ok    \(step)") }
        for f in verdict.findings {
            print("  \(f.severity == .error ? "FAIL" : f.severity.rawValue.uppercased())  \(f.step): \(f.code): \(f.message)\(f.field.map { " [\($0)]" } ?? "")")
            if !f.remediation.isEmpty { print("        fix: \(f.remediation)") }
        }
        if let e = verdict.estimate { print("  cost estimate: \(Money.format(e.amountMinor, e.currency)) (\(e.basis))") }
        print(verdict.ok ? "Verdict: ready to run." : "Verdict: refused; nothing was submitted or spent.")
    }

    func printSummary(_ job: JobRecord) {
        let duration = job.finishedAt.map { String(format: "%.2f s", $0.timeIntervalSince(job.createdAt)) } ?? "running"
        print("""
            job       \(job.id)
            engine    \(job.pluginID) \(job.pluginVersion)
            state     \(job.phase.rawValue)
            duration  \(duration)
            cost      \(costLine(job, paths: global.paths))
            """)
        let outputs = job.outputLines
        if !outputs.isEmpty { print("outputs"); for line in outputs { print("  \(line)") } }
        if let error = job.errorSummary { print("error     \(error)") }
        if let message = job.message, job.phase == .needsAttention { print("attention \(message)") }
    }
}

enum Money {
    static func format(_ minor: Int, _ currency: String) -> String {
        String(format: "%@ %d.%02d", currency, minor / 100, abs(minor % 100))
    }
}

/// One updating line on a terminal, one line per change otherwise.
final class ProgressPrinter: @unchecked Sendable {
    let enabled: Bool
    let tty = isatty(STDOUT_FILENO) == 1
    private var last = ""
    private let lock = NSLock()

    init(enabled: Bool) { self.enabled = enabled }

    func show(_ job: JobRecord) {
        guard enabled else { return }
        let percent = Int(((job.progress ?? 0) * 100).rounded())
        let line = "\(job.id)  \(job.pluginID)  \(job.phase.rawValue)  \(percent)%\(job.message.map { "  \($0)" } ?? "")"
        lock.withLock {
            guard line != last else { return }
            last = line
            if tty { FileHandle.standardOutput.write(Data(("\r\u{1B}[2K" + line).utf8)) } else { print(line) }
        }
    }

    func finish() {
        if enabled && tty { print("") }
    }
}
