import Foundation
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// The ComfyUI stand-in answers as the recorded server did
/// (Tests/Fixtures/comfyui): what the adapter tests do not reach directly.
final class ComfyUIStandInTests: XCTestCase {
    var standIn: ComfyUIStandIn!
    let http = BlockingHTTPTransport(defaultTimeoutMs: 3_000)

    override func setUp() async throws {
        // Virtual time: execution moves only by step(), so each test stops it where it needs.
        standIn = try ComfyUIStandIn(clock: VirtualClock())
        try await standIn.start()
    }

    override func tearDown() async throws {
        await standIn?.stop()
    }

    func call(_ method: String, _ path: String, json: Any? = nil, body: Data? = nil, headers: [String: String] = [:]) throws -> (Int, Any?, Data) {
        let data = try json.map { try JSONSerialization.data(withJSONObject: $0) } ?? body
        let answer = try http.perform(HostHTTPRequest(method: method, url: standIn.baseURL + path, headers: headers, body: data))
        return (answer.status, try? JSONSerialization.jsonObject(with: answer.body), answer.body)
    }

    /// Sorted-key JSON, to compare documents whatever their Foundation types.
    func canonical(_ value: Any?) -> String {
        guard let value, let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) else { return "nil" }
        return String(decoding: data, as: UTF8.self)
    }

    let recorded: [String: Any] = [
        "1": ["class_type": "EmptyImage", "inputs": ["width": 64, "height": 48, "batch_size": 1, "color": 16_711_680]],
        "2": ["class_type": "ImageInvert", "inputs": ["image": ["1", 0]]],
        "3": ["class_type": "SaveImage", "inputs": ["images": ["2", 0], "filename_prefix": "fixture"]],
    ]

    func testThePromptFromTheRecordingRunsAndItsHistoryHasTheRecordedShape() throws {
        let (status, answer, _) = try call("POST", "/prompt", json: ["prompt": recorded, "client_id": "79f084aa864047bf9c433068302d38d7", "prompt_id": "p-1"])
        XCTAssertEqual(status, 200)
        XCTAssertEqual(canonical(answer), canonical(["prompt_id": "p-1", "number": 0, "node_errors": [String: Any]()]))
        standIn.step(10)
        let (_, history, _) = try call("GET", "/history/p-1")
        let entry = try XCTUnwrap((history as? [String: Any])?["p-1"] as? [String: Any])
        XCTAssertEqual(Set(entry.keys), ["prompt", "outputs", "status", "meta"])
        let prompt = try XCTUnwrap(entry["prompt"] as? [Any])
        XCTAssertEqual(prompt.count, 5)
        XCTAssertEqual(prompt[1] as? String, "p-1")
        XCTAssertEqual((prompt[3] as? [String: Any])?["client_id"] as? String, "79f084aa864047bf9c433068302d38d7")
        XCTAssertEqual(prompt[4] as? [String], ["3"])
        XCTAssertEqual(canonical(entry["outputs"]), canonical(["3": ["images": [["filename": "fixture_00001_.png", "subfolder": "", "type": "output"]]]]))
        let state = try XCTUnwrap(entry["status"] as? [String: Any])
        XCTAssertEqual(state["status_str"] as? String, "success")
        XCTAssertEqual(state["completed"] as? Bool, true)
        XCTAssertEqual((state["messages"] as? [[Any]])?.compactMap { $0.first as? String }, ["execution_start", "execution_cached", "execution_success"])
        let (viewStatus, _, png) = try call("GET", "/view?filename=fixture_00001_.png&subfolder=&type=output")
        XCTAssertEqual(viewStatus, 200)
        XCTAssertEqual(TinyPNG.size(png).map { [$0.0, $0.1] }, [64, 48])
    }

    func testRefusalsCarryComfyUIsErrorBodies() throws {
        let (s1, noPrompt, _) = try call("POST", "/prompt", json: ["client_id": "x"])
        XCTAssertEqual(s1, 400)
        XCTAssertEqual(canonical(noPrompt), canonical(["error": ["type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": [String: Any]()],
                                                         "node_errors": [String: Any]()]))
        let (s2, badClass, _) = try call("POST", "/prompt", json: ["prompt": ["1": ["class_type": "NoSuchNode", "inputs": [String: Any]()]]])
        XCTAssertEqual(s2, 400)
        XCTAssertEqual(canonical(badClass), canonical(["error": ["type": "invalid_prompt", "message": "Cannot execute because node NoSuchNode does not exist.", "details": "Node ID '#1'",
                                                                "extra_info": [String: Any]()], "node_errors": [String: Any]()]))
        let (_, noOutputs, _) = try call("POST", "/prompt", json: ["prompt": ["1": recorded["1"]!]])
        XCTAssertEqual(((noOutputs as? [String: Any])?["error"] as? [String: Any])?["type"] as? String, "prompt_no_outputs")
        let tooSmall: [String: Any] = ["1": ["class_type": "EmptyImage", "inputs": ["width": 0, "height": 48, "batch_size": 1, "color": 0]],
                                       "2": ["class_type": "SaveImage", "inputs": ["images": ["1", 0], "filename_prefix": "x"]]]
        let (s4, failed, _) = try call("POST", "/prompt", json: ["prompt": tooSmall])
        XCTAssertEqual(s4, 400)
        let node = try XCTUnwrap(((failed as? [String: Any])?["node_errors"] as? [String: Any])?["1"] as? [String: Any])
        XCTAssertEqual(node["class_type"] as? String, "EmptyImage")
        XCTAssertEqual(node["dependent_outputs"] as? [String], ["2"])
        let error = try XCTUnwrap((node["errors"] as? [[String: Any]])?.first)
        XCTAssertEqual(error["type"] as? String, "value_smaller_than_min")
        XCTAssertEqual(error["message"] as? String, "Value 0 smaller than min of 1")
        XCTAssertEqual((error["extra_info"] as? [String: Any])?["input_name"] as? String, "width")
        XCTAssertEqual(standIn.acceptedPrompts, [])
    }

    func testAServerWithoutWeightsListsNoModelsAndRefusesAModelAsNotInTheList() throws {
        standIn.models = [:]
        let (_, info, _) = try call("GET", "/api/object_info")
        let catalogue = try XCTUnwrap(info as? [String: Any])
        let checkpoint = ((catalogue["CheckpointLoaderSimple"] as? [String: Any])?["input"] as? [String: Any])?["required"] as? [String: Any]
        XCTAssertEqual((checkpoint?["ckpt_name"] as? [Any])?.first as? [String], [], "classic combo: an empty list")
        let upscale = ((catalogue["UpscaleModelLoader"] as? [String: Any])?["input"] as? [String: Any])?["required"] as? [String: Any]
        XCTAssertEqual(((upscale?["model_name"] as? [Any])?.last as? [String: Any])?["options"] as? [String], [], "COMBO: empty options")
        let graph: [String: Any] = ["4": ["class_type": "CheckpointLoaderSimple", "inputs": ["ckpt_name": "sd.safetensors"]],
                                    "9": ["class_type": "PreviewImage", "inputs": ["images": ["4", 0]]]]
        let (_, refused, _) = try call("POST", "/prompt", json: ["prompt": graph])
        let error = try XCTUnwrap(((((refused as? [String: Any])?["node_errors"] as? [String: Any])?["4"] as? [String: Any])?["errors"] as? [[String: Any]])?.first)
        XCTAssertEqual(error["type"] as? String, "value_not_in_list")
        XCTAssertEqual(error["details"] as? String, "ckpt_name: 'sd.safetensors' not in []")
    }

    func testUnknownAndRestartedHistoryIsAnEmptyObject() throws {
        XCTAssertEqual(canonical(try call("GET", "/history/nope").1), "{}")
        _ = try call("POST", "/prompt", json: ["prompt": recorded, "prompt_id": "p-2"])
        standIn.step(10)
        XCTAssertNotNil((try call("GET", "/history/p-2").1 as? [String: Any])?["p-2"])
        standIn.restart()
        XCTAssertEqual(canonical(try call("GET", "/history/p-2").1), "{}")
        XCTAssertEqual(canonical(try call("GET", "/api/queue").1), #"{"queue_pending":[],"queue_running":[]}"#)
        XCTAssertEqual(try call("GET", "/view?filename=fixture_00001_.png").0, 200, "files survive a restart")
    }

    func testAnInterruptDuringTheLastNodeLetsThePromptFinish() throws {
        standIn.configure { $0.ticksPerNode = 3 }
        _ = try call("POST", "/prompt", json: ["prompt": recorded, "prompt_id": "p-3"])
        standIn.step(1 + 3 + 3 + 1)
        XCTAssertEqual(standIn.runningID, "p-3")
        _ = try call("POST", "/interrupt", json: [String: Any]())
        standIn.step(10)
        let status = (standIn.historyEntry("p-3")?["status"] as? [String: Any])?["status_str"] as? String
        XCTAssertEqual(status, "success", "as the recorded probe: the interrupt came during SaveImage, the last node")
    }

    func testAnInterruptNamingAnotherPromptLeavesTheRunningOneAlone() throws {
        standIn.configure { $0.ticksPerNode = 3 }
        _ = try call("POST", "/prompt", json: ["prompt": recorded, "prompt_id": "p-4"])
        standIn.step(2)
        _ = try call("POST", "/interrupt", json: ["prompt_id": "someone-else"])
        standIn.step(20)
        XCTAssertEqual((standIn.historyEntry("p-4")?["status"] as? [String: Any])?["status_str"] as? String, "success")
    }

    func testUploadsKeepBothFilesUnlessOverwriteIsSetOrTheBytesAreTheSame() throws {
        func upload(_ bytes: Data, overwrite: Bool = false) throws -> String? {
            var body = Data("--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"up.png\"\r\nContent-Type: image/png\r\n\r\n".utf8)
            body += bytes + Data("\r\n".utf8)
            if overwrite { body += Data("--b\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n".utf8) }
            body += Data("--b--\r\n".utf8)
            return (try call("POST", "/upload/image", body: body, headers: ["content-type": "multipart/form-data; boundary=b"]).1 as? [String: Any])?["name"] as? String
        }
        let first = TinyPNG.encode(width: 2, height: 2, rgb: (1, 2, 3)), second = TinyPNG.encode(width: 3, height: 3, rgb: (1, 2, 3))
        XCTAssertEqual(try upload(first), "up.png")
        XCTAssertEqual(try upload(first), "up.png", "identical bytes reuse the name")
        XCTAssertEqual(try upload(second), "up (1).png")
        XCTAssertEqual(try upload(second, overwrite: true), "up.png")
        XCTAssertEqual(standIn.file("up.png", type: "input"), second)
        XCTAssertEqual(try call("POST", "/upload/image", body: Data("--b--\r\n".utf8), headers: ["content-type": "multipart/form-data; boundary=b"]).0, 400)
    }

    func testViewRefusesPathsOutsideItsFoldersAndAnswers404ForMissingFiles() throws {
        XCTAssertEqual(try call("GET", "/view?filename=../secrets.txt").0, 400)
        XCTAssertEqual(try call("GET", "/view?filename=missing.png&type=output").0, 404)
    }

    func testADroppedConnectionIsATransportErrorNotAnAnswer() throws {
        standIn.configure { $0.dropConnectionNext = 1 }
        XCTAssertThrowsError(try call("GET", "/queue"))
        XCTAssertEqual(try call("GET", "/queue").0, 200)
    }

    func testAMissingNodeClassIsGoneFromTheCatalogueAndRefused() throws {
        standIn.configure { $0.missingNodeClasses = ["ImageInvert"] }
        XCTAssertEqual(canonical(try call("GET", "/object_info/ImageInvert").1), "{}")
        let (status, answer, _) = try call("POST", "/prompt", json: ["prompt": recorded])
        XCTAssertEqual(status, 400)
        XCTAssertEqual(((answer as? [String: Any])?["error"] as? [String: Any])?["message"] as? String, "Cannot execute because node ImageInvert does not exist.")
    }
}
