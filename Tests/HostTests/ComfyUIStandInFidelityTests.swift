import Foundation
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// The ComfyUI stand-in against a fresh real ComfyUI 0.3.64's recorded
/// answers (Tests/Fixtures/comfyui/real_responses_0.3.64.txt, copied from the
/// recording): the same requests, and the same status, content type and
/// error structure back. Nothing here goes through the adapter.
final class ComfyUIStandInFidelityTests: XCTestCase {
    var standIn: ComfyUIStandIn!
    let http = BlockingHTTPTransport(defaultTimeoutMs: 3_000)

    struct Recorded {
        var status: Int
        var contentType: String
        var body: String
    }

    /// The recording: "=== LABEL" then "  STATUS CONTENT-TYPE BODY".
    static let recording: [String: Recorded] = {
        let file = Build.repository.appendingPathComponent("Tests/Fixtures/comfyui/real_responses_0.3.64.txt")
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return [:] }
        var result: [String: Recorded] = [:]
        var label: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("=== ") { label = String(line.dropFirst(4)); continue }
            guard let current = label, line.hasPrefix("  ") else { continue }
            let rest = line.dropFirst(2)
            let parts = rest.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, let status = Int(parts[0]) else { continue }
            let tail = String(parts[1])
            let contentType: String, body: String
            if tail.hasPrefix("application/json; charset=utf-8 ") {
                contentType = "application/json; charset=utf-8"; body = String(tail.dropFirst(contentType.count + 1))
            } else if tail.hasPrefix("text/plain; charset=utf-8 ") {
                contentType = "text/plain; charset=utf-8"; body = String(tail.dropFirst(contentType.count + 1))
            } else {
                contentType = "None"; body = String(tail.dropFirst(5))
            }
            result[current] = Recorded(status: status, contentType: contentType, body: body)
            label = nil
        }
        return result
    }()

    override func setUp() async throws {
        XCTAssertGreaterThanOrEqual(Self.recording.count, 30, "the recording is in Tests/Fixtures/comfyui")
        standIn = try ComfyUIStandIn(clock: VirtualClock())
        try await standIn.start()
    }

    override func tearDown() async throws { await standIn?.stop() }

    func call(_ method: String, _ path: String, json: Any? = nil, body: Data? = nil, headers: [String: String] = [:]) throws -> HostHTTPResponse {
        let data = try json.map { try JSONSerialization.data(withJSONObject: $0) } ?? body
        var headers = headers
        if json != nil { headers["content-type"] = "application/json" }
        return try http.perform(HostHTTPRequest(method: method, url: standIn.baseURL + path, headers: headers, body: data))
    }

    /// Sorted-key JSON, to compare documents whatever their key order.
    func canonical(_ data: Data) -> String {
        guard let value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]),
              let out = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) else { return "not JSON: \(String(decoding: data, as: UTF8.self))" }
        return String(decoding: out, as: UTF8.self)
    }

    func recorded(_ label: String, file: StaticString = #filePath, line: UInt = #line) throws -> Recorded {
        try XCTUnwrap(Self.recording[label], "no recorded answer for \(label)", file: file, line: line)
    }

    /// Status and content type as recorded ("None": the real server sent no JSON).
    func assertSameFraming(_ answer: HostHTTPResponse, _ expected: Recorded, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(answer.status, expected.status, "status", file: file, line: line)
        if expected.contentType == "None" {
            XCTAssertFalse((answer.headers["content-type"] ?? "").hasPrefix("application/json"), "no JSON body", file: file, line: line)
        } else {
            XCTAssertEqual(answer.headers["content-type"], expected.contentType, "content type", file: file, line: line)
        }
    }

    /// The part of a /prompt refusal that says what went wrong: error type and
    /// details, and per node its error types, details and dependent outputs.
    func refusalShape(_ data: Data) -> String {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return "not JSON" }
        let error = object["error"] as? [String: Any] ?? [:]
        var lines = ["\(error["type"] ?? "-") | \(error["details"] ?? "-")"]
        for (node, entry) in ((object["node_errors"] as? [String: Any]) ?? [:]).sorted(by: { $0.key < $1.key }) {
            let entry = entry as? [String: Any] ?? [:]
            let errors = (entry["errors"] as? [[String: Any]] ?? []).map { "\($0["type"] ?? "")(\($0["details"] ?? ""))" }
            lines.append("\(node) \(entry["class_type"] ?? ""): \(errors.joined(separator: ", ")) → \(entry["dependent_outputs"] ?? [])")
        }
        return lines.joined(separator: "\n")
    }

    func assertRefusal(_ label: String, graph: Any, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try recorded(label, file: file, line: line)
        let answer = try call("POST", "/prompt", json: ["prompt": graph])
        assertSameFraming(answer, expected, file: file, line: line)
        guard (try? JSONSerialization.jsonObject(with: Data(expected.body.utf8))) != nil else {
            // The recording cut this body short: every type and detail the stand-in names must appear in it as the real server wrote them.
            let object = (try? JSONSerialization.jsonObject(with: answer.body)) as? [String: Any] ?? [:]
            let error = object["error"] as? [String: Any] ?? [:]
            var fragments = ["\"type\": \"\(error["type"] ?? "")\"", "\"details\": \"\(error["details"] ?? "")\""]
            for (node, entry) in (object["node_errors"] as? [String: Any]) ?? [:] {
                fragments.append("\"\(node)\": {\"errors\": [")
                for item in ((entry as? [String: Any])?["errors"] as? [[String: Any]]) ?? [] {
                    fragments.append("\"type\": \"\(item["type"] ?? "")\", \"message\": \"\(item["message"] ?? "")\", \"details\": \"\(item["details"] ?? "")\"")
                }
            }
            for fragment in fragments { XCTAssertTrue(expected.body.contains(fragment), "\(label): the recording has no \(fragment)", file: file, line: line) }
            return
        }
        XCTAssertEqual(refusalShape(answer.body), refusalShape(Data(expected.body.utf8)), label, file: file, line: line)
    }

    let image: [String: Any] = ["class_type": "EmptyImage", "inputs": ["width": 64, "height": 48, "batch_size": 1, "color": 16_711_680]]
    let invert: [String: Any] = ["class_type": "ImageInvert", "inputs": ["image": ["1", 0]]]
    let save: [String: Any] = ["class_type": "SaveImage", "inputs": ["images": ["2", 0], "filename_prefix": "cmp"]]

    func chain(_ first: [String: Any]) -> [String: Any] { ["1": first, "2": invert, "3": save] }

    func with(_ node: [String: Any], _ input: String, _ value: Any?) -> [String: Any] {
        var node = node, inputs = node["inputs"] as? [String: Any] ?? [:]
        inputs[input] = value
        node["inputs"] = inputs
        return node
    }

    func testBadGraphsAreRefusedAsTheRealServerRefusedThem() throws {
        try assertRefusal("POST /prompt bad graph: missing class", graph: ["1": ["class_type": "NoSuchNode", "inputs": [String: Any]()], "2": invert, "3": save])
        try assertRefusal("POST /prompt bad graph: no outputs", graph: ["1": image, "2": invert])
        try assertRefusal("POST /prompt bad graph: value too small", graph: chain(with(image, "width", 0)))
        try assertRefusal("POST /prompt bad graph: wrong type width=abc", graph: chain(with(image, "width", "abc")))
        try assertRefusal("POST /prompt bad graph: missing required input", graph: chain(with(image, "width", nil)))
        try assertRefusal("POST /prompt bad graph: value too big", graph: chain(with(image, "width", 99_999)))
        try assertRefusal("POST /prompt bad graph: enum value not in list", graph: [
            "1": image, "9": ["class_type": "ImageScale", "inputs": ["image": ["1", 0], "upscale_method": "bogus", "width": 32, "height": 32, "crop": "disabled"]],
            "3": with(save, "images", ["9", 0])])
        try assertRefusal("POST /prompt bad graph: link type mismatch", graph: [
            "5": ["class_type": "EmptyLatentImage", "inputs": ["width": 64, "height": 64, "batch_size": 1]], "3": with(save, "images", ["5", 0])])
        try assertRefusal("POST /prompt bad graph: node without class_type", graph: ["1": ["inputs": [String: Any]()], "2": invert, "3": save])
        try assertRefusal("POST /prompt bad graph: LoadImage missing file", graph: chain(["class_type": "LoadImage", "inputs": ["image": "nope.png"]]))
        // A fresh server has no checkpoints: the choice list is empty.
        try assertRefusal("POST /prompt bad graph: file not in list", graph: [
            "4": ["class_type": "CheckpointLoaderSimple", "inputs": ["ckpt_name": "nope.safetensors"]],
            "5": ["class_type": "EmptyLatentImage", "inputs": ["width": 64, "height": 64, "batch_size": 1]],
            "6": ["class_type": "CLIPTextEncode", "inputs": ["text": "a fox", "clip": ["4", 1]]],
            "7": ["class_type": "CLIPTextEncode", "inputs": ["text": "", "clip": ["4", 1]]],
            "3": ["class_type": "KSampler", "inputs": ["model": ["4", 0], "seed": 1, "steps": 1, "cfg": 7, "sampler_name": "euler", "scheduler": "normal",
                                                       "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0], "denoise": 1]],
            "8": ["class_type": "VAEDecode", "inputs": ["samples": ["3", 0], "vae": ["4", 2]]],
            "9": ["class_type": "SaveImage", "inputs": ["images": ["8", 0], "filename_prefix": "cmp"]]])
        // A link to a node that is not in the graph: the real server raises KeyError while validating.
        try assertRefusal("POST /prompt bad graph: link to missing node", graph: ["1": image, "2": invert, "3": with(save, "images", ["7", 0])])
        try assertRefusal("POST /prompt without prompt", graph: NSNull())
    }

    func testInvalidJSONIsA500InPlainText() throws {
        let expected = try recorded("POST /prompt invalid JSON")
        let answer = try call("POST", "/prompt", body: Data("{not json".utf8), headers: ["content-type": "application/json"])
        assertSameFraming(answer, expected)
        XCTAssertEqual(String(decoding: answer.body, as: UTF8.self), "500 Internal Server Error\n\nServer got itself in trouble")
    }

    func testAGoodPromptIsAcceptedAndItsHistoryKeptAsRecorded() throws {
        let answer = try call("POST", "/prompt", json: ["prompt": chain(image), "prompt_id": "a838aab9-d0fa-428f-be18-ecf793a54b54"])
        assertSameFraming(answer, try recorded("POST /prompt good graph with prompt_id"))
        let accepted = try XCTUnwrap(try JSONSerialization.jsonObject(with: answer.body) as? [String: Any])
        XCTAssertEqual(Set(accepted.keys), ["prompt_id", "number", "node_errors"])
        standIn.step(20)
        let history = try call("GET", "/history/a838aab9-d0fa-428f-be18-ecf793a54b54")
        assertSameFraming(history, try recorded("GET /history/{id} (finished)"))
        let entry = try XCTUnwrap((try JSONSerialization.jsonObject(with: history.body) as? [String: Any])?["a838aab9-d0fa-428f-be18-ecf793a54b54"] as? [String: Any])
        XCTAssertEqual((entry["status"] as? [String: Any])?["status_str"] as? String, "success")
        let again = try call("POST", "/prompt", json: ["prompt": chain(image), "prompt_id": "a838aab9-d0fa-428f-be18-ecf793a54b54"])
        assertSameFraming(again, try recorded("POST /prompt again with the SAME prompt_id (already in history)"))
    }

    func testReadsOfAnIdleFreshServerAnswerAsRecorded() throws {
        let same: [(String, String, String)] = [
            ("GET /history/unknown", "GET", "/history/unknown"), ("GET /queue (idle)", "GET", "/queue"), ("GET /api/queue", "GET", "/api/queue"),
            ("GET /prompt", "GET", "/prompt"), ("GET /embeddings", "GET", "/embeddings"), ("GET /models/checkpoints", "GET", "/models/checkpoints"),
            ("GET /object_info/NoSuchNode", "GET", "/object_info/NoSuchNode"),
        ]
        for (label, method, path) in same {
            let expected = try recorded(label)
            let answer = try call(method, path)
            assertSameFraming(answer, expected)
            XCTAssertEqual(canonical(answer.body), canonical(Data(expected.body.utf8)), label)
        }
        let stats = try call("GET", "/system_stats")
        assertSameFraming(stats, try recorded("GET /system_stats"))
        let system = try XCTUnwrap((try JSONSerialization.jsonObject(with: stats.body) as? [String: Any])?["system"] as? [String: Any])
        XCTAssertEqual(system["comfyui_version"] as? String, "0.3.64")
    }

    func testAFreshServerHasNoModelFilesUnlessAsked() async throws {
        let info = try XCTUnwrap(try JSONSerialization.jsonObject(with: try call("GET", "/object_info").body) as? [String: Any])
        let loader = ((info["CheckpointLoaderSimple"] as? [String: Any])?["input"] as? [String: Any])?["required"] as? [String: Any]
        XCTAssertEqual((loader?["ckpt_name"] as? [Any])?.first as? [String], [], "every loader's choice list is empty, as recorded")
        let withModels = try ComfyUIStandIn(withModels: true)
        try await withModels.start()
        defer { Task { await withModels.stop() } }
        let models = try http.perform(HostHTTPRequest(method: "GET", url: withModels.baseURL + "/models/checkpoints"))
        XCTAssertEqual(try JSONSerialization.jsonObject(with: models.body) as? [String], ["v1-5-pruned-emaonly.safetensors"])
    }

    func testViewUploadInterruptAndQueueEditsAnswerAsRecorded() throws {
        assertSameFraming(try call("GET", "/view?filename=nothing.png&type=output"), try recorded("GET /view missing"))
        assertSameFraming(try call("GET", "/view?filename=nothing.png&type=bogus"), try recorded("GET /view bad type"))
        var upload = Data("--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"cmp-up.png\"\r\nContent-Type: image/png\r\n\r\n".utf8)
        upload += TinyPNG.encode(width: 2, height: 2, rgb: (1, 2, 3)) + Data("\r\n--b--\r\n".utf8)
        let uploaded = try call("POST", "/upload/image", body: upload, headers: ["content-type": "multipart/form-data; boundary=b"])
        assertSameFraming(uploaded, try recorded("POST /upload/image"))
        XCTAssertEqual(canonical(uploaded.body), canonical(Data(try recorded("POST /upload/image").body.utf8)))
        let empty = Data("--b\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ninput\r\n--b--\r\n".utf8)
        assertSameFraming(try call("POST", "/upload/image", body: empty, headers: ["content-type": "multipart/form-data; boundary=b"]), try recorded("POST /upload/image without image"))
        assertSameFraming(try call("POST", "/interrupt", json: [String: Any]()), try recorded("POST /interrupt {}"))
        assertSameFraming(try call("POST", "/interrupt", json: ["prompt_id": "nope"]), try recorded("POST /interrupt {prompt_id}"))
        assertSameFraming(try call("POST", "/queue", json: ["delete": ["nope"]]), try recorded("POST /queue delete unknown"))
    }

    func testExecutionMovesWithTimeNotWithReads() throws {
        _ = try call("POST", "/prompt", json: ["prompt": chain(image), "prompt_id": "t-1"])
        for _ in 0..<20 { _ = try call("GET", "/history/t-1") }
        XCTAssertEqual(standIn.pendingIDs + [standIn.runningID].compactMap { $0 }, ["t-1"], "twenty reads ran nothing")
        standIn.step(20)
        XCTAssertNotNil(standIn.historyEntry("t-1"), "time did")
    }

    func testAnExecutionErrorCarriesAListOfOutputsAndAMultiLineTraceback() throws {
        standIn.configure { $0.failOnClass = "ImageInvert" }
        _ = try call("POST", "/prompt", json: ["prompt": chain(image), "prompt_id": "e-1"])
        standIn.step(20)
        let messages = try XCTUnwrap((standIn.historyEntry("e-1")?["status"] as? [String: Any])?["messages"] as? [[Any]])
        let error = try XCTUnwrap(messages.first { $0.first as? String == "execution_error" }?.last as? [String: Any])
        XCTAssertTrue(error["current_outputs"] is [Any], "a list, as ComfyUI's execution.py sends it")
        XCTAssertTrue(error["current_inputs"] is [String: Any])
        let traceback = try XCTUnwrap(error["traceback"] as? [String])
        XCTAssertTrue(traceback.allSatisfy { $0.hasPrefix("  File ") && $0.hasSuffix("\n") } && traceback.contains { $0.dropLast().contains("\n") },
                      "traceback.format_tb's multi-line entries: \(traceback)")
    }
}
