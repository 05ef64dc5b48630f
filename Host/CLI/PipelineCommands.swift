import ArgumentParser
import Foundation
import SwitchyardHost
import SwitchyardJSON

/// Options of `yard run` that apply to pipelines.
struct PipelineRunOptions: ParsableArguments {
    @Option(help: "Quality level of a pipeline: low, standard or pro (default: the pipeline's).") var quality: String?
    @Flag(name: .customLong("no-cache"), help: "Run every pipeline step again instead of reusing cached step results.") var noCache = false
    @Option(help: "Continue pipeline run RUN where it stopped (after a crash), or retry its failed steps.") var resume: String?
    @Option(name: .customLong("output-dir"), help: "Copy the output files into this folder (NAME.EXT) when the job or pipeline succeeds.") var outputDir: String?
    @Option(name: .customLong("prefer"), help: "Try ENGINE first for STEP, e.g. --prefer motion=kling (repeatable); the step's other engines stay as fallbacks.")
    var prefer: [String] = []
}

/// Loads a pipeline and its inputs the same way for `yard plan` and `yard run`.
struct PipelineRequest {
    var definition: PipelineDefinition
    var source: String
    var inputs: [String: JSONValue]

    init(reference: String, rawInputs: [String], prefer: [String] = [], engine: JobEngine) throws {
        let located = try PipelineDefinition.locate(reference, presets: PresetLibrary.standard())
        definition = try located.0.preferring(PipelineDefinition.preferences(prefer))
        source = located.source
        inputs = try RunCommand.parseInputs(rawInputs, artifacts: engine.artifacts)
    }
}

struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Check a pipeline before anything runs: inputs, step-to-step types, engines, secrets, health and cost.",
        discussion: """
            Each step is pre-flighted on its engines in preference order; the first that passes is the one `yard run` would use.
            Inputs an earlier step supplies are checked against that step's output schema; what only the run can
            know is listed under the engine as "? … checked when the step runs".
            Exit status 0 when the pipeline is ready to run, 1 otherwise.
            Examples:
              yard plan ugc-product-clip --input product_image=@Registry/samples/product.png --input script="Meet the bottle."
              yard plan ugc-product-clip --input product_image=@Registry/samples/product.png --input script="Hi." --prefer motion=kling
              yard plan my-pipeline.yaml --input photo=@me.jpg --json
            """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Pipeline file (.yaml/.json) or preset name.") var pipeline: String
    @Option(name: .customLong("input"), help: "A pipeline input as key=value or key=@file (repeatable).") var inputs: [String] = []
    @Option(help: "Quality level: low, standard or pro (default: the pipeline's).") var quality: String?
    @Option(name: .customLong("prefer"), help: "Try ENGINE first for STEP, e.g. --prefer motion=kling (repeatable); the step's other engines stay as fallbacks.")
    var prefer: [String] = []

    func run() async throws {
        do {
            let engine = try JobEngine.standard(paths: global.paths, registry: global.registry)
            let request = try PipelineRequest(reference: pipeline, rawInputs: inputs, prefer: prefer, engine: engine)
            let plan = await PipelinePlanner(engine: engine, configs: EngineConfigs(paths: global.paths))
                .plan(request.definition, inputs: request.inputs, quality: quality)
            if global.json { printJSON(plan) } else { PipelineText.printPlan(plan) }
            if !plan.ready { throw ExitCode(1) }
        } catch let exit as ExitCode { throw exit } catch { throw fail(error, json: global.json) }
    }
}

/// `yard run FILE|PRESET` and `yard run --resume RUN`.
struct PipelineRunFlow {
    var global: GlobalOptions
    var options: PipelineRunOptions
    var reference: String?
    var rawInputs: [String]
    var detach = false
    var progress: ProgressMode = .off

    struct Result: Encodable {
        var run: PipelineRunView
        var plan: PipelinePlan?
        /// For a detached run: the background driver's pid.
        var driver: Int32?
    }

    func run() async throws {
        let engine = try JobEngine.standard(paths: global.paths, registry: global.registry)
        let configs = EngineConfigs(paths: global.paths)
        let runner = try PipelineRunner(engine: engine, configs: configs)
        var plan: PipelinePlan?
        let runID: String
        if let resume = options.resume {
            runID = try runner.reopen(resume).id
        } else {
            guard let reference else { throw YardError(.usage, "Name a pipeline file or preset.", remediation: "Run `yard presets list`.", field: "FILE") }
            let request = try PipelineRequest(reference: reference, rawInputs: rawInputs, prefer: options.prefer, engine: engine)
            let checked = await PipelinePlanner(engine: engine, configs: configs).plan(request.definition, inputs: request.inputs, quality: options.quality)
            plan = checked
            guard checked.ready else {
                if global.json { printJSON(checked) } else { PipelineText.printPlan(checked) }
                throw ExitCode(1)
            }
            if progress != .off {
                let chosen = checked.steps.map { "\($0.name) on \($0.engine ?? ($0.runs == .no ? "(skipped)" : "?"))" }.joined(separator: ", ")
                Terminal.err("plan: \(chosen); estimate \(Money.format(checked.estimate?.amountMinor ?? 0, checked.estimate?.currency ?? "USD"))\n")
            }
            let prepared = PipelinePlanner.prepareInputs(request.definition, given: request.inputs).values
            runID = try runner.create(request.definition, source: request.source, inputs: prepared, quality: checked.quality, noCache: options.noCache).id
        }
        if detach {
            let pid = BackgroundDriver.ensureRunning(global)
            guard let current = try runner.store.run(id: runID) else { throw PipelineRunStore.runNotFound(runID) }
            let view = PipelineRunView(current, steps: try runner.store.steps(runID: runID), artifacts: engine.artifacts, copied: [:])
            if global.json { printJSON(Result(run: view, plan: plan, driver: pid)); return }
            print("run \(runID): \(current.state.rawValue); \(pid.map { "a background driver (pid \($0)) runs it" } ?? "no driver could be started; run `yard jobs resume`")")
            print("follow it with `yard runs show \(runID)`; cancel it with `yard runs cancel \(runID)`")
            return
        }
        let view = PipelineProgressView(mode: progress, runID: runID)
        view.start(steps: try runner.store.steps(runID: runID))
        let finished: PipelineRunRecord
        // Claimed for as long as this process executes the run: the store's driver leaves it alone.
        if let claim = StoreLock.acquire(global.paths.claimFile(runID), note: "\(getpid())") {
            let interrupts = InterruptGuard(engine: engine, runID: runID) {
                ((try? runner.store.steps(runID: runID)) ?? []).compactMap { step in step.jobID.flatMap { try? engine.store.job(id: $0) } }
            }
            interrupts.install()
            defer {
                interrupts.remove()
                claim.release(removingFile: true)
            }
            finished = try await runner.execute(runID) { view.update($0) }
        } else {
            finished = try await RunFollower(global: global, runner: runner).follow(runID) { view.update($0) }
        }
        view.finish()
        // Settled steps wrote usage to the billing outbox: send it before this process exits.
        await engine.deliverUsage()
        let steps = try runner.store.steps(runID: runID)
        var copied: [String: String] = [:]
        if finished.state == .succeeded, let outputDir = options.outputDir {
            copied = try PipelineText.copyOutputs(finished, to: URL(fileURLWithPath: outputDir), artifacts: engine.artifacts)
        }
        let result = PipelineRunView(finished, steps: steps, artifacts: engine.artifacts, copied: copied)
        if global.json { printJSON(Result(run: result, plan: plan)) } else { PipelineText.printSummary(result) }
        if finished.state != .succeeded { throw ExitCode(1) }
    }
}

/// Follows a run another process executes, by reading the store.
struct RunFollower {
    let global: GlobalOptions
    let runner: PipelineRunner

    func follow(_ runID: String, onStep: (PipelineStepUpdate) -> Void) async throws -> PipelineRunRecord {
        var seen: [String: PipelineStepState] = [:]
        var lastDriverCheck = Date.distantPast
        while true {
            guard let run = try runner.store.run(id: runID) else { throw PipelineRunStore.runNotFound(runID) }
            for step in try runner.store.steps(runID: runID) where seen[step.name] != step.state {
                seen[step.name] = step.state
                onStep(PipelineStepUpdate(runID: runID, step: step, job: nil))
            }
            if run.state != .running { return run }
            if Date().timeIntervalSince(lastDriverCheck) > 2 {
                lastDriverCheck = Date()
                if !StoreDriver.isDriven(paths: global.paths), !StoreLock.isHeld(global.paths.claimFile(runID)) { BackgroundDriver.ensureRunning(global) }
            }
            try await Task.sleep(nanoseconds: 500_000_000)
        }
    }
}

struct PresetsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "presets", abstract: "The pipeline presets shipped in Registry/presets.", subcommands: [List.self, Show.self])

    static func library() throws -> PresetLibrary {
        guard let library = PresetLibrary.standard() else {
            throw YardError("PRESET_NOT_FOUND", "The Registry folder (with presets/) was not found next to yard.",
                            remediation: "Run yard from the source tree, or set YARD_REGISTRY to the Registry folder.")
        }
        return library
    }

    struct Summary: Encodable {
        var id, title, description, file: String
        var capabilities: [String]
        var inputs: [String]
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every preset: id, title, the capabilities it chains.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            do {
                let library = try PresetsCommand.library()
                let presets = try library.files().map { url -> Summary in
                    let p = try PipelineDefinition.load(url)
                    return Summary(id: p.id, title: p.title, description: p.description, file: url.path, capabilities: p.steps.map(\.capability),
                                   inputs: p.inputs.keys.sorted())
                }
                if global.json { printJSON(presets); return }
                print(table(["PRESET", "TITLE", "STEPS"], presets.map { [$0.id, $0.title, $0.capabilities.joined(separator: " → ")] }))
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One preset: inputs, steps and engines, quality levels, safety notes, consent rules, failure modes.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Preset id, e.g. ugc-product-clip.") var id: String

        func run() throws {
            do {
                let library = try PresetsCommand.library()
                let preset = try library.load(id)
                if global.json { printJSON(preset.document); return }
                PipelineText.printPreset(preset, library: library)
            } catch { throw fail(error, json: global.json) }
        }
    }
}
