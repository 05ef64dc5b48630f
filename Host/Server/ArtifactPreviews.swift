import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardHost
import SwitchyardJSON

/// Thumbnails of images and posters of videos (GET /api/v1/artifacts/{sha256}/thumbnail):
/// a JPEG at most `edge` pixels on its longer side, made once with the
/// host's ffmpeg and kept in the artifact store; `api_preview` maps an
/// artifact to its preview, so the next request reads the stored file.
///
/// The artifact is hostile input (an upload says what it is): ffmpeg reads it
/// with the one demuxer its media type names and only the `file` protocol, so
/// a "video" that is really a playlist cannot make the host fetch anything.
public final class ArtifactPreviews: @unchecked Sendable {
    /// The longer side of a preview, in pixels.
    public static let edge = 320
    /// ffmpeg gets this long per preview before it is stopped.
    public var timeoutSeconds: Double = 20
    /// Where ffmpeg is looked up (the server's PATH unless changed).
    public var searchPath: String = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"

    let engine: JobEngine
    let pool: DatabasePool
    /// ffmpeg runs at most this many at once: a gallery asks for every preview together.
    let slots = PreviewSlots(count: 2)

    /// The demuxer ffmpeg must use for each media type it previews.
    static let demuxers: [String: String] = [
        "image/png": "png_pipe", "image/jpeg": "jpeg_pipe", "image/jpg": "jpeg_pipe", "image/webp": "webp_pipe", "image/gif": "gif",
        "image/bmp": "bmp_pipe", "video/mp4": "mov", "video/quicktime": "mov", "video/webm": "matroska", "video/x-matroska": "matroska",
    ]

    init(engine: JobEngine, pool: DatabasePool) throws {
        self.engine = engine
        self.pool = pool
        try pool.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS api_preview (
                    source_sha256 TEXT NOT NULL, edge INTEGER NOT NULL, preview_sha256 TEXT NOT NULL, created_at DATETIME NOT NULL,
                    PRIMARY KEY (source_sha256, edge));
                """)
        }
    }

    /// The media type the store recorded for an artifact, or what its first bytes say.
    func mediaType(of digest: String, file: URL) -> String? {
        if let recorded = (try? (engine.store as? SQLiteJobStore)?.artifactMediaType(sha256: digest)) ?? nil,
           recorded != "application/octet-stream" {
            return recorded.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        }
        guard let handle = try? FileHandle(forReadingFrom: file) else { return nil }
        defer { try? handle.close() }
        return Self.sniff([UInt8](handle.readData(ofLength: 16)))
    }

    static func sniff(_ head: [UInt8]) -> String? {
        func at(_ offset: Int, _ text: String) -> Bool { head.count >= offset + text.utf8.count && Array(head[offset..<offset + text.utf8.count]) == Array(text.utf8) }
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "image/png" }
        if head.starts(with: [0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if at(0, "GIF8") { return "image/gif" }
        if at(0, "RIFF") && at(8, "WEBP") { return "image/webp" }
        if at(0, "RIFF") && at(8, "WAVE") { return "audio/wav" }
        if at(4, "ftyp") { return "video/mp4" }
        if head.starts(with: [0x1A, 0x45, 0xDF, 0xA3]) { return "video/webm" }
        if at(0, "ID3") || at(0, "OggS") || at(0, "fLaC") { return "audio/mpeg" }
        return nil
    }

    func cached(_ digest: String) throws -> String? {
        let preview = try pool.read { db in
            try String.fetchOne(db, sql: "SELECT preview_sha256 FROM api_preview WHERE source_sha256 = ? AND edge = ?", arguments: [digest, Self.edge])
        }
        // A preview whose file was collected is made again.
        guard let preview, FileManager.default.fileExists(atPath: engine.artifacts.path(for: preview).path) else { return nil }
        return preview
    }

    /// The preview's JPEG bytes: the stored one, or one made now and stored.
    public func preview(of digest: String) async throws -> Data {
        if let preview = try cached(digest), let data = try engine.artifacts.read(sha256: preview) { return data }
        let file = engine.artifacts.path(for: digest)
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw APIError("ARTIFACT_NOT_FOUND", "Artifact \(digest.prefix(12)) is recorded but its file is gone.", remediation: "Run the job again.")
        }
        let mediaType = mediaType(of: digest, file: file) ?? "application/octet-stream"
        guard let demuxer = Self.demuxers[mediaType] else {
            let kind = mediaType.hasPrefix("audio/") ? "an audio file" : "\(SafePath.shown(mediaType))"
            throw APIError("THUMBNAIL_UNSUPPORTED", "Artifact \(digest.prefix(12)) is \(kind): only images and videos have thumbnails.",
                           remediation: "Download it with GET /api/v1/artifacts/\(digest) instead (an audio player needs no picture).",
                           field: "sha256", status: 422)
        }
        guard let ffmpeg = resolve("ffmpeg") else {
            throw APIError("DEPENDENCY_MISSING", "ffmpeg is not installed on this host (not found on PATH); thumbnails and posters need it.",
                           remediation: "Install it: \(HostProcessService.installCommand(for: "ffmpeg")), then ask again.", status: 503)
        }
        await slots.acquire()
        defer { Task { await slots.release() } }
        // Another request may have made it while this one waited.
        if let preview = try cached(digest), let data = try engine.artifacts.read(sha256: preview) { return data }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("yard-preview-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let output = work.appendingPathComponent("preview.jpg")
        // A poster is the frame at 1 s (past a fade-in); a clip shorter than that gives its first frame.
        let starts: [String?] = mediaType.hasPrefix("video/") ? ["1", "0"] : [nil]
        var failure = ""
        for start in starts {
            var arguments = ["-nostdin", "-hide_banner", "-v", "error", "-y", "-protocol_whitelist", "file", "-f", demuxer]
            if let start { arguments += ["-ss", start] }
            arguments += ["-i", file.path, "-frames:v", "1", "-an",
                          "-vf", "scale=\(Self.edge):\(Self.edge):force_original_aspect_ratio=decrease:flags=bicubic,format=yuvj420p",
                          "-q:v", "4", "-f", "mjpeg", output.path]
            // ffmpeg names the file it read: the client sees the digest, never the host's paths.
            failure = try await run(ffmpeg, arguments, errorLog: work.appendingPathComponent("stderr.txt"))
                .replacingOccurrences(of: file.path, with: String(digest.prefix(12))).replacingOccurrences(of: work.path, with: "")
            if let data = try? Data(contentsOf: output), data.count > 2, data.starts(with: [0xFF, 0xD8]) {
                let preview = try engine.artifacts.put(data, mediaType: "image/jpeg")
                try await pool.write { db in
                    try db.execute(sql: "INSERT OR REPLACE INTO api_preview (source_sha256, edge, preview_sha256, created_at) VALUES (?, ?, ?, ?)",
                                   arguments: [digest, Self.edge, preview, Date()])
                }
                return data
            }
        }
        throw APIError("MEDIA_UNREADABLE", "ffmpeg could not read artifact \(digest.prefix(12)) as \(mediaType)\(failure.isEmpty ? "" : ": " + failure).",
                       remediation: "The file is damaged or not the media type it was stored as; upload it again with the right Content-Type.",
                       field: "sha256", status: 422)
    }

    func resolve(_ name: String) -> String? {
        for folder in searchPath.split(separator: ":") where !folder.isEmpty {
            let candidate = "\(folder)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs ffmpeg to its end (or stops it at the timeout); answers the last line it wrote on stderr.
    func run(_ executable: String, _ arguments: [String], errorLog: URL) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        // Never the server's environment: it may hold secrets.
        process.environment = ["PATH": searchPath, "LANG": "C"]
        // A file, not a pipe: nothing here blocks a thread reading it while ffmpeg runs.
        _ = FileManager.default.createFile(atPath: errorLog.path, contents: nil)
        let errors = try FileHandle(forWritingTo: errorLog)
        defer { try? errors.close() }
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let finished = AsyncStream<Void> { continuation in
            process.terminationHandler = { _ in continuation.finish() }
        }
        try process.run()
        let timeout = timeoutSeconds
        let watchdog = Task {
            try await Task.sleep(nanoseconds: UInt64(timeout * 1e9))
            process.terminate()
        }
        for await _ in finished {}
        watchdog.cancel()
        let stderr = (try? Data(contentsOf: errorLog)) ?? Data()
        let lines = String(decoding: stderr.prefix(4096), as: UTF8.self).split(separator: "\n")
        return lines.last.map { String($0.prefix(300)) } ?? ""
    }

    // MARK: route

    func register(on api: RouterGroup<APIRequestContext>, store: APIStore) {
        api.get("artifacts/:sha256/thumbnail") { [self] _, context -> Response in
            let token = try context.require(.read)
            var digest = context.parameters.get("sha256") ?? ""
            if digest.hasPrefix("sha256:") { digest = String(digest.dropFirst(7)) }
            guard ArtifactDirectory.isDigest(digest), try store.ownsArtifact(digest, account: token.account) else {
                throw APIError("ARTIFACT_NOT_FOUND", "No artifact \(SafePath.shown(digest)) for account \(token.account).",
                               remediation: "Use a handle from one of the account's jobs (GET /api/v1/jobs/ID outputs).", field: "sha256")
            }
            let data = try await preview(of: digest)
            return Response(status: .ok, headers: [.contentType: "image/jpeg", .contentLength: "\(data.count)", .eTag: "\"\(digest)-\(Self.edge)\"",
                                                   .cacheControl: "private, max-age=31536000, immutable"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
    }
}

/// A counting semaphore for async callers.
actor PreviewSlots {
    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(count: Int) { free = count }

    func acquire() async {
        if free > 0 { free -= 1; return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty { free += 1 } else { waiting.removeFirst().resume() }
    }
}
