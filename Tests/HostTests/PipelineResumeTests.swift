import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// Resuming a pipeline never buys a step twice: the in-flight jobs of every
/// unfinished step are collected before anything is decided, even when a
/// sibling step has failed, and a step whose job exists is never submitted
/// again. The paid step is a Kling video against the Kling stand-in over
/// loopback, which counts every task it is asked to create.
final class PipelineResumeTests: TemporaryDirectoryTestCase {
    var kling: KlingStandIn!
    var home: URL { dir.appendingPathComponent("home") }
    var plugins: URL { dir.appendingPathComponent("plugins") }

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        kling = try await started(KlingStandIn())
        try FileManager.default.createDirectory(at: plugins, withIntermediateDirectories: true)
        try copyPlugin("echo", to: plugins)
        try copyPlugin("kling", to: plugins)
        let config = home.appendingPathComponent("config")
        try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
        try Data(#"{"base_url":"\#(kling.baseURL)"}"#.utf8).write(to: config.appendingPathComponent("kling.json"))
    }

    func engine() throws -> JobEngine {
        let engine = try makeTestEngine(home: home, plugins: plugins,
                                        secrets: ["KLING_ACCESS_KEY": kling.accessKey, "KLING_SECRET_KEY": kling.secretKey])
        engine.policy.minPollMs = 1
        engine.policy.maxPollMs = 5
        return engine
    }

    /// A free step that always fails beside a paid Kling step.
    let pipeline = """
        id: sibling-failure
        steps:
          voice: {capability: debug.echo, engines: [echo], inputs: {text: hi, fail_with: ENGINE_ERROR, polls: 0}}
          clip: {capability: video.from_text, engines: [kling], inputs: {prompt: a paper boat on a rainy street}}
        """

    /// The store as a SIGKILL leaves it: `voice` failed, `clip` running with
    /// its Kling task submitted (and paid) but not yet finished.
    func crashedRun(_ runner: PipelineRunner, clipState: PipelineStepState = .running) async throws -> PipelineRunRecord {
        let definition = try PipelineDefinition.parse(yaml: pipeline, source: "test.yaml")
        let run = try runner.create(definition, source: "test.yaml", inputs: [:], quality: nil, noCache: false)
        try runner.store.updateStep(runID: run.id, name: "voice") { row in
            row.state = .failed
            row.engine = "echo"
            row.errorJSON = #"{"code":"ENGINE_ERROR","message":"forced","charged":"no"}"#
            row.finishedAt = Date()
        }
        let clip = try runner.store.updateStep(runID: run.id, name: "clip") { row in
            row.state = .running
            row.engine = "kling"
            row.startedAt = Date()
        }
        let config = try runner.configs.config(for: "kling")
        let job = try await runner.engine.start(JobSpec(pluginID: "kling", capability: "video.from_text",
                                                        inputs: ["prompt": "a paper boat on a rainy street"], config: config,
                                                        idempotencyKey: clip.idempotencyKey))
        XCTAssertFalse(job.phase.isTerminal, "the Kling task is in flight when the host dies")
        try runner.store.updateStep(runID: run.id, name: "clip") { row in
            row.jobID = job.id
            row.state = clipState
        }
        XCTAssertEqual(kling.submissions, 1)
        return run
    }

    func step(_ runner: PipelineRunner, _ runID: String, _ name: String) throws -> PipelineStepRecord {
        try XCTUnwrap(try runner.store.steps(runID: runID).first { $0.name == name })
    }

    func testResumeAfterASiblingFailedCollectsTheInFlightJobAndTheNextRoundDoesNotBuyItAgain() async throws {
        let runner = try PipelineRunner(engine: try engine(), configs: EngineConfigs(paths: YardPaths(home: home)))
        let run = try await crashedRun(runner)

        // `yard run --resume RUN` after the kill.
        let resumed = try await runner.execute(try runner.reopen(run.id).id)
        XCTAssertEqual(resumed.state, .failed, "voice failed, so the run fails")
        let clip = try step(runner, run.id, "clip")
        XCTAssertEqual(clip.state, .succeeded, "the paid task was collected, not marked blocked: \(clip.errorJSON ?? "")")
        let job = try XCTUnwrap(try runner.engine.store.job(id: XCTUnwrap(clip.jobID)))
        XCTAssertEqual(job.phase, .succeeded)
        XCTAssertTrue(clip.outputsJSON?.contains("sha256:") == true, "its video was harvested: \(clip.outputsJSON ?? "")")

        // `yard run --resume RUN` once more: only the failed step runs again.
        let second = try await runner.execute(try runner.reopen(run.id).id)
        XCTAssertEqual(second.state, .failed)
        XCTAssertEqual(try step(runner, run.id, "clip").jobID, job.id)
        XCTAssertEqual(try step(runner, run.id, "voice").round, 1, "the failed step got a new round")
        XCTAssertEqual(kling.submissions, 1, "the Kling step was paid for once")
    }

    func testReopenKeepsTheRoundOfAStepWhoseJobIsStillInFlight() async throws {
        let runner = try PipelineRunner(engine: try engine(), configs: EngineConfigs(paths: YardPaths(home: home)))
        // What an earlier host left: the step marked blocked although its job was never collected.
        let run = try await crashedRun(runner, clipState: .blocked)
        try runner.store.updateRun(id: run.id) { row in
            row.state = .failed
            row.finishedAt = Date()
        }
        _ = try await runner.execute(try runner.reopen(run.id).id)
        let clip = try step(runner, run.id, "clip")
        XCTAssertEqual(clip.round, 0, "a new round would give the step a new idempotency key")
        XCTAssertEqual(clip.state, .succeeded, clip.errorJSON ?? "")
        XCTAssertEqual(kling.submissions, 1)
    }

    func testAStepWithAnInFlightJobIsCollectedBeforeItsCacheIsConsulted() async throws {
        let engine = try engine()
        let runner = try PipelineRunner(engine: engine, configs: EngineConfigs(paths: YardPaths(home: home)))
        let run = try await crashedRun(runner)
        // A cached result for the same inputs must not leave the paid task unharvested.
        let config = try runner.configs.config(for: "kling")
        let plugin = try engine.plugin("kling")
        let key = PipelineRunner.cacheKey(pluginID: "kling", version: plugin.manifest.version, capability: "video.from_text",
                                          inputs: ["prompt": "a paper boat on a rainy street"], config: config)
        try runner.store.saveCache(StepCacheRecord(key: key, pluginID: "kling", pluginVersion: plugin.manifest.version, capability: "video.from_text",
                                                   outputsJSON: "{}", jobID: "job_elsewhere", createdAt: Date()))
        _ = try await runner.execute(run.id)
        let clip = try step(runner, run.id, "clip")
        XCTAssertFalse(clip.cacheHit)
        XCTAssertEqual(try engine.store.job(id: XCTUnwrap(clip.jobID))?.phase, .succeeded)
    }
}
