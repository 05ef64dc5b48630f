import Foundation
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost

/// The local-media plugin through the real job engine and real ffmpeg: every
/// output is checked with ffprobe (duration, size, codecs, streams, pixel
/// format), plus progress, cancel, a missing ffmpeg, pre-flight refusals and a
/// host restart in the middle of a job.
final class LocalMediaTests: TemporaryDirectoryTestCase {
    var engine: JobEngine!

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        try Media.require("ffmpeg", "ffprobe")
        engine = try makeEngine()
    }

    func makeEngine() throws -> JobEngine {
        let plugins = dir.appendingPathComponent("plugins")
        if !FileManager.default.fileExists(atPath: plugins.path) { try copyPlugin("local-media", to: plugins) }
        let engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: plugins)
        engine.policy.minPollMs = 20
        engine.policy.maxPollMs = 200
        return engine
    }

    /// Puts bytes in the engine's store; returns the input document.
    func store(_ data: Data, _ mediaType: String) throws -> JSONValue {
        .object(["artifact": .string("sha256:" + (try engine.artifacts.put(data, mediaType: mediaType))), "media_type": .string(mediaType)])
    }

    func spec(_ capability: String, _ inputs: [String: JSONValue]) -> JobSpec {
        JobSpec(pluginID: "local-media", capability: capability, inputs: inputs)
    }

    func run(_ capability: String, _ inputs: [String: JSONValue], onUpdate: @escaping @Sendable (JobUpdate) -> Void = { _ in }) async throws -> JobRecord {
        try await engine.drive(try await engine.start(spec(capability, inputs)).id, onUpdate: onUpdate)
    }

    /// The job's outputs, checked against the catalog's output schema, and the file behind `name`.
    func result(_ job: JobRecord, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> ([String: JSONValue], URL) {
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "", file: file, line: line)
        let outputs = try JSONValue(parsing: Data(try XCTUnwrap(job.outputsJSON, file: file, line: line).utf8))
        let schema = try XCTUnwrap(engine.catalog.entries[job.capability]?.output, file: file, line: line)
        XCTAssertEqual(schema.validate(outputs), [], "outputs fit the catalog", file: file, line: line)
        let handle = try XCTUnwrap(outputs[name]?["artifact"]?.stringValue, file: file, line: line)
        let path = engine.artifacts.path(for: String(handle.dropFirst(7)))
        XCTAssertTrue(FileManager.default.fileExists(atPath: path.path), file: file, line: line)
        return (try XCTUnwrap(outputs.objectValue, file: file, line: line), path)
    }

    func assertDeliverable(_ probe: Media.Probe, audio: Bool, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(probe.video?["codec_name"] as? String, "h264", file: file, line: line)
        XCTAssertEqual(probe.video?["pix_fmt"] as? String, "yuv420p", file: file, line: line)
        XCTAssertEqual(probe.audio?["codec_name"] as? String, audio ? "aac" : nil, file: file, line: line)
    }

    func refusal(_ spec: JobSpec, file: StaticString = #filePath, line: UInt = #line) async -> PreflightFinding? {
        await Media.refusal(engine, spec, file: file, line: line)
    }

    // MARK: capabilities

    func testAStillBecomesAPanAndZoomClipOfTheAskedLengthKeepingItsAspect() async throws {
        let image = try store(try Media.still(size: "320x240"), "image/png")
        let job = try await run("video.from_image", ["image": image, "motion": "pan_right", "duration_seconds": 2, "fps": 25, "resolution": "480p"])
        let (outputs, file) = try result(job, "video")
        let probe = try Media.probe(file)
        XCTAssertEqual(probe.width, 640, "short side 480, 4:3 kept")
        XCTAssertEqual(probe.height, 480)
        XCTAssertEqual(probe.duration, 2, accuracy: 0.1)
        XCTAssertEqual(probe.fps ?? 0, 25, accuracy: 0.01)
        XCTAssertEqual(Int(probe.video?["nb_frames"] as? String ?? ""), 50)
        assertDeliverable(probe, audio: false)
        XCTAssertEqual(outputs["duration_seconds"]?.doubleValue ?? 0, probe.duration, accuracy: 0.01, "the reported duration is ffprobe's")
        XCTAssertEqual(outputs["width"]?.intValue, 640)
        let bytes = try Data(contentsOf: file)
        XCTAssertEqual(outputs["video"]?["size"]?.intValue, bytes.count)
        XCTAssertLessThan(bytes.range(of: Data("moov".utf8))?.lowerBound ?? .max, bytes.range(of: Data("mdat".utf8))?.lowerBound ?? 0, "faststart")
    }

    func testAGradeWithANamedLookToneCurveAndGrainKeepsLengthAndSound() async throws {
        let source = try Media.clip(seconds: 2, tone: 440, colour: "0xC03020")
        let video = try store(source, "video/mp4")
        let job = try await run("video.grade", ["video": video, "style": "noir", "tone_map": "hable", "grain": 0.4, "contrast": 1.1, "quality": "low"])
        let (_, file) = try result(job, "video")
        let probe = try Media.probe(file)
        XCTAssertEqual(probe.duration, 2, accuracy: 0.1)
        XCTAssertEqual(probe.width, 320)
        assertDeliverable(probe, audio: true)
        let before = try Media.chroma(engine.artifacts.path(for: String(video["artifact"]!.stringValue!.dropFirst(7))))
        let after = try Media.chroma(file)
        XCTAssertGreaterThan(abs(before.u - 128) + abs(before.v - 128), 5, "the source is brick red")
        XCTAssertEqual(after.u, 128, accuracy: 1.5, "noir is black and white")
        XCTAssertEqual(after.v, 128, accuracy: 1.5)
    }

    func testAGradeBlendsALUTByItsStrength() async throws {
        // A 2-point .cube LUT that inverts colours; at strength 0.5 every pixel goes grey.
        let cube = "LUT_3D_SIZE 2\n" + (0..<8).map { i in "\(1 - i & 1) \(1 - (i >> 1) & 1) \(1 - (i >> 2) & 1)" }.joined(separator: "\n") + "\n"
        let video = try store(try Media.clip(seconds: 1, colour: "0xC03020"), "video/mp4")
        let lut = try store(Data(cube.utf8), "text/plain")
        let source = try Media.chroma(engine.artifacts.path(for: String(video["artifact"]!.stringValue!.dropFirst(7))))
        XCTAssertGreaterThan(source.v, 160, "red has a high V")
        let (_, inverted) = try result(try await run("video.grade", ["video": video, "lut": lut]), "video")
        XCTAssertLessThan(try Media.chroma(inverted).v, 100, "the full LUT turns red to cyan")
        let (_, half) = try result(try await run("video.grade", ["video": video, "lut": lut, "lut_strength": 0.5]), "video")
        let chroma = try Media.chroma(half)
        XCTAssertEqual(chroma.u, 128, accuracy: 4, "half the inverse plus half the source has no colour")
        XCTAssertEqual(chroma.v, 128, accuracy: 4)
    }

    func testImagesAreUpscaledWithLanczosAndDenoisedAtTheirSize() async throws {
        let image = try store(try Media.still(size: "160x120"), "image/png")
        let (up, upFile) = try result(try await run("image.upscale", ["image": image, "scale": 2.5, "model": "lanczos", "output_format": "jpeg"]), "image")
        let upProbe = try Media.probe(upFile)
        XCTAssertEqual(upProbe.width, 400)
        XCTAssertEqual(upProbe.height, 300)
        XCTAssertEqual(upProbe.video?["codec_name"] as? String, "mjpeg")
        XCTAssertEqual(up["image"]?["media_type"]?.stringValue, "image/jpeg")
        let (_, cleanFile) = try result(try await run("image.denoise", ["image": image, "strength": 0.8]), "image")
        let clean = try Media.probe(cleanFile)
        XCTAssertEqual(clean.width, 160)
        XCTAssertEqual(clean.video?["codec_name"] as? String, "png")
    }

    func testAStoryboardTilesPanelsInAGridOfTheExpectedSize() async throws {
        var images: [JSONValue] = []
        for size in ["320x240", "240x320", "200x200", "640x360", "100x50"] { images.append(try store(try Media.still(size: size), "image/png")) }
        let (outputs, file) = try result(try await run("image.storyboard", ["images": .array(images), "columns": 3, "cell_width": 160, "gap": 8,
                                                                           "background": "#202020"]), "image")
        let probe = try Media.probe(file)
        XCTAssertEqual(probe.width, 3 * 160 + 4 * 8, "three 160-pixel cells and four gaps")
        XCTAssertEqual(probe.height, 2 * 90 + 3 * 8, "two 16:9 rows")
        XCTAssertEqual(outputs["columns"]?.intValue, 3)
        XCTAssertEqual(outputs["rows"]?.intValue, 2)
        XCTAssertEqual(outputs["width"]?.intValue, probe.width)
    }

    func testAVideoIsUpscaledToANewRateAndDeflickered() async throws {
        let clip = try store(try Media.clip(seconds: 1, size: "160x120", fps: 15, tone: 220), "video/mp4")
        let (outputs, file) = try result(try await run("video.upscale", ["video": clip, "scale": 2, "target_fps": 30, "model": "lanczos"]), "video")
        let probe = try Media.probe(file)
        XCTAssertEqual(probe.width, 320)
        XCTAssertEqual(probe.height, 240)
        XCTAssertEqual(probe.fps ?? 0, 30, accuracy: 0.01)
        XCTAssertEqual(outputs["fps"]?.doubleValue ?? 0, 30, accuracy: 0.01)
        assertDeliverable(probe, audio: true)
        let (_, steady) = try result(try await run("video.deflicker", ["video": clip, "window_frames": 7, "mode": "median"]), "video")
        let steadyProbe = try Media.probe(steady)
        XCTAssertEqual(steadyProbe.duration, 1, accuracy: 0.1)
        XCTAssertEqual(steadyProbe.width, 160)
    }

    func testClipsJoinWithACrossfadeToTheFirstClipsFormatWithSound() async throws {
        let a = try store(try Media.clip(seconds: 2, size: "320x240", fps: 25, tone: 440), "video/mp4")
        let b = try store(try Media.clip(seconds: 2, size: "640x360", fps: 30), "video/mp4")
        let (_, file) = try result(try await run("video.concat", ["clips": [a, b], "transition": "crossfade", "transition_seconds": 0.5]), "video")
        let probe = try Media.probe(file)
        XCTAssertEqual(probe.duration, 3.5, accuracy: 0.15, "2 + 2 - 0.5")
        XCTAssertEqual(probe.width, 320)
        XCTAssertEqual(probe.height, 240)
        XCTAssertEqual(probe.fps ?? 0, 25, accuracy: 0.01)
        assertDeliverable(probe, audio: true)
        let (_, cut) = try result(try await run("video.concat", ["clips": [b, b, b]]), "video")
        let cutProbe = try Media.probe(cut)
        XCTAssertEqual(cutProbe.duration, 6, accuracy: 0.15)
        assertDeliverable(cutProbe, audio: false)
    }

    func testAudioIsMuxedAndTheVideoHeldToTheAudiosLength() async throws {
        let video = try store(try Media.clip(seconds: 2), "video/mp4")
        let audio = try store(try Media.tone(seconds: 3), "audio/wav")
        let (outputs, file) = try result(try await run("video.mux_audio", ["video": video, "audio": audio, "length": "audio"]), "video")
        let probe = try Media.probe(file)
        XCTAssertEqual(probe.duration, 3, accuracy: 0.15)
        XCTAssertEqual(probe.streams.count, 2)
        assertDeliverable(probe, audio: true)
        XCTAssertEqual(outputs["audio_codec"]?.stringValue, "aac")
        XCTAssertEqual(outputs["pixel_format"]?.stringValue, "yuv420p")
        let (_, short) = try result(try await run("video.mux_audio", ["video": video, "audio": audio]), "video")
        XCTAssertEqual(try Media.probe(short).duration, 2, accuracy: 0.15, "length defaults to the video's")
        let longVideo = try store(try Media.clip(seconds: 3), "video/mp4")
        let (_, cut) = try result(try await run("video.mux_audio", ["video": longVideo, "audio": try store(try Media.tone(seconds: 1.5), "audio/wav"),
                                                                    "length": "shortest"]), "video")
        XCTAssertEqual(try Media.probe(cut).duration, 1.5, accuracy: 0.1, "the picture is cut to the shorter sound")
    }

    func testExportProfilesHaveThePlatformsSizeAndCodecs() async throws {
        let landscape = try store(try Media.clip(seconds: 1, size: "320x180", fps: 30), "video/mp4")
        let (outputs, file) = try result(try await run("video.export", ["video": landscape, "profile": "vertical_9x16", "fit": "blur", "quality": "low"]), "video")
        let probe = try Media.probe(file)
        XCTAssertEqual(probe.width, 1080)
        XCTAssertEqual(probe.height, 1920)
        XCTAssertEqual(probe.duration, 1, accuracy: 0.1)
        assertDeliverable(probe, audio: true)
        XCTAssertEqual(probe.audio?["sample_rate"] as? String, "48000")
        XCTAssertEqual(probe.audio?["channels"] as? Int, 2, "silence is added so every export carries AAC")
        XCTAssertEqual(probe.video?["profile"] as? String, "High")
        XCTAssertEqual(outputs["video_codec"]?.stringValue, "h264")
        let bytes = try Data(contentsOf: file)
        XCTAssertLessThan(bytes.range(of: Data("moov".utf8))?.lowerBound ?? .max, bytes.range(of: Data("mdat".utf8))?.lowerBound ?? 0, "faststart")
        let (_, square) = try result(try await run("video.export", ["video": landscape, "profile": "square_1x1", "fit": "pad", "fps": 24, "quality": "low"]), "video")
        let squareProbe = try Media.probe(square)
        XCTAssertEqual(squareProbe.width, 1080)
        XCTAssertEqual(squareProbe.height, 1080)
        XCTAssertEqual(squareProbe.fps ?? 0, 24, accuracy: 0.01)
    }

    // MARK: the job model

    func testProgressIsReportedWhileFFmpegRuns() async throws {
        let image = try store(try Media.still(size: "640x480"), "image/png")
        let seen = ProgressLog()
        let job = try await run("video.from_image", ["image": image, "duration_seconds": 5, "fps": 30, "resolution": "720p"]) { update in
            if update.job.phase == .running, let progress = update.job.progress { seen.add(progress) }
        }
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertTrue(seen.values.contains { $0 > 0 && $0 < 1 }, "progress from ffmpeg's out_time: \(seen.values)")
    }

    func testCancelKillsFFmpeg() async throws {
        let image = try store(try Media.still(size: "640x480"), "image/png")
        let started = try await engine.start(spec("video.from_image", ["image": image, "duration_seconds": 60, "fps": 30, "resolution": "1080p"]))
        var pids: [Int32] = []
        for _ in 0..<100 where pids.isEmpty {
            pids = engine.processes.runningPIDs()
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let pid = try XCTUnwrap(pids.first, "ffmpeg is running")
        XCTAssertTrue(Media.isAlive(pid))
        let cancelled = try await engine.cancel(started.id)
        XCTAssertEqual(cancelled.phase, .cancelled)
        XCTAssertTrue(cancelled.cancelOutcomeJSON?.contains("cancelled_running") == true, cancelled.cancelOutcomeJSON ?? "")
        XCTAssertFalse(Media.isAlive(pid), "the ffmpeg process is gone")
        XCTAssertEqual(Media.members(ofGroup: pid), [])
        XCTAssertEqual(engine.processes.runningPIDs(), [])
    }

    func testWithoutFFmpegOnPathTheJobIsRefusedWithDependencyMissing() async throws {
        engine.processes.searchPath = dir.appendingPathComponent("no-ffmpeg-here").path
        let image = try store(try Media.still(), "image/png")
        let finding = await refusal(spec("video.from_image", ["image": image]))
        XCTAssertEqual(finding?.code, "DEPENDENCY_MISSING")
        XCTAssertEqual(finding?.step, "health")
        XCTAssertTrue(finding?.message.contains("apt-get install -y ffmpeg") == true, finding?.message ?? "")
        XCTAssertEqual(try engine.store.unfinishedJobs().count, 0, "nothing was recorded or started")
    }

    func testBadInputsAreRefusedAtPreflight() async throws {
        let image = try store(try Media.still(), "image/png")
        let url = await refusal(spec("video.grade", ["video": ["url": "https://example.com/a.mp4"], "contrast": 1.1]))
        XCTAssertEqual(url?.code, "CONTRACT_MISMATCH")
        XCTAssertTrue(url?.field?.hasPrefix("$.inputs.video") == true, url?.field ?? "")
        let wrongType = await refusal(spec("video.grade", ["video": image, "contrast": 1.1]))
        XCTAssertEqual(wrongType?.code, "CONTRACT_MISMATCH", "an image/png is not a video")
        let profile = await refusal(spec("video.export", ["video": image, "profile": "4k"]))
        XCTAssertEqual(profile?.field, "$.inputs.profile")
        let nothing = await refusal(spec("video.grade", ["video": image]))
        XCTAssertEqual(nothing?.code, "CONTRACT_MISMATCH", "a grade must change something")
        XCTAssertEqual(engine.processes.runningPIDs(), [])
    }

    func testAnInputThatIsNotMediaFailsTheJobClearlyWithoutCharge() async throws {
        let junk = try store(Data("this is not a video".utf8), "video/mp4")
        let job = try await run("video.deflicker", ["video": junk])
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "CONTRACT_MISMATCH")
        XCTAssertTrue(job.errorJSON?.contains("\"charged\":\"no\"") == true, job.errorJSON ?? "")
    }

    /// The host forgets its children when it dies; the job's ref holds the
    /// whole command, so the next host (`yard jobs resume`) runs it again and
    /// the job still succeeds. A real host process, killed with SIGKILL.
    func testAJobRunningWhenTheHostIsKilledIsRunAgainOnResumeAndSucceeds() throws {
        let home = dir.appendingPathComponent("cli-home")
        let image = dir.appendingPathComponent("still.png")
        try Media.still(size: "640x480").write(to: image)
        let host = Process()
        host.executableURL = Build.yard
        host.arguments = ["run", "video.from_image", "--engine", "local-media", "--input", "image=@\(image.path)",
                          "--input", "duration_seconds=4", "--input", "resolution=\"720p\"", "--json"]
        var env = ProcessInfo.processInfo.environment
        env["YARD_HOME"] = home.path
        env["YARD_PLUGIN_PATH"] = ""
        host.environment = env
        host.standardOutput = FileHandle.nullDevice
        host.standardError = FileHandle.nullDevice
        try host.run()
        var ffmpeg: Int32?
        let deadline = Date().addingTimeInterval(30)
        while ffmpeg == nil && Date() < deadline && host.isRunning {
            ffmpeg = Media.children(of: host.processIdentifier, named: "ffmpeg").first
            usleep(20_000)
        }
        XCTAssertNotNil(ffmpeg, "the host started ffmpeg")
        kill(host.processIdentifier, SIGKILL)
        host.waitUntilExit()

        let resumed = try yard(["jobs", "resume", "--json"], home: home)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let job = try XCTUnwrap((resumed.json as? [[String: Any]])?.first, resumed.stdout)
        XCTAssertEqual(job["state"] as? String, "succeeded", "\(job)")
        let video = try XCTUnwrap((job["outputs"] as? [String: Any])?["video"] as? [String: Any])
        let artifact = try XCTUnwrap(video["artifact"] as? String)
        let probe = try Media.probe(ArtifactDirectory(root: home.appendingPathComponent("artifacts")).path(for: String(artifact.dropFirst(7))))
        XCTAssertEqual(probe.duration, 4, accuracy: 0.1)
        XCTAssertEqual(probe.height, 720)
        if let ffmpeg { XCTAssertFalse(Media.isAlive(ffmpeg), "the dead host's ffmpeg does not linger") }
        let logs = try yard(["jobs", "logs", try XCTUnwrap(job["id"] as? String)], home: home)
        XCTAssertTrue(logs.stdout.contains("started it again"), logs.stdout)
    }
}

final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Double] = []
    func add(_ value: Double) { lock.withLock { items.append(value) } }
    var values: [Double] { lock.withLock { items } }
}
