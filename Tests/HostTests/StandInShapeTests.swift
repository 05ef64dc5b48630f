import Foundation
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// The fal and RunPod stand-ins answer in the shapes the providers document,
/// checked here over HTTP without any adapter: each fal app its own output
/// model (fal's OpenAPI schemas: FLUX `images[]`, Clarity and ESRGAN `image`,
/// Kling/SadTalker `video`, PlayAI `audio` with a duration) and input
/// validation (422 `detail` with `loc`), RunPod workers as the public worker
/// images answer (worker-comfyui 5.x, worker-sdxl, URL workers).
final class StandInShapeTests: XCTestCase {
    let http = BlockingHTTPTransport(defaultTimeoutMs: 5_000)

    func json(_ method: String, _ url: String, _ body: Any? = nil, headers: [String: String] = [:]) throws -> (Int, [String: Any]) {
        let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
        let answer = try http.perform(HostHTTPRequest(method: method, url: url, headers: headers.merging(["content-type": "application/json"]) { a, _ in a }, body: data))
        return (answer.status, (try? JSONSerialization.jsonObject(with: answer.body) as? [String: Any]) ?? [:])
    }

    /// Submits to a fal app and reads its result once it completes.
    func falResult(_ standIn: FalStandIn, app: String, _ input: [String: Any]) throws -> (Int, [String: Any]) {
        let auth = ["authorization": "Key \(standIn.key)"]
        let (status, submitted) = try json("POST", "\(standIn.baseURL)/\(app)", input, headers: auth)
        guard status == 200, let statusURL = submitted["status_url"] as? String, let responseURL = submitted["response_url"] as? String else { return (status, submitted) }
        // The stand-in's jobs move with time, not with reads: let a minute pass between looks.
        for _ in 0..<5 {
            if try json("GET", statusURL, headers: auth).1["status"] as? String == "COMPLETED" { break }
            standIn.clock.advance(ms: 60_000)
        }
        return try json("GET", responseURL, headers: auth)
    }

    func testEachFalAppAnswersInItsOwnOutputShape() async throws {
        let fal = FalStandIn()
        try await fal.start()
        defer { Task { await fal.stop() } }

        let (_, flux) = try falResult(fal, app: "fal-ai/flux/dev", ["prompt": "a fox", "num_images": 2, "image_size": "portrait_4_3"])
        let images = try XCTUnwrap(flux["images"] as? [[String: Any]])
        XCTAssertEqual(images.count, 2)
        XCTAssertEqual(Set(images[0].keys), ["url", "width", "height", "content_type"])
        XCTAssertEqual(images[0]["width"] as? Int, 768)
        XCTAssertEqual(images[0]["height"] as? Int, 1024)
        for key in ["seed", "has_nsfw_concepts", "prompt", "timings"] { XCTAssertNotNil(flux[key], key) }

        let (_, clarity) = try falResult(fal, app: "fal-ai/clarity-upscaler", ["image_url": "https://example.com/a.png", "upscale_factor": 2])
        XCTAssertNotNil((clarity["image"] as? [String: Any])?["width"], "Clarity's Image has a size")
        XCTAssertNotNil(clarity["seed"])
        let (_, esrgan) = try falResult(fal, app: "fal-ai/esrgan", ["image_url": "https://example.com/a.png"])
        XCTAssertNil((esrgan["image"] as? [String: Any])?["width"], "ESRGAN's answer reports no size")
        XCTAssertEqual(Array(esrgan.keys), ["image"])

        let (_, kling) = try falResult(fal, app: "fal-ai/kling-video/v1.6/standard/image-to-video", ["prompt": "x", "image_url": "https://example.com/a.png", "duration": "10"])
        let video = try XCTUnwrap(kling["video"] as? [String: Any])
        XCTAssertEqual(video["content_type"] as? String, "video/mp4")
        let clip = try http.perform(HostHTTPRequest(method: "GET", url: try XCTUnwrap(video["url"] as? String), headers: [:]))
        XCTAssertEqual(clip.body, StandInMedia.clip(seconds: 10), "a real MP4 of the length asked for")

        let (_, speech) = try falResult(fal, app: "fal-ai/playai/tts/v3", ["input": "Hello.", "voice": "Jennifer (English (US)/American)"])
        let audio = try XCTUnwrap(speech["audio"] as? [String: Any])
        XCTAssertEqual(audio["content_type"] as? String, "audio/mpeg")
        XCTAssertEqual(audio["duration"] as? Double, StandInMedia.speechMP3Seconds)
    }

    func testFalAppsRefuseInputsTheirInputModelsRefuse() async throws {
        let fal = FalStandIn()
        try await fal.start()
        defer { Task { await fal.stop() } }
        let auth = ["authorization": "Key \(fal.key)"]
        let (missing, detail) = try json("POST", "\(fal.baseURL)/fal-ai/playai/tts/v3", ["text": "Hello."], headers: auth)
        XCTAssertEqual(missing, 422)
        let locations = (detail["detail"] as? [[String: Any]] ?? []).compactMap { ($0["loc"] as? [String])?.last }
        XCTAssertEqual(Set(locations), ["input", "voice"])
        let (duration, wrong) = try json("POST", "\(fal.baseURL)/fal-ai/kling-video/v1.6/standard/image-to-video",
                                         ["prompt": "x", "image_url": "https://example.com/a.png", "duration": 7], headers: auth)
        XCTAssertEqual(duration, 422)
        XCTAssertEqual(((wrong["detail"] as? [[String: Any]])?.first?["loc"] as? [String])?.last, "duration")
        let (size, _) = try json("POST", "\(fal.baseURL)/fal-ai/flux/dev", ["prompt": "x", "image_size": "21:9"], headers: auth)
        XCTAssertEqual(size, 422, "image_size takes fal's own names")
        XCTAssertEqual(fal.submissions, 0)
    }

    func testRunPodWorkersAnswerAsThePublicWorkerImagesDo() async throws {
        let runpod = RunPodStandIn()
        runpod.worker = .comfyUI
        runpod.addEndpoint("sdxl", worker: .sdxl)
        try await runpod.start()
        defer { Task { await runpod.stop() } }
        let auth = ["authorization": "Bearer \(runpod.apiKey)"]
        func finished(_ endpoint: String, _ input: [String: Any]) throws -> [String: Any] {
            let (_, run) = try json("POST", "\(runpod.baseURL)/\(endpoint)/run", ["input": input], headers: auth)
            let id = try XCTUnwrap(run["id"] as? String)
            var answer: [String: Any] = [:]
            for _ in 0..<5 {
                answer = try json("GET", "\(runpod.baseURL)/\(endpoint)/status/\(id)", headers: auth).1
                if ["COMPLETED", "FAILED"].contains(answer["status"] as? String ?? "") { break }
                runpod.clock.advance(ms: 60_000)
            }
            return answer
        }
        let noWorkflow = try finished(runpod.endpointID, ["prompt": "a fox"])
        XCTAssertEqual(noWorkflow["status"] as? String, "FAILED", "worker-comfyui needs input.workflow")
        XCTAssertEqual(noWorkflow["error"] as? String, "Missing 'workflow' parameter")

        let workflow: [String: Any] = ["3": ["class_type": "EmptyLatentImage", "inputs": ["width": 32, "height": 48, "batch_size": 1]]]
        let comfy = try finished(runpod.endpointID, ["workflow": workflow])
        let image = try XCTUnwrap((comfy["output"] as? [String: Any])?["images"] as? [[String: Any]]).first
        XCTAssertEqual(image?["filename"] as? String, "ComfyUI_00001_.png")
        XCTAssertEqual(image?["type"] as? String, "base64")
        XCTAssertEqual(TinyPNG.size(Data(base64Encoded: image?["data"] as? String ?? "") ?? Data()).map { [$0.0, $0.1] }, [32, 48])

        let sdxl = try finished("sdxl", ["prompt": "a fox", "width": 64, "height": 64])
        let output = try XCTUnwrap(sdxl["output"] as? [String: Any])
        XCTAssertTrue((output["images"] as? [String])?.first?.hasPrefix("data:image/png;base64,") == true)
        XCTAssertEqual(output["image_url"] as? String, (output["images"] as? [String])?.first)
        XCTAssertNotNil(sdxl["executionTime"])
    }
}
