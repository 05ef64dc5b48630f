import Foundation
import GRDB
import HTTPTypes
import NIOCore
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost
@testable import SwitchyardServer

/// Thumbnails and posters of artifacts (made with the host's ffmpeg, kept in
/// the store) and the Setup Hub's diagnostics download.
final class ServerPreviewTests: ServerTestCase {
    static func sample(_ name: String) throws -> ByteBuffer {
        ByteBuffer(bytes: try Data(contentsOf: Build.repository.appendingPathComponent("Registry/samples/\(name)")))
    }

    static func upload(_ api: APIClient, _ body: ByteBuffer, type: String, token: String) async throws -> String {
        let answer = try await api.call(.post, "/api/v1/artifacts", token: token, body: body, headers: [.contentType: type])
        XCTAssertEqual(answer.status, 201, answer.text)
        return String(try XCTUnwrap(answer.json?["artifact"]?.stringValue).dropFirst(7))
    }

    /// Width and height from a JPEG's start-of-frame segment.
    static func jpegSize(_ bytes: [UInt8]) -> (width: Int, height: Int)? {
        var i = 2
        while i + 9 < bytes.count {
            guard bytes[i] == 0xFF else { return nil }
            let marker = bytes[i + 1]
            let length = Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            if (0xC0...0xC3).contains(marker) {
                return (Int(bytes[i + 7]) << 8 | Int(bytes[i + 8]), Int(bytes[i + 5]) << 8 | Int(bytes[i + 6]))
            }
            i += 2 + length
        }
        return nil
    }

    /// A 0.1 s silent WAV: audio, which has no picture.
    static let wav: ByteBuffer = {
        let samples = 800, rate = 8000
        func le32(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24 & 0xFF)] }
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        var bytes = Array("RIFF".utf8) + le32(36 + samples * 2) + Array("WAVEfmt ".utf8) + le32(16) + le16(1) + le16(1) + le32(rate) + le32(rate * 2) + le16(2) + le16(16)
        bytes += Array("data".utf8) + le32(samples * 2) + [UInt8](repeating: 0, count: samples * 2)
        return ByteBuffer(bytes: bytes)
    }()

    func testImagesGetThumbnailsVideosPostersAndEachIsMadeOnce() async throws {
        let acme = try token("acme", .run), beta = try token("beta", .run)
        try await withServer(drive: false) { [server = server!, engine = engine!, noTools = dir.appendingPathComponent("no-tools").path, home = home] api in
            let image = try await Self.upload(api, try Self.sample("product.png"), type: "image/png", token: acme)
            let thumbnail = try await api.call(.get, "/api/v1/artifacts/\(image)/thumbnail", token: acme)
            XCTAssertEqual(thumbnail.status, 200, thumbnail.text)
            XCTAssertEqual(thumbnail.headers[.contentType], "image/jpeg")
            let bytes = Array(thumbnail.body.readableBytesView)
            XCTAssertEqual(Array(bytes.prefix(2)), [0xFF, 0xD8], "a JPEG")
            let size = try XCTUnwrap(Self.jpegSize(bytes))
            XCTAssertEqual(max(size.width, size.height), ArtifactPreviews.edge, "fits the 320 px box: \(size)")

            let video = try await Self.upload(api, try Self.sample("clip.mp4"), type: "video/mp4", token: acme)
            let poster = try await api.call(.get, "/api/v1/artifacts/sha256:\(video)/thumbnail", token: acme)
            XCTAssertEqual(poster.status, 200, poster.text)
            XCTAssertEqual(poster.headers[.contentType], "image/jpeg")
            XCTAssertNotNil(Self.jpegSize(Array(poster.body.readableBytesView)), "a poster frame")

            // Kept in the store: with ffmpeg gone, the same previews still answer, byte for byte.
            server.previews.searchPath = noTools
            let again = try await api.call(.get, "/api/v1/artifacts/\(image)/thumbnail", token: acme)
            XCTAssertEqual(again.status, 200, again.text)
            XCTAssertEqual(again.body, thumbnail.body)
            let stored = try await server.store.pool.read { db in try String.fetchOne(db, sql: "SELECT preview_sha256 FROM api_preview WHERE source_sha256 = ?", arguments: [image]) }
            XCTAssertEqual(try engine.artifacts.read(sha256: try XCTUnwrap(stored)), Data(thumbnail.body.readableBytesView))

            // Another account's artifact answers like a missing one.
            let theirs = try await api.call(.get, "/api/v1/artifacts/\(image)/thumbnail", token: beta)
            XCTAssertEqual(theirs.status, 404)
            XCTAssertEqual(theirs.errorCode, "ARTIFACT_NOT_FOUND")
        }
    }

    func testAudioDamagedFilesAndAMissingFfmpegAreClearRefusals() async throws {
        let acme = try token("acme", .run)
        try await withServer(drive: false) { [server = server!, engine = engine!, noTools = dir.appendingPathComponent("no-tools").path, home = home] api in
            let audio = try await Self.upload(api, Self.wav, type: "audio/wav", token: acme)
            let refused = try await api.call(.get, "/api/v1/artifacts/\(audio)/thumbnail", token: acme)
            XCTAssertEqual(refused.status, 422, refused.text)
            XCTAssertEqual(refused.errorCode, "THUMBNAIL_UNSUPPORTED")
            XCTAssertTrue(refused.json?["error"]?["message"]?.stringValue?.contains("audio") == true, refused.text)

            // Bytes that claim to be a PNG: ffmpeg's refusal, without the host's paths in it.
            let damaged = try await Self.upload(api, ByteBuffer(string: "#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:9/x.ts\n"), type: "image/png", token: acme)
            let unreadable = try await api.call(.get, "/api/v1/artifacts/\(damaged)/thumbnail", token: acme)
            XCTAssertEqual(unreadable.status, 422, unreadable.text)
            XCTAssertEqual(unreadable.errorCode, "MEDIA_UNREADABLE")
            XCTAssertFalse(unreadable.text.contains(home.path), unreadable.text)

            server.previews.searchPath = noTools
            let image = try await Self.upload(api, try Self.sample("portrait.png"), type: "image/png", token: acme)
            let missing = try await api.call(.get, "/api/v1/artifacts/\(image)/thumbnail", token: acme)
            XCTAssertEqual(missing.status, 503, missing.text)
            XCTAssertEqual(missing.errorCode, "DEPENDENCY_MISSING")
            XCTAssertTrue(missing.json?["error"]?["remediation"]?.stringValue?.contains("apt-get install -y ffmpeg") == true, missing.text)
        }
    }

    func testTheDiagnosticsDownloadNeverHoldsASecret() async throws {
        let admin = try token("acme", .admin), run = try token("acme", .run)
        let secret = "echo-diagnostics-\(UUID().uuidString)"
        let configKey = "cfg-key-\(UUID().uuidString)"
        let config = home.appendingPathComponent("config/echo.json")
        try FileManager.default.createDirectory(at: config.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(#"{"api_key":"\#(configKey)","base_url":"http://127.0.0.1:9"}"#.utf8).write(to: config)
        try await withServer(drive: false) { api in
            let connected = try await api.call(.post, "/api/v1/engines/echo/connect", token: admin, json: ["secrets": ["ECHO_TOKEN": .string(secret)]])
            XCTAssertEqual(connected.status, 200, connected.text)
            let refused = try await api.call(.get, "/api/v1/diagnostics", token: run)
            XCTAssertEqual(refused.status, 403)
            let bundle = try await api.call(.get, "/api/v1/diagnostics", token: admin)
            XCTAssertEqual(bundle.status, 200, bundle.text)
            XCTAssertTrue(bundle.headers[.contentDisposition]?.hasPrefix("attachment; filename=\"yard-diagnostics-") == true, "\(bundle.headers)")
            XCTAssertFalse(bundle.text.contains(secret), "the vault's value")
            XCTAssertFalse(bundle.text.contains(configKey), "a config value under a secret-looking key")
            XCTAssertFalse(bundle.text.contains(admin) || bundle.text.contains(String(admin.dropFirst(5))), "the API token")
            let json = try XCTUnwrap(bundle.json)
            let echoSecret = json["secrets"]?.arrayValue?.first { $0["name"]?.stringValue == "ECHO_TOKEN" }
            XCTAssertEqual(echoSecret?["state"]?.stringValue, "set (vault)", bundle.text)
            XCTAssertEqual(json["configs"]?["echo"]?["api_key"]?.stringValue, "[REDACTED]")
            XCTAssertEqual(json["configs"]?["echo"]?["base_url"]?.stringValue, "http://127.0.0.1:9")
        }
    }
}
