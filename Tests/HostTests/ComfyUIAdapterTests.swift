import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// The ComfyUI adapter through the real engine, against the ComfyUI stand-in
/// over real HTTP on loopback: templates and raw workflows, uploads, missing
/// dependencies refused before anything is queued, ComfyUI's own refusals,
/// restarts, cancel, crash recovery by prompt id, transient failures.
final class ComfyUIAdapterTests: TemporaryDirectoryTestCase {
    var standIn: ComfyUIStandIn!
    var engine: JobEngine!

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        standIn = try ComfyUIStandIn()
        try await standIn.start()
        let plugins = dir.appendingPathComponent("plugins")
        try copyPlugin("comfyui", to: plugins)
        engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: plugins, http: BlockingHTTPTransport(defaultTimeoutMs: 3_000))
        engine.policy.minPollMs = 1
        engine.policy.maxPollMs = 5
    }

    override func tearDown() async throws {
        await standIn?.stop()
        try await super.tearDown()
    }

    var config: [String: JSONValue] { ["base_url": .string(standIn.baseURL), "lost_grace_ms": 0] }

    /// EmptyImage → ImageInvert → SaveImage, the graph recorded from a real server.
    func graph(width: Int = 64, height: Int = 48) -> JSONValue {
        ["1": ["class_type": "EmptyImage", "inputs": ["width": .number(Double(width)), "height": .number(Double(height)), "batch_size": 1, "color": 16_711_680]],
         "2": ["class_type": "ImageInvert", "inputs": ["image": ["1", 0]]],
         "3": ["class_type": "SaveImage", "inputs": ["images": ["2", 0], "filename_prefix": "test"]]]
    }

    func workflow(_ graph: JSONValue, _ extra: [String: JSONValue] = [:], key: String? = nil) -> JobSpec {
        JobSpec(pluginID: "comfyui", capability: "comfy.workflow", inputs: ["workflow": graph].merging(extra) { _, new in new }, config: config, idempotencyKey: key)
    }

    func generate(_ inputs: [String: JSONValue]) -> JobSpec {
        JobSpec(pluginID: "comfyui", capability: "image.generate", inputs: inputs, config: config)
    }

    func run(_ spec: JobSpec) async throws -> JobRecord {
        try await engine.drive(try await engine.start(spec).id)
    }

    func object(_ json: String?) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(json).utf8)) as? [String: Any])
    }

    /// Outputs are what the catalog promises for the capability, so pipelines can swap engines.
    func assertOutputsMatchTheCatalog(_ job: JobRecord, file: StaticString = #filePath, line: UInt = #line) throws {
        let schema = try XCTUnwrap(engine.catalog.entries[job.capability]?.output, file: file, line: line)
        let violations = schema.validate(try JSONValue(parsing: Data(try XCTUnwrap(job.outputsJSON).utf8)))
        XCTAssertEqual(violations.map(\.message), [], file: file, line: line)
    }

    func artifactBytes(_ file: Any?) throws -> Data {
        let handle = try XCTUnwrap((file as? [String: Any])?["artifact"] as? String)
        XCTAssertTrue(handle.hasPrefix("sha256:"))
        return try XCTUnwrap(try engine.artifacts.read(sha256: String(handle.dropFirst(7))))
    }

    func refusal(_ spec: JobSpec) async throws -> PreflightFinding {
        do {
            let job = try await engine.start(spec)
            XCTFail("expected a refusal, got job \(job.id) in \(job.phase)")
            throw XCTSkip("not refused")
        } catch let refusal as JobEngine.Refusal {
            return try XCTUnwrap(refusal.verdict.firstError)
        }
    }

    var promptRequests: Int { standIn.requestLog.filter { $0.hasSuffix("/prompt") && $0.hasPrefix("POST") }.count }

    // MARK: happy paths

    func testTheImageTemplateRunsWithTheJobsInputsAndHarvestsEveryImage() async throws {
        let job = try await run(generate(["prompt": "a red fox in snow", "negative_prompt": "blurry", "width": 64, "height": 80, "num_images": 2, "seed": 7]))
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let out = try object(job.outputsJSON)
        let images = try XCTUnwrap(out["images"] as? [[String: Any]])
        XCTAssertEqual(images.count, 2)
        for image in images {
            XCTAssertEqual(image["width"] as? Int, 64)
            XCTAssertEqual(image["height"] as? Int, 80)
            let bytes = try artifactBytes(image["file"])
            XCTAssertEqual(TinyPNG.size(bytes).map { [$0.0, $0.1] }, [64, 80], "the bytes are the PNG ComfyUI saved")
        }
        XCTAssertEqual(out["seed"] as? Int, 7)
        try assertOutputsMatchTheCatalog(job)
        XCTAssertEqual(out["model"] as? String, "v1-5-pruned-emaonly.safetensors")
        XCTAssertEqual(try artifactBytes(images[0]["file"]), standIn.file("switchyard_00001_.png"))
        let id = try XCTUnwrap(standIn.acceptedPrompts.first)
        XCTAssertEqual(standIn.acceptedPrompts, [id], "one prompt")
        let queued = try XCTUnwrap((standIn.historyEntry(id)?["prompt"] as? [Any])?[2] as? [String: [String: Any]])
        XCTAssertEqual((queued["6"]?["inputs"] as? [String: Any])?["text"] as? String, "a red fox in snow")
        XCTAssertEqual((queued["7"]?["inputs"] as? [String: Any])?["text"] as? String, "blurry")
        XCTAssertEqual((queued["3"]?["inputs"] as? [String: Any])?["seed"] as? Int, 7)
        XCTAssertEqual((queued["5"]?["inputs"] as? [String: Any])?["batch_size"] as? Int, 2)
    }

    func testWithoutASeedTheTemplateGetsOneDerivedFromThePromptAndReportsIt() async throws {
        let job = try await run(generate(["prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2]))
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let id = try XCTUnwrap(standIn.acceptedPrompts.first)
        let queued = try XCTUnwrap((standIn.historyEntry(id)?["prompt"] as? [Any])?[2] as? [String: [String: Any]])
        let seed = try XCTUnwrap((queued["3"]?["inputs"] as? [String: Any])?["seed"] as? Int)
        XCTAssertEqual(seed, Int(UInt32(id.prefix(8), radix: 16) ?? 0))
        XCTAssertEqual(try object(job.outputsJSON)["seed"] as? Int, seed)
    }

    func testARawWorkflowRunsWithItsBindingsAndCollectsOnlyTheChosenOutputs() async throws {
        var nodes = graph().objectValue ?? [:]
        nodes["4"] = ["class_type": "PreviewImage", "inputs": ["images": ["2", 0]]]
        let spec = workflow(.object(nodes), ["inputs": [["node": "1", "input": "width", "value": 32]], "output_nodes": ["3"]])
        let job = try await run(spec)
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let out = try object(job.outputsJSON)
        let files = try XCTUnwrap(out["files"] as? [[String: Any]])
        XCTAssertEqual(files.map { $0["node"] as? String }, ["3"], "the preview node's temp file is not collected")
        XCTAssertEqual(TinyPNG.size(try artifactBytes(files[0]["file"])).map { [$0.0, $0.1] }, [32, 48], "the binding set the width")
        XCTAssertEqual(out["prompt_id"] as? String, standIn.acceptedPrompts.first)
        try assertOutputsMatchTheCatalog(job)
    }

    func testAWorkflowFileFromTheStoreRunsLikeAnInlineGraph() async throws {
        let digest = try engine.artifacts.put(graph(width: 16).serialized(), mediaType: "application/json")
        let job = try await run(workflow(["artifact": .string("sha256:\(digest)"), "media_type": "application/json"]))
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let files = try XCTUnwrap(try object(job.outputsJSON)["files"] as? [[String: Any]])
        XCTAssertEqual(TinyPNG.size(try artifactBytes(files.first?["file"])).map { $0.0 }, 16, "yard run comfy.workflow --input workflow=@workflow_api.json")
    }

    func testTheSameRequestUnderTheApiPrefixIsServedToo() async throws {
        let job = try await run(JobSpec(pluginID: "comfyui", capability: "comfy.workflow", inputs: ["workflow": graph()],
                                        config: ["base_url": .string(standIn.baseURL + "/api")]))
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertTrue(standIn.requestLog.contains("POST /api/prompt"))
    }

    func testAnInputImageIsUploadedAndTheLoadImageNodePointsAtIt() async throws {
        let png = TinyPNG.encode(width: 40, height: 30, rgb: (10, 20, 30))
        let digest = try engine.artifacts.put(png, mediaType: "image/png")
        let nodes: JSONValue = ["1": ["class_type": "LoadImage", "inputs": ["image": "placeholder.png"]],
                                "2": ["class_type": "ImageInvert", "inputs": ["image": ["1", 0]]],
                                "3": ["class_type": "SaveImage", "inputs": ["images": ["2", 0], "filename_prefix": "up"]]]
        let file: JSONValue = ["artifact": .string("sha256:\(digest)"), "media_type": "image/png"]
        let job = try await run(workflow(nodes, ["inputs": [["node": "1", "input": "image", "value": file]]]))
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let uploaded = try XCTUnwrap(standIn.inputFileNames.first)
        XCTAssertTrue(uploaded.hasPrefix("sy-") && uploaded.hasSuffix(".png"), uploaded)
        XCTAssertEqual(standIn.file(uploaded, type: "input"), png, "ComfyUI received the bytes")
        let queued = try XCTUnwrap((standIn.historyEntry(try XCTUnwrap(standIn.acceptedPrompts.first))?["prompt"] as? [Any])?[2] as? [String: [String: Any]])
        XCTAssertEqual((queued["1"]?["inputs"] as? [String: Any])?["image"] as? String, uploaded)
        let files = try XCTUnwrap(try object(job.outputsJSON)["files"] as? [[String: Any]])
        XCTAssertEqual(TinyPNG.size(try artifactBytes(files.first?["file"])).map { [$0.0, $0.1] }, [40, 30])
    }

    func testALocalEngineEstimatesNoCost() async throws {
        let verdict = await engine.preflight(workflow(graph()))
        XCTAssertTrue(verdict.ok, "\(verdict.findings)")
        XCTAssertEqual(verdict.estimate?.amountMinor, 0)
    }

    // MARK: dependencies and refusals

    func testAMissingNodeClassIsDependencyMissingBeforeAnyPrompt() async throws {
        standIn.configure { $0.missingNodeClasses = ["ImageInvert"] }
        let finding = try await refusal(workflow(graph()))
        XCTAssertEqual(finding.code, "DEPENDENCY_MISSING")
        XCTAssertTrue(finding.message.contains("ImageInvert"), finding.message)
        XCTAssertEqual(finding.field, "$.inputs.workflow.2")
        XCTAssertEqual(promptRequests, 0, "refused before anything was queued")
        XCTAssertEqual(try engine.store.unfinishedJobs().count, 0, "and before a job row exists")
    }

    func testTheNodeCatalogueIsFetchedOncePerTTLNotOncePerJob() async throws {
        for _ in 0..<3 { _ = await engine.preflight(workflow(graph())) }
        XCTAssertEqual(standIn.requestLog.filter { $0 == "GET /object_info" }.count, 1, "cached in the plugin's kv")
        let uncached = JobSpec(pluginID: "comfyui", capability: "comfy.workflow", inputs: ["workflow": graph()],
                               config: ["base_url": .string(standIn.baseURL), "object_info_ttl_ms": 0])
        for _ in 0..<2 { _ = await engine.preflight(uncached) }
        XCTAssertEqual(standIn.requestLog.filter { $0 == "GET /object_info" }.count, 3)
    }

    func testAMissingModelFileIsDependencyMissingNamingTheFile() async throws {
        standIn.models = [:]
        let finding = try await refusal(generate(["prompt": "a fox"]))
        XCTAssertEqual(finding.code, "DEPENDENCY_MISSING")
        XCTAssertTrue(finding.message.contains("v1-5-pruned-emaonly.safetensors"), finding.message)
        XCTAssertTrue(finding.remediation.contains("checkpoints"), finding.remediation)
        XCTAssertEqual(finding.field, "$.inputs.model")
        XCTAssertEqual(promptRequests, 0)
    }

    func testAModelInstalledAfterTheCatalogueWasCachedIsNotRefused() async throws {
        standIn.models = [:]
        _ = try await refusal(generate(["prompt": "a fox"]))
        standIn.models = ["checkpoints": ["v1-5-pruned-emaonly.safetensors"]]
        let job = try await run(generate(["prompt": "a fox", "width": 64, "height": 64]))
        XCTAssertEqual(job.phase, .succeeded, "a cached 'missing' is checked against the server again: \(job.errorJSON ?? "")")
    }

    func testAModelRemovedAfterTheCatalogueWasCachedIsStillDependencyMissing() async throws {
        _ = await engine.preflight(generate(["prompt": "warm the cache"]))
        standIn.models = [:]
        let job = try await run(generate(["prompt": "a fox", "width": 64, "height": 64]))
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "DEPENDENCY_MISSING", "ComfyUI's value_not_in_list for a file")
        XCTAssertTrue(job.errorJSON?.contains("v1-5-pruned-emaonly.safetensors") == true, job.errorJSON ?? "")
    }

    func testAGraphComfyUIRefusesIsContractMismatchNamingTheNodeAndInput() async throws {
        let job = try await run(workflow(graph(width: 0)))
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "CONTRACT_MISMATCH")
        let error = try object(job.errorJSON)
        XCTAssertTrue((error["message"] as? String ?? "").contains("node 1 (EmptyImage) width: Value 0 smaller than min of 1"), "\(error)")
        XCTAssertEqual(error["field"] as? String, "$.inputs.workflow.1.inputs.width")
        XCTAssertEqual(error["charged"] as? String, "no")
        XCTAssertEqual(standIn.acceptedPrompts, [])
    }

    func testAGraphWithoutAnOutputNodeIsContractMismatch() async throws {
        let nodes: JSONValue = ["1": ["class_type": "EmptyImage", "inputs": ["width": 8, "height": 8, "batch_size": 1, "color": 0]]]
        let job = try await run(workflow(nodes))
        XCTAssertEqual(job.errorCode, "CONTRACT_MISMATCH")
        XCTAssertTrue(job.errorJSON?.contains("no output node") == true, job.errorJSON ?? "")
    }

    func testAWorkflowInTheUIFormatIsRefusedBeforeAnythingIsSent() async throws {
        let finding = try await refusal(workflow(["nodes": [], "links": [], "version": 0.4]))
        XCTAssertEqual(finding.code, "CONTRACT_MISMATCH")
        XCTAssertTrue(finding.remediation.contains("Export (API)"))
        XCTAssertEqual(promptRequests, 0)
    }

    func testANodeThatRaisesFailsTheJobWithComfyUIsMessage() async throws {
        standIn.configure { $0.failOnClass = "ImageInvert" }
        let job = try await run(workflow(graph()))
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "ENGINE_ERROR")
        XCTAssertTrue(job.errorJSON?.contains("free GPU memory") == true, "out of memory says what to lower")
        XCTAssertTrue(job.errorJSON?.contains("node 2 (ImageInvert) failed: Allocation on device: out of memory") == true, job.errorJSON ?? "")
    }

    // MARK: lost, cancelled, recovered

    func testARestartedServerLosesTheJobAsLostByEngineInsteadOfPollingForever() async throws {
        standIn.configure { $0.paused = true }
        let started = try await engine.start(workflow(graph()))
        XCTAssertEqual(standIn.pendingIDs.count, 1)
        standIn.restart()
        standIn.configure { $0.paused = false }
        let ref = try object(try engine.store.job(id: started.id)?.refJSON)
        let early = try engine.plugin("comfyui").call(.poll, request: requestData(["ref": ref, "config": ["base_url": standIn.baseURL, "lost_grace_ms": 600_000]]))
        XCTAssertEqual(early.json?["state"] as? String, "queued", "within the grace a missing prompt is not yet lost")
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "LOST_BY_ENGINE")
        XCTAssertTrue(job.errorJSON?.contains("restarted") == true)
        XCTAssertLessThanOrEqual(job.pollCount, 2, "no endless poll")
    }

    func testAQueuedJobIsNotLostWhileItWaits() async throws {
        standIn.configure { $0.paused = true }
        let started = try await engine.start(workflow(graph()))
        let plugin = try engine.plugin("comfyui")
        for _ in 0..<3 {
            let polled = plugin.call(.poll, request: requestData(["ref": try object(try engine.store.job(id: started.id)?.refJSON), "config": ["base_url": standIn.baseURL, "lost_grace_ms": 0]]))
            XCTAssertEqual(polled.json?["state"] as? String, "queued")
            XCTAssertEqual(polled.json?["message"] as? String, "next in ComfyUI's queue")
        }
        standIn.configure { $0.paused = false }
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.phase, .succeeded)
    }

    func testCancellingAQueuedPromptRemovesItFromTheQueue() async throws {
        standIn.configure { $0.paused = true }
        let started = try await engine.start(workflow(graph()))
        let cancelled = try await engine.cancel(started.id)
        XCTAssertEqual(cancelled.phase, .cancelled)
        let outcome = try object(cancelled.cancelOutcomeJSON)
        XCTAssertEqual(outcome["outcome"] as? String, "cancelled_in_queue")
        XCTAssertEqual(outcome["charged"] as? String, "no")
        XCTAssertEqual(standIn.pendingIDs, [])
        XCTAssertEqual(standIn.interruptCount, 0, "a queued prompt is deleted, not interrupted")
        standIn.configure { $0.paused = false }
        standIn.step(20)
        XCTAssertNil(standIn.historyEntry(try XCTUnwrap(standIn.acceptedPrompts.first)), "it never ran")
    }

    func testCancellingARunningPromptInterruptsItAtTheNextNode() async throws {
        standIn.configure { $0.advanceOnRequests = false; $0.ticksPerNode = 5 }
        let started = try await engine.start(workflow(graph()))
        standIn.step(3)
        let id = try XCTUnwrap(standIn.runningID)
        let cancelled = try await engine.cancel(started.id)
        let outcome = try object(cancelled.cancelOutcomeJSON)
        XCTAssertEqual(outcome["outcome"] as? String, "cancelled_running")
        XCTAssertEqual(outcome["charged"] as? String, "no")
        XCTAssertTrue((outcome["message"] as? String ?? "").contains("between nodes"))
        XCTAssertEqual(standIn.interruptCount, 1)
        XCTAssertEqual(standIn.runningID, id, "the node running now finishes first")
        standIn.step(20)
        let status = try XCTUnwrap(standIn.historyEntry(id)?["status"] as? [String: Any])
        XCTAssertEqual(status["status_str"] as? String, "error")
        let last = try XCTUnwrap((status["messages"] as? [[Any]])?.last)
        XCTAssertEqual(last.first as? String, "execution_interrupted")
        XCTAssertEqual((last.last as? [String: Any])?["node_id"] as? String, "2", "it stopped between node 1 and node 2")
        XCTAssertEqual((last.last as? [String: Any])?["executed"] as? [String], ["1"])
    }

    func testAHostKilledBetweenSubmitAndStoringTheRefFindsThePromptByItsID() throws {
        let home = dir.appendingPathComponent("crash-home")
        let graphText = String(decoding: graph().serialized(), as: UTF8.self)
        let configText = #"{"base_url":"\#(standIn.baseURL)","lost_grace_ms":0}"#
        let crashed = try yard(["run", "comfy.workflow", "--engine", "comfyui", "--config", configText, "--input", "workflow=\(graphText)", "--idempotency-key", "order-42"],
                               home: home, extraEnvironment: ["YARD_FAULT": "after-submit", "SWIFT_BACKTRACE": "enable=no"])
        XCTAssertNotEqual(crashed.status, 0)
        let store = try SQLiteJobStore(path: home.appendingPathComponent("yard.sqlite"))
        XCTAssertEqual(try store.unfinishedJobs().map(\.phase), [.submitting], "killed before the ref was stored")
        XCTAssertEqual(standIn.acceptedPrompts.count, 1, "ComfyUI got the prompt")
        let resumed = try yard(["jobs", "resume", "--json"], home: home)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let jobs = try XCTUnwrap(resumed.json as? [[String: Any]], resumed.stdout)
        XCTAssertEqual(jobs.first?["state"] as? String, "succeeded", "\(jobs)")
        XCTAssertEqual(standIn.acceptedPrompts.count, 1, "reconciled by prompt id, not queued again")
        let job = try XCTUnwrap(try store.unfinishedJobs().isEmpty ? store.job(id: XCTUnwrap(jobs.first?["id"] as? String)) : nil)
        XCTAssertTrue(job.refJSON?.contains(standIn.acceptedPrompts[0]) == true)
    }

    func testAKeyReusedFromAnotherStoreGetsItsOwnPromptUnlessTheInputsAreTheSame() async throws {
        // ComfyUI's history outlives a host's store: a fresh YARD_HOME may reuse a key.
        let plugin = try engine.plugin("comfyui")
        func submit(width: Int) throws -> String {
            let answer = plugin.call(.submit, request: requestData([
                "capability": "comfy.workflow", "inputs": ["workflow": try XCTUnwrap(JSONSerialization.jsonObject(with: graph(width: width).serialized()))],
                "config": ["base_url": standIn.baseURL], "job": ["id": "job_x", "idempotency_key": "order-7", "attempt": 1]]))
            return try XCTUnwrap((answer.json?["ref"] as? [String: Any])?["prompt_id"] as? String, String(decoding: answer.document, as: UTF8.self))
        }
        let first = try submit(width: 64)
        XCTAssertEqual(try submit(width: 64), first, "same key and inputs: the prompt ComfyUI already has")
        XCTAssertEqual(standIn.acceptedPrompts, [first], "not queued twice")
        let other = try submit(width: 32)
        XCTAssertNotEqual(other, first, "other inputs: another prompt, never the old result")
        XCTAssertEqual(standIn.acceptedPrompts, [first, other])
    }

    // MARK: transient failures

    func testAServerErrorOnPromptIsRetriedWithoutASecondPrompt() async throws {
        standIn.configure { $0.promptServerErrorNext = 1 }
        let job = try await run(workflow(graph()))
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(promptRequests, 2, "the refused attempt and the retry")
        XCTAssertEqual(standIn.acceptedPrompts.count, 1)
    }

    func testAConnectionDroppedAfterThePromptWasQueuedDoesNotQueueItTwice() async throws {
        standIn.configure { $0.dropAfterAcceptingNext = 1 }
        let job = try await run(workflow(graph()))
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(standIn.acceptedPrompts.count, 1, "the adapter found the prompt by its id")
        XCTAssertEqual(promptRequests, 1)
    }

    func testServerErrorsDroppedConnectionsAndMalformedAnswersWhilePollingAreRetried() async throws {
        let started = try await engine.start(workflow(graph()))
        standIn.configure { $0.serverErrorNext = 2; $0.dropConnectionNext = 1; $0.malformedNext = 1 }
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let errors = try engine.store.events(jobID: started.id, afterID: 0).filter { $0.kind == "poll_error" }
        XCTAssertGreaterThanOrEqual(errors.count, 3, "\(errors.map(\.message))")
    }

    func testYardStandinComfyUIServesYardRunFromTheCommandLine() throws {
        let port = Int.random(in: 40_000..<50_000)
        let home = dir.appendingPathComponent("cli-home")
        let process = Process()
        process.executableURL = Build.yard
        process.arguments = ["standin", "comfyui", "--port", String(port), "--no-models"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { process.terminate(); process.waitUntilExit() }
        let url = "http://127.0.0.1:\(port)"
        let deadline = Date().addingTimeInterval(20)
        while (try? BlockingHTTPTransport(defaultTimeoutMs: 500).perform(HostHTTPRequest(method: "GET", url: url + "/system_stats")))?.status != 200 {
            guard Date() < deadline else { return XCTFail("yard standin comfyui did not come up on \(url)") }
            usleep(100_000)
        }
        let configText = #"{"base_url":"\#(url)"}"#
        let dry = try yard(["run", "image.generate", "--engine", "comfyui", "--config", configText, "--input", "prompt=a fox", "--dry-run", "--json"], home: home)
        XCTAssertEqual(dry.status, 1)
        let finding = try XCTUnwrap(((dry.json as? [String: Any])?["findings"] as? [[String: Any]])?.first, dry.stdout + dry.stderr)
        XCTAssertEqual(finding["code"] as? String, "DEPENDENCY_MISSING", "--no-models: the checkpoint is missing")
        let run = try yard(["run", "comfy.workflow", "--engine", "comfyui", "--config", configText,
                            "--input", "workflow=\(String(decoding: graph().serialized(), as: UTF8.self))", "--json"], home: home)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertEqual((run.json as? [String: Any])?["state"] as? String, "succeeded", run.stdout)
    }

    // MARK: health and conformance

    func testHealthComesFromSystemStatsAndAStoppedServerIsOffline() async throws {
        let plugin = try engine.plugin("comfyui")
        let health = await engine.health(of: plugin, config: config, maxAge: 0)
        XCTAssertEqual(health.status, "ok")
        XCTAssertTrue(health.message?.contains("ComfyUI 0.3.75 on cpu") == true, health.message ?? "")
        standIn.configure { $0.serverErrorNext = 1 }
        let troubled = await engine.health(of: plugin, config: config, maxAge: 0)
        XCTAssertEqual(troubled.status, "degraded", "up, but answering 500")
        await standIn.stop()
        let down = await engine.health(of: plugin, config: config, maxAge: 0)
        XCTAssertEqual(down.status, "offline")
        XCTAssertEqual(down.code, "ENGINE_OFFLINE")
    }

    func testTheAdapterPassesTheConformanceKitAgainstTheStandIn() async throws {
        let configJSON = #"{"base_url":"\#(standIn.baseURL)"}"#
        let result = try yard(["plugin", "test", "comfyui", "--json", "--isolation", "both", "--config", configJSON], home: dir.appendingPathComponent("h"))
        let report = try XCTUnwrap(result.json as? [String: Any], result.stdout + result.stderr)
        let failed = (report["checks"] as? [[String: Any]] ?? []).filter { $0["ok"] as? Bool != true }
        XCTAssertEqual(failed.count, 0, "\(failed)")
    }
}
