import AsyncHTTPClient
import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// RunPod beyond the queue API: endpoint.deploy on the user's account,
/// dropped connections, and unsigned webhooks confirmed against /status.
final class RunPodDeployTests: TemporaryDirectoryTestCase {
    var standIn: RunPodStandIn!
    let hfToken = "hf_DEPLOYSECRET_0123456789abcdef"

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        standIn = try await started(RunPodStandIn())
    }

    func makeEngine() throws -> JobEngine {
        let plugins = dir.appendingPathComponent("plugins-\(UUID().uuidString.prefix(6))")
        try copyPlugin("runpod", to: plugins)
        let engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: plugins,
                                        secrets: ["RUNPOD_API_KEY": standIn.apiKey, "HF_TOKEN": hfToken],
                                        http: BlockingHTTPTransport(defaultTimeoutMs: 3_000))
        engine.policy.minPollMs = 1
        engine.policy.maxPollMs = 5
        return engine
    }

    var deployConfig: [String: JSONValue] { ["base_url": .string(standIn.baseURL), "rest_url": .string(standIn.restURL)] }
    let deployInputs: [String: JSONValue] = ["name": "sdxl-worker", "image": "runpod/worker-comfyui:5.1.0-base", "gpu_type_ids": ["ADA_24", "AMPERE_24"],
                                              "secret_env": ["HF_TOKEN"], "env": [["name": "MODEL", "value": "sdxl"]], "workers_min": 1, "workers_max": 2]

    func deploy(_ engine: JobEngine, key: String? = nil) async throws -> JobRecord {
        try await engine.drive(try await engine.start(JobSpec(pluginID: "runpod", capability: "endpoint.deploy", inputs: deployInputs,
                                                              config: deployConfig, idempotencyKey: key)).id)
    }

    func testDeployCreatesATemplateAndAnEndpointWaitsForHealthAndTheEndpointRunsJobs() async throws {
        standIn.configure { $0.provisioningMs = 150 }
        let engine = try makeEngine()
        let job = try await deploy(engine)
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let template = try XCTUnwrap(standIn.createdTemplates.first)
        XCTAssertEqual(template["imageName"] as? String, "runpod/worker-comfyui:5.1.0-base")
        XCTAssertEqual(template["isServerless"] as? Bool, true)
        XCTAssertEqual(template["env"] as? [String: String], ["HF_TOKEN": hfToken, "MODEL": "sdxl"], "the secret reaches the worker's environment")
        let endpoint = try XCTUnwrap(standIn.deployedEndpoints.first)
        XCTAssertEqual(endpoint["gpuTypeIds"] as? [String], ["ADA_24", "AMPERE_24"])
        XCTAssertEqual(endpoint["workersMin"] as? Int, 1)
        XCTAssertEqual(endpoint["templateId"] as? String, template["id"] as? String)
        let healthCalls = standIn.requestsSeen.filter { $0.path.hasSuffix("/health") }.count
        XCTAssertGreaterThanOrEqual(healthCalls, 3, "polled through provisioning (404) until /health answered")

        let endpointID = try XCTUnwrap(endpoint["id"] as? String)
        XCTAssertTrue(job.outputsJSON?.contains(endpointID) == true)
        let stored = [job.inputsJSON, job.outputsJSON ?? "", job.refJSON ?? ""] + (try engine.store.events(jobID: job.id, afterID: 0)).map(\.message)
        XCTAssertFalse(stored.joined().contains(hfToken), "the secret's value is never stored")

        let work = try await engine.drive(try await engine.start(JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "x"],
            config: ["endpoint_id": .string(endpointID), "base_url": .string(standIn.baseURL)])).id)
        XCTAssertEqual(work.phase, .succeeded, work.errorJSON ?? "")
    }

    func testDeployingTheSameNameAgainReusesTheTemplateAndEndpoint() async throws {
        let engine = try makeEngine()
        let first = try await deploy(engine, key: "deploy-1")
        let second = try await deploy(engine, key: "deploy-2")
        XCTAssertEqual(second.phase, .succeeded, second.errorJSON ?? "")
        XCTAssertEqual(standIn.createdTemplates.count, 1)
        XCTAssertEqual(standIn.deployedEndpoints.count, 1, "a repeated deploy never pays for a second endpoint")
        XCTAssertEqual(first.outputsJSON, second.outputsJSON)
    }

    func testASecretThePluginMayNotReadIsRefusedBeforeAnythingIsCreated() async throws {
        let engine = try makeEngine()
        var inputs = deployInputs
        inputs["secret_env"] = ["AWS_SECRET_ACCESS_KEY"]
        let verdict = await engine.preflight(JobSpec(pluginID: "runpod", capability: "endpoint.deploy", inputs: inputs, config: deployConfig))
        XCTAssertEqual(verdict.firstError?.code, "CONTRACT_MISMATCH")
        XCTAssertEqual(verdict.firstError?.field, "$.inputs.secret_env")
        XCTAssertTrue(standIn.createdTemplates.isEmpty)
    }

    func testCancellingADeployThatIsStillProvisioningDeletesTheEndpoint() async throws {
        standIn.configure { $0.provisioningMs = 3_600_000 }
        let engine = try makeEngine()
        let job = try await engine.start(JobSpec(pluginID: "runpod", capability: "endpoint.deploy", inputs: deployInputs, config: deployConfig))
        XCTAssertEqual(standIn.deployedEndpoints.count, 1)
        let cancelled = try await engine.cancel(job.id)
        XCTAssertEqual(cancelled.phase, .cancelled)
        XCTAssertTrue(standIn.deployedEndpoints.isEmpty, "cancel deletes the endpoint so it cannot bill")
    }

    var queueConfig: [String: JSONValue] { ["endpoint_id": .string(standIn.endpointID), "base_url": .string(standIn.baseURL)] }

    func testAConnectionDroppedAfterRunIsNeverResubmitted() async throws {
        standIn.configure { $0.dropNextRun = true }
        let engine = try makeEngine()
        let job = try await engine.start(JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "x"], config: queueConfig))
        XCTAssertEqual(standIn.submissions, 1)
        XCTAssertEqual(job.phase, .needsAttention, "RunPod may have queued it: parked, never submitted twice")
        XCTAssertTrue(job.errorJSON?.contains(#""charged":"unknown""#) == true, job.errorJSON ?? "")
    }

    func testDroppedStatusAnswersAreRetried() async throws {
        standIn.configure { $0.dropNextStatus = 2 }
        let engine = try makeEngine()
        let job = try await engine.drive(try await engine.start(JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "x"],
                                                                        config: queueConfig)).id)
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(standIn.submissions, 1)
    }

    func testUnsignedWebhooksAreConfirmedAgainstStatusAndDuplicatesDropped() async throws {
        let receiver = ScriptedHTTPServer { _ in .init(status: 200) }
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        // The job waits in RunPod's queue until the test completes it.
        standIn.configure { $0.duplicateWebhooks = 1; $0.queueMs = 600_000 }
        let engine = try makeEngine()
        var config = queueConfig
        config["webhook_url"] = .string("\(receiver.baseURL)/webhooks/runpod")
        let job = try await engine.start(JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "x"], config: config))
        let ref = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(job.refJSON).utf8)) as? [String: Any])
        let runpodID = try XCTUnwrap(ref["id"] as? String)

        // A forged "COMPLETED" for a job RunPod still has queued changes nothing it claims.
        let forged = Data(#"{"id":"\#(runpodID)","status":"COMPLETED","output":{"image_url":"http://127.0.0.1:1/evil.png"}}"#.utf8)
        _ = try await engine.receiveWebhook(pluginID: "runpod", headers: [:], body: forged, config: config)
        let afterForgery = try XCTUnwrap(try engine.store.job(id: job.id))
        XCTAssertNotEqual(afterForgery.phase, .succeeded)
        XCTAssertNil(afterForgery.outputsJSON)

        standIn.complete(runpodID)
        let statuses = await standIn.deliverWebhooks()
        XCTAssertEqual(statuses, [200, 200])
        let posts = receiver.requests.filter { $0.method == "POST" }
        var kinds: [WebhookOutcome.Kind] = []
        for post in posts { kinds.append(try await engine.receiveWebhook(pluginID: "runpod", headers: post.headers, body: post.body, config: config).kind) }
        XCTAssertEqual(kinds, [.applied, .duplicate])
        let done = try XCTUnwrap(try engine.store.job(id: job.id))
        XCTAssertEqual(done.phase, .succeeded, done.errorJSON ?? "")
        XCTAssertTrue(done.outputsJSON?.contains("sha256:") == true)
        XCTAssertFalse(done.outputsJSON?.contains("evil") == true)
    }

    func testACancelTheProviderDidNotConfirmLeavesTheJobRunning() async throws {
        standIn.configure { $0.runMs = 600_000 }
        let engine = try makeEngine()
        let job = try await engine.start(JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "x"], config: queueConfig))
        standIn.configure { $0.serverErrorNext = 2 }
        do {
            _ = try await engine.cancel(job.id)
            XCTFail("a cancel RunPod answered 500 to was reported as done")
        } catch let error as YardError {
            XCTAssertEqual(error.code.rawValue, "CANCEL_FAILED")
        }
        XCTAssertEqual(try engine.store.job(id: job.id)?.phase, .queued, "not shown as cancelled while it may still run")
        let retried = try await engine.cancel(job.id)
        XCTAssertEqual(retried.phase, .cancelled)
        XCTAssertEqual(standIn.status(of: try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(job.refJSON).utf8)) as? [String: Any])?["id"] as? String)), "CANCELLED")
    }
}
