import ArgumentParser
import Foundation
import SwitchyardHost

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
                if global.json { printJSON(JobView(job, cost: cost)); return }
                print("job       \(job.id)\nengine    \(job.pluginID) \(job.pluginVersion)\ncapability \(job.capability)\nstate     \(job.phase.rawValue)")
                print("cost      \(costLine(job, paths: global.paths))")
                print("idempotency key \(job.idempotencyKey)\ninputs    \(job.inputsJSON)")
                for line in job.outputLines { print("output    \(line)") }
                if let error = job.errorSummary { print("error     \(error)") }
                if let message = job.message { print("message   \(message)") }
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
            abstract: "Resume every unfinished job from its stored ref, then every unfinished pipeline run (after a crash or a detached run).",
            discussion: "Jobs caught between submit and storing their ref are reconciled with the provider, or set to needs_attention; never resubmitted on a guess.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            do {
                let engine = try JobEngine.standard(paths: global.paths, registry: global.registry)
                let progress = ProgressPrinter(enabled: !global.json)
                let jobs = try await engine.resumeAll { progress.show($0.job) }
                // Pipeline runs continue after their jobs: finished steps are not run again.
                let runs = try await PipelineRunner(engine: engine, configs: EngineConfigs(paths: global.paths)).resumeAll()
                progress.finish()
                await engine.deliverUsage()
                if global.json { printJSON(jobs.map(JobView.init)); return }
                if jobs.isEmpty && runs.isEmpty { print("Nothing to resume.") }
                for job in jobs { print("\(job.id)  \(job.pluginID)  \(job.phase.rawValue)\(job.errorCode.map { "  \($0)" } ?? "")") }
                for run in runs { print("\(run.id)  pipeline \(run.pipelineID)  \(run.state.rawValue)") }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A job's events: state changes, progress, provider messages.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String
        @Flag(help: "Keep printing new events until the job finishes.") var follow = false

        func run() async throws {
            do {
                let store = try SQLiteJobStore(path: global.paths.jobStoreFile)
                guard try store.job(id: id) != nil else {
                    throw YardError.jobNotFound(id)
                }
                var after: Int64 = 0
                let formatter = ISO8601DateFormatter()
                formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                while true {
                    for event in try store.events(jobID: id, afterID: after) {
                        after = event.id ?? after
                        if global.json {
                            var line: [String: String] = ["at": formatter.string(from: event.at), "kind": event.kind, "message": event.message]
                            if let data = event.dataJSON { line["data"] = data }
                            let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
                            print(String(decoding: data, as: UTF8.self))
                        } else {
                            print("\(formatter.string(from: event.at))  \(event.kind.padding(toLength: 10, withPad: " ", startingAt: 0)) \(event.message)")
                        }
                    }
                    guard follow, let job = try store.job(id: id), !job.phase.isTerminal else { break }
                    try await Task.sleep(nanoseconds: 200_000_000)
                }
            } catch { throw fail(error, json: global.json) }
        }
    }
}

struct EnginesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engines", abstract: "Health and balance of every installed engine, with what to do about problems.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Ask every engine now instead of using cached health.") var refresh = false

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
                    let health = await engine.health(of: plugin, config: [:], maxAge: refresh ? 0 : engine.policy.healthTTLSeconds)
                    rows.append(Row(engine: installed.id, status: health.status, balance: nil, checkedAt: health.checkedAt, message: health.message,
                                    remediation: health.status == "ok" ? nil : "Check the engine's service or deployment, then `yard engines --refresh`."))
                } catch let error as YardError {
                    rows.append(Row(engine: installed.id, status: "unloadable", message: error.message, remediation: error.remediation))
                }
            }
            if global.json { printJSON(rows); return }
            let now = Date()
            print(table(["ENGINE", "STATUS", "CHECKED", "MESSAGE", "FIX"], rows.map {
                [$0.engine, $0.status, $0.checkedAt.map { "\(Int(now.timeIntervalSince($0))) s ago" } ?? "-", $0.message ?? "", $0.remediation ?? ""]
            }))
        } catch { throw fail(error, json: global.json) }
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
