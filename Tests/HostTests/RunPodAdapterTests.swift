import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// The RunPod adapter through the real engine, against the RunPod stand-in
/// over real HTTP on loopback: the happy path and every failure PROVIDERS.md lists.
final class RunPodAdapterTests: TemporaryDirectoryTestCase {
    var standIn: RunPodStandIn!
    var engine: JobEngine!

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        standIn = RunPodStandIn()
        try await standIn.start()
        engine = try makeEngine(key: standIn.apiKey)
    }

    override func tearDown() async throws {
        await standIn?.stop()
        try await super.tearDown()
    }

    func makeEngine(key: String) throws -> JobEngine {
        let plugins = dir.appendingPathComponent("plugins-\(UUID().uuidString.prefix(6))")
        try copyPlugin("runpod", to: plugins)
        let engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: plugins, secrets: ["RUNPOD_API_KEY": key],
                                        http: BlockingHTTPTransport(defaultTimeoutMs: 3_000))
        engine.policy.minPollMs = 1
        engine.policy.maxPollMs = 5
        return engine
    }

    var config: [String: JSONValue] {
        ["endpoint_id": .string(standIn.endpointID), "base_url": .string(standIn.baseURL), "ttl_ms": 60_000]
    }

    func generate(_ extra: [String: JSONValue] = [:]) -> JobSpec {
        JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "a lighthouse at dawn"], config: config.merging(extra) { _, new in new })
    }

    func run(_ spec: JobSpec) async throws -> JobRecord {
        try await engine.drive(try await engine.start(spec).id)
    }

    func outputs(_ job: JobRecord) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(job.outputsJSON, "\(job.errorJSON ?? "")").utf8)) as? [String: Any])
    }

    func testAJobIsQueuedRunAndItsImageHarvested() async throws {
        let job = try await run(generate())
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let out = try outputs(job)
        let image = try XCTUnwrap(out["image_url"] as? [String: Any])
        XCTAssertTrue((image["artifact"] as? String ?? "").hasPrefix("sha256:"), "downloaded before RunPod's 30-minute retention ends")
        XCTAssertEqual(image["media_type"] as? String, "image/png")
        XCTAssertEqual(out["seed"] as? Int, 42)
        XCTAssertEqual((out["runpod_metrics"] as? [String: Any])?["execution_time_ms"] as? Int, 4200)
        XCTAssertEqual(standIn.submissions, 1)
        let sent = try XCTUnwrap(standIn.jobIDs.first)
        XCTAssertEqual(standIn.status(of: sent), "COMPLETED")
    }

    func testColdStartKeepsPollingUntilAWorkerTakesTheJob() async throws {
        standIn.configure { $0.coldStartPolls = 4 }
        let job = try await run(generate())
        XCTAssertEqual(job.phase, .succeeded)
        XCTAssertGreaterThanOrEqual(job.pollCount, 6)
    }

    func testAJobStuckInTheQueueIsCancelledAtItsDeadline() async throws {
        standIn.configure { $0.stuckInQueue = true }
        engine.policy.jobTimeoutSeconds = 0.3
        let job = try await run(generate())
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "ENGINE_TIMEOUT")
        XCTAssertEqual(standIn.status(of: try XCTUnwrap(standIn.jobIDs.first)), "CANCELLED", "the host cancelled it at RunPod")
    }

    func testCompletedWithoutOutputFailsAndSaysItWasBilled() async throws {
        standIn.configure { $0.completeWithoutOutput = true }
        let job = try await run(generate())
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "ENGINE_ERROR")
        XCTAssertTrue(job.errorJSON?.contains(#""charged":"yes""#) == true)
    }

    func testStatus404AfterTheTTLIsResultExpired() async throws {
        let started = try await engine.start(generate())
        standIn.advance(ms: 120_000)
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "RESULT_EXPIRED")
    }

    func testAResultPastRunPodsRetentionIsResultExpired() async throws {
        // The host was down while the job finished and for longer than RunPod keeps results.
        let started = try await engine.start(generate(["ttl_ms": 86_400_000]))
        let plugin = try engine.plugin("runpod")
        for _ in 0..<3 { _ = plugin.call(.poll, request: requestData(["ref": ["id": standIn.jobIDs[0]], "config": ["endpoint_id": standIn.endpointID, "base_url": standIn.baseURL]])) }
        XCTAssertEqual(standIn.status(of: standIn.jobIDs[0]), "COMPLETED")
        standIn.advance(ms: 31 * 60 * 1000)
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "RESULT_EXPIRED")
    }

    func testRateLimitedSubmitAndPollsAreRetriedWithoutASecondJob() async throws {
        _ = await engine.health(of: try engine.plugin("runpod"), config: config, maxAge: 0)
        standIn.configure { $0.rateLimitNext = 3; $0.retryAfterSeconds = 0 }
        let job = try await run(generate())
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(standIn.submissions, 1)
    }

    func testTimedOutAtRunPodIsEngineTimeout() async throws {
        standIn.configure { $0.timeOut = true }
        let job = try await run(generate())
        XCTAssertEqual(job.errorCode, "ENGINE_TIMEOUT")
        XCTAssertTrue(job.errorJSON?.contains(#""charged":"yes""#) == true)
    }

    func testWorkerFailureCarriesTheWorkersMessage() async throws {
        standIn.configure { $0.failWith = "CUDA out of memory" }
        let job = try await run(generate())
        XCTAssertEqual(job.phase, .failed)
        XCTAssertTrue(job.errorJSON?.contains("CUDA out of memory") == true)
    }

    func testAWrongKeyIsRefusedAsAuthFailedBeforeAnythingIsSubmitted() async throws {
        engine = try makeEngine(key: "rpa_WRONG")
        let verdict = await engine.preflight(generate())
        XCTAssertEqual(verdict.firstError?.code, "AUTH_FAILED", "the health check finds the bad key")
        XCTAssertEqual(standIn.submissions, 0)
    }

    func testAKeyRevokedAfterTheHealthCheckFailsTheSubmitAsAuthFailed() async throws {
        _ = await engine.health(of: try engine.plugin("runpod"), config: config, maxAge: 0)
        let wrong = try makeEngine(key: "rpa_REVOKED")
        _ = await wrong.health(of: try wrong.plugin("runpod"), config: config, maxAge: 0)
        try wrong.store.saveHealth(EngineHealthRecord(pluginID: "runpod", status: "ok", message: nil, checkedAt: Date()))
        let job = try await wrong.drive(try await wrong.start(generate()).id)
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "AUTH_FAILED")
        XCTAssertEqual(standIn.submissions, 0)
    }

    func testAServerErrorOnSubmitIsNeverBlindlyRetried() async throws {
        _ = await engine.health(of: try engine.plugin("runpod"), config: config, maxAge: 0)
        standIn.configure { $0.serverErrorNext = 1 }
        let job = try await run(generate())
        XCTAssertEqual(job.phase, .needsAttention, "RunPod has no idempotency key: a 5xx on /run may have created the job")
        XCTAssertEqual(standIn.submissions, 0)
    }

    func testMalformedStatusAnswersAreRetried() async throws {
        standIn.configure { $0.malformedNext = 2 }
        let job = try await run(generate())
        XCTAssertEqual(job.phase, .succeeded)
    }

    func testALateInProgressAfterCompletionDoesNotRegressTheJob() async throws {
        standIn.configure { $0.lateProgressAfterCompletion = true }
        let job = try await run(generate())
        XCTAssertEqual(job.phase, .succeeded)
        let plugin = try engine.plugin("runpod")
        let late = plugin.call(.poll, request: requestData(["ref": ["id": standIn.jobIDs[0]], "config": ["endpoint_id": standIn.endpointID, "base_url": standIn.baseURL]]))
        XCTAssertEqual(late.json?["state"] as? String, "running", "the stand-in did send the late update")
        let after = try await engine.apply(pollDocument: try XCTUnwrap(late.json), to: job.id, plugin: plugin)
        XCTAssertEqual(after.phase, .succeeded)
    }

    func testCancelInQueueIsFreeAndCancelWhileRunningIsBilled() async throws {
        standIn.configure { $0.stuckInQueue = true }
        let queued = try await engine.start(generate())
        let cancelled = try await engine.cancel(queued.id)
        XCTAssertTrue(cancelled.cancelOutcomeJSON?.contains(#""outcome":"cancelled_in_queue""#) == true, cancelled.cancelOutcomeJSON ?? "")
        XCTAssertTrue(cancelled.cancelOutcomeJSON?.contains(#""charged":"no""#) == true)

        standIn.configure { $0.stuckInQueue = false; $0.runningPolls = 100 }
        let running = try await engine.start(generate())
        let plugin = try engine.plugin("runpod")
        _ = plugin.call(.poll, request: requestData(["ref": ["id": standIn.jobIDs[1]], "config": ["endpoint_id": standIn.endpointID, "base_url": standIn.baseURL]]))
        let stopped = try await engine.cancel(running.id)
        XCTAssertTrue(stopped.cancelOutcomeJSON?.contains(#""outcome":"cancelled_running""#) == true, stopped.cancelOutcomeJSON ?? "")
        XCTAssertTrue(stopped.cancelOutcomeJSON?.contains(#""charged":"yes""#) == true)
    }

    func testHealthIsDegradedWhenJobsWaitWithoutWorkers() async throws {
        standIn.configure { $0.noWorkers = true; $0.stuckInQueue = true }
        _ = try await engine.start(generate())
        let health = await engine.health(of: try engine.plugin("runpod"), config: config, maxAge: 0)
        XCTAssertEqual(health.status, "degraded")
        XCTAssertTrue(health.message?.contains("no workers") == true)
    }

    func testMissingEndpointIDIsRefusedBeforeAnythingIsSent() async throws {
        let verdict = await engine.preflight(JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "x"], config: ["base_url": .string(standIn.baseURL)]))
        XCTAssertEqual(verdict.firstError?.code, "CONFIG_INVALID")
        XCTAssertEqual(standIn.submissions, 0)
    }

    func testTheAdapterPassesTheConformanceKitAgainstTheStandIn() async throws {
        standIn.acceptAnyKey = true
        let configJSON = #"{"endpoint_id":"\#(standIn.endpointID)","base_url":"\#(standIn.baseURL)","rest_url":"\#(standIn.restURL)"}"#
        let result = try yard(["plugin", "test", "runpod", "--json", "--isolation", "both", "--config", configJSON], home: dir.appendingPathComponent("h"))
        let report = try XCTUnwrap(result.json as? [String: Any], result.stdout + result.stderr)
        let failed = (report["checks"] as? [[String: Any]] ?? []).filter { $0["ok"] as? Bool != true }
        XCTAssertEqual(failed.count, 0, "\(failed)")
    }
}
