import Foundation
import XCTest
@testable import SwitchyardHost

/// Media helpers for the local engines' tests: inputs are made with ffmpeg
/// itself (lavfi testsrc/sine) at test time, and outputs are checked with
/// ffprobe, never by trusting what the plugin reports.
enum Media {
    static func which(_ name: String) -> URL? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let url = URL(fileURLWithPath: String(dir)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return nil
    }

    static func require(_ names: String...) throws {
        for name in names where which(name) == nil {
            throw XCTSkip("\(name) is not installed (apt-get install -y \(name == "ffprobe" ? "ffmpeg" : name)); .ci/run installs it.")
        }
    }

    /// Runs ffmpeg with `arguments` writing to a temporary file with `ext`; returns the bytes.
    static func make(_ ext: String, _ arguments: [String]) throws -> Data {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("yard-media-\(UUID().uuidString).\(ext)")
        defer { try? FileManager.default.removeItem(at: out) }
        let result = try runProcess(try XCTUnwrap(which("ffmpeg")), ["-v", "error", "-y"] + arguments + [out.path])
        guard result.status == 0 else { throw NSError(domain: "ffmpeg", code: Int(result.status), userInfo: [NSLocalizedDescriptionKey: result.stderr]) }
        return try Data(contentsOf: out)
    }

    /// A test-pattern clip; with sound when `tone` is given.
    static func clip(seconds: Double, size: String = "320x240", fps: Int = 25, tone: Int? = nil, colour: String? = nil) throws -> Data {
        let picture = colour.map { "color=c=\($0):s=\(size):r=\(fps):d=\(seconds)" } ?? "testsrc2=s=\(size):r=\(fps):d=\(seconds)"
        var args = ["-f", "lavfi", "-i", picture]
        if let tone { args += ["-f", "lavfi", "-i", "sine=f=\(tone):d=\(seconds):sample_rate=44100"] }
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        if tone != nil { args += ["-c:a", "aac", "-shortest"] }
        return try make("mp4", args)
    }

    static func still(size: String = "320x240") throws -> Data {
        try make("png", ["-f", "lavfi", "-i", "testsrc2=s=\(size):d=1", "-frames:v", "1"])
    }

    static func tone(seconds: Double) throws -> Data {
        try make("wav", ["-f", "lavfi", "-i", "sine=f=440:d=\(seconds):sample_rate=22050"])
    }

    /// ffprobe's view of a file: format and streams.
    struct Probe {
        let raw: [String: Any]
        var format: [String: Any] { raw["format"] as? [String: Any] ?? [:] }
        var streams: [[String: Any]] { raw["streams"] as? [[String: Any]] ?? [] }
        var duration: Double { Double(format["duration"] as? String ?? "") ?? -1 }
        var video: [String: Any]? { streams.first { $0["codec_type"] as? String == "video" } }
        var audio: [String: Any]? { streams.first { $0["codec_type"] as? String == "audio" } }
        var width: Int? { video?["width"] as? Int }
        var height: Int? { video?["height"] as? Int }
        var fps: Double? {
            let parts = (video?["avg_frame_rate"] as? String ?? "").split(separator: "/").compactMap { Double($0) }
            return parts.count == 2 && parts[1] > 0 ? parts[0] / parts[1] : nil
        }
    }

    static func probe(_ file: URL) throws -> Probe {
        let result = try runProcess(try XCTUnwrap(which("ffprobe")), ["-v", "error", "-print_format", "json", "-show_format", "-show_streams", file.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        return Probe(raw: try XCTUnwrap(result.json as? [String: Any]))
    }

    /// Average U and V of the first frame: 128 means no colour.
    static func chroma(_ file: URL) throws -> (u: Double, v: Double) {
        let result = try runProcess(try XCTUnwrap(which("ffprobe")), ["-v", "error", "-f", "lavfi", "-i", "movie=\(file.path),signalstats",
                                                                       "-read_intervals", "%+#1", "-show_entries", "frame_tags=lavfi.signalstats.UAVG,lavfi.signalstats.VAVG",
                                                                       "-print_format", "json"])
        let frames = try XCTUnwrap((result.json as? [String: Any])?["frames"] as? [[String: Any]], result.stderr)
        let tags = try XCTUnwrap(frames.first?["tags"] as? [String: String])
        return (Double(tags["lavfi.signalstats.UAVG"] ?? "") ?? -1, Double(tags["lavfi.signalstats.VAVG"] ?? "") ?? -1)
    }

    /// Process ids whose process group is `group` (from /proc/*/stat).
    static func members(ofGroup group: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // After "(comm)": state, ppid, pgrp; a zombie still awaiting its parent does not count.
            guard fields.count > 2, fields[0] != "Z", Int32(fields[2]) == group else { return nil }
            return pid
        }
    }

    /// Children of `parent` whose command name is `name`.
    static func children(of parent: Int32, named name: String) -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry -> Int32? in
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard stat[stat.index(after: open)..<close] == name, fields.count > 1, Int32(fields[1]) == parent else { return nil }
            return pid
        }
    }

    /// The first error of the pre-flight verdict that refused `spec`, or nil (a failure) when it was accepted.
    static func refusal(_ engine: JobEngine, _ spec: JobSpec, file: StaticString = #filePath, line: UInt = #line) async -> PreflightFinding? {
        do {
            _ = try await engine.start(spec)
            XCTFail("accepted \(spec.inputs)", file: file, line: line)
        } catch let refusal as JobEngine.Refusal {
            return refusal.verdict.firstError
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
        return nil
    }

    /// `yard plugin test ID --standin --json --isolation both`: every conformance check must pass in both modes, with real jobs run, on loopback only.
    static func assertConformant(_ id: String, home: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try yard(["plugin", "test", id, "--standin", "--json", "--isolation", "both"], home: home)
        let report = try XCTUnwrap(result.json as? [String: Any], result.stdout + result.stderr, file: file, line: line)
        let failed = (report["checks"] as? [[String: Any]] ?? []).filter { $0["ok"] as? Bool != true }
        XCTAssertEqual(failed.count, 0, "\(failed)", file: file, line: line)
        XCTAssertEqual(report["passed"] as? Int, 3 + 2 * ConformanceSuite.childChecks.count, "every check, in process and in a runner", file: file, line: line)
        XCTAssertEqual(result.status, 0, file: file, line: line)
    }

    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }
}
