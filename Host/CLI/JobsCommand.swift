import ArgumentParser
import Foundation
import SwitchyardHost
import SwitchyardJSON

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List, inspect, cancel, resume and follow jobs.",
        subcommands: [List.self, Show.self, Cancel.self, Resume.self, Resolve.self, Logs.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recent jobs, newest first.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only jobs in this state (submitting, queued, running, succeeded, failed, cancelled, needs_attention).") var state: String?
        @Option(help: "How many.") var limit = 50

        func run() throws {
            do {
                let phase = try state.map { s -> JobPhase in
                    guard let p = JobPhase(rawValue: s) else {
                        throw YardError(.usage, "Unknown state \(s).", remediation: "Use one of \(JobPhase.allCases.map(\.rawValue).joined(separator: ", ")).", field: "--state")
                    }
                    return p
                }
                let jobs = try SQLiteJobStore(path: global.paths.jobStoreFile).jobs(limit: limit, phase: phase)
                if global.json { printJSON(jobs.map(JobView.init)); return }
                if jobs.isEmpty { print("No jobs yet. Run one with `yard run`."); return }
                let formatter = ISO8601DateFormatter()
                print(table(["JOB", "ENGINE", "CAPABILITY", "STATE", "CREATED", "ERROR"], jobs.map {
                    [$0.id, $0.pluginID, $0.capability, $0.phase.rawValue, formatter.string(from: $0.createdAt), $0.errorCode ?? ""]
                }))
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One job: state, inputs, outputs, error, cancel outcome.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String

        func run() throws {
            do {
                let store = try SQLiteJobStore(path: global.paths.jobStoreFile)
                guard let job = try store.job(id: id) else {
                    throw YardError.jobNotFound(id)
                }
                let cost = try? JobLedger.standard(store: store, paths: global.paths).charge(jobID: job.id)
                if global.json {
                    var view = JobView(job, cost: cost)
                    view.files = OutputFiles.stored(job.outputsJSON, artifacts: ArtifactDirectory(root: global.paths.home.appendingPathComponent("artifacts")))
                    printJSON(view)
                    return
                }
                print("job       \(job.id)\nengine    \(job.pluginID) \(job.pluginVersion)\ncapability \(job.capability)\nstate     \(job.phase.rawValue)")
                print("cost      \(costLine(job, paths: global.paths))")
                print("idempotency key \(job.idempotencyKey)\ninputs    \(job.inputsJSON)")
                let files = OutputFiles.stored(job.outputsJSON, artifacts: ArtifactDirectory(root: global.paths.home.appendingPathComponent("artifacts")))
                for line in job.outputLines(files: files) { print("output    \(line)") }
                if let error = job.errorSummary { print("error     \(error)") }
                if let message = job.message { print("message   \(message)") }
                if !job.phase.isTerminal, let pid = StoreDriver.driverPID(paths: global.paths) { print("driver    pid \(pid) follows it") }
                if let cancel = job.cancelOutcomeJSON { print("cancel    \(cancel)") }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel at the provider; prints whether it may still charge.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String

        func run() async throws {
            do {
                let engine = try JobEngine.standard(paths: global.paths, registry: global.registry)
                let job = try await engine.cancel(id)
                await engine.deliverUsage()
                if global.json { printJSON(JobView(job)); return }
                print("\(job.id): \(job.phase.rawValue)\(job.cancelOutcomeJSON.map { " — provider said \($0)" } ?? "")")
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resume every unfinished job from its stored ref, and every unfinished pipeline run, until none is left.",
            discussion: """
                Jobs caught between submit and storing their ref are reconciled with the provider, or set to needs_attention; never resubmitted on a guess. \
                One process drives a store at a time ($YARD_HOME/driver.lock): when another one does (e.g. the background driver `yard run --detach` starts), \
                this says so and leaves the work to it.
                """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var progressOptions: ProgressOptions
        @Flag(help: .hidden) var background = false

        func run() async throws {
            do {
                let engine = try JobEngine.standard(paths: global.paths, registry: global.registry)
                guard let lease = StoreDriver.lease(paths: global.paths) else {
                    if background { return }
                    let pid = StoreDriver.driverPID(paths: global.paths).map { " (pid \($0))" } ?? ""
                    if global.json { printJSON(["driven_by": StoreDriver.driverPID(paths: global.paths) ?? -1]); return }
                    print("Another process\(pid) is driving this store and works until nothing is left; `yard jobs list` shows progress.")
                    return
                }
                let driver = try StoreDriver(engine: engine, configs: EngineConfigs(paths: global.paths))
                let progress = ProgressPrinter(mode: background ? .off : progressOptions.mode)
                let background = self.background
                if background { Terminal.err("\(isoTimestamp(Date())) driver \(getpid()) started for \(global.paths.home.path)\n") }
                // Ctrl-C (or SIGTERM to the background driver) must not leave ffmpeg running under pid 1.
                let store = engine.store
                let interrupts = InterruptGuard(engine: engine) { (try? store.unfinishedJobs()) ?? [] }
                interrupts.install()
                defer { interrupts.remove() }
                let outcome = try await driver.driveWhileWorkRemains(lease: lease) { update in
                    switch update {
                    case .job(let u):
                        progress.show(u.job)
                        if background && u.job.phase.isTerminal { Terminal.err("\(isoTimestamp(Date())) \(u.job.id) \(u.job.pluginID) \(u.job.phase.rawValue)\(u.job.errorCode.map { " \($0)" } ?? "")\n") }
                    case .step(let u):
                        if let job = u.job { progress.show(job) }
                        if background && u.job == nil && u.step.state.isFinished { Terminal.err("\(isoTimestamp(Date())) \(u.runID) step \(u.step.name) \(u.step.state.rawValue)\n") }
                    }
                }
                progress.finish()
                await engine.deliverUsage()
                if background {
                    for (id, problem) in outcome.problems { Terminal.err("\(isoTimestamp(Date())) \(id) could not be driven: \(problem)\n") }
                    Terminal.err("\(isoTimestamp(Date())) driver \(getpid()) done: \(outcome.jobs.count) jobs, \(outcome.runs.count) runs\n")
                    return
                }
                if global.json { printJSON(outcome.jobs.map(JobView.init)); return }
                if outcome.jobs.isEmpty && outcome.runs.isEmpty && outcome.problems.isEmpty { print("Nothing to resume.") }
                for job in outcome.jobs { print("\(job.id)  \(job.pluginID)  \(job.phase.rawValue)\(job.errorCode.map { "  \($0)" } ?? "")") }
                for run in outcome.runs { print("\(run.id)  pipeline \(run.pipelineID)  \(run.state.rawValue)") }
                for (id, problem) in outcome.problems.sorted(by: { $0.key < $1.key }) { print("\(id)  could not be resumed: \(problem)") }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Settle a parked job (needs_attention: its submission was never confirmed) by what you found at the provider.",
            discussion: """
                --not-submitted: the provider has no such job; its reservation is refunded.
                --submitted REF: the provider has it; REF is its ref as JSON (e.g. '{"id":"…"}'), or a bare provider job id, \
                stored as {"id": REF}. The job is polled from there and settled from the usage the provider reports.
                Either way an audit event records who resolved it (`yard jobs logs ID`).
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The parked job's id.") var id: String
        @Flag(name: .customLong("not-submitted"), help: "The provider never received the job: refund it.") var notSubmitted = false
        @Option(help: "The provider has the job under this ref (JSON, or a bare job id).") var submitted: String?
        @Option(help: "A note for the audit event (e.g. what the dashboard showed).") var note: String?
        @Flag(help: "With --submitted: return at once instead of following the job.") var detach = false

        func run() async throws {
            do {
                guard notSubmitted != (submitted != nil) else {
                    throw YardError(.usage, "Say what the provider has: exactly one of --not-submitted or --submitted REF.",
                                    remediation: "Check the provider's dashboard, then run `yard jobs resolve \(id) --not-submitted` or `yard jobs resolve \(id) --submitted '{\"id\":\"…\"}'`.", field: "--submitted")
                }
                let engine = try JobEngine.standard(paths: global.paths, registry: global.registry)
                let resolution: ParkedResolution
                if let submitted {
                    let trimmed = submitted.trimmingCharacters(in: .whitespaces)
                    guard !trimmed.isEmpty else { throw YardError(.usage, "--submitted needs the provider's ref.", remediation: "Pass the job id the provider shows.", field: "--submitted") }
                    let ref: JSONValue = trimmed.hasPrefix("{") ? try Self.parseRef(trimmed) : .object(["id": .string(trimmed)])
                    resolution = .submitted(ref: String(decoding: ref.serialized(), as: UTF8.self))
                } else {
                    resolution = .notSubmitted
                }
                let actor = ProcessInfo.processInfo.environment["USER"].map { "\($0) (yard jobs resolve)" } ?? "yard jobs resolve"
                var job = try engine.resolveParked(id, resolution, actor: actor, note: note)
                if !job.phase.isTerminal && !detach {
                    let progress = ProgressPrinter(mode: global.json ? .off : ProgressMode(requested: false))
                    job = try await engine.drive(job.id) { progress.show($0.job) }
                    progress.finish()
                }
                await engine.deliverUsage()
                let cost = engine.ledger.flatMap { try? $0.charge(jobID: job.id) }
                if global.json { printJSON(JobView(job, cost: cost)); return }
                print("\(job.id): \(job.phase.rawValue)")
                print("cost      \(costLine(job, paths: global.paths))")
            } catch let exit as ExitCode { throw exit } catch { throw fail(error, json: global.json) }
        }

        static func parseRef(_ text: String) throws -> JSONValue {
            guard let value = try? JSONValue(parsing: Data(text.utf8)), value.objectValue != nil else {
                throw YardError(.usage, "--submitted \(text) is not a JSON object.", remediation: "Pass the ref as JSON, e.g. '{\"id\":\"…\"}', or a bare job id.", field: "--submitted")
            }
            return value
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A job's events: state changes, progress, provider messages.",
            discussion: "--follow prints new events until the job ends, then exits. If nothing drives the store (e.g. after a reboot), it starts the background driver.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String
        @Flag(help: "Keep printing new events until the job finishes.") var follow = false

        func run() async throws {
            do {
                let store = try SQLiteJobStore(path: global.paths.jobStoreFile)
                guard var job = try store.job(id: id) else {
                    throw YardError.jobNotFound(id)
                }
                var after: Int64 = 0
                func printNew() throws {
                    for event in try store.events(jobID: id, afterID: after) {
                        after = event.id ?? after
                        if global.json {
                            var line: [String: JSONValue] = ["at": .string(isoTimestamp(event.at)), "kind": .string(event.kind), "message": .string(event.message)]
                            if let data = event.dataJSON { line["data"] = (try? JSONValue(parsing: Data(data.utf8))) ?? .string(data) }
                            print(String(decoding: JSONValue.object(line).serialized(), as: UTF8.self))
                        } else {
                            print("\(isoTimestamp(event.at))  \(event.kind.padding(toLength: 10, withPad: " ", startingAt: 0)) \(event.message)")
                        }
                    }
                    fflush(nil)
                }
                try printNew()
                guard follow else { return }
                if !job.phase.isTerminal {
                    job = try await JobFollower(global: global, store: store).follow(id) { _ in try? printNew() }
                }
                try printNew()
                if !global.json { print("\(isoTimestamp(job.finishedAt ?? Date()))  end        \(job.phase.rawValue)\(job.errorCode.map { " (\($0))" } ?? "")") }
            } catch { throw fail(error, json: global.json) }
        }
    }
}

struct EnginesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engines", abstract: "Health and balance of every installed engine, with what to do about problems.",
        subcommands: [List.self, Test.self], defaultSubcommand: List.self)

    /// An engine's effective configuration: $YARD_HOME/config/ENGINE.json with --config merged over it, as `yard run` uses it.
    static func effectiveConfig(_ engine: String, paths: YardPaths, override: String?) throws -> [String: JSONValue] {
        var overrides: [String: JSONValue] = [:]
        if let override {
            guard let object = (try? JSONValue(parsing: Data(override.utf8)))?.objectValue else {
                throw YardError("CONFIG_INVALID", "--config is not a JSON object.", remediation: "Pass e.g. --config '{\"base_url\":\"http://127.0.0.1:8080\"}'.", field: "--config")
            }
            overrides = object
        }
        return try EngineConfigs(paths: paths).config(for: engine, overrides: overrides)
    }

    /// A balance document (sy.balance/1) as one short cell.
    static func balanceText(_ json: String?, declared: Bool) -> String {
        guard declared else { return "n/a" }
        guard let json, let doc = (try? JSONValue(parsing: Data(json.utf8)))?.objectValue else { return "-" }
        if let error = doc["error"] {
            return "unavailable (\(error["code"]?.stringValue ?? "error"))"
        }
        if let quantity = doc["quantity"]?.doubleValue, let unit = doc["unit"]?.stringValue {
            let shown = quantity == quantity.rounded() ? String(Int64(quantity)) : String(format: "%.2f", quantity)
            return "\(shown) \(unit)"
        }
        guard let amount = doc["amount_minor"]?.intValue else { return "-" }
        return MinorUnits.text(amount, doc["currency"]?.stringValue ?? "USD")
    }

    static func statusText(_ health: EngineHealthRecord) -> String {
        switch health.code {
        case "AUTH_FAILED" where health.status != "ok": return "auth_failed"
        case "AUTH_MISSING" where health.status != "ok": return "auth_missing"
        default: return health.status
        }
    }

    struct Row: Encodable {
        var engine, status: String
        var balance: String?
        var checkedAt: Date?
        var code: String?
        var message: String?
        var remediation: String?
        enum CodingKeys: String, CodingKey {
            case engine, status, balance, code, message, remediation
            case checkedAt = "checked_at"
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "The matrix: each engine's health and balance (checked with its effective configuration and secrets; cached 60 s).")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Ask every engine now instead of using cached health.") var refresh = false
        @Option(help: "Only this engine (repeatable).") var engine: [String] = []
        @Option(help: "Engine configuration as a JSON object, merged over $YARD_HOME/config/ENGINE.json (needs exactly one --engine).") var config: String?
        @Flag(help: "One line per engine with the whole message and fix, however wide (default: fit the terminal, 100 columns off a terminal).") var wide = false

        func run() async throws {
            do {
                if config != nil && engine.count != 1 {
                    throw YardError(.usage, "--config applies to one engine.", remediation: "Name it: `yard engines --engine ID --config '{…}'`.", field: "--config")
                }
                let jobEngine = try JobEngine.standard(paths: global.paths, registry: global.registry)
                var rows: [Row] = []
                for installed in global.registry.list() where engine.isEmpty || engine.contains(installed.id) {
                    guard installed.status == .ok else {
                        rows.append(Row(engine: installed.id, status: installed.status.rawValue, message: installed.problem?.message, remediation: installed.problem?.remediation))
                        continue
                    }
                    do {
                        let plugin = try jobEngine.plugin(installed.id)
                        let declaresBalance = plugin.manifest.extensions.contains("sy.balance/1")
                        let missing = plugin.manifest.secrets.filter { $0.required && jobEngine.secrets.value(of: $0.name) == nil }.map(\.name)
                        if !missing.isEmpty {
                            rows.append(Row(engine: installed.id, status: "auth_missing", balance: declaresBalance ? "-" : "n/a", code: "AUTH_MISSING",
                                            message: "missing secrets: \(missing.joined(separator: ", "))",
                                            remediation: missing.map { "yard secrets set \($0)" }.joined(separator: "; ")))
                            continue
                        }
                        let effective = try EnginesCommand.effectiveConfig(installed.id, paths: global.paths, override: config)
                        let health = await jobEngine.health(of: plugin, config: effective, maxAge: refresh ? 0 : jobEngine.policy.healthTTLSeconds, balance: true)
                        let age = Int(Date().timeIntervalSince(health.checkedAt))
                        rows.append(Row(engine: installed.id, status: EnginesCommand.statusText(health),
                                        balance: EnginesCommand.balanceText(health.balanceJSON, declared: declaresBalance),
                                        checkedAt: health.checkedAt, code: health.status == "ok" ? nil : health.code, message: health.message,
                                        remediation: health.status == "ok" ? nil : JobEngine.healthRefusal(health, manifest: plugin.manifest, age: age).remediation))
                    } catch let error as YardError {
                        rows.append(Row(engine: installed.id, status: error.code.rawValue == "CONFIG_INVALID" ? "config_invalid" : "unloadable",
                                        message: error.message, remediation: error.remediation))
                    }
                }
                if global.json { printJSON(rows); return }
                print(EnginesCommand.render(rows, now: Date(), width: wide ? nil : Terminal.columns))
            } catch { throw fail(error, json: global.json) }
        }
    }

    /// The setup page's Test Connection, on the command line.
    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Test one engine's connection now: secrets, configuration, reachability, credentials, a cheap read, balance.",
            discussion: "Uses the engine's effective configuration ($YARD_HOME/config/ENGINE.json, then --config) and never the cache. Exit status 0 when every check passes.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Engine (plugin id).") var engine: String
        @Option(help: "Engine configuration as a JSON object, merged over $YARD_HOME/config/ENGINE.json.") var config: String?

        struct Check: Encodable {
            var id: String
            var result: String
            var detail: String
        }

        struct Report: Encodable {
            var engine: String
            var ok: Bool
            var checks: [Check]
            var remediation: String?
        }

        func run() async throws {
            do {
                let jobEngine = try JobEngine.standard(paths: global.paths, registry: global.registry)
                let plugin = try jobEngine.plugin(engine)
                let manifest = plugin.manifest
                var checks: [Check] = []
                var fix: String?
                let missing = manifest.secrets.filter { $0.required && jobEngine.secrets.value(of: $0.name) == nil }.map(\.name)
                checks.append(Check(id: "secrets", result: missing.isEmpty ? "pass" : "fail",
                                    detail: missing.isEmpty ? "\(manifest.secrets.filter(\.required).count) required secret(s) set" : "missing \(missing.joined(separator: ", "))"))
                if !missing.isEmpty { fix = missing.map { "`yard secrets set \($0)`" }.joined(separator: "; ") }
                let effective = try EnginesCommand.effectiveConfig(engine, paths: global.paths, override: config)
                if let schema = manifest.configSchema, let compiled = try? JSONSchema(schema), let first = compiled.validate(.object(effective)).first {
                    checks.append(Check(id: "config", result: "fail", detail: "\(first.path): \(first.message)"))
                    fix = fix ?? "Fix --config or $YARD_HOME/config/\(engine).json."
                } else {
                    checks.append(Check(id: "config", result: "pass", detail: effective.isEmpty ? "no configuration (defaults)" : "keys: \(effective.keys.sorted().joined(separator: ", "))"))
                }
                if missing.isEmpty {
                    let health = await jobEngine.health(of: plugin, config: effective, maxAge: 0, balance: true)
                    let code = health.code ?? (health.status == "ok" ? nil : "ENGINE_OFFLINE")
                    let authProblem = code == "AUTH_FAILED" || code == "AUTH_MISSING"
                    let reached = health.status != "offline" || authProblem
                    checks.append(Check(id: "reachable", result: reached ? "pass" : "fail", detail: reached ? "the provider answered" : health.message ?? "no answer"))
                    checks.append(Check(id: "auth", result: !reached ? "skip" : authProblem ? "fail" : "pass",
                                        detail: !reached ? "not reached" : authProblem ? health.message ?? "credentials refused" : "credentials accepted"))
                    checks.append(Check(id: "read", result: health.status == "ok" ? "pass" : health.status == "degraded" ? "warn" : "fail",
                                        detail: "\(health.status): \(health.message ?? "")"))
                    if health.status != "ok" && fix == nil {
                        fix = JobEngine.healthRefusal(health, manifest: manifest, age: 0).remediation
                    }
                    let declaresBalance = manifest.extensions.contains("sy.balance/1")
                    let text = EnginesCommand.balanceText(health.balanceJSON, declared: declaresBalance)
                    var detail = text
                    if let json = health.balanceJSON, let doc = (try? JSONValue(parsing: Data(json.utf8)))?.objectValue {
                        detail = doc["error"]?["message"]?.stringValue.map { "\(text): \($0)" } ?? "\(text) (\(doc["basis"]?.stringValue ?? ""))"
                    }
                    checks.append(Check(id: "balance", result: !declaresBalance ? "n/a" : text.hasPrefix("unavailable") ? "warn" : "pass",
                                        detail: declaresBalance ? detail : "\(engine) reports no balance"))
                }
                let ok = !checks.contains { $0.result == "fail" }
                let report = Report(engine: engine, ok: ok, checks: checks, remediation: ok ? nil : fix)
                if global.json {
                    printJSON(report)
                } else {
                    print("Connection test of \(engine) \(manifest.version)")
                    for check in checks { print("  \(check.result.padding(toLength: 5, withPad: " ", startingAt: 0)) \(check.id.padding(toLength: 10, withPad: " ", startingAt: 0)) \(check.detail)") }
                    if let fix = report.remediation { print("  fix: \(fix)") }
                    print(ok ? "Connection OK." : "Connection failed.")
                }
                if !ok { throw ExitCode(1) }
            } catch let exit as ExitCode { throw exit } catch { throw fail(error, json: global.json) }
        }
    }

    /// The health matrix. With a width, every line fits it: the message, and
    /// for a problem the fix, wrapped at words under the DETAIL column.
    static func render(_ rows: [Row], now: Date, width: Int?) -> String {
        func age(_ date: Date?) -> String {
            guard let date else { return "-" }
            let seconds = max(0, Int(now.timeIntervalSince(date)))
            return seconds < 120 ? "\(seconds) s ago" : seconds < 7200 ? "\(seconds / 60) min ago" : "\(seconds / 3600) h ago"
        }
        guard let width else {
            return table(["ENGINE", "STATUS", "BALANCE", "CHECKED", "MESSAGE", "FIX"], rows.map {
                [$0.engine, $0.status, $0.balance ?? "", age($0.checkedAt), $0.message ?? "", $0.remediation ?? ""]
            })
        }
        let header = ["ENGINE", "STATUS", "BALANCE", "CHECKED"]
        let cells = rows.map { [$0.engine, $0.status, $0.balance ?? "", age($0.checkedAt)] }
        let widths = header.indices.map { i in ([header[i]] + cells.map { $0[i] }).map(\.count).max() ?? 0 }
        let indent = widths.reduce(0, +) + 2 * widths.count
        let room = max(20, width - indent)
        let margin = String(repeating: " ", count: indent)
        func pad(_ row: [String]) -> String { zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ") + "  " }
        var lines = [pad(header) + "DETAIL"]
        for (row, cell) in zip(rows, cells) {
            var detail = wrap(row.message ?? (row.status == "ok" ? "" : "no details"), width: room)
            if row.status != "ok", let fix = row.remediation, !fix.isEmpty { detail += wrap("fix: " + fix, width: room, hanging: 5) }
            lines.append(pad(cell) + (detail.first ?? ""))
            lines += detail.dropFirst().map { margin + $0 }
        }
        return lines.map { $0.replacingOccurrences(of: #"\s+$"#, with: "", options: .regularExpression) }.joined(separator: "\n")
    }

    /// Lines of at most `width` characters, broken between words (a word
    /// longer than the width is cut); continuation lines indented by `hanging`.
    static func wrap(_ text: String, width: Int, hanging: Int = 0) -> [String] {
        var lines: [String] = [], current = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: true).map(String.init) {
            let limit = lines.isEmpty ? width : width - hanging
            if current.isEmpty {
                current = word
            } else if current.count + 1 + word.count <= limit {
                current += " " + word
            } else {
                lines.append(current)
                current = word
            }
            while current.count > (lines.isEmpty ? width : width - hanging) {
                let cut = lines.isEmpty ? width : width - hanging
                lines.append(String(current.prefix(cut)))
                current = String(current.dropFirst(cut))
            }
        }
        if !current.isEmpty || lines.isEmpty { lines.append(current) }
        return lines.enumerated().map { $0.offset == 0 ? $0.element : String(repeating: " ", count: hanging) + $0.element }
    }
}

struct SecretsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secrets", abstract: "Store provider keys encrypted at rest (AES-GCM); environment variables override.",
        subcommands: [Set.self, List.self, Remove.self])

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store a secret, read from standard input (or a no-echo prompt on a terminal).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Name as plugins declare it, e.g. FAL_KEY.") var name: String

        func run() throws {
            do {
                let value: String
                if isatty(STDIN_FILENO) == 1 {
                    guard let entered = getpass("\(name): ") else { throw YardError(.usage, "No value entered.", remediation: "Type the value, or pipe it in.") }
                    value = String(cString: entered)
                } else {
                    value = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                        .trimmingCharacters(in: .whitespacesAndNewlines)
                }
                guard !value.isEmpty else { throw YardError(.usage, "The value for \(name) is empty.", remediation: "Pipe the value in: `printf %s \"$KEY\" | yard secrets set \(name)`.") }
                try SecretVault(paths: global.paths).set(name, value: value)
                if global.json { printJSON(["stored": name]) } else { print("Stored \(name) (encrypted).") }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Names of stored secrets (never values).")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let names = SecretVault(paths: global.paths).names()
            if global.json { printJSON(names.map { ["name": $0.name, "overridden_by_environment": $0.fromEnvironment ? "yes" : "no"] }); return }
            if names.isEmpty { print("No secrets stored.") }
            for entry in names { print(entry.name + (entry.fromEnvironment ? "  (overridden by the environment)" : "")) }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a stored secret.")
        @OptionGroup var global: GlobalOptions
        @Argument var name: String

        func run() throws {
            do {
                guard try SecretVault(paths: global.paths).remove(name) else {
                    throw YardError("SECRET_NOT_FOUND", "No stored secret \(name).", remediation: "See `yard secrets list`.", field: "name")
                }
                if global.json { printJSON(["removed": name]) } else { print("Removed \(name).") }
            } catch { throw fail(error, json: global.json) }
        }
    }
}
