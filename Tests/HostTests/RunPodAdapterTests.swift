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
        standIn = try await started(RunPodStandIn())
        engine = try makeEngine(key: standIn.apiKey)
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

    func object(_ text: String?) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(text).utf8)) as? [String: Any])
    }

    func outputs(_ job: JobRecord) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(job.outputsJSON, "\(job.errorJSON ?? "")").utf8)) as? [String: Any])
    }

    func testAJobIsQueuedRunAndItsImageHarvested() async throws {
        let job = try await run(generate())
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let out = try outputs(job)
        let first = try XCTUnwrap((out["images"] as? [[String: Any]])?.first, "the worker's image_url as the catalog's images: \(out)")
        let image = try XCTUnwrap(first["file"] as? [String: Any])
        XCTAssertTrue((image["artifact"] as? String ?? "").hasPrefix("sha256:"), "downloaded before RunPod's 30-minute retention ends")
        XCTAssertEqual(image["media_type"] as? String, "image/png")
        XCTAssertEqual(first["width"] as? Int, 512, "read from the PNG: the worker reports no size")
        XCTAssertEqual(out["seed"] as? Int, 42)
        XCTAssertNil(out["runpod_metrics"], "usage is not an output")
        XCTAssertEqual(standIn.submissions, 1)
        let sent = try XCTUnwrap(standIn.jobIDs.first)
        XCTAssertEqual(standIn.status(of: sent), "COMPLETED")
        XCTAssertEqual(try object(job.usageJSON)["execution_ms"] as? Int, standIn.executionTime(of: sent), "the usage RunPod measured is kept for settlement")
    }

    func testColdStartKeepsPollingUntilAWorkerTakesTheJob() async throws {
        standIn.configure { $0.queueMs = 300 }
        let job = try await run(generate())
        XCTAssertEqual(job.phase, .succeeded)
        XCTAssertGreaterThanOrEqual(job.pollCount, 3, "polled while the job waited for a worker")
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
        standIn.advance(ms: 1_000)
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
        let started = try await engine.start(generate(["execution_timeout_ms": 5_000]))
        standIn.advance(ms: 6_000)
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.errorCode, "ENGINE_TIMEOUT")
        XCTAssertTrue(job.errorJSON?.contains(#""charged":"yes""#) == true)
        XCTAssertEqual(try object(job.usageJSON)["execution_ms"] as? Int, 5_000, "TIMED_OUT carries executionTime: the timeout it ran")
    }

    func testWorkerFailureCarriesTheWorkersMessage() async throws {
        standIn.configure { $0.failWith = "CUDA out of memory" }
        let job = try await run(generate())
        XCTAssertEqual(job.phase, .failed)
        let message = try object(job.errorJSON)["message"] as? String ?? ""
        XCTAssertTrue(message.contains("The worker failed: CUDA out of memory"), "error_message out of the worker SDK's JSON: \(message)")
        XCTAssertFalse(message.contains("error_traceback"), message)
        XCTAssertNotNil(try object(job.usageJSON)["execution_ms"] as? Int, "FAILED carries executionTime")
    }

    func testAHandlersOwnErrorTextIsShownAsItIs() async throws {
        standIn.configure { $0.failWithHandlerText = "prompt too long for this worker" }
        let job = try await run(generate())
        XCTAssertEqual(job.phase, .failed)
        XCTAssertTrue((try object(job.errorJSON)["message"] as? String ?? "").contains("prompt too long for this worker"))
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
        try cacheHealthy(wrong, "runpod", config: config)
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

        standIn.configure { $0.stuckInQueue = false; $0.runMs = 600_000 }
        let running = try await engine.start(generate())
        standIn.advance(ms: 1_500)
        XCTAssertEqual(standIn.status(of: standIn.jobIDs[1]), "IN_PROGRESS")
        let stopped = try await engine.cancel(running.id)
        XCTAssertTrue(stopped.cancelOutcomeJSON?.contains(#""outcome":"cancelled_running""#) == true, stopped.cancelOutcomeJSON ?? "")
        XCTAssertTrue(stopped.cancelOutcomeJSON?.contains(#""charged":"yes""#) == true)
        let used = try XCTUnwrap(try object(stopped.usageJSON)["execution_ms"] as? Int, "the time it ran is reported")
        XCTAssertGreaterThanOrEqual(used, 1_495)
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

    /// The whole conformance kit against the built-in stand-in, as a plugin author runs it with no account.
    func testTheAdapterPassesTheConformanceKitAgainstItsStandIn() throws {
        try assertConformantAgainstItsStandIn("runpod", home: dir.appendingPathComponent("h"))
    }
}
