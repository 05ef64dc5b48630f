import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// The fal adapter through the real engine against the fal stand-in.
final class FalAdapterTests: TemporaryDirectoryTestCase {
    var standIn: FalStandIn!

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        standIn = FalStandIn()
        try await standIn.start()
    }

    override func tearDown() async throws {
        await standIn?.stop()
        try await super.tearDown()
    }

    func makeEngine(key: String? = nil, catalog: CapabilityCatalog? = nil) throws -> JobEngine {
        let plugins = dir.appendingPathComponent("plugins-\(UUID().uuidString.prefix(6))")
        try copyPlugin("fal", to: plugins)
        let engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: plugins, secrets: ["FAL_KEY": key ?? standIn.key], catalog: catalog)
        engine.policy.minPollMs = 1
        engine.policy.maxPollMs = 5
        return engine
    }

    var config: [String: JSONValue] { ["queue_url": .string(standIn.baseURL), "rest_url": .string(standIn.baseURL)] }

    func run(_ engine: JobEngine, _ capability: String, _ inputs: [String: JSONValue]) async throws -> JobRecord {
        try await engine.drive(try await engine.start(JobSpec(pluginID: "fal", capability: capability, inputs: inputs, config: config)).id)
    }

    func testAnImageIsGeneratedAndDownloaded() async throws {
        let job = try await run(try makeEngine(), "image.generate", ["prompt": "a lighthouse at dawn"])
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let outputs = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(job.outputsJSON).utf8)) as? [String: Any])
        let image = try XCTUnwrap((outputs["images"] as? [[String: Any]])?.first)
        XCTAssertTrue((image["artifact"] as? String ?? "").hasPrefix("sha256:"))
        XCTAssertEqual(image["media_type"] as? String, "image/png")
        XCTAssertEqual(image["width"] as? Int, 1024)
        XCTAssertEqual(outputs["seed"] as? Int, 7)
        XCTAssertEqual(standIn.submissions, 1)
    }

    func testLocalFilesAreUploadedThroughTheStorageTokenFlow() async throws {
        let engine = try makeEngine(catalog: CapabilityCatalog())
        let bytes = Data("a local product photo".utf8)
        let digest = try engine.artifacts.put(bytes, mediaType: "image/png")
        let job = try await run(engine, "image.upscale", ["prompt": "sharper", "image": ["artifact": .string("sha256:\(digest)"), "media_type": "image/png"]])
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(standIn.uploadedFiles, [bytes])
        let sent = try XCTUnwrap(standIn.input(of: 0)?["image"] as? String)
        XCTAssertTrue(sent.hasPrefix(standIn.baseURL + "/files/"), "fal receives a CDN URL, not the host's artifact handle")
    }

    func testMissingInputIsContractMismatchNamingTheField() async throws {
        let job = try await run(try makeEngine(catalog: CapabilityCatalog()), "image.generate", ["num_images": 1])
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "CONTRACT_MISMATCH")
        XCTAssertTrue(job.errorJSON?.contains(#""field":"$.inputs.prompt""#) == true, job.errorJSON ?? "")
        XCTAssertEqual(standIn.submissions, 0)
    }

    func testExhaustedBalanceIsInsufficientFundsWithTheTopUpRemedy() async throws {
        standIn.configure { $0.exhaustedBalance = true }
        let job = try await run(try makeEngine(), "image.generate", ["prompt": "x"])
        XCTAssertEqual(job.errorCode, "INSUFFICIENT_FUNDS")
        XCTAssertTrue(job.errorJSON?.contains("fal.ai/dashboard/billing") == true)
        XCTAssertTrue(job.errorJSON?.contains(#""charged":"no""#) == true)
    }

    func testAWrongKeyIsAuthFailed() async throws {
        let job = try await run(try makeEngine(key: "wrong:key"), "image.generate", ["prompt": "x"])
        XCTAssertEqual(job.errorCode, "AUTH_FAILED")
        XCTAssertEqual(standIn.submissions, 0)
    }

    func testConcurrencyLimitIsRetriedWithoutASecondRequest() async throws {
        standIn.configure { $0.rateLimitNext = 2 }
        let job = try await run(try makeEngine(), "image.generate", ["prompt": "x"])
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(standIn.submissions, 1)
    }

    func testRunnerErrorsAreRetryable() async throws {
        standIn.configure { $0.runnerErrorNext = 2 }
        let job = try await run(try makeEngine(), "image.generate", ["prompt": "x"])
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
    }

    func testARequestTimeoutAtFalIsEngineTimeout() async throws {
        standIn.configure { $0.completeWithErrorType = "request_timeout" }
        let job = try await run(try makeEngine(), "image.generate", ["prompt": "x"])
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "ENGINE_TIMEOUT")
    }

    func testCancellingAQueuedRequestIsFree() async throws {
        standIn.configure { $0.queuePolls = 100 }
        let engine = try makeEngine()
        let started = try await engine.start(JobSpec(pluginID: "fal", capability: "image.generate", inputs: ["prompt": "x"], config: config))
        let cancelled = try await engine.cancel(started.id)
        XCTAssertEqual(cancelled.phase, .cancelled)
        XCTAssertTrue(cancelled.cancelOutcomeJSON?.contains(#""outcome":"cancelled_in_queue""#) == true, cancelled.cancelOutcomeJSON ?? "")
        XCTAssertTrue(cancelled.cancelOutcomeJSON?.contains(#""charged":"no""#) == true)
    }

    func testCancellingAFinishedRequestSaysAlreadyFinishedAndBilled() async throws {
        let engine = try makeEngine()
        let done = try await run(engine, "image.generate", ["prompt": "x"])
        XCTAssertEqual(done.phase, .succeeded)
        let plugin = try engine.plugin("fal")
        let answer = plugin.call(.cancel, request: requestData(["ref": try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(done.refJSON).utf8))), "config": ["queue_url": standIn.baseURL]]))
        XCTAssertEqual(answer.json?["outcome"] as? String, "already_finished", "fal answered 400 ALREADY_COMPLETED")
        XCTAssertEqual(answer.json?["charged"] as? String, "yes")
    }

    func testAResultPastFalsRetentionIsResultExpired() async throws {
        standIn.configure { $0.queuePolls = 0; $0.runningPolls = 0 }
        let engine = try makeEngine()
        let started = try await engine.start(JobSpec(pluginID: "fal", capability: "image.generate", inputs: ["prompt": "x"], config: config))
        let ref = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(started.refJSON).utf8)) as? [String: Any])
        let plugin = try engine.plugin("fal")
        // The request finishes at fal while the host is away…
        for _ in 0..<2 { _ = plugin.call(.poll, request: requestData(["ref": ref, "config": ["queue_url": standIn.baseURL]])) }
        standIn.advance(ms: standIn.retentionMs + 1000)
        // …and the host comes back after fal stopped keeping the result.
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "RESULT_EXPIRED")
    }

    func testTheAdapterPassesTheConformanceKitAgainstTheStandIn() async throws {
        standIn.acceptAnyKey = true
        let configJSON = #"{"queue_url":"\#(standIn.baseURL)","rest_url":"\#(standIn.baseURL)"}"#
        let result = try yard(["plugin", "test", "fal", "--json", "--isolation", "both", "--config", configJSON], home: dir.appendingPathComponent("h"))
        let report = try XCTUnwrap(result.json as? [String: Any], result.stdout + result.stderr)
        let failed = (report["checks"] as? [[String: Any]] ?? []).filter { $0["ok"] as? Bool != true }
        XCTAssertEqual(failed.count, 0, "\(failed)")
    }

    func testTheManifestsModelTablePicksTheAppItsLimitsAndItsPrice() async throws {
        let engine = try makeEngine()
        func verdict(_ inputs: [String: JSONValue], config extra: [String: JSONValue] = [:]) async -> PreflightVerdict {
            await engine.preflight(JobSpec(pluginID: "fal", capability: "image.generate", inputs: inputs, config: config.merging(extra) { _, new in new }))
        }
        let byDefault = await verdict(["prompt": "x"])
        XCTAssertEqual(byDefault.model, "fal-ai/flux/dev")
        XCTAssertEqual(byDefault.estimate?.amountMinor, 3)
        let draft = await verdict(["prompt": "x", "model": "fal-ai/flux/schnell"])
        XCTAssertTrue(draft.ok, "\(draft.findings)")
        XCTAssertEqual(draft.estimate?.amountMinor, 1, "the model's own price")
        let tooManySteps = await verdict(["prompt": "x", "model": "fal-ai/flux/schnell", "steps": 20])
        XCTAssertEqual(tooManySteps.firstError?.field, "$.inputs.steps", "schnell narrows steps to 12")
        let unknown = await verdict(["prompt": "x", "model": "fal-ai/not-a-model"])
        XCTAssertEqual(unknown.firstError?.code, "CONTRACT_MISMATCH")
        XCTAssertEqual(unknown.firstError?.field, "$.inputs.model")
        XCTAssertTrue(unknown.firstError?.remediation.contains("fal-ai/flux/schnell") == true)
        let proWithSteps = await verdict(["prompt": "x", "steps": 4], config: ["models": ["image.generate": "fal-ai/flux-pro/v1.1"]])
        XCTAssertFalse(proWithSteps.ok, "the engine config can choose the model too, and its limits apply")

        let job = try await run(engine, "image.generate", ["prompt": "x", "model": "fal-ai/flux/schnell"])
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let submit = try XCTUnwrap(standIn.requestsSeen.last { $0.method == "POST" && $0.path.hasPrefix("/fal-ai/") })
        XCTAssertEqual(submit.path, "/fal-ai/flux/schnell")
        let sent = try XCTUnwrap(JSONSerialization.jsonObject(with: submit.body) as? [String: Any])
        XCTAssertNil(sent["model"], "the choice of app is not an input of the app")
        XCTAssertTrue(job.configJSON.contains("fal-ai/flux/schnell"), "the job records the model it ran on")
    }
}
