import ArgumentParser
import Foundation
import SwitchyardHost
import SwitchyardJSON

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List, inspect, cancel, resume and follow jobs.",
        subcommands: [List.self, Show.self, Cancel.self, Resume.self, Logs.self])

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
        commandName: "engines", abstract: "Health and balance of every installed engine, with what to do about problems.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Ask every engine now instead of using cached health.") var refresh = false
    @Flag(help: "One line per engine with the whole message and fix, however wide (default: fit the terminal, 100 columns off a terminal).") var wide = false

    struct Row: Encodable {
        var engine, status: String
        var balance: String?
        var checkedAt: Date?
        var message: String?
        var remediation: String?
        enum CodingKeys: String, CodingKey {
            case engine, status, balance, message, remediation
            case checkedAt = "checked_at"
        }
    }

    func run() async throws {
        do {
            let engine = try JobEngine.standard(paths: global.paths, registry: global.registry)
            var rows: [Row] = []
            for installed in global.registry.list() {
                guard installed.status == .ok else {
                    rows.append(Row(engine: installed.id, status: installed.status.rawValue, message: installed.problem?.message, remediation: installed.problem?.remediation))
                    continue
                }
                do {
                    let plugin = try engine.plugin(installed.id)
                    let missing = plugin.manifest.secrets.filter { $0.required && engine.secrets.value(of: $0.name) == nil }.map(\.name)
                    if !missing.isEmpty {
                        rows.append(Row(engine: installed.id, status: "auth_missing", message: "missing secrets: \(missing.joined(separator: ", "))",
                                        remediation: missing.map { "yard secrets set \($0)" }.joined(separator: "; ")))
                        continue
                    }
                    let config = (try? EngineConfigs(paths: global.paths).config(for: installed.id)) ?? [:]
                    let health = await engine.health(of: plugin, config: config, maxAge: refresh ? 0 : engine.policy.healthTTLSeconds)
                    let fix = health.code == "DEPENDENCY_MISSING" ? "Install what the message names, then `yard engines --refresh`."
                        : "Is it running there? Check `yard config show \(installed.id)`, then `yard engines --refresh`."
                    rows.append(Row(engine: installed.id, status: health.status, balance: nil, checkedAt: health.checkedAt, message: health.message,
                                    remediation: health.status == "ok" ? nil : fix))
                } catch let error as YardError {
                    rows.append(Row(engine: installed.id, status: "unloadable", message: error.message, remediation: error.remediation))
                }
            }
            if global.json { printJSON(rows); return }
            print(Self.render(rows, now: Date(), width: wide ? nil : Terminal.columns))
        } catch { throw fail(error, json: global.json) }
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
            return table(["ENGINE", "STATUS", "CHECKED", "MESSAGE", "FIX"], rows.map { [$0.engine, $0.status, age($0.checkedAt), $0.message ?? "", $0.remediation ?? ""] })
        }
        let header = ["ENGINE", "STATUS", "CHECKED"]
        let cells = rows.map { [$0.engine, $0.status, age($0.checkedAt)] }
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
