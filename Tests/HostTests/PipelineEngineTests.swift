import Foundation
import XCTest
@testable import SwitchyardHost
import SwitchyardJSON

/// Pipelines through the real JobEngine, with echo (debug.echo) and two C
/// fixture engines that offer debug.echo: one whose health is offline, one
/// whose jobs fail after the provider may have billed them.
final class PipelineEngineTests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }
    var plugins: URL { dir.appendingPathComponent("plugins") }

    override func setUpWithError() throws {
        try super.setUpWithError()
        try FileManager.default.createDirectory(at: plugins, withIntermediateDirectories: true)
        try copyPlugin("echo", to: plugins)
    }

    func addFixture(_ name: String, id: String, edit: (inout [String: Any]) -> Void = { _ in }) throws {
        _ = try fixturePlugin(name, in: plugins) { manifest in
            manifest["id"] = id
            manifest["capabilities"] = [["id": "debug.echo"]]
            edit(&manifest)
        }
    }

    func engine(secrets: [String: String] = [:]) throws -> JobEngine {
        try makeTestEngine(home: home, plugins: plugins, secrets: secrets)
    }

    func runner(_ engine: JobEngine) throws -> PipelineRunner {
        try PipelineRunner(engine: engine, configs: EngineConfigs(paths: engine.paths))
    }

    /// Plans (it must be ready), creates and executes a run.
    func run(_ yaml: String, inputs: [String: JSONValue] = [:], noCache: Bool = false, engine: JobEngine? = nil) async throws -> (PipelineRunRecord, [String: PipelineStepRecord]) {
        let engine = try engine ?? self.engine()
        let definition = try PipelineDefinition.parse(yaml: yaml, source: "test.yaml")
        let plan = await PipelinePlanner(engine: engine, configs: EngineConfigs(paths: engine.paths)).plan(definition, inputs: inputs)
        XCTAssertTrue(plan.ready, "\(plan.findings) \(plan.steps.map(\.attempts))")
        let runner = try runner(engine)
        let prepared = PipelinePlanner.prepareInputs(definition, given: inputs).values
        let created = try runner.create(definition, source: "test.yaml", inputs: prepared, quality: nil, noCache: noCache)
        let finished = try await runner.execute(created.id)
        let steps = Dictionary(uniqueKeysWithValues: try runner.store.steps(runID: created.id).map { ($0.name, $0) })
        return (finished, steps)
    }

    func outputs(_ step: PipelineStepRecord?) -> [String: JSONValue] {
        step?.outputsJSON.flatMap { try? JSONValue(parsing: Data($0.utf8)) }?.objectValue ?? [:]
    }

    func attempts(_ step: PipelineStepRecord?) throws -> [EngineAttempt] {
        try JSONDecoder().decode([EngineAttempt].self, from: Data((step?.attemptsJSON ?? "[]").utf8))
    }

    // MARK: references, DAG, conditions

    func testReferencesCarryInputsAndOutputsIntoLaterSteps() async throws {
        let (run, steps) = try await run("""
            id: refs
            inputs:
              greeting: {type: string, required: true}
              polls: {type: integer, default: 1}
            steps:
              first:
                capability: debug.echo
                engines: [echo]
                inputs: {text: "${inputs.greeting}", polls: "${inputs.polls}"}
              second:
                capability: debug.echo
                engines: [echo]
                inputs: {text: "${steps.first.outputs.text}, world", polls: 0}
            outputs:
              text: ${steps.second.outputs.text}
              file: ${steps.second.outputs.file}
            """, inputs: ["greeting": "hello"])
        XCTAssertEqual(run.state, .succeeded, run.errorJSON ?? "")
        XCTAssertEqual(outputs(steps["first"])["text"], "hello")
        XCTAssertEqual(outputs(steps["second"])["text"], "hello, world")
        let job = try XCTUnwrap(engine().store.job(id: XCTUnwrap(steps["first"]?.jobID)))
        XCTAssertTrue(job.inputsJSON.contains("\"polls\":1"), "a whole reference keeps its type: \(job.inputsJSON)")
        let runOutputs = try JSONValue(parsing: Data(XCTUnwrap(run.outputsJSON).utf8))
        XCTAssertEqual(runOutputs["text"], "hello, world")
        XCTAssertNotNil(runOutputs["file"]?["artifact"]?.stringValue, "file outputs stay artifact handles")
    }

    func testIndependentStepsRunAtTheSameTime() async throws {
        let (run, steps) = try await run("""
            id: parallel
            steps:
              left: {capability: debug.echo, engines: [echo], inputs: {text: left, polls: 12}}
              right: {capability: debug.echo, engines: [echo], inputs: {text: right, polls: 12}}
              join:
                capability: debug.echo
                engines: [echo]
                inputs: {text: "${steps.left.outputs.text}+${steps.right.outputs.text}", polls: 0}
            """)
        XCTAssertEqual(run.state, .succeeded, run.errorJSON ?? "")
        let store = try engine().store
        let left = try XCTUnwrap(store.job(id: XCTUnwrap(steps["left"]?.jobID)))
        let right = try XCTUnwrap(store.job(id: XCTUnwrap(steps["right"]?.jobID)))
        let join = try XCTUnwrap(store.job(id: XCTUnwrap(steps["join"]?.jobID)))
        let leftEnd = try XCTUnwrap(left.finishedAt), rightEnd = try XCTUnwrap(right.finishedAt)
        XCTAssertLessThan(left.createdAt, rightEnd, "left started before right finished")
        XCTAssertLessThan(right.createdAt, leftEnd, "right started before left finished")
        XCTAssertGreaterThanOrEqual(join.createdAt, max(leftEnd, rightEnd), "join waits for both")
        XCTAssertEqual(outputs(steps["join"])["text"], "left+right")
    }

    let conditional = """
        id: conditional
        inputs:
          extra: {type: string}
        steps:
          base: {capability: debug.echo, engines: [echo], inputs: {text: base, polls: 0}}
          optional:
            capability: debug.echo
            when: ${inputs.extra}
            engines: [echo]
            inputs: {text: "${inputs.extra}", polls: 0}
          final:
            capability: debug.echo
            engines: [echo]
            inputs: {text: "${steps.optional.outputs.text ?? steps.base.outputs.text}", polls: 0}
        """

    func testAConditionalStepIsSkippedWhenItsInputIsAbsent() async throws {
        let (run, steps) = try await run(conditional)
        XCTAssertEqual(run.state, .succeeded, run.errorJSON ?? "")
        XCTAssertEqual(steps["optional"]?.state, .skipped)
        XCTAssertNil(steps["optional"]?.jobID)
        XCTAssertEqual(outputs(steps["final"])["text"], "base", "?? falls through a skipped step")
    }

    func testAConditionalStepRunsWhenItsInputIsGiven() async throws {
        let (run, steps) = try await run(conditional, inputs: ["extra": "extra!"])
        XCTAssertEqual(run.state, .succeeded, run.errorJSON ?? "")
        XCTAssertEqual(steps["optional"]?.state, .succeeded)
        XCTAssertEqual(outputs(steps["final"])["text"], "extra!")
    }

    // MARK: fallback

    func testFallsBackWhenTheFirstEngineIsOffline() async throws {
        try addFixture("offline_echo", id: "offline-echo")
        let (run, steps) = try await run("""
            id: offline
            steps:
              say: {capability: debug.echo, engines: [offline-echo, echo], inputs: {text: hi, polls: 0}}
            """)
        XCTAssertEqual(run.state, .succeeded, run.errorJSON ?? "")
        XCTAssertEqual(steps["say"]?.engine, "echo")
        let tried = try attempts(steps["say"])
        XCTAssertEqual(tried.map(\.engine), ["offline-echo"])
        XCTAssertEqual(tried.first?.code, "ENGINE_OFFLINE")
        XCTAssertNil(tried.first?.jobID, "refused in pre-flight: nothing was submitted")
    }

    func testFallsBackWhenTheProviderSaysTheFailureWasNotCharged() async throws {
        let (run, steps) = try await run("""
            id: uncharged
            steps:
              say:
                capability: debug.echo
                engines:
                  - {engine: echo, inputs: {fail_with: ENGINE_ERROR}}
                  - echo
                inputs: {text: hi, polls: 0}
            """)
        XCTAssertEqual(run.state, .succeeded, run.errorJSON ?? "")
        XCTAssertEqual(steps["say"]?.engineIndex, 1)
        let tried = try attempts(steps["say"])
        XCTAssertEqual(tried.first?.code, "ENGINE_ERROR")
        XCTAssertEqual(tried.first?.charged, "no")
        let failedJob = try XCTUnwrap(engine().store.job(id: XCTUnwrap(tried.first?.jobID)))
        XCTAssertEqual(failedJob.phase, .failed)
    }

    func testDoesNotFallBackWhenTheFailedAttemptMayHaveBeenBilled() async throws {
        try addFixture("billed_failure_echo", id: "billed-echo")
        let (run, steps) = try await run("""
            id: billed
            steps:
              say: {capability: debug.echo, engines: [billed-echo, echo], inputs: {text: hi, polls: 0}}
            """)
        XCTAssertEqual(run.state, .failed)
        XCTAssertEqual(steps["say"]?.state, .failed)
        let error = try JSONValue(parsing: Data(XCTUnwrap(steps["say"]?.errorJSON).utf8))
        XCTAssertEqual(error["code"], "ENGINE_ERROR")
        XCTAssertEqual(error["charged"], "unknown")
        let jobs = try engine().store.jobs(limit: 10, phase: nil)
        XCTAssertEqual(jobs.map(\.pluginID), ["billed-echo"], "echo was never tried: that could pay twice")
    }

    // MARK: plan

    func testPlanRefusesAnOutputWhoseTypeDoesNotFitTheInputItFeeds() async throws {
        let engine = try engine()
        let definition = try PipelineDefinition.parse(yaml: """
            id: mismatch
            steps:
              first: {capability: debug.echo, engines: [echo], inputs: {text: hi}}
              second:
                capability: debug.echo
                engines: [echo]
                inputs: {text: "${steps.first.outputs.file}", polls: "${steps.first.outputs.authenticated}"}
            """, source: "test.yaml")
        let plan = await PipelinePlanner(engine: engine, configs: EngineConfigs(paths: engine.paths)).plan(definition, inputs: [:])
        XCTAssertFalse(plan.valid)
        XCTAssertFalse(plan.ready)
        let mismatches = plan.findings.filter { $0.code == "TYPE_MISMATCH" }
        XCTAssertEqual(Set(mismatches.compactMap(\.field)), ["$.steps.second.inputs.text", "$.steps.second.inputs.polls"], "\(plan.findings)")
        XCTAssertTrue(mismatches.contains { $0.message.contains("file") && $0.message.contains("string") }, "\(mismatches)")
        XCTAssertEqual(try engine.store.jobs(limit: 10, phase: nil).count, 0, "planning runs nothing")
    }

    func testPlanReportsAMissingSecretAndChoosesTheNextEngine() async throws {
        try addFixture("billed_failure_echo", id: "billed-echo") { manifest in
            manifest["secrets"] = [["name": "BILLED_KEY", "required": true]]
        }
        let engine = try engine()
        let definition = try PipelineDefinition.parse(yaml: """
            id: secrets
            steps:
              say: {capability: debug.echo, engines: [billed-echo, echo], inputs: {text: hi}}
            """, source: "test.yaml")
        let plan = await PipelinePlanner(engine: engine, configs: EngineConfigs(paths: engine.paths)).plan(definition, inputs: [:])
        XCTAssertTrue(plan.ready, "\(plan.findings)")
        XCTAssertEqual(plan.steps.first?.engine, "echo")
        XCTAssertEqual(plan.steps.first?.attempts.first?.code, "AUTH_MISSING")
        XCTAssertEqual(plan.missingSecrets, [MissingSecret(engine: "billed-echo", secret: "BILLED_KEY", step: "say")])
        XCTAssertEqual(plan.estimate?.amountMinor, 0)
    }

    func testPlanRequiresConsentForIdentityInputs() async throws {
        let engine = try engine()
        let definition = try PipelineDefinition.parse(yaml: """
            id: consent
            inputs:
              face: {type: file}
              consent_given: {type: boolean, default: false}
            consent: {identity_inputs: [face]}
            steps:
              say: {capability: debug.echo, engines: [echo], inputs: {text: hi}}
            """, source: "test.yaml")
        let face: JSONValue = ["artifact": .string("sha256:" + String(repeating: "a", count: 64)), "media_type": "image/png"]
        let planner = PipelinePlanner(engine: engine, configs: EngineConfigs(paths: engine.paths))
        let refused = await planner.plan(definition, inputs: ["face": face])
        XCTAssertEqual(refused.findings.first?.code, "CONSENT_MISSING")
        XCTAssertFalse(refused.ready)
        let allowed = await planner.plan(definition, inputs: ["face": face, "consent_given": true])
        XCTAssertTrue(allowed.ready, "\(allowed.findings)")
    }

    // MARK: cache

    let failingSecondStep = """
        id: cached
        inputs:
          fail: {type: string}
        steps:
          first: {capability: debug.echo, engines: [echo], inputs: {text: expensive, polls: 1}}
          second:
            capability: debug.echo
            engines: [echo]
            inputs: {text: "${steps.first.outputs.text}", fail_with: "${inputs.fail}", polls: 0}
        """

    func testARerunAfterAFailureReusesTheFinishedStepsAndNoCacheRunsThemAgain() async throws {
        let engine = try engine()
        let (failed, firstSteps) = try await run(failingSecondStep, inputs: ["fail": "ENGINE_ERROR"], engine: engine)
        XCTAssertEqual(failed.state, .failed)
        XCTAssertEqual(firstSteps["first"]?.state, .succeeded)
        XCTAssertEqual(try engine.store.jobs(limit: 50, phase: nil).count, 2)

        let (rerun, steps) = try await run(failingSecondStep, engine: engine)
        XCTAssertEqual(rerun.state, .succeeded, rerun.errorJSON ?? "")
        XCTAssertEqual(steps["first"]?.cacheHit, true)
        XCTAssertEqual(steps["first"]?.jobID, firstSteps["first"]?.jobID, "the cached step points at the job that produced it")
        XCTAssertEqual(steps["second"]?.cacheHit, false)
        XCTAssertEqual(try engine.store.jobs(limit: 50, phase: nil).count, 3, "only the failed step ran again")

        let (forced, forcedSteps) = try await run(failingSecondStep, noCache: true, engine: engine)
        XCTAssertEqual(forced.state, .succeeded)
        XCTAssertEqual(forcedSteps["first"]?.cacheHit, false)
        XCTAssertEqual(try engine.store.jobs(limit: 50, phase: nil).count, 5, "--no-cache runs every step")
    }

    func testTheCacheKeyIgnoresHandleLabelsButNotContentOrSeed() {
        let a: [String: JSONValue] = ["image": ["artifact": .string("sha256:" + String(repeating: "1", count: 64)), "media_type": "image/png", "size": 10]]
        let b: [String: JSONValue] = ["image": ["artifact": .string("sha256:" + String(repeating: "1", count: 64))]]
        let c: [String: JSONValue] = ["image": ["artifact": .string("sha256:" + String(repeating: "2", count: 64))]]
        func key(_ inputs: [String: JSONValue], version: String = "1.0.0") -> String {
            PipelineRunner.cacheKey(pluginID: "x", version: version, capability: "image.upscale", inputs: inputs, config: [:])
        }
        XCTAssertEqual(key(a), key(b))
        XCTAssertNotEqual(key(a), key(c))
        XCTAssertNotEqual(key(b), key(b.merging(["seed": 7]) { $1 }))
        XCTAssertNotEqual(key(a), key(a, version: "1.0.1"), "a new engine version may give another result")
    }

    // MARK: file format

    func testTheFileIsCheckedBeforeAnythingRuns() {
        func refusal(_ yaml: String) -> YardError? {
            do { _ = try PipelineDefinition.parse(yaml: yaml, source: "bad.yaml"); return nil } catch { return error as? YardError }
        }
        let cycle = refusal("""
            id: cycle
            steps:
              a: {capability: debug.echo, engines: [echo], inputs: {text: "${steps.b.outputs.text}"}}
              b: {capability: debug.echo, engines: [echo], inputs: {text: "${steps.a.outputs.text}"}}
            """)
        XCTAssertEqual(cycle?.code.rawValue, "PIPELINE_INVALID")
        XCTAssertTrue(cycle?.message.contains("cycle") == true, "\(String(describing: cycle))")
        let unknownStep = refusal("""
            id: x
            steps:
              a: {capability: debug.echo, engines: [echo], inputs: {text: "${steps.nope.outputs.text}"}}
            """)
        XCTAssertEqual(unknownStep?.field, "$.steps.a.inputs")
        let unknownInput = refusal("""
            id: x
            steps:
              a: {capability: debug.echo, engines: [echo], inputs: {text: "${inputs.missing}"}}
            """)
        XCTAssertTrue(unknownInput?.message.contains("does not declare") == true)
        let noEngines = refusal("""
            id: x
            steps:
              a: {capability: debug.echo, inputs: {text: hi}}
            """)
        XCTAssertEqual(noEngines?.field, "$.steps.a.engines")
    }

    func testJSONAndYAMLDescribeTheSamePipeline() throws {
        let json = dir.appendingPathComponent("p.json")
        try Data(#"{"pipeline":1,"id":"j","steps":{"a":{"capability":"debug.echo","engines":["echo"],"inputs":{"text":"${inputs.t}"}}},"inputs":{"t":{"type":"string","required":true}}}"#.utf8).write(to: json)
        let yaml = dir.appendingPathComponent("p.yaml")
        try Data("pipeline: 1\nid: j\ninputs:\n  t: {type: string, required: true}\nsteps:\n  a:\n    capability: debug.echo\n    engines: [echo]\n    inputs: {text: \"${inputs.t}\"}\n".utf8).write(to: yaml)
        let a = try PipelineDefinition.load(json), b = try PipelineDefinition.load(yaml)
        XCTAssertEqual(a.document, b.document)
        XCTAssertEqual(a.steps.map(\.name), ["a"])
    }
}
