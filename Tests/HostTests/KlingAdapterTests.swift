import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// The Kling adapter through the real engine against the Kling stand-in over
/// real HTTP on loopback: the happy paths, the JWT's life (reuse, re-sign,
/// clock skew), every error code PROVIDERS.md lists, the parallel limit,
/// retention, and a crash between submit and storing the ref.
final class KlingAdapterTests: TemporaryDirectoryTestCase {
    var standIn: KlingStandIn!

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        standIn = try await started(KlingStandIn())
    }

    /// An engine whose clock is `clock` (the host's notion of now, which the adapter signs tokens with).
    func makeEngine(accessKey: String? = nil, secretKey: String? = nil, clock: any HostClock = SystemClock()) throws -> JobEngine {
        let plugins = dir.appendingPathComponent("plugins-\(UUID().uuidString.prefix(6))")
        try copyPlugin("kling", to: plugins)
        let paths = YardPaths(home: dir.appendingPathComponent("home-\(UUID().uuidString.prefix(6))"))
        let engine = JobEngine(store: try SQLiteJobStore(path: paths.jobStoreFile), paths: paths,
                               registry: PluginRegistry(paths: paths, extraPaths: [plugins.path], environment: [:], bundled: nil),
                               catalog: try CapabilityCatalog.load(directory: Build.repository.appendingPathComponent("Registry/capabilities")),
                               secrets: EnvironmentSecrets(environment: [:], values: ["KLING_ACCESS_KEY": accessKey ?? standIn.accessKey,
                                                                                      "KLING_SECRET_KEY": secretKey ?? standIn.secretKey]),
                               clock: clock, http: BlockingHTTPTransport(defaultTimeoutMs: 3_000))
        engine.policy.baseBackoffMs = 2
        engine.policy.minPollMs = 1
        engine.policy.maxPollMs = 5
        return engine
    }

    var config: [String: JSONValue] { ["base_url": .string(standIn.baseURL)] }

    func text(_ inputs: [String: JSONValue] = [:], config extra: [String: JSONValue] = [:]) -> JobSpec {
        JobSpec(pluginID: "kling", capability: "video.from_text", inputs: ["prompt": "a paper boat on a rainy street"].merging(inputs) { _, new in new },
                config: config.merging(extra) { _, new in new })
    }

    func run(_ engine: JobEngine, _ spec: JobSpec) async throws -> JobRecord {
        try await engine.drive(try await engine.start(spec).id)
    }

    func outputs(_ job: JobRecord) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(job.outputsJSON, job.errorJSON ?? "").utf8)) as? [String: Any])
    }

    func error(_ job: JobRecord) -> [String: Any] {
        (job.errorJSON.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any]) ?? [:]
    }

    /// Warms the engine's health cache so forced errors reach the submit, not the pre-flight.
    func warm(_ engine: JobEngine) async throws {
        let health = await engine.health(of: try engine.plugin("kling"), config: config, maxAge: 0)
        XCTAssertEqual(health.status, "ok", health.message ?? "")
    }

    func claims(_ token: String) throws -> [String: Any] {
        let payload = try XCTUnwrap(KlingStandIn.base64URLDecode(String(token.split(separator: ".")[1])))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: payload) as? [String: Any])
    }

    // MARK: happy paths

    func testATextToVideoTaskIsSubmittedPolledAndItsVideoHarvested() async throws {
        let engine = try makeEngine()
        let job = try await run(engine, text(["duration_seconds": 10, "aspect_ratio": "9:16", "mode": "pro", "motion": "zoom_in", "negative_prompt": "blur"]))
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let out = try outputs(job)
        let video = try XCTUnwrap(out["video"] as? [String: Any])
        XCTAssertTrue((video["artifact"] as? String ?? "").hasPrefix("sha256:"), "downloaded before Kling deletes it after 30 days")
        XCTAssertEqual(video["media_type"] as? String, "video/mp4")
        XCTAssertEqual(out["duration_seconds"] as? Double, 10)
        let task = try XCTUnwrap(standIn.task(try XCTUnwrap(standIn.taskIDs.first)))
        XCTAssertEqual(task.kind, "text2video")
        XCTAssertEqual(task.body["duration"], "10", "duration goes as the string Kling requires")
        XCTAssertEqual(task.body["aspect_ratio"], "9:16")
        XCTAssertEqual(task.body["mode"], "pro")
        XCTAssertEqual(task.body["negative_prompt"], "blur")
        XCTAssertEqual(task.body["model_name"], "kling-v2-1-master")
        XCTAssertEqual(task.body["camera_control"], ["type": "simple", "config": ["zoom": 5]])
        XCTAssertEqual(task.externalID, "sy-\(job.id)", "external_task_id names the host's job")
        XCTAssertEqual(task.status, "succeed")
        XCTAssertEqual(standIn.submissions, 1)
    }

    func testImageToVideoSendsAURLAsIsAndPollsTheImageTaskKind() async throws {
        let engine = try makeEngine()
        let job = try await run(engine, JobSpec(pluginID: "kling", capability: "video.from_image",
                                                inputs: ["image": ["url": "https://example.com/first.png"], "prompt": "she turns", "duration_seconds": 5],
                                                config: config))
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let task = try XCTUnwrap(standIn.task(try XCTUnwrap(standIn.taskIDs.first)))
        XCTAssertEqual(task.kind, "image2video", "the stand-in answers 1203 when a task is polled under another kind")
        XCTAssertEqual(task.body["image"], "https://example.com/first.png")
        XCTAssertNil(task.body["aspect_ratio"], "image2video takes the image's shape")
    }

    func testALocalImageIsSentAsRawBase64WithoutADataPrefix() async throws {
        let engine = try makeEngine()
        let bytes = Data("first frame pixels".utf8), last = Data("last frame pixels".utf8)
        let first = try engine.artifacts.put(bytes, mediaType: "image/png"), tail = try engine.artifacts.put(last, mediaType: "image/png")
        let job = try await run(engine, JobSpec(pluginID: "kling", capability: "video.from_image",
                                                inputs: ["image": ["artifact": .string("sha256:\(first)"), "media_type": "image/png"],
                                                         "end_image": ["artifact": .string("sha256:\(tail)"), "media_type": "image/png"]],
                                                config: config))
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let task = try XCTUnwrap(standIn.task(try XCTUnwrap(standIn.taskIDs.first)))
        let sent = try XCTUnwrap(task.body["image"]?.stringValue)
        XCTAssertFalse(sent.hasPrefix("data:"))
        XCTAssertEqual(Data(base64Encoded: sent), bytes)
        XCTAssertEqual(task.body["image_tail"]?.stringValue.flatMap { Data(base64Encoded: $0) }, last)
    }

    // MARK: the token

    func testTheTokenIsAnHS256JWTSignedWithTheSecretKey() async throws {
        let job = try await run(try makeEngine(), text())
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let token = try XCTUnwrap(standIn.tokensSeen.first)
        let parts = token.split(separator: ".").map(String.init)
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: try XCTUnwrap(KlingStandIn.base64URLDecode(parts[0]))) as? [String: Any])
        XCTAssertEqual(header["alg"] as? String, "HS256")
        let claims = try claims(token)
        XCTAssertEqual(claims["iss"] as? String, standIn.accessKey)
        let exp = try XCTUnwrap(claims["exp"] as? Int), nbf = try XCTUnwrap(claims["nbf"] as? Int)
        XCTAssertEqual(exp - nbf, 1805, "exp = now + 1800, nbf = now - 5")
        XCTAssertLessThan(abs(exp - 1800 - Int(Date().timeIntervalSince1970)), 30)
        let payload = try XCTUnwrap(KlingStandIn.base64URLDecode(parts[1]))
        XCTAssertEqual(JWT.hs256(payload: payload, secret: Data(standIn.secretKey.utf8)), token)
        XCTAssertFalse(job.refJSON?.contains(standIn.secretKey) == true)
    }

    func testATokenIsReusedAndReSignedBeforeItExpires() async throws {
        // The host and Kling share one clock here: no skew, only time passing.
        let now = VirtualClock(startUnixMs: Int64(Date().timeIntervalSince1970 * 1000))
        await standIn.stop()
        standIn = try await started(KlingStandIn(authClock: now))
        let engine = try makeEngine(clock: now)
        let first = try await run(engine, text())
        XCTAssertEqual(first.phase, .succeeded, first.errorJSON ?? "")
        XCTAssertEqual(Set(standIn.tokensSeen).count, 1, "one token serves every request while it is fresh")
        now.advance(ms: 26 * 60 * 1000)
        let second = try await run(engine, text(["prompt": "later"]))
        XCTAssertEqual(second.phase, .succeeded, second.errorJSON ?? "")
        let tokens = standIn.tokensSeen
        XCTAssertEqual(Set(tokens).count, 2, "re-signed within 5 minutes of expiry")
        XCTAssertGreaterThan(try claims(tokens.last!)["exp"] as? Int ?? 0, try claims(tokens.first!)["exp"] as? Int ?? 0)
        XCTAssertEqual(standIn.authErrorsAnswered, [], "re-signed before Kling ever saw an expired token")
    }

    func testAnExpiredTokenIsReSignedOnKlingsClockAndTheRequestRetriedOnce() async throws {
        // This host's clock is 40 minutes behind Kling's: every token it signs is already expired there.
        let behind = VirtualClock(startUnixMs: Int64(Date().timeIntervalSince1970 * 1000) - 40 * 60 * 1000)
        let job = try await run(try makeEngine(clock: behind), text())
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(standIn.authErrorsAnswered, [1004], "one 1004, then tokens signed on Kling's time (its Date header)")
        XCTAssertEqual(standIn.submissions, 1)
    }

    func testAHostClockAheadOfKlingsIsToleratedAfterOneNotYetValid() async throws {
        let ahead = VirtualClock(startUnixMs: Int64(Date().timeIntervalSince1970 * 1000) + 3 * 60 * 1000)
        let job = try await run(try makeEngine(clock: ahead), text())
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(standIn.authErrorsAnswered, [1003])
    }

    func testATokenRefusedAgainAfterReSigningIsAuthFailedNotRetriedForever() async throws {
        let engine = try makeEngine()
        try await warm(engine)
        standIn.configure { $0.errorNext = [1004, 1004] }
        let job = try await run(engine, text())
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "AUTH_FAILED")
        XCTAssertEqual(standIn.codesAnswered, [1004, 1004], "re-signed and retried exactly once")
        XCTAssertEqual(standIn.submissions, 0)
    }

    func testAWrongSecretKeyIsAuthFailedBeforeAnythingIsSubmitted() async throws {
        let engine = try makeEngine(secretKey: "sk_wrong")
        let verdict = await engine.preflight(text())
        XCTAssertEqual(verdict.firstError?.code, "AUTH_FAILED")
        XCTAssertEqual(standIn.authErrorsAnswered, [1002], "a bad signature is 1002, and it is not retried")
        XCTAssertEqual(standIn.submissions, 0)
        XCTAssertFalse(verdict.firstError?.message.contains("sk_wrong") == true)
    }

    func testAnUnknownAccessKeyIsAuthFailed() async throws {
        let engine = try makeEngine(accessKey: "ak_unknown")
        let verdict = await engine.preflight(text())
        XCTAssertEqual(verdict.firstError?.code, "AUTH_FAILED")
        XCTAssertEqual(standIn.authErrorsAnswered, [1000])
    }

    func testAKeyRevokedAfterTheHealthCheckFailsTheSubmitAsAuthFailed() async throws {
        let engine = try makeEngine(accessKey: "ak_revoked")
        try cacheHealthy(engine, "kling", config: text().config)
        let job = try await run(engine, text())
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "AUTH_FAILED")
        XCTAssertTrue((error(job)["remediation"] as? String ?? "").contains("KLING_SECRET_KEY"))
        XCTAssertEqual(standIn.submissions, 0)
    }

    // MARK: error codes

    func testAResourcePackDepletedIsInsufficientFunds() async throws {
        let engine = try makeEngine()
        try await warm(engine)
        standIn.configure { $0.errorNext = [1102] }
        let job = try await run(engine, text())
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "INSUFFICIENT_FUNDS")
        XCTAssertEqual(error(job)["charged"] as? String, "no")
        XCTAssertEqual(standIn.submissions, 0)
    }

    func testParametersKlingRejectsAreContractMismatch() async throws {
        let job = try await run(try makeEngine(), text(["model": "kling-v9-imaginary"]))
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "CONTRACT_MISMATCH")
        XCTAssertTrue(job.errorJSON?.contains("model_name is invalid") == true, job.errorJSON ?? "")
        XCTAssertEqual(standIn.codesAnswered, [1201])
    }

    func testDurationsOtherThan5Or10AreRefusedBeforeKlingIsAsked() async throws {
        let verdict = await (try makeEngine()).preflight(text(["duration_seconds": 7]))
        XCTAssertEqual(verdict.firstError?.code, "CONTRACT_MISMATCH")
        XCTAssertEqual(verdict.firstError?.field, "$.inputs.duration_seconds")
        XCTAssertEqual(standIn.submissions, 0)
    }

    func testTheContentPolicyIsSafetyFilter() async throws {
        let job = try await run(try makeEngine(), text(["prompt": "something forbidden-content here"]))
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "SAFETY_FILTER")
        XCTAssertEqual(standIn.codesAnswered, [1301])
    }

    func testAFailedTaskCarriesKlingsReasonAndIsNotBilled() async throws {
        standIn.configure { $0.failWith = "render node lost" }
        let job = try await run(try makeEngine(), text())
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "ENGINE_ERROR")
        XCTAssertTrue(job.errorJSON?.contains("render node lost") == true)
        XCTAssertEqual(error(job)["charged"] as? String, "no")
    }

    func testATaskFailedByTheRiskControlIsSafetyFilter() async throws {
        standIn.configure { $0.failWith = "Failure to pass the risk control system" }
        let job = try await run(try makeEngine(), text())
        XCTAssertEqual(job.errorCode, "SAFETY_FILTER")
    }

    func testRateLimitsAndServerErrorsAreRetriedWithoutASecondTask() async throws {
        let engine = try makeEngine()
        try await warm(engine)
        // 1302 on submit; 5001 on the retry; 5000 on the look-up by external_task_id that follows it.
        standIn.configure { $0.errorNext = [1302, 5001, 5000] }
        let job = try await run(engine, text())
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(standIn.codesAnswered, [1302, 5001, 5000])
        XCTAssertEqual(standIn.submissions, 1)
    }

    func testASecondSubmitOfTheSameJobFindsItsTaskByExternalTaskID() async throws {
        let engine = try makeEngine()
        try await warm(engine)
        let started = try await engine.start(text())
        XCTAssertEqual(standIn.submissions, 1)
        // The same job submitted again (a retry after a lost answer) must not create a second task.
        let plugin = try engine.plugin("kling")
        let again = plugin.call(.submit, request: requestData(["capability": "video.from_text", "inputs": ["prompt": "x"], "config": ["base_url": standIn.baseURL],
                                                                "job": ["id": started.id, "idempotency_key": started.idempotencyKey, "attempt": 1]]), jobID: started.id)
        XCTAssertTrue(again.isOK, String(decoding: again.document, as: UTF8.self))
        XCTAssertEqual((again.json?["ref"] as? [String: Any])?["task_id"] as? String, standIn.taskIDs.first)
        XCTAssertEqual(standIn.submissions, 1)
        XCTAssertTrue(standIn.codesAnswered.contains(1201), "Kling refused the duplicate external_task_id")
    }

    func testASubmitAnswerLostToATimeoutIsRecoveredByExternalTaskID() async throws {
        let engine = try makeEngine()
        try await warm(engine)
        standIn.configure { $0.slowNextSubmitMs = 1_500 }
        let job = try await run(engine, text(config: ["request_timeout_ms": 300]))
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(standIn.lookupsByExternalID, 1, "the timed-out submit was followed by a look-up")
        XCTAssertEqual(standIn.submissions, 1, "the task Kling created is the one followed; none was added")
        XCTAssertTrue(job.refJSON?.contains(try XCTUnwrap(standIn.taskIDs.first)) == true)
    }

    func testMalformedTaskAnswersAreRetried() async throws {
        standIn.configure { $0.malformedNext = 2 }
        let job = try await run(try makeEngine(), text())
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
    }

    // MARK: the parallel limit

    func testA1303SubmitWaitsQueuedAndIsSentOnceKlingHasRoom() async throws {
        let engine = try makeEngine()
        try await warm(engine)
        // 1303 on the submit, and once more on the first try from poll.
        standIn.configure { $0.errorNext = [1303, 1303] }
        let job = try await run(engine, text(config: ["parallel_retry_ms": 100]))
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        // 1203: the waiting job's look-ups by external_task_id, before it was sent.
        XCTAssertEqual(standIn.codesAnswered.filter { $0 != 1203 }, [1303, 1303])
        XCTAssertEqual(standIn.submissions, 1)
    }

    func testATaskOverTheParallelLimitWaitsQueuedUntilASlotFrees() async throws {
        standIn.configure { $0.parallelLimit = 1; $0.processingMs = 1_500 }
        let engine = try makeEngine()
        try await warm(engine)
        let first = try await engine.start(text())
        let second = try await engine.start(text(["prompt": "second"], config: ["parallel_retry_ms": 100]))
        XCTAssertEqual(second.phase, .queued, "held by the host, not failed: \(second.errorJSON ?? "")")
        XCTAssertEqual(standIn.submissions, 1)
        XCTAssertTrue(standIn.codesAnswered.contains(1303))
        let finished = try await engine.drive(first.id)
        XCTAssertEqual(finished.phase, .succeeded)
        let later = try await engine.drive(second.id)
        XCTAssertEqual(later.phase, .succeeded, later.errorJSON ?? "")
        XCTAssertEqual(standIn.submissions, 2)
        XCTAssertEqual(standIn.task(standIn.taskIDs[1])?.body["prompt"], "second", "the stored request body was sent as it was")
        XCTAssertEqual(standIn.task(standIn.taskIDs[1])?.externalID, "sy-\(second.id)")
    }

    func testMaxParallelTasksHoldsTasksBackWithoutDrawing1303() async throws {
        standIn.configure { $0.parallelLimit = 1; $0.processingMs = 1_500 }
        let engine = try makeEngine()
        try await warm(engine)
        let limited: [String: JSONValue] = ["max_parallel_tasks": 1, "parallel_retry_ms": 100]
        let first = try await engine.start(text(config: limited))
        let held = try await engine.start(text(["prompt": "second"], config: limited))
        XCTAssertEqual(held.phase, .queued)
        XCTAssertEqual(standIn.submissions, 1, "the adapter holds the second task back itself")
        let finished = try await engine.drive(first.id)
        XCTAssertEqual(finished.phase, .succeeded)
        let later = try await engine.drive(held.id)
        XCTAssertEqual(later.phase, .succeeded, later.errorJSON ?? "")
        XCTAssertFalse(standIn.codesAnswered.contains(1303), "Kling was never sent a task while the slot was taken")
        XCTAssertEqual(standIn.submissions, 2)
    }

    func testCancellingATaskStillWaitingForASlotIsFree() async throws {
        standIn.configure { $0.parallelLimit = 1; $0.processingMs = 60_000 }
        let engine = try makeEngine()
        try await warm(engine)
        _ = try await engine.start(text())
        let waiting = try await engine.start(text(["prompt": "second"]))
        let cancelled = try await engine.cancel(waiting.id)
        XCTAssertTrue(cancelled.cancelOutcomeJSON?.contains(#""outcome":"cancelled_in_queue""#) == true, cancelled.cancelOutcomeJSON ?? "")
        XCTAssertTrue(cancelled.cancelOutcomeJSON?.contains(#""charged":"no""#) == true)
        XCTAssertEqual(standIn.submissions, 1)
    }

    // MARK: retention, cancel, recovery

    func testAVideoPastKlingsThirtyDayRetentionIsResultExpired() async throws {
        let engine = try makeEngine()
        let started = try await engine.start(text())
        // The task finishes at Kling while the host is away…
        standIn.advance(ms: 1_000)
        XCTAssertEqual(standIn.task(standIn.taskIDs[0])?.status, "succeed")
        standIn.advance(ms: 31 * 24 * 3600 * 1000)
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "RESULT_EXPIRED")
    }

    func testCancelSaysKlingCannotStopATaskAndBillsIt() async throws {
        standIn.configure { $0.stuckSubmitted = true }
        let engine = try makeEngine()
        let started = try await engine.start(text())
        let cancelled = try await engine.cancel(started.id)
        XCTAssertEqual(cancelled.phase, .cancelled)
        XCTAssertTrue(cancelled.cancelOutcomeJSON?.contains(#""outcome":"cancelled_running""#) == true, cancelled.cancelOutcomeJSON ?? "")
        XCTAssertTrue(cancelled.cancelOutcomeJSON?.contains(#""charged":"yes""#) == true)
    }

    func testReconcileAnswersNullForAJobKlingNeverReceived() async throws {
        let plugin = try (try makeEngine()).plugin("kling")
        let answer = try XCTUnwrap(plugin.callExtension("sy.reconcile/1", request: requestData([
            "capability": "video.from_text", "inputs": ["prompt": "x"], "config": ["base_url": standIn.baseURL],
            "job": ["id": "job_never_sent", "idempotency_key": "k", "attempt": 1]])))
        XCTAssertTrue(answer.isOK, String(decoding: answer.document, as: UTF8.self))
        XCTAssertTrue(answer.json?["ref"] is NSNull, "sure it never arrived: the host may submit it")
        XCTAssertEqual(standIn.lookupsByExternalID, 1)
    }

    func testACrashBetweenSubmitAndStoringTheRefIsReconciledByExternalTaskID() throws {
        let home = dir.appendingPathComponent("crash-home")
        let env = ["KLING_ACCESS_KEY": standIn.accessKey, "KLING_SECRET_KEY": standIn.secretKey, "SWIFT_BACKTRACE": "enable=no"]
        let configJSON = #"{"base_url":"\#(standIn.baseURL)"}"#
        let crashed = try yard(["run", "video.from_text", "--engine", "kling", "--input", "prompt=a kite", "--config", configJSON],
                               home: home, extraEnvironment: env.merging(["YARD_FAULT": "after-submit"]) { _, new in new })
        XCTAssertNotEqual(crashed.status, 0)
        XCTAssertEqual(standIn.submissions, 1, "Kling accepted the task before the host died")
        let store = try SQLiteJobStore(path: home.appendingPathComponent("yard.sqlite"))
        XCTAssertEqual(try store.unfinishedJobs().map(\.phase), [.submitting])
        let resumed = try yard(["jobs", "resume", "--json"], home: home, extraEnvironment: env)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let jobs = try XCTUnwrap(resumed.json as? [[String: Any]], resumed.stdout)
        XCTAssertEqual(jobs.first?["state"] as? String, "succeeded", "\(jobs)")
        XCTAssertEqual(standIn.submissions, 1, "found again by external_task_id, never submitted twice")
        let job = try XCTUnwrap(try store.jobs(limit: 1, phase: nil).first)
        XCTAssertEqual(standIn.task(standIn.taskIDs[0])?.externalID, "sy-\(job.id)")
    }

    /// The whole conformance kit against the built-in stand-in, as a plugin author runs it with no account.
    func testTheAdapterPassesTheConformanceKitAgainstItsStandIn() throws {
        try assertConformantAgainstItsStandIn("kling", home: dir.appendingPathComponent("h"))
    }
}
