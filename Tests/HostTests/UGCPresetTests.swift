import Foundation
import XCTest
@testable import SwitchyardHost
import SwitchyardJSON
import SwitchyardTesting

/// The main job: the UGC/product clip preset on the sample product photo, with
/// no keys, on the local engines (ffmpeg and espeak-ng); the MP4 is checked
/// with ffprobe, not by exit codes.
final class UGCPresetTests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }
    let script = "Meet Tide, the bottle that keeps water cold all day."

    func requireLocalEngines() throws {
        for id in ["local-media", "local-speech"] where !FileManager.default.fileExists(atPath: Build.plugins.appendingPathComponent("\(id)/plugin.json").path) {
            throw XCTSkip("\(id) is not staged (scripts/build.sh stages it)")
        }
        for tool in ["ffmpeg", "ffprobe", "espeak-ng"] where try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["which", tool]).status != 0 {
            throw XCTSkip("\(tool) is not installed (.ci/run and scripts/demo.sh install it)")
        }
    }

    func probe(_ file: String) throws -> [String: Any] {
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", file])
        XCTAssertEqual(result.status, 0, result.stderr)
        return try XCTUnwrap(result.json as? [String: Any])
    }

    func testTheUGCPresetMakesAVertical264ClipWithTheSpeechOnLocalEngines() throws {
        try requireLocalEngines()
        let out = dir.appendingPathComponent("out")
        let sample = Build.repository.appendingPathComponent("Registry/samples/product.png").path
        let result = try yard(["run", "ugc-product-clip", "--input", "product_image=@\(sample)", "--input", "script=\(script)",
                               "--quality", "low", "--output-dir", out.path, "--json"], home: home)
        XCTAssertEqual(result.status, 0, result.stderr + result.stdout)
        let run = try XCTUnwrap((result.json as? [String: Any])?["run"] as? [String: Any], result.stdout)
        XCTAssertEqual(run["state"] as? String, "succeeded")
        let steps = try XCTUnwrap(run["steps"] as? [[String: Any]])
        let engines = Dictionary(uniqueKeysWithValues: steps.map { ($0["name"] as? String ?? "", $0["engine"] as? String ?? "-") })
        XCTAssertEqual(engines["speech"], "local-speech")
        XCTAssertEqual(engines["motion"], "local-media")
        XCTAssertEqual(steps.first { $0["name"] as? String == "lipsync" }?["state"] as? String, "skipped", "no presenter, no lip-sync")

        let video = out.appendingPathComponent("video.mp4").path
        let info = try probe(video)
        let streams = try XCTUnwrap(info["streams"] as? [[String: Any]])
        let picture = try XCTUnwrap(streams.first { $0["codec_type"] as? String == "video" })
        XCTAssertEqual(picture["codec_name"] as? String, "h264")
        let width = try XCTUnwrap(picture["width"] as? Int), height = try XCTUnwrap(picture["height"] as? Int)
        XCTAssertEqual(width * 16, height * 9, "9:16, got \(width)x\(height)")
        XCTAssertEqual(picture["pix_fmt"] as? String, "yuv420p")
        let sound = try XCTUnwrap(streams.first { $0["codec_type"] as? String == "audio" }, "the clip has the voice-over")
        XCTAssertEqual(sound["codec_name"] as? String, "aac")

        let speechFile = try XCTUnwrap((try FileManager.default.contentsOfDirectory(atPath: out.path)).first { $0.hasPrefix("speech.") })
        let speechSeconds = try XCTUnwrap(Double((try probe(out.appendingPathComponent(speechFile).path)["format"] as? [String: Any])?["duration"] as? String ?? ""))
        let clipSeconds = try XCTUnwrap(Double((info["format"] as? [String: Any])?["duration"] as? String ?? ""))
        XCTAssertGreaterThan(speechSeconds, 1.5, "espeak-ng spoke the script")
        XCTAssertEqual(clipSeconds, speechSeconds, accuracy: 0.5, "the clip lasts as long as the speech")
    }

    /// Fresh copies per engine: a plugin library loaded once in this process
    /// keeps the host services (and secrets) of the engine that loaded it first.
    func enginePlugins() throws -> URL {
        let plugins = dir.appendingPathComponent("plugins-\(UUID().uuidString.prefix(6))")
        for id in ["fal", "local-media", "local-speech"] { try copyPlugin(id, to: plugins) }
        return plugins
    }

    func testTheSamePresetPrefersFalWhenItsKeyIsSet() async throws {
        try requireLocalEngines()
        // fal's health reads its queue with the key: point it at the stand-in, never at queue.fal.run.
        let fal = FalStandIn(key: "fal-test-key")
        try await fal.start()
        defer { Task { await fal.stop() } }
        let engine = try makeTestEngine(home: home, plugins: try enginePlugins(), secrets: ["FAL_KEY": "fal-test-key"])
        try FileManager.default.createDirectory(at: home.appendingPathComponent("config"), withIntermediateDirectories: true)
        try Data(#"{"queue_url":"\#(fal.baseURL)","rest_url":"\#(fal.baseURL)"}"#.utf8).write(to: home.appendingPathComponent("config/fal.json"))
        let planner = PipelinePlanner(engine: engine, configs: EngineConfigs(paths: engine.paths))
        let preset = try PipelineDefinition.load(Build.repository.appendingPathComponent("Registry/presets/ugc-product-clip.yaml"))
        let digest = try engine.artifacts.put(Data(contentsOf: Build.repository.appendingPathComponent("Registry/samples/product.png")), mediaType: "image/png")
        let inputs: [String: JSONValue] = ["product_image": ["artifact": .string("sha256:\(digest)"), "media_type": "image/png"], "script": .string(script)]

        let withKey = await planner.plan(preset, inputs: inputs)
        XCTAssertTrue(withKey.ready, "\(withKey.findings)")
        let chosen = Dictionary(uniqueKeysWithValues: withKey.steps.map { ($0.name, $0.engine ?? "-") })
        XCTAssertEqual(chosen["speech"], "fal", "\(withKey.steps.map { ($0.name, $0.attempts) })")
        XCTAssertEqual(chosen["motion"], "fal")
        XCTAssertEqual(chosen["grade"], "local-media")

        let keyless = try makeTestEngine(home: dir.appendingPathComponent("home2"), plugins: try enginePlugins())
        let digest2 = try keyless.artifacts.put(Data(contentsOf: Build.repository.appendingPathComponent("Registry/samples/product.png")), mediaType: "image/png")
        var inputs2 = inputs
        inputs2["product_image"] = ["artifact": .string("sha256:\(digest2)"), "media_type": "image/png"]
        let withoutKey = await PipelinePlanner(engine: keyless, configs: EngineConfigs(paths: keyless.paths)).plan(preset, inputs: inputs2)
        XCTAssertTrue(withoutKey.ready, "\(withoutKey.findings)")
        let local = Dictionary(uniqueKeysWithValues: withoutKey.steps.map { ($0.name, $0) })
        XCTAssertEqual(local["speech"]?.engine, "local-speech")
        XCTAssertEqual(local["speech"]?.attempts.first?.code, "AUTH_MISSING")
        XCTAssertEqual(local["motion"]?.engine, "local-media")
        XCTAssertTrue(withoutKey.missingSecrets.contains { $0.secret == "FAL_KEY" }, "\(withoutKey.missingSecrets)")
    }
}
