import Foundation
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost

/// The local-speech plugin through the real job engine and real espeak-ng,
/// its WAV checked with ffprobe.
final class LocalSpeechTests: TemporaryDirectoryTestCase {
    var engine: JobEngine!

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        try Media.require("espeak-ng", "ffprobe")
        let plugins = dir.appendingPathComponent("plugins")
        try copyPlugin("local-speech", to: plugins)
        engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: plugins)
        engine.policy.minPollMs = 10
        engine.policy.maxPollMs = 100
    }

    func speak(_ inputs: [String: JSONValue]) async throws -> JobRecord {
        try await engine.drive(try await engine.start(JobSpec(pluginID: "local-speech", capability: "audio.speech", inputs: inputs)).id)
    }

    func wav(_ job: JobRecord, file: StaticString = #filePath, line: UInt = #line) throws -> (JSONValue, Media.Probe) {
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "", file: file, line: line)
        let outputs = try JSONValue(parsing: Data(try XCTUnwrap(job.outputsJSON, file: file, line: line).utf8))
        XCTAssertEqual(try XCTUnwrap(engine.catalog.entries["audio.speech"]?.output).validate(outputs), [], file: file, line: line)
        let handle = try XCTUnwrap(outputs["audio"]?["artifact"]?.stringValue, file: file, line: line)
        return (outputs, try Media.probe(engine.artifacts.path(for: String(handle.dropFirst(7)))))
    }

    let line = "Welcome aboard. The next stop is Central Station, where you can change for the airport."

    func testTextBecomesAWavWhoseReportedDurationIsTheFilesDuration() async throws {
        let (outputs, probe) = try wav(try await speak(["text": .string(line), "voice": "en-gb"]))
        XCTAssertEqual(probe.format["format_name"] as? String, "wav")
        XCTAssertEqual(probe.audio?["codec_name"] as? String, "pcm_s16le")
        XCTAssertEqual(probe.audio?["sample_rate"] as? String, "22050")
        XCTAssertNil(probe.video)
        XCTAssertGreaterThan(probe.duration, 3, "a sentence of 15 words takes seconds")
        XCTAssertEqual(outputs["duration_seconds"]?.doubleValue ?? 0, probe.duration, accuracy: 0.02)
        XCTAssertEqual(outputs["sample_rate"]?.intValue, 22050)
        XCTAssertEqual(outputs["audio"]?["media_type"]?.stringValue, "audio/wav")
    }

    func testSpeedChangesTheLength() async throws {
        let (_, normal) = try wav(try await speak(["text": .string(line)]))
        let (_, fast) = try wav(try await speak(["text": .string(line), "speed": 2.0]))
        XCTAssertLessThan(fast.duration, normal.duration * 0.7, "double speed is much shorter: \(fast.duration) vs \(normal.duration)")
    }

    func testTextIsPassedAsDataNotAsArguments() async throws {
        // Text that looks like options or shell must be spoken, not interpreted.
        let (_, probe) = try wav(try await speak(["text": "-w /tmp/evil.wav; rm -rf / $(reboot) --help"]))
        XCTAssertGreaterThan(probe.duration, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/evil.wav"))
    }

    func testAnUnknownVoiceShapeOrAVoiceSampleIsRefusedAtPreflight() async throws {
        for inputs: [String: JSONValue] in [["text": "hi", "voice": "English please"],
                                             ["text": "hi", "voice_sample": ["artifact": .string("sha256:" + String(repeating: "a", count: 64))], "consent_given": true]] {
            let finding = await Media.refusal(engine, JobSpec(pluginID: "local-speech", capability: "audio.speech", inputs: inputs))
            XCTAssertEqual(finding?.code, "CONTRACT_MISMATCH")
        }
    }

    func testWithoutEspeakTheJobIsRefusedWithDependencyMissing() async throws {
        engine.processes.searchPath = dir.path
        let finding = await Media.refusal(engine, JobSpec(pluginID: "local-speech", capability: "audio.speech", inputs: ["text": "hi"]))
        XCTAssertEqual(finding?.code, "DEPENDENCY_MISSING")
        XCTAssertTrue(finding?.message.contains("apt-get install -y espeak-ng") == true, finding?.message ?? "")
    }
}
