import ArgumentParser
import Foundation
import SwitchyardHost

/// `yard runs`: pipeline runs, as `yard jobs` is for single jobs.
struct RunsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List, inspect and cancel pipeline runs (continue one with `yard run --resume RUN`).",
        subcommands: [List.self, Show.self, Cancel.self])

    static func runner(_ global: GlobalOptions) throws -> (JobEngine, PipelineRunner) {
        let engine = try JobEngine.standard(paths: global.paths, registry: global.registry)
        return (engine, try PipelineRunner(engine: engine, configs: EngineConfigs(paths: global.paths)))
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recent pipeline runs, newest first.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "How many.") var limit = 50

        func run() throws {
            do {
                let (engine, runner) = try RunsCommand.runner(global)
                let runs = try runner.store.runs(limit: limit)
                if global.json {
                    printJSON(try runs.map { PipelineRunView($0, steps: try runner.store.steps(runID: $0.id), artifacts: engine.artifacts, copied: [:]) })
                    return
                }
                if runs.isEmpty { print("No pipeline runs yet. Start one with `yard run PRESET` (see `yard presets list`)."); return }
                print(table(["RUN", "PIPELINE", "STATE", "CREATED", "STEPS"], try runs.map { run in
                    let steps = try runner.store.steps(runID: run.id)
                    let done = steps.filter { $0.state == .succeeded || $0.state == .skipped }.count
                    return [run.id, run.pipelineID, run.state.rawValue, isoTimestamp(run.createdAt), "\(done)/\(steps.count)"]
                }))
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One run: its steps (engine, state, job, outputs), output files and error.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Run id (run_…).") var id: String

        func run() throws {
            do {
                let (engine, runner) = try RunsCommand.runner(global)
                guard let run = try runner.store.run(id: id) else { throw RunsCommand.notFound(id) }
                let view = PipelineRunView(run, steps: try runner.store.steps(runID: id), artifacts: engine.artifacts, copied: [:])
                if global.json { printJSON(view); return }
                PipelineText.printSummary(view)
                for step in view.steps { if let job = step.jobID { print("step \(step.name): job \(job)") } }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a run: its running step jobs are cancelled at their providers (prints whether they may still charge); no later step starts.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Run id (run_…).") var id: String

        func run() async throws {
            do {
                let (engine, runner) = try RunsCommand.runner(global)
                guard try runner.store.run(id: id) != nil else { throw RunsCommand.notFound(id) }
                let (run, jobs) = try await runner.cancel(id)
                await engine.deliverUsage()
                if global.json {
                    printJSON(["run": PipelineRunView(run, steps: try runner.store.steps(runID: id), artifacts: engine.artifacts, copied: [:])])
                    return
                }
                for job in jobs { print("\(job.id): \(job.phase.rawValue)\(job.cancelOutcomeJSON.map { " — provider said \($0)" } ?? "")") }
                print(run.state == .cancelled ? "\(id): cancelled" : "\(id): already \(run.state.rawValue); nothing to cancel")
            } catch { throw fail(error, json: global.json) }
        }
    }

    static func notFound(_ id: String) -> YardError {
        if id.hasPrefix("job_") {
            return YardError("RUN_NOT_FOUND", "\(id) is a job, not a pipeline run.", remediation: "Run `yard jobs show \(id)`.", field: "RUN")
        }
        return YardError("RUN_NOT_FOUND", "No pipeline run \(id).", remediation: "List runs with `yard runs list`.", field: "RUN")
    }
}
