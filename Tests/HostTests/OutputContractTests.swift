import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// The catalog's output schemas as a contract the host enforces after
/// harvest: a job whose outputs break it fails OUTPUT_CONTRACT_VIOLATION,
/// charged (it ran), and nothing passes its outputs on. Worker outputs of
/// every public shape, at any depth, end up as files in the store, never as
/// bytes in the job row.
final class OutputContractTests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }
    var plugins: URL { dir.appendingPathComponent("plugins") }

    /// An image.generate engine that answers its provider's own JSON ({"prompt"}), priced 7 cents an image.
    func addPromptImage(id: String = "prompt-image") throws {
        try FileManager.default.createDirectory(at: plugins, withIntermediateDirectories: true)
        let built = try fixturePlugin("prompt_image", in: dir.appendingPathComponent("build-\(id)")) { manifest in
            manifest["id"] = id
            manifest["capabilities"] = [["id": "image.generate", "pricing": ["unit": "image", "amount_minor": 7, "currency": "USD"],
                                         "example_inputs": ["prompt": "a lighthouse at dawn"]]]
        }
        try FileManager.default.moveItem(at: built.deletingLastPathComponent(), to: plugins.appendingPathComponent(id))
    }

    func testOutputsThatBreakTheCatalogFailTheJobNamingEngineCapabilityAndFieldAndTheChargeStands() async throws {
        try addPromptImage()
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: plugins, billing: platformBilling())
        _ = try ledger.grant(account: "acme", amountMinor: 100)
        let started = try await engine.start(JobSpec(pluginID: "prompt-image", capability: "image.generate", inputs: ["prompt": "a lighthouse at dawn"]))
        let job = try await engine.drive(started.id)

        XCTAssertEqual(job.phase, .failed)
        let error = try XCTUnwrap(try JSONValue(parsing: Data(XCTUnwrap(job.errorJSON).utf8)).objectValue)
        XCTAssertEqual(error["code"], "OUTPUT_CONTRACT_VIOLATION")
        XCTAssertEqual(error["engine"], "prompt-image")
        XCTAssertEqual(error["capability"], "image.generate")
        XCTAssertEqual(error["charged"], "yes", "the job ran: the provider's charge stands")
        let message = try XCTUnwrap(error["message"]?.stringValue)
        XCTAssertTrue(message.contains("prompt-image") && message.contains("image.generate"), message)
        let fields = (error["violations"]?.arrayValue ?? []).compactMap { $0["field"]?.stringValue }
        XCTAssertTrue(fields.contains("$.images"), "the missing images are named: \(fields)")
        XCTAssertTrue(fields.contains("$.prompt"), "and the provider's own member: \(fields)")
        XCTAssertNil(job.outputsJSON, "outputs that break the contract are not stored, so nothing can pass them on")
        XCTAssertTrue(try engine.store.events(jobID: job.id, afterID: 0).contains { $0.kind == "output_contract" })

        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.chargedMinor, 7, "one image, as the provider reported it ran")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 93)
        XCTAssertLedgerBalances(ledger)
    }

    func testAPipelineStopsAtTheStepAndTriesNoOtherEngineWhenOutputsBreakTheContract() async throws {
        try addPromptImage()
        try addPromptImage(id: "prompt-image-two")
        try copyPlugin("echo", to: plugins)
        let engine = try makeTestEngine(home: home, plugins: plugins)
        engine.policy.maxPollMs = 5
        let definition = try PipelineDefinition.parse(yaml: """
            id: contract
            steps:
              still: {capability: image.generate, engines: [prompt-image, prompt-image-two], inputs: {prompt: a lighthouse}}
              after: {capability: debug.echo, engines: [echo], after: [still], inputs: {text: done, polls: 0}}
            """, source: "test.yaml")
        let plan = await PipelinePlanner(engine: engine, configs: EngineConfigs(paths: engine.paths)).plan(definition, inputs: [:])
        XCTAssertTrue(plan.ready, "\(plan.findings)")
        let runner = try PipelineRunner(engine: engine, configs: EngineConfigs(paths: engine.paths))
        let created = try runner.create(definition, source: "test.yaml", inputs: [:], quality: nil, noCache: false)
        let finished = try await runner.execute(created.id)
        XCTAssertEqual(finished.state, .failed)
        let steps = Dictionary(uniqueKeysWithValues: try runner.store.steps(runID: created.id).map { ($0.name, $0) })
        let error = try JSONValue(parsing: Data(XCTUnwrap(steps["still"]?.errorJSON).utf8))
        XCTAssertEqual(error["code"], "OUTPUT_CONTRACT_VIOLATION")
        XCTAssertEqual(error["charged"], "yes")
        XCTAssertNil(steps["still"]?.outputsJSON)
        XCTAssertEqual(steps["after"]?.state, .blocked, "the next step never sees provider JSON")
        XCTAssertEqual(try engine.store.jobs(limit: 10, phase: nil).map(\.pluginID), ["prompt-image"], "a charged failure is not retried on another engine")
    }

    func testAnEngineIsHeldToTheNarrowerOutputsItDeclares() async throws {
        try copyPlugin("echo", to: plugins) { manifest in
            var capabilities = manifest["capabilities"] as? [[String: Any]] ?? []
            capabilities[0]["outputs"] = ["type": "object", "properties": ["text": ["type": "string", "maxLength": 3]]]
            manifest["capabilities"] = capabilities
        }
        let engine = try makeTestEngine(home: home, plugins: plugins)
        engine.policy.maxPollMs = 5
        let short = try await engine.drive(try await engine.start(JobSpec(pluginID: "echo", capability: "debug.echo", inputs: ["text": "hi", "polls": 0])).id)
        XCTAssertEqual(short.phase, .succeeded, short.errorJSON ?? "")
        let long = try await engine.drive(try await engine.start(JobSpec(pluginID: "echo", capability: "debug.echo", inputs: ["text": "hello", "polls": 0])).id)
        XCTAssertEqual(long.errorCode, "OUTPUT_CONTRACT_VIOLATION")
        XCTAssertTrue(long.errorJSON?.contains("declared outputs") == true, long.errorJSON ?? "")
        XCTAssertEqual(try JSONValue(parsing: Data(XCTUnwrap(long.errorJSON).utf8))["field"], "$.outputs.text")
    }

    func testTheConformanceKitFailsAPluginWhoseOutputsBreakTheCatalog() throws {
        try addPromptImage()
        let result = try yard(["plugin", "test", plugins.appendingPathComponent("prompt-image/plugin.json").path, "--json"], home: home)
        XCTAssertEqual(result.status, 1, result.stdout)
        let checks = try XCTUnwrap((result.json as? [String: Any])?["checks"] as? [[String: Any]], result.stdout)
        let contract = try XCTUnwrap(checks.first { $0["id"] as? String == "outputs.contract" })
        XCTAssertEqual(contract["ok"] as? Bool, false)
        let detail = contract["detail"] as? String ?? ""
        XCTAssertTrue(detail.contains("image.generate") && detail.contains("images"), detail)
        XCTAssertEqual(checks.first { $0["id"] as? String == "lifecycle.submit_poll" }?["ok"] as? Bool, true, "the job itself runs: only its outputs are wrong")
    }
}

/// RunPod workers answer in the public workers' shapes; the adapter maps each
/// to the catalog's outputs and the files end up in the store.
final class WorkerOutputTests: TemporaryDirectoryTestCase {
    var standIn: RunPodStandIn!
    var engine: JobEngine!

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        standIn = try await started(RunPodStandIn())
        let plugins = dir.appendingPathComponent("plugins")
        try copyPlugin("runpod", to: plugins)
        engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: plugins, secrets: ["RUNPOD_API_KEY": standIn.apiKey],
                                    http: BlockingHTTPTransport(defaultTimeoutMs: 5_000))
        engine.policy.minPollMs = 1
        engine.policy.maxPollMs = 5
    }

    func run(_ capability: String, _ inputs: [String: JSONValue], config extra: [String: JSONValue] = [:]) async throws -> JobRecord {
        let config: [String: JSONValue] = ["endpoint_id": .string(standIn.endpointID), "base_url": .string(standIn.baseURL)]
        let spec = JobSpec(pluginID: "runpod", capability: capability, inputs: inputs, config: config.merging(extra) { _, new in new })
        return try await engine.drive(try await engine.start(spec).id)
    }

    func outputs(_ job: JobRecord, file: StaticString = #filePath, line: UInt = #line) throws -> JSONValue {
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "", file: file, line: line)
        let text = try XCTUnwrap(job.outputsJSON, job.errorJSON ?? "", file: file, line: line)
        XCTAssertLessThan(text.utf8.count, 4096, "the job row names files; it holds no media bytes: \(text.prefix(300))", file: file, line: line)
        XCTAssertFalse(text.contains("base64") || text.contains("data:"), text, file: file, line: line)
        return try JSONValue(parsing: Data(text.utf8))
    }

    /// The bytes of a stored file.
    func stored(_ file: JSONValue?, file path: StaticString = #filePath, line: UInt = #line) throws -> Data {
        let handle = try XCTUnwrap(file?["artifact"]?.stringValue, "\(String(describing: file))", file: path, line: line)
        return try XCTUnwrap(try engine.artifacts.read(sha256: String(handle.dropFirst("sha256:".count))), file: path, line: line)
    }

    func testWorkerComfyUIBase64ImagesAreStoredWithTheirSize() async throws {
        standIn.worker = .comfyUI
        let workflow: JSONValue = ["5": ["class_type": "EmptyLatentImage", "inputs": ["width": 96, "height": 64, "batch_size": 2]]]
        let out = try outputs(try await run("comfy.workflow", ["workflow": workflow]))
        let files = try XCTUnwrap(out["files"]?.arrayValue)
        XCTAssertEqual(files.count, 2, "both images of the batch")
        XCTAssertEqual(files.first?["node"], "ComfyUI_00001_.png")
        XCTAssertEqual(TinyPNG.size(try stored(files.first?["file"])).map { [$0.0, $0.1] }, [96, 64])
        XCTAssertEqual(files.first?["file"]?["media_type"], "image/png")
    }

    func testWorkerComfyUIS3LinksAreDownloadedBeforeTheyExpire() async throws {
        standIn.worker = .comfyUIS3
        let workflow: JSONValue = ["5": ["class_type": "EmptyLatentImage", "inputs": ["width": 64, "height": 64, "batch_size": 1]]]
        let job = try await run("comfy.workflow", ["workflow": workflow])
        let out = try outputs(job)
        XCTAssertTrue(standIn.requestsSeen.contains { $0.method == "GET" && $0.path.hasPrefix("/outputs/") }, "downloaded from the worker's link")
        standIn.advance(ms: 31 * 60 * 1000)  // past the bucket's retention: the store still has the file
        XCTAssertEqual(TinyPNG.size(try stored(out["files"]?[0]?["file"])).map { [$0.0, $0.1] }, [64, 64])
        XCTAssertEqual(job.phase, .succeeded)
    }

    func testAnImageGenerateAnswerInWorkerComfyUIsShapeBecomesCatalogImages() async throws {
        let png = StandInMedia.png(width: 80, height: 48, seed: "comfy")
        standIn.output = { _, _ in ["images": [["filename": "ComfyUI_00001_.png", "type": "base64", "data": png.base64EncodedString()]]] }
        let out = try outputs(try await run("image.generate", ["prompt": "a lighthouse"]))
        XCTAssertEqual(out["images"]?[0]?["width"], 80, "read from the PNG: worker-comfyui reports no size")
        XCTAssertEqual(out["images"]?[0]?["height"], 48)
        XCTAssertEqual(try stored(out["images"]?[0]?["file"]), png)
    }

    func testWorkerSDXLDataURIsAndImageURLWorkersBecomeCatalogImages() async throws {
        standIn.worker = .sdxl
        let sdxl = try outputs(try await run("image.generate", ["prompt": "a lighthouse", "width": 96, "height": 64, "num_images": 2, "seed": 9]))
        XCTAssertEqual(sdxl["images"]?.arrayValue?.count, 2)
        XCTAssertEqual(sdxl["images"]?[1]?["width"], 96)
        XCTAssertEqual(sdxl["seed"], 9)

        standIn.worker = .imageURL
        let linked = try outputs(try await run("image.generate", ["prompt": "a lighthouse", "width": 64, "height": 64]))
        XCTAssertEqual(linked["images"]?.arrayValue?.count, 1)
        XCTAssertEqual(TinyPNG.size(try stored(linked["images"]?[0]?["file"])).map { [$0.0, $0.1] }, [64, 64])
    }

    func testVideoAndAudioURLWorkersGiveDurationsReadFromTheFiles() async throws {
        standIn.worker = .videoURL
        let video = try outputs(try await run("video.from_image", ["image": ["url": "https://example.com/frame.png"], "duration_seconds": 10]))
        XCTAssertEqual(video["duration_seconds"]?.doubleValue ?? 0, 10, accuracy: 0.2, "the MP4's own length")
        XCTAssertEqual(video["width"], 160)
        XCTAssertEqual(video["height"], 90)
        XCTAssertEqual(video["fps"]?.doubleValue ?? 0, 8, accuracy: 0.01)
        XCTAssertEqual(video["video"]?["media_type"], "video/mp4")

        standIn.worker = .audioURL
        let text = "one two three four five six seven eight nine ten"
        let audio = try outputs(try await run("audio.speech", ["text": .string(text)]))
        XCTAssertEqual(audio["duration_seconds"]?.doubleValue ?? 0, StandInMedia.speechSeconds(text), accuracy: 0.01)
        XCTAssertEqual(audio["sample_rate"], 24_000)
    }

    func testAnOutputMapInTheConfigMapsAWorkerOfAnyShape() async throws {
        let png = StandInMedia.png(width: 40, height: 30, seed: "custom")
        standIn.output = { _, _ in ["result": ["pictures": [["b64": png.base64EncodedString(), "px": ["w": 40, "h": 30]]]], "meta": ["seed": 5]] }
        let map: JSONValue = ["image.generate": [
            "images": ["$each": "$.result.pictures", "$map": ["file": ["$file": "$.b64", "$media_type": "image/png"], "width": "$.px.w", "height": "$.px.h"]],
            "seed": "$^.meta.seed",
        ]]
        let out = try outputs(try await run("image.generate", ["prompt": "x"], config: ["output_map": map]))
        XCTAssertEqual(out["images"]?[0]?["width"], 40)
        XCTAssertEqual(out["seed"], 5)
        XCTAssertEqual(try stored(out["images"]?[0]?["file"]), png)

        let verdict = await engine.preflight(JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "x"],
                                                    config: ["endpoint_id": .string(standIn.endpointID), "base_url": .string(standIn.baseURL),
                                                             "output_map": ["image.generate": ["images": ["$each": 3]]]]))
        XCTAssertEqual(verdict.firstError?.code, "CONFIG_INVALID", "a broken map is refused before anything is sent")
        XCTAssertEqual(verdict.firstError?.field, "$.config.output_map.image.generate.images")
    }

    func testAFileWhoseBytesAreNotItsDeclaredTypeBreaksTheContract() async throws {
        let clip = StandInMedia.clip(seconds: 5)
        standIn.output = { _, _ in ["image_url": "data:image/png;base64," + clip.base64EncodedString()] }
        let job = try await run("image.generate", ["prompt": "x"])
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "OUTPUT_CONTRACT_VIOLATION")
        XCTAssertTrue(job.errorJSON?.contains("video/mp4") == true, job.errorJSON ?? "")
        XCTAssertEqual(try JSONValue(parsing: Data(XCTUnwrap(job.errorJSON).utf8))["field"], "$.outputs.images[0].file")
    }

    func testAWorkerAnswerWithNoImageIsAViolationAndItsBytesStayOutOfTheRow() async throws {
        let payload = String(repeating: "A", count: 200_000)
        standIn.output = { _, _ in ["weird": ["blob": payload]] }
        let job = try await run("image.generate", ["prompt": "x"])
        XCTAssertEqual(job.errorCode, "OUTPUT_CONTRACT_VIOLATION")
        XCTAssertNil(job.outputsJSON)
        for event in try engine.store.events(jobID: job.id, afterID: 0) {
            XCTAssertLessThan((event.dataJSON ?? "").utf8.count, 4096, "events keep a shortened copy only")
        }
    }
}
