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
    @Flag(help: "Submit and return at once; a background driver follows the job (`yard jobs logs ID --follow` shows it).") var detach = false
    @Option(help: "Account whose credits and budgets pay for the job (default: billing.json default_account).") var account: String?
    @Option(help: "An extra budget id the job counts against, e.g. a pipeline run's (repeatable).") var budget: [String] = []
    @OptionGroup var pipeline: PipelineRunOptions
    @OptionGroup var progressOptions: ProgressOptions

    func run() async throws {
        do {
            if pipeline.resume != nil || capability.map({ PipelineDefinition.looksLikePipeline($0, presets: PresetLibrary.standard()) }) == true {
                return try await PipelineRunFlow(global: global, options: pipeline, reference: capability, rawInputs: inputs,
                                                 detach: detach, progress: progressOptions.mode).run()
            }
            guard let capability else {
                throw YardError(.usage, "Name a capability, a pipeline file or a preset.", remediation: "Run e.g. `yard run debug.echo --input text=hi` or `yard presets list`.", field: "CAPABILITY")
            }
            let jobEngine = try JobEngine.standard(paths: global.paths, registry: global.registry)
            try Self.checkKnown(capability, catalog: jobEngine.catalog, registry: global.registry)
            let engineID = try engine ?? chooseEngine(capability)
            var spec = JobSpec(pluginID: engineID, capability: capability, inputs: try Self.parseInputs(inputs, artifacts: jobEngine.artifacts),
                               config: try loadConfig(engineID), idempotencyKey: idempotencyKey)
            if account != nil || !budget.isEmpty { spec.billing = BillingScope(account: account, budgets: budget) }
            if dryRun {
                let verdict = await jobEngine.preflight(spec)
                if global.json { printJSON(verdict) } else { printVerdict(verdict, dryRun: true) }
                if !verdict.ok { throw ExitCode(1) }
                return
            }
            let progress = ProgressPrinter(mode: progressOptions.mode)
            var job: JobRecord
            var claim: StoreLock?
            do {
                (job, claim) = try await jobEngine.startClaimed(spec)
            } catch let refusal as JobEngine.Refusal {
                if global.json { printJSON(refusal.verdict) } else { printVerdict(refusal.verdict) }
                throw ExitCode(1)
            }
            progress.show(job)
            var driverPID: Int32?
            if detach {
                claim?.release(removingFile: true)
                if !job.phase.isTerminal { driverPID = BackgroundDriver.ensureRunning(global) }
            } else if !job.phase.isTerminal {
                let jobID = job.id, store = jobEngine.store
                let interrupts = InterruptGuard(engine: jobEngine) { [(try? store.job(id: jobID)).flatMap { $0 }].compactMap { $0 } }
                interrupts.install()
                if claim != nil {
                    job = try await jobEngine.drive(job.id) { progress.show($0.job) }
                } else {
                    // The idempotency key named a job another process follows: watch it, do not drive it twice.
                    guard let sqlite = jobEngine.store as? SQLiteJobStore else { throw YardError("STORE_UNSUPPORTED", "Following needs the SQLite store.", remediation: "Use the default store.") }
                    job = try await JobFollower(global: global, store: sqlite).follow(job.id) { progress.show($0) }
                }
                interrupts.remove()
            }
            claim?.release(removingFile: true)
            progress.finish()
            await jobEngine.deliverUsage()
            var files = OutputFiles.stored(job.outputsJSON, artifacts: jobEngine.artifacts)
            if job.phase == .succeeded, let outputDir = pipeline.outputDir {
                files = try OutputFiles.copy(job.outputsJSON, to: URL(fileURLWithPath: outputDir), artifacts: jobEngine.artifacts)
            }
            if global.json {
                var view = JobView(job, cost: jobEngine.ledger.flatMap { try? $0.charge(jobID: job.id) })
                view.files = files
                printJSON(view)
            } else {
                printSummary(job, files: files)
                if detach && !job.phase.isTerminal {
                    print("detached: \(driverPID.map { "a background driver (pid \($0)) follows it" } ?? "no driver could be started; run `yard jobs resume`");"
                          + " `yard jobs logs \(job.id) --follow` shows it, `yard jobs show \(job.id)` its result")
                    if let outputDir = pipeline.outputDir { print("its files are not in \(outputDir) yet: `yard artifacts get \(job.id) --out \(outputDir)` copies them when it is done") }
                }
            }
            if job.phase != .succeeded && !(detach && !job.phase.isTerminal) { throw ExitCode(1) }
        } catch let exit as ExitCode { throw exit } catch { throw fail(error, json: global.json) }
    }

    /// A name that is neither a catalog capability nor one an installed
    /// engine offers, a preset or a file: refused with the closest names.
    static func checkKnown(_ name: String, catalog: CapabilityCatalog, registry: PluginRegistry) throws {
        let offered = Set(registry.list().flatMap(\.capabilities))
        guard catalog.entries[name] == nil, !offered.contains(name) else { return }
        let presets = PresetLibrary.standard()?.files().map { $0.deletingPathExtension().lastPathComponent } ?? []
        let capabilities = Array(Set(catalog.entries.keys).union(offered))
        let hint = NameSuggestion.closest(to: name, among: capabilities + presets)
        let isPresetHint = hint.first.map(presets.contains) ?? false
        throw YardError(isPresetHint ? "PRESET_NOT_FOUND" : "CAPABILITY_NOT_FOUND",
                        "\(name) is not a capability, a preset or a pipeline file." + (hint.isEmpty ? "" : " Did you mean \(hint.joined(separator: " or "))?"),
                        remediation: "See `yard presets list` for presets and `yard plugin list` for the capabilities engines offer.", field: "CAPABILITY")
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

    func printVerdict(_ verdict: PreflightVerdict, dryRun: Bool = false) {
        print("Pre-flight for \(verdict.capability) on \(verdict.pluginID)\(verdict.pluginVersion.map { " \($0)" } ?? ""):")
        for step in verdict.stepsPassed { print("  ok    \(step)") }
        for f in verdict.findings {
            print("  \(f.severity == .error ? "FAIL" : f.severity.rawValue.uppercased())  \(f.step): \(f.code): \(f.message)\(f.field.map { " [\($0)]" } ?? "")")
            if !f.remediation.isEmpty { print("        fix: \(f.remediation)") }
        }
        if let e = verdict.estimate { print("  cost estimate: \(Money.format(e.amountMinor, e.currency)) (\(e.basis))") }
        print(verdict.ok ? "Verdict: ready to run\(dryRun ? "; nothing was submitted" : "")." : "Verdict: refused; nothing was submitted or spent.")
    }

    func printSummary(_ job: JobRecord, files: [String: String]) {
        let duration = job.finishedAt.map { String(format: "%.2f s", $0.timeIntervalSince(job.createdAt)) } ?? "running"
        print("""
            job       \(job.id)
            engine    \(job.pluginID) \(job.pluginVersion)
            state     \(job.phase.rawValue)
            duration  \(duration)
            cost      \(costLine(job, paths: global.paths))
            """)
        let outputs = job.outputLines(files: files)
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

/// Live progress on stderr: one line redrawn in place on a terminal, one
/// line per change with --progress elsewhere, nothing otherwise.
final class ProgressPrinter: @unchecked Sendable {
    let mode: ProgressMode
    private var last = ""
    private var drawn = false
    private let lock = NSLock()

    init(mode: ProgressMode) { self.mode = mode }

    func show(_ job: JobRecord) {
        guard mode != .off else { return }
        let percent = Int(((job.progress ?? 0) * 100).rounded())
        var line = "\(job.id)  \(job.pluginID)  \(job.phase.rawValue)"
        if !job.phase.isTerminal { line += "  \(percent)%\(job.message.map { "  \($0)" } ?? "")" }
        lock.withLock {
            guard line != last else { return }
            last = line
            if mode == .live {
                Terminal.err("\r\u{1B}[2K" + String(line.prefix(max(20, Terminal.columns - 1))))
                drawn = true
            } else {
                Terminal.err(line + "\n")
            }
        }
    }

    func finish() {
        lock.withLock {
            if drawn { Terminal.err("\n") }
            drawn = false
        }
    }
}
