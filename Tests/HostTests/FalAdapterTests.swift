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
        standIn = try await started(FalStandIn())
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
        let file = try XCTUnwrap(image["file"] as? [String: Any], "\(image)")
        XCTAssertTrue((file["artifact"] as? String ?? "").hasPrefix("sha256:"))
        XCTAssertEqual(file["media_type"] as? String, "image/png")
        XCTAssertEqual(image["width"] as? Int, 1024)
        XCTAssertEqual(outputs["seed"] as? Int, 7)
        XCTAssertEqual(standIn.submissions, 1)
    }

    func testLocalFilesAreUploadedThroughTheStorageTokenFlow() async throws {
        let engine = try makeEngine(catalog: CapabilityCatalog())
        let bytes = Data("a local product photo".utf8)
        let digest = try engine.artifacts.put(bytes, mediaType: "image/png")
        let job = try await run(engine, "image.upscale", ["image": ["artifact": .string("sha256:\(digest)"), "media_type": "image/png"]])
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(standIn.uploadedFiles, [bytes])
        let sent = try XCTUnwrap(standIn.input(of: 0)?["image_url"] as? String)
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

    func testAWrongKeyIsAuthFailedBeforeAnythingIsSubmitted() async throws {
        let engine = try makeEngine(key: "wrong:key")
        let verdict = await engine.preflight(JobSpec(pluginID: "fal", capability: "image.generate", inputs: ["prompt": "x"], config: config))
        XCTAssertEqual(verdict.firstError?.code, "AUTH_FAILED", "the health check reads the queue with the key")
        XCTAssertTrue(verdict.firstError?.message.contains("refused the credentials") == true, verdict.firstError?.message ?? "")
        XCTAssertTrue(verdict.firstError?.remediation.contains("FAL_KEY") == true, verdict.firstError?.remediation ?? "")
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
        standIn.configure { $0.stuckInQueue = true }
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
        let engine = try makeEngine()
        let started = try await engine.start(JobSpec(pluginID: "fal", capability: "image.generate", inputs: ["prompt": "x"], config: config))
        // The request finishes at fal while the host is away…
        standIn.advance(ms: 1_000)
        standIn.advance(ms: standIn.retentionMs + 1000)
        // …and the host comes back after fal stopped keeping the result.
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "RESULT_EXPIRED")
    }

    /// The whole conformance kit against the built-in stand-in, as a plugin author runs it with no account.
    func testTheAdapterPassesTheConformanceKitAgainstItsStandIn() throws {
        try assertConformantAgainstItsStandIn("fal", home: dir.appendingPathComponent("h"))
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

/// Each fal capability with the real catalog: catalog inputs reach each app in
/// its own names, and its answers come back as the catalog's outputs.
final class FalCatalogShapeTests: TemporaryDirectoryTestCase {
    var standIn: FalStandIn!
    var engine: JobEngine!

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        standIn = try await started(FalStandIn())
        let plugins = dir.appendingPathComponent("plugins")
        try copyPlugin("fal", to: plugins)
        engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: plugins, secrets: ["FAL_KEY": standIn.key],
                                    http: BlockingHTTPTransport(defaultTimeoutMs: 5_000))
        engine.policy.minPollMs = 1
        engine.policy.maxPollMs = 5
    }

    func run(_ capability: String, _ inputs: [String: JSONValue], file: StaticString = #filePath, line: UInt = #line) async throws -> JSONValue {
        let config: [String: JSONValue] = ["queue_url": .string(standIn.baseURL), "rest_url": .string(standIn.baseURL)]
        let job = try await engine.drive(try await engine.start(JobSpec(pluginID: "fal", capability: capability, inputs: inputs, config: config)).id)
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "", file: file, line: line)
        return try JSONValue(parsing: Data(XCTUnwrap(job.outputsJSON, job.errorJSON ?? "", file: file, line: line).utf8))
    }

    /// The body the stand-in received for the last submit to `app`.
    func sent(to app: String) throws -> [String: Any] {
        let request = try XCTUnwrap(standIn.requestsSeen.last { $0.method == "POST" && $0.path == "/" + app }, "nothing was submitted to \(app)")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: request.body) as? [String: Any])
    }

    func image(_ width: Int, _ height: Int) throws -> JSONValue {
        let digest = try engine.artifacts.put(StandInMedia.png(width: width, height: height, seed: "input"), mediaType: "image/png")
        return ["artifact": .string("sha256:\(digest)"), "media_type": "image/png"]
    }

    func testImageGenerateReturnsAsManyImagesAsAskedInTheCatalogsShape() async throws {
        let out = try await run("image.generate", ["prompt": "a red fox", "num_images": 3, "aspect_ratio": "16:9", "steps": 20, "seed": 11])
        let images = try XCTUnwrap(out["images"]?.arrayValue)
        XCTAssertEqual(images.count, 3)
        for image in images {
            XCTAssertEqual(image["width"], 1024)
            XCTAssertEqual(image["height"], 576)
            XCTAssertTrue(image["file"]?["artifact"]?.stringValue?.hasPrefix("sha256:") == true, "\(image)")
        }
        XCTAssertEqual(out["seed"], 11)
        XCTAssertNil(out["has_nsfw_concepts"], "fal's own members stay behind")
        let body = try sent(to: "fal-ai/flux/dev")
        XCTAssertEqual(body["image_size"] as? String, "landscape_16_9")
        XCTAssertEqual(body["num_inference_steps"] as? Int, 20)
        XCTAssertNil(body["steps"])
    }

    func testUpscalersAnswerAnImageWithItsSizeEvenWhenTheAppReportsNone() async throws {
        let clarity = try await run("image.upscale", ["image": try image(100, 50), "scale": 2])
        XCTAssertEqual(clarity["width"], 200)
        XCTAssertEqual(clarity["height"], 100)
        XCTAssertEqual(try sent(to: "fal-ai/clarity-upscaler")["upscale_factor"] as? Int, 2)
        // ESRGAN is chosen for a PNG answer (Clarity takes no output_format); its answer has no size, read from the file.
        let esrgan = try await run("image.upscale", ["image": try image(100, 50), "scale": 3, "output_format": "png"])
        XCTAssertEqual(esrgan["width"], 300)
        XCTAssertEqual(esrgan["height"], 150)
        XCTAssertEqual(try sent(to: "fal-ai/esrgan")["scale"] as? Int, 3)
    }

    func testVideoLipsyncAndSpeechComeBackWithTheirLengths() async throws {
        let video = try await run("video.from_image", ["image": try image(64, 64), "prompt": "a slow push in", "duration_seconds": 10])
        XCTAssertEqual(video["duration_seconds"]?.doubleValue ?? 0, 10, accuracy: 0.2, "read from the MP4")
        XCTAssertEqual(video["video"]?["media_type"], "video/mp4")
        XCTAssertEqual(try sent(to: "fal-ai/kling-video/v1.6/standard/image-to-video")["duration"] as? String, "10")

        let digest = try engine.artifacts.put(StandInMedia.wav(seconds: 2), mediaType: "audio/wav")
        let talking = try await run("video.lipsync", ["face_image": try image(64, 64), "audio": ["artifact": .string("sha256:\(digest)"), "media_type": "audio/wav"],
                                                      "consent_given": true])
        XCTAssertGreaterThan(talking["duration_seconds"]?.doubleValue ?? 0, 0)
        let sadtalker = try sent(to: "fal-ai/sadtalker")
        XCTAssertNotNil(sadtalker["source_image_url"], "a face photo goes to the model that animates photos")
        XCTAssertNotNil(sadtalker["driven_audio_url"])

        let speech = try await run("audio.speech", ["text": "Hello from the stand-in."])
        XCTAssertEqual(speech["duration_seconds"]?.doubleValue ?? 0, StandInMedia.speechMP3Seconds, accuracy: 0.01)
        XCTAssertEqual(speech["audio"]?["media_type"], "audio/mpeg")
        let playai = try sent(to: "fal-ai/playai/tts/v3")
        XCTAssertEqual(playai["input"] as? String, "Hello from the stand-in.")
        XCTAssertNotNil(playai["voice"], "PlayAI needs a voice: the adapter sends its default")

        let kokoro = try await run("audio.speech", ["text": "one two three four five", "model": "fal-ai/kokoro/american-english", "speed": 1.2])
        XCTAssertEqual(kokoro["duration_seconds"]?.doubleValue ?? 0, 2, accuracy: 0.01, "read from the WAV")
        XCTAssertEqual(kokoro["sample_rate"], 24_000)
    }

    func testImageEditWithAReferenceFaceRunsOnKontextMulti() async throws {
        let out = try await run("image.edit", ["image": try image(80, 80), "reference_face": try image(40, 40), "consent_given": true, "prompt": "on stage"])
        XCTAssertEqual(out["images"]?.arrayValue?.count, 1)
        XCTAssertEqual(out["images"]?[0]?["width"], 80, "the edit keeps the base image's size")
        XCTAssertEqual((try sent(to: "fal-ai/flux-pro/kontext/multi")["image_urls"] as? [String])?.count, 2)
    }
}
