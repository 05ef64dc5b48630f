import Foundation
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost

final class JobEngineTests: TemporaryDirectoryTestCase {
    var engine: JobEngine!
    var pluginsRoot: URL!

    override func setUpWithError() throws {
        try super.setUpWithError()
        pluginsRoot = dir.appendingPathComponent("plugins")
        try copyPlugin("echo", to: pluginsRoot)
        try copyPlugin("c-minimal", to: pluginsRoot)
        engine = try makeEngine()
    }

    func makeEngine(secrets: [String: String] = [:], catalog: CapabilityCatalog? = nil) throws -> JobEngine {
        // AsyncHTTPClient retries a refused connection until the deadline: keep it short here.
        try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: pluginsRoot, secrets: secrets, catalog: catalog,
                           http: BlockingHTTPTransport(defaultTimeoutMs: 300))
    }

    func echo(_ inputs: [String: JSONValue], key: String? = nil, config: [String: JSONValue] = [:]) -> JobSpec {
        JobSpec(pluginID: "echo", capability: "debug.echo", inputs: inputs, config: config, idempotencyKey: key)
    }

    func outputs(_ job: JobRecord) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(job.outputsJSON).utf8)) as? [String: Any])
    }

    func refusal(_ spec: JobSpec) async -> PreflightFinding? {
        do {
            _ = try await engine.start(spec)
            return nil
        } catch let refusal as JobEngine.Refusal {
            return refusal.verdict.firstError
        } catch {
            XCTFail("unexpected \(error)")
            return nil
        }
    }

    func testJobRunsToSuccessWithItsOutputsStored() async throws {
        let started = try await engine.start(echo(["text": "hello", "polls": 2]))
        XCTAssertEqual(started.phase, .queued, "the ref is stored before any poll")
        XCTAssertNotNil(started.refJSON)
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.phase, .succeeded)
        let out = try outputs(job)
        XCTAssertEqual(out["text"] as? String, "hello")
        XCTAssertEqual(out["submissions"] as? Int, 1)
        let events = try engine.store.events(jobID: job.id, afterID: 0).map(\.message)
        XCTAssertEqual(events.filter { ["submitting", "queued", "running", "succeeded"].contains($0) }, ["submitting", "queued", "running", "succeeded"])
        XCTAssertTrue(events.contains { $0.contains("finished job") }, "plugin log lines land in the job's events")
    }

    func testTheSameIdempotencyKeyNeverSubmitsTwice() async throws {
        let first = try await engine.drive(try await engine.start(echo(["text": "once", "polls": 0], key: "order-42")).id)
        let again = try await engine.start(echo(["text": "once", "polls": 0], key: "order-42"))
        XCTAssertEqual(again.id, first.id)
        XCTAssertEqual(try outputs(try XCTUnwrap(try engine.store.job(id: first.id)))["submissions"] as? Int, 1)
    }

    func testTheSameKeyWithOtherInputsIsRefused() async throws {
        _ = try await engine.start(echo(["text": "a", "polls": 0], key: "k"))
        do {
            _ = try await engine.start(echo(["text": "b", "polls": 0], key: "k"))
            XCTFail("accepted a conflicting idempotency key")
        } catch let error as YardError {
            XCTAssertEqual(error.code.rawValue, "IDEMPOTENCY_CONFLICT")
        }
    }

    func testUnknownEngineIsRefusedBeforeAnythingIsStored() async throws {
        let finding = await refusal(JobSpec(pluginID: "nope", capability: "debug.echo", inputs: ["text": "x"]))
        XCTAssertEqual(finding?.code, "PLUGIN_NOT_FOUND")
        XCTAssertEqual(try engine.store.jobs(limit: 10, phase: nil).count, 0)
    }

    func testCapabilityTheEngineDoesNotDeclareIsContractMismatch() async throws {
        let finding = await refusal(JobSpec(pluginID: "echo", capability: "image.generate", inputs: ["prompt": "x"]))
        XCTAssertEqual(finding?.code, "CONTRACT_MISMATCH")
        XCTAssertEqual(finding?.field, "$.capability")
    }

    func testSchemaViolationNamesTheField() async throws {
        let finding = await refusal(echo(["text": "x", "polls": 99]))
        XCTAssertEqual(finding?.code, "CONTRACT_MISMATCH")
        XCTAssertEqual(finding?.field, "$.inputs.polls")
        XCTAssertEqual(try engine.store.jobs(limit: 10, phase: nil).count, 0, "nothing is stored or spent on a refusal")
    }

    func testMissingRequiredSecretIsAuthMissing() async throws {
        try editManifest(pluginsRoot.appendingPathComponent("echo/plugin.json")) { $0["secrets"] = [["name": "ECHO_TOKEN", "required": true]] }
        engine = try makeEngine()
        let finding = await refusal(echo(["text": "x"]))
        XCTAssertEqual(finding?.code, "AUTH_MISSING")
        XCTAssertEqual(finding?.field, "ECHO_TOKEN")
        engine = try makeEngine(secrets: ["ECHO_TOKEN": "set-now"])
        let verdict = await engine.preflight(echo(["text": "x"]))
        XCTAssertTrue(verdict.ok, "\(verdict.findings)")
    }

    func testIdentityInputWithoutConsentIsConsentMissing() async throws {
        try editManifest(pluginsRoot.appendingPathComponent("echo/plugin.json")) { manifest in
            var caps = manifest["capabilities"] as! [[String: Any]]
            var limits = caps[0]["limits"] as! [String: Any]
            var props = limits["properties"] as! [String: Any]
            props["text"] = ["type": "string", "x-identity": true]
            limits["properties"] = props
            caps[0]["limits"] = limits
            manifest["capabilities"] = caps
        }
        engine = try makeEngine(catalog: CapabilityCatalog())
        let finding = await refusal(echo(["text": "my face"]))
        XCTAssertEqual(finding?.code, "CONSENT_MISSING")
        XCTAssertEqual(finding?.field, "$.inputs.consent_given")
    }

    func testConfiguredURLOutsideTheAllowListIsRefused() async throws {
        try editManifest(pluginsRoot.appendingPathComponent("echo/plugin.json")) { $0["config_schema"] = ["type": "object"] }
        engine = try makeEngine()
        let finding = await refusal(echo(["text": "x"], config: ["base_url": "https://exfiltrate.example.com"]))
        XCTAssertEqual(finding?.code, "NETWORK_DENIED")
        XCTAssertEqual(finding?.field, "$.config.base_url")
    }

    func testPluginValidateRunsAfterTheSchemaChecks() async throws {
        // Without catalog or limits, only echo's own validate can refuse the unknown input.
        try editManifest(pluginsRoot.appendingPathComponent("echo/plugin.json")) { manifest in
            manifest["capabilities"] = [["id": "debug.echo"]]
        }
        engine = try makeEngine(catalog: CapabilityCatalog())
        let verdict = await engine.preflight(echo(["text": "x", "colour": "red"]))
        XCTAssertEqual(verdict.firstError?.step, "validate")
        XCTAssertEqual(verdict.firstError?.field, "$.inputs.colour")
        XCTAssertEqual(verdict.stepsPassed, ["capability", "schema", "consent", "secrets"])
    }

    func testOfflineEngineIsRefused() async throws {
        let finding = await refusal(echo(["text": "x"], config: ["simulate_offline": true]))
        XCTAssertEqual(finding?.code, "ENGINE_OFFLINE")
    }

    func testDryRunVerdictListsEveryPassedStepAndTheEstimate() async throws {
        let verdict = await engine.preflight(echo(["text": "x"]))
        XCTAssertTrue(verdict.ok)
        XCTAssertEqual(verdict.stepsPassed, ["capability", "schema", "consent", "secrets", "validate", "health", "estimate"])
        XCTAssertEqual(verdict.estimate?.amountMinor, 0)
        XCTAssertEqual(try engine.store.jobs(limit: 10, phase: nil).count, 0)
    }

    func testProviderFailureKeepsItsStableCode() async throws {
        let job = try await engine.drive(try await engine.start(echo(["text": "x", "polls": 0, "fail_with": "SAFETY_FILTER"])).id)
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "SAFETY_FILTER")
    }

    func testCancelInQueueIsTruthfulAndFinal() async throws {
        let started = try await engine.start(echo(["text": "x", "polls": 50]))
        let cancelled = try await engine.cancel(started.id)
        XCTAssertEqual(cancelled.phase, .cancelled)
        let outcome = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(cancelled.cancelOutcomeJSON).utf8)) as? [String: Any])
        XCTAssertEqual(outcome["outcome"] as? String, "cancelled_in_queue")
        XCTAssertEqual(outcome["charged"] as? String, "no")
        let again = try await engine.cancel(started.id)
        XCTAssertEqual(again.phase, .cancelled, "cancelling twice is harmless")
    }

    func testLateProgressAfterCompletionDoesNotRegressTheJob() async throws {
        let job = try await engine.drive(try await engine.start(echo(["text": "x", "polls": 0])).id)
        let plugin = try engine.plugin("echo")
        let after = try await engine.apply(pollDocument: ["state": "running", "progress": 0.2], to: job.id, plugin: plugin)
        XCTAssertEqual(after.phase, .succeeded)
        XCTAssertEqual(after.progress, 1)
        XCTAssertEqual(after.outputsJSON, job.outputsJSON)
    }

    func testUnreachableEngineIsRetriedWithBackoffThenFails() async throws {
        engine.policy.maxConsecutiveErrors = 2
        let started = try await engine.start(echo(["text": "x", "polls": 0, "url": "http://127.0.0.1:9/closed"]))
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "ENGINE_UNREACHABLE")
        let retries = try engine.store.events(jobID: job.id, afterID: 0).filter { $0.kind == "poll_error" }
        XCTAssertEqual(retries.count, 3, "two retries, then the third error is final")
    }

    func testJobPastItsDeadlineIsCancelledAndFailed() async throws {
        engine.policy.jobTimeoutSeconds = 0.05
        let job = try await engine.drive(try await engine.start(echo(["text": "x", "polls": 50])).id)
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "ENGINE_TIMEOUT")
    }

    func testSecretValuesNeverReachTheStore() async throws {
        let canary = "canary-\(UUID().uuidString)"
        engine = try makeEngine(secrets: ["ECHO_TOKEN": canary])
        // echo puts fail_with into its error message: the engine must redact it.
        let job = try await engine.drive(try await engine.start(echo(["text": "x", "polls": 0, "fail_with": .string(canary)])).id)
        XCTAssertEqual(job.phase, .failed)
        let error = try XCTUnwrap(job.errorJSON)
        XCTAssertFalse(error.contains(canary))
        XCTAssertTrue(error.contains("[REDACTED:ECHO_TOKEN]"), error)
        for event in try engine.store.events(jobID: job.id, afterID: 0) {
            XCTAssertFalse(event.message.contains(canary) || (event.dataJSON ?? "").contains(canary), "\(event)")
        }
    }

    func testResumeReconcilesAJobCaughtWhileSubmitting() async throws {
        // A job row left in `submitting` (the host died during submit).
        let spec = echo(["text": "x", "polls": 0], key: "crash-key")
        let plugin = try engine.plugin("echo")
        _ = plugin.call(.submit, request: requestData(["capability": "debug.echo", "inputs": ["text": "x", "polls": 0],
                                                       "job": ["id": "job_manual", "idempotency_key": "crash-key", "attempt": 1]]))
        let now = Date()
        _ = try engine.store.insertJob(JobRecord(id: "job_manual", idempotencyKey: "crash-key", pluginID: "echo", pluginVersion: "1.0.0",
            capability: "debug.echo", inputsJSON: #"{"polls":0,"text":"x"}"#, inputHash: "h", configJSON: "{}", phase: .submitting,
            refJSON: nil, attempt: 1, progress: nil, message: nil, outputsJSON: nil, errorJSON: nil, createdAt: now, updatedAt: now,
            submittedAt: nil, finishedAt: nil, nextPollAt: nil, pollCount: 0, consecutiveErrors: 0, cancelRequested: false,
            cancelOutcomeJSON: nil, deadlineAt: nil, estimateMinor: nil))
        _ = spec
        let resumed = try await engine.resumeAll()
        XCTAssertEqual(resumed.map(\.phase), [.succeeded])
        XCTAssertEqual(try outputs(resumed[0])["submissions"] as? Int, 1, "reconciled, not resubmitted")
    }
}

final class FileInputRuleTests: TemporaryDirectoryTestCase {
    func testArtifactInputsMustHaveAnAcceptedTypeAndSize() async throws {
        let plugins = dir.appendingPathComponent("plugins")
        try copyPlugin("runpod", to: plugins)
        let engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: plugins, secrets: ["RUNPOD_API_KEY": "k"])
        let config: [String: JSONValue] = ["endpoint_id": "e", "base_url": "http://127.0.0.1:9/v2"]
        try cacheHealthy(engine, "runpod", config: config) // no live check
        let video = try engine.artifacts.put(Data("not an image".utf8), mediaType: "video/mp4")
        func verdict(_ image: JSONValue) async -> PreflightVerdict {
            await engine.preflight(JobSpec(pluginID: "runpod", capability: "image.upscale", inputs: ["image": image], config: config))
        }
        let wrongType = await verdict(["artifact": .string("sha256:\(video)"), "media_type": "video/mp4"])
        XCTAssertEqual(wrongType.firstError?.field, "$.inputs.image")
        XCTAssertTrue(wrongType.firstError?.message.contains("video/mp4") == true, "\(wrongType.findings)")

        let unknown = await verdict(["artifact": .string("sha256:" + String(repeating: "0", count: 64)), "media_type": "image/png"])
        XCTAssertTrue(unknown.firstError?.message.contains("not in this host's store") == true, "\(unknown.findings)")

        let big = try engine.artifacts.put(Data(count: 52_428_801), mediaType: "image/png")
        let tooBig = await verdict(["artifact": .string("sha256:\(big)"), "media_type": "image/png"])
        XCTAssertTrue(tooBig.firstError?.message.contains("at most 52428800") == true, "\(tooBig.findings)")

        let fine = try engine.artifacts.put(Data("png bytes".utf8), mediaType: "image/png")
        let accepted = await verdict(["artifact": .string("sha256:\(fine)"), "media_type": "image/png"])
        XCTAssertTrue(accepted.stepsPassed.contains("schema"), "\(accepted.findings)")
    }
}
