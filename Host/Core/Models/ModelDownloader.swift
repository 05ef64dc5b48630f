import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// Fetches the files of a resolved `ModelPlan` into the catalog's directory:
/// `.part` files resumed with `Range`, redirects followed by hand (the token
/// goes to the first hop only; no redirect into a private or loopback address
/// unless YARD_ALLOW_PRIVATE_REDIRECTS=1), 429 Retry-After honoured, a
/// dropped connection resumed where it stopped, sizes and digests verified
/// (LFS sha256, git blob ids, Civitai sha256) before a file takes its final
/// name. Cancelling leaves the `.part` files for the next pull.
public final class ModelDownloader: @unchecked Sendable {
    public struct Progress: Sendable {
        public var file: String
        public var fileBytes: Int64
        public var fileSize: Int64?
        public var doneBytes: Int64
        public var totalBytes: Int64
        public var resumedFrom: Int64
    }

    public let catalog: ModelCatalog
    let client: HTTPClient
    public var allowPrivateRedirects: Bool
    public var maxAttempts = 6
    public var maxRedirects = 5
    public var maxRetryAfterSeconds = 120.0
    public var baseBackoffSeconds = 0.5

    public init(catalog: ModelCatalog, allowPrivateRedirects: Bool = ProcessInfo.processInfo.environment["YARD_ALLOW_PRIVATE_REDIRECTS"] == "1") {
        self.catalog = catalog
        self.allowPrivateRedirects = allowPrivateRedirects
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        configuration.decompression = .disabled
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    deinit { try? client.syncShutdown() }

    /// Downloads and verifies every file of `plan`, recording the model as
    /// `downloading`, then `available` — or `failed` with the reason.
    @discardableResult
    public func pull(_ plan: ModelPlan, isAllowed: @escaping @Sendable (String) -> Bool = { _ in true },
                     progress: @escaping @Sendable (Progress) -> Void = { _ in }) async throws -> ModelRecord {
        // Vendor, repo, revision and file paths come from a provider or a
        // plugin: each becomes a folder or file name only after it is checked.
        let directory = try catalog.checkedDirectory(vendor: plan.vendor, repo: plan.repo, revision: plan.revision)
        for file in plan.files { _ = try SafePath.contained(file.path, in: directory, field: "files[].path") }
        let created = (try? catalog.records(id: plan.id, revision: plan.revision).first?.createdAt) ?? Date()
        var record = ModelRecord(id: plan.id, vendor: plan.vendor, repo: plan.repo, revision: plan.revision, type: plan.type, license: plan.license,
                                 status: .downloading, files: plan.files.map { ModelFileRecord(path: $0.path, size: $0.size ?? 0, sha256: $0.sha256) },
                                 path: directory.path, createdAt: created)
        try catalog.save(record)
        let total = plan.files.reduce(Int64(0)) { $0 + Int64($1.size ?? 0) }
        var done: Int64 = 0
        do {
            var files: [ModelFileRecord] = []
            for file in plan.files {
                let stored = try await fetch(file, into: directory, authorization: plan.authorization, isAllowed: isAllowed) { fileBytes, resumedFrom in
                    progress(Progress(file: file.path, fileBytes: fileBytes, fileSize: file.size.map(Int64.init), doneBytes: done + fileBytes,
                                      totalBytes: total, resumedFrom: resumedFrom))
                }
                done += Int64(stored.size)
                files.append(stored)
            }
            record.files = files
            record.status = .available
            record.reason = nil
            record.updatedAt = Date()
            try catalog.save(record)
            return record
        } catch {
            let yardError = Self.yardError(error)
            try? catalog.setStatus(id: plan.id, revision: plan.revision, .failed,
                                   reason: "\(yardError.code.rawValue): \(yardError.message)")
            throw yardError
        }
    }

    static func yardError(_ error: Error) -> YardError {
        if let error = error as? YardError { return error }
        if error is CancellationError {
            return YardError("CANCELLED", "The download was cancelled; the partial files are kept.", remediation: "Run the same `yard models pull` to resume.")
        }
        return YardError("DOWNLOAD_FAILED", "\(error)", remediation: "Run the same `yard models pull` to resume.")
    }

    /// One file: resume its `.part`, verify, then rename into place.
    func fetch(_ file: ModelPlan.File, into directory: URL, authorization: String?, isAllowed: @escaping @Sendable (String) -> Bool,
               progress: @escaping (Int64, Int64) -> Void) async throws -> ModelFileRecord {
        let fm = FileManager.default
        let target = try SafePath.contained(file.path, in: directory, field: "files[].path")
        let part = target.appendingPathExtension("part")
        try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        if let size = Self.size(of: target), file.size == nil || file.size == Int(size) {
            // Already here: keep it only if it is what the plan says.
            if let verified = try? Self.verify(target, file) { progress(size, size); return verified }
            try? fm.removeItem(at: target)
        }
        var attempts = 0
        var checksumRetried = false
        while true {
            try Task.checkCancellation()
            attempts += 1
            do {
                try await transfer(file, to: part, authorization: authorization, isAllowed: isAllowed, progress: progress)
                do {
                    let verified = try Self.verify(part, file)
                    guard rename(part.path, target.path) == 0 else {
                        throw YardError(.ioFailed, "Could not move \(part.lastPathComponent) into place.", remediation: "Check permissions in \(directory.path).")
                    }
                    return verified
                } catch let error as YardError where error.code.rawValue == "CHECKSUM_MISMATCH" && !checksumRetried {
                    // A corrupted .part (or a bad transfer): start this file over once.
                    checksumRetried = true
                    try? fm.removeItem(at: part)
                    continue
                }
            } catch let error as TransientDownloadError {
                guard attempts < maxAttempts else { throw error.final }
                let wait = error.retryAfter ?? baseBackoffSeconds * Double(1 << min(attempts - 1, 6))
                try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
            }
        }
    }

    struct TransientDownloadError: Error {
        var retryAfter: Double?
        var final: YardError
    }

    /// Streams the file into `part` from its current length (Range), following redirects.
    func transfer(_ file: ModelPlan.File, to part: URL, authorization: String?, isAllowed: @Sendable (String) -> Bool,
                  progress: (Int64, Int64) -> Void) async throws {
        let fm = FileManager.default
        var offset = Self.size(of: part) ?? 0
        if let size = file.size, offset > Int64(size) {
            try? fm.removeItem(at: part)
            offset = 0
        }
        if let size = file.size, offset == Int64(size), size > 0 { return }
        let response = try await open(file, offset: offset, authorization: authorization, isAllowed: isAllowed)
        let status = Int(response.status.code)
        switch status {
        case 200:
            offset = 0
        case 206:
            // Content-Range must start where the .part ends, or the bytes would not line up.
            let start = response.headers.first(name: "content-range").flatMap { $0.split(separator: " ").last?.split(separator: "-").first }.flatMap { Int64($0) }
            guard start == offset else {
                try? fm.removeItem(at: part)
                throw TransientDownloadError(retryAfter: 0, final: YardError("ENGINE_ERROR", "The server resumed \(file.path) at the wrong offset.", remediation: "Pull again."))
            }
        case 416:
            // The .part is already complete (or the server disagrees about its length): verification decides.
            if file.size == nil || offset >= Int64(file.size ?? 0) { return }
            try? fm.removeItem(at: part)
            throw TransientDownloadError(retryAfter: 0, final: YardError("ENGINE_ERROR", "The server refused to resume \(file.path).", remediation: "Pull again."))
        case 429:
            let wait = ModelSourceResolver.retryAfterSeconds(response.headers)
            let error = YardError("RATE_LIMITED", "The model host rate-limited the download of \(file.path) (retry after \(Int(wait)) s).",
                                  remediation: "Wait and pull again; the partial file resumes. Logged-in users get higher limits.")
            guard wait <= maxRetryAfterSeconds else { throw error }
            throw TransientDownloadError(retryAfter: wait, final: error)
        case 500...599:
            throw TransientDownloadError(retryAfter: nil, final: YardError("ENGINE_UNAVAILABLE", "The model host answered HTTP \(status) for \(file.path).", remediation: "Retry later."))
        default:
            let body = try? await response.body.collect(upTo: 1 << 20)
            let answer = ModelSourceResolver.Answer(status: status, headers: response.headers, body: body.map { Data($0.readableBytesView) } ?? Data())
            let isCivitai = file.url.contains("/api/download/models/")
            throw isCivitai ? ModelSourceResolver.civitaiError(answer, id: URLComponents(string: file.url)?.path.split(separator: "/").last.map(String.init) ?? "")
                            : ModelSourceResolver.hubError(answer, repo: Self.repo(fromResolveURL: file.url), hasToken: authorization != nil, what: file.path)
        }
        if offset == 0 { fm.createFile(atPath: part.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: part)
        defer { try? handle.close() }
        try handle.truncate(atOffset: UInt64(offset))
        try handle.seekToEnd()
        let resumedFrom = offset
        var written = offset
        var lastReport = DispatchTime.now().uptimeNanoseconds
        progress(written, resumedFrom)
        do {
            for try await chunk in response.body {
                try Task.checkCancellation()
                try chunk.withUnsafeReadableBytes { try handle.write(contentsOf: $0) }
                written += Int64(chunk.readableBytes)
                let now = DispatchTime.now().uptimeNanoseconds
                if now - lastReport > 200_000_000 { progress(written, resumedFrom); lastReport = now }
            }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // A dropped connection: what arrived stays in the .part, the next attempt resumes from there.
            try? handle.synchronize()
            throw TransientDownloadError(retryAfter: nil, final: YardError("ENGINE_UNREACHABLE", "The connection dropped while downloading \(file.path) (\(error)).",
                                                                           remediation: "Pull again; the partial file resumes."))
        }
        try handle.synchronize()
        progress(written, resumedFrom)
        if let size = file.size, written < Int64(size) {
            throw TransientDownloadError(retryAfter: nil, final: YardError("ENGINE_UNREACHABLE", "\(file.path) ended after \(written) of \(size) bytes.",
                                                                           remediation: "Pull again; the partial file resumes."))
        }
    }

    /// GET with Range from `offset`, following redirects by hand; the token goes to the first hop only.
    func open(_ file: ModelPlan.File, offset: Int64, authorization: String?, isAllowed: @Sendable (String) -> Bool) async throws -> HTTPClientResponse {
        var url = file.url
        var hops = 0
        while true {
            try ArtifactDownloader.checkHop(url, from: file.url, hops: hops, allowPrivateRedirects: allowPrivateRedirects, isAllowed: isAllowed)
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "user-agent", value: "switchyard/\(HostPlatform.hostVersion)")
            request.headers.add(name: "accept-encoding", value: "identity")
            if hops == 0, let authorization { request.headers.add(name: "authorization", value: authorization) }
            if offset > 0 { request.headers.add(name: "range", value: "bytes=\(offset)-") }
            let response: HTTPClientResponse
            do { response = try await client.execute(request, timeout: .seconds(3600)) } catch {
                throw TransientDownloadError(retryAfter: nil, final: YardError("ENGINE_UNREACHABLE", "Could not reach \(URLComponents(string: url)?.host ?? url): \(error).",
                                                                               remediation: "Check the network and pull again; the partial file resumes."))
            }
            guard (300..<400).contains(Int(response.status.code)), let location = response.headers.first(name: "location") else { return response }
            hops += 1
            guard hops <= maxRedirects else {
                throw YardError("ENGINE_ERROR", "More than \(maxRedirects) redirects for \(file.path).", remediation: "Report this to the model host.")
            }
            url = URL(string: location, relativeTo: URL(string: url))?.absoluteString ?? location
        }
    }

    static func repo(fromResolveURL url: String) -> String {
        guard let path = URLComponents(string: url)?.path, let range = path.range(of: "/resolve/") else { return url }
        return String(path[path.index(after: path.startIndex)..<range.lowerBound])
    }

    static func size(of url: URL) -> Int64? {
        ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.int64Value
    }

    /// Size and digests of a file on disk against what the plan announced.
    static func verify(_ url: URL, _ file: ModelPlan.File) throws -> ModelFileRecord {
        let (sha256, gitOID, size) = try digests(of: url)
        if let expected = file.size, Int64(expected) != size {
            throw YardError("CHECKSUM_MISMATCH", "\(file.path) is \(size) bytes; \(expected) were announced.", remediation: "Pull again to fetch it anew.", field: file.path)
        }
        if let expected = file.sha256, expected != sha256 {
            throw YardError("CHECKSUM_MISMATCH", "\(file.path) has sha256 \(sha256.prefix(16))…, not the announced \(expected.prefix(16))….",
                            remediation: "Pull again to fetch it anew.", field: file.path)
        }
        if let expected = file.gitOID, expected != gitOID {
            throw YardError("CHECKSUM_MISMATCH", "\(file.path) does not match its git blob id \(expected.prefix(12)).", remediation: "Pull again to fetch it anew.", field: file.path)
        }
        return ModelFileRecord(path: file.path, size: Int(size), sha256: sha256)
    }

    /// sha256 and the git blob id of a file, reading it in 1 MiB chunks.
    static func digests(of url: URL) throws -> (sha256: String, gitOID: String, size: Int64) {
        guard let size = size(of: url), let handle = FileHandle(forReadingAtPath: url.path) else {
            throw YardError("CHECKSUM_MISMATCH", "\(url.lastPathComponent) is missing.", remediation: "Pull again.", field: url.lastPathComponent)
        }
        defer { try? handle.close() }
        var sha = SHA256()
        var git = Insecure.SHA1()
        git.update(data: Data("blob \(size)\0".utf8))
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            sha.update(data: chunk)
            git.update(data: chunk)
        }
        return (hex(sha.finalize()), hex(git.finalize()), size)
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 { digest.map { String(format: "%02x", $0) }.joined() }

    // MARK: local

    /// Catalogues weights someone put in `$YARD_HOME/models/local/<group>/<name>/`
    /// (hashing every file), so they are listed and verified like pulled ones.
    /// The revision is a digest of the file list: it changes when the files do.
    public func registerLocal(_ repo: String, type: String?) throws -> ModelRecord {
        let directory = catalog.root.appendingPathComponent("local").appendingPathComponent(repo)
        let fm = FileManager.default
        var files: [ModelFileRecord] = []
        if let walker = fm.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey], options: [.skipsHiddenFiles]) {
            for case let url as URL in walker where (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true && url.pathExtension != "part" {
                let relative = String(url.standardizedFileURL.path.dropFirst(directory.standardizedFileURL.path.count + 1))
                let (sha256, _, size) = try Self.digests(of: url)
                files.append(ModelFileRecord(path: relative, size: Int(size), sha256: sha256))
            }
        }
        files.sort { $0.path < $1.path }
        guard !files.isEmpty else {
            throw YardError("FILE_NOT_FOUND", "\(directory.path) holds no model files.",
                            remediation: "Copy the weights into \(directory.path) first, then run `yard models pull local:\(repo)`.", field: "model")
        }
        let revision = Self.hex(SHA256.hash(data: Data(files.map { "\($0.path)\u{0}\($0.sha256 ?? "")\n" }.joined().utf8))).prefix(40)
        let id = "local:\(repo)"
        let created = (try? catalog.records(id: id).first?.createdAt) ?? Date()
        let record = ModelRecord(id: id, vendor: "local", repo: repo, revision: String(revision), type: type ?? "other", license: nil,
                                 status: .available, files: files, path: directory.path, createdAt: created)
        for stale in (try? catalog.records(id: id)) ?? [] where stale.revision != record.revision { try? catalog.delete(id: id, revision: stale.revision) }
        try catalog.save(record)
        return record
    }

    // MARK: verify

    public struct FileCheck: Codable, Sendable {
        public var path: String
        public var ok: Bool
        public var problem: String?
    }

    /// Re-hashes every file of a catalogued model; a mismatch marks it failed.
    public func verify(_ record: ModelRecord) throws -> [FileCheck] {
        let directory = URL(fileURLWithPath: record.path)
        let checks: [FileCheck] = record.files.map { file in
            let planned = ModelPlan.File(path: file.path, size: file.size, sha256: file.sha256, gitOID: nil, url: "")
            do {
                _ = try Self.verify(directory.appendingPathComponent(file.path), planned)
                return FileCheck(path: file.path, ok: true, problem: nil)
            } catch let error as YardError {
                return FileCheck(path: file.path, ok: false, problem: error.message)
            } catch {
                return FileCheck(path: file.path, ok: false, problem: "\(error)")
            }
        }
        if let bad = checks.first(where: { !$0.ok }) {
            try catalog.setStatus(id: record.id, revision: record.revision, .failed, reason: "CHECKSUM_MISMATCH: \(bad.problem ?? bad.path)")
        } else if record.status != .downloading {
            try catalog.setStatus(id: record.id, revision: record.revision, .available, reason: nil)
        }
        return checks
    }
}
