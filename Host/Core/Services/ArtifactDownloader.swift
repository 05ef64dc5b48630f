import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
#if canImport(Glibc)
import Glibc
#endif

/// Streams a provider's output into the content-addressed store: constant
/// memory (chunks go straight to a temporary file while being hashed), size
/// and sha256 verified, http(s) only, every hop inside the adapter's
/// allow-list, and no redirect into a private or loopback address unless the
/// host is configured to allow it (a provider must not be able to make the
/// host fetch from its own network).
public final class ArtifactDownloader: @unchecked Sendable {
    public struct Result: Sendable {
        public var sha256: String
        public var size: Int
        public var mediaType: String
    }

    let client: HTTPClient
    let directory: ArtifactDirectory
    public var allowPrivateRedirects: Bool
    public var maxBytes: Int64
    public var maxRedirects = 5

    public init(directory: ArtifactDirectory, allowPrivateRedirects: Bool = ProcessInfo.processInfo.environment["YARD_ALLOW_PRIVATE_REDIRECTS"] == "1",
                maxBytes: Int64 = 64 << 30) {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.directory = directory
        self.allowPrivateRedirects = allowPrivateRedirects
        self.maxBytes = maxBytes
    }

    deinit { try? client.syncShutdown() }

    public func download(url: String, headers: [String: String] = [:], mediaType: String? = nil,
                         expectedSHA256: String? = nil, expectedSize: Int? = nil,
                         isAllowed: @Sendable (String) -> Bool) async throws -> Result {
        var current = url
        var hops = 0
        while true {
            try Self.checkHop(current, from: url, hops: hops, allowPrivateRedirects: allowPrivateRedirects, isAllowed: isAllowed)
            var request = HTTPClientRequest(url: current)
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            let response = try await client.execute(request, timeout: .seconds(3600))
            if (300..<400).contains(Int(response.status.code)), let location = response.headers.first(name: "location") {
                hops += 1
                guard hops <= maxRedirects else {
                    throw YardError("ENGINE_ERROR", "More than \(maxRedirects) redirects downloading \(url).", remediation: "Report this to the engine's provider.")
                }
                current = URL(string: location, relativeTo: URL(string: current))?.absoluteString ?? location
                continue
            }
            guard (200..<300).contains(Int(response.status.code)) else {
                let code = response.status.code == 404 || response.status.code == 410 ? "RESULT_EXPIRED" : "ENGINE_ERROR"
                throw YardError(.init(rawValue: code), "Downloading \(url) answered HTTP \(response.status.code).",
                                remediation: code == "RESULT_EXPIRED" ? "The provider no longer keeps this result; run the job again." : "Retry later.")
            }
            if let length = response.headers.first(name: "content-length").flatMap(Int64.init), length > maxBytes {
                throw YardError("ARTIFACT_TOO_LARGE", "\(url) is \(length) bytes, over the \(maxBytes)-byte limit.", remediation: "Raise the limit or pick a smaller output.")
            }
            let type = mediaType ?? response.headers.first(name: "content-type") ?? "application/octet-stream"
            return try await store(response.body, url: url, mediaType: type, expectedSHA256: expectedSHA256, expectedSize: expectedSize)
        }
    }

    func store(_ body: HTTPClientResponse.Body, url: String, mediaType: String, expectedSHA256: String?, expectedSize: Int?) async throws -> Result {
        let fm = FileManager.default
        let incoming = directory.root.appendingPathComponent("incoming")
        try fm.createDirectory(at: incoming, withIntermediateDirectories: true)
        let temporary = incoming.appendingPathComponent(UUID().uuidString)
        guard fm.createFile(atPath: temporary.path, contents: nil) else {
            throw YardError(.ioFailed, "Cannot create \(temporary.path).", remediation: "Check free space and permissions in \(directory.root.path).")
        }
        let handle = try FileHandle(forWritingTo: temporary)
        var hasher = SHA256()
        var size: Int64 = 0
        do {
            for try await chunk in body {
                size += Int64(chunk.readableBytes)
                guard size <= maxBytes else {
                    throw YardError("ARTIFACT_TOO_LARGE", "\(url) exceeded the \(maxBytes)-byte limit while downloading.", remediation: "Raise the limit or pick a smaller output.")
                }
                try chunk.withUnsafeReadableBytes { bytes in
                    hasher.update(bufferPointer: bytes)
                    try handle.write(contentsOf: bytes)
                }
            }
            try handle.close()
        } catch {
            try? handle.close()
            try? fm.removeItem(at: temporary)
            throw error
        }
        let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        if let expectedSize, Int64(expectedSize) != size {
            try? fm.removeItem(at: temporary)
            throw YardError("CHECKSUM_MISMATCH", "\(url) delivered \(size) bytes; \(expectedSize) were announced (a truncated download).", remediation: "Retry the download.")
        }
        if let expectedSHA256, expectedSHA256.lowercased() != digest {
            try? fm.removeItem(at: temporary)
            throw YardError("CHECKSUM_MISMATCH", "\(url) has sha256 \(digest.prefix(16))…, not the announced \(expectedSHA256.prefix(16))….", remediation: "Retry the download.")
        }
        let target = directory.path(for: digest)
        try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        if rename(temporary.path, target.path) != 0 { try? fm.removeItem(at: temporary) }
        return Result(sha256: digest, size: Int(size), mediaType: mediaType)
    }

    /// Every hop of a download: inside the adapter's allow-list, and no
    /// redirect into a private or loopback address unless allowed.
    static func checkHop(_ current: String, from url: String, hops: Int, allowPrivateRedirects: Bool, isAllowed: (String) -> Bool) throws {
        guard isAllowed(current) else {
            throw YardError("NETWORK_DENIED", "Refused to download \(current): its host is outside the engine's allow-list.",
                            remediation: "Add the host to network.hosts in plugin.json if it is the provider's CDN.")
        }
        do { try NetworkGuard.check(url: current) } catch {
            throw YardError("NETWORK_DENIED", "Refused to download \(current): \(error).", remediation: "Point the engine at a loopback stand-in in tests.")
        }
        if hops > 0, !allowPrivateRedirects, let host = URLComponents(string: current)?.host, resolvesToPrivateAddress(host) {
            throw YardError("NETWORK_DENIED", "Refused a redirect from \(url) to \(host), a private or loopback address.",
                            remediation: "Set YARD_ALLOW_PRIVATE_REDIRECTS=1 only if the provider really serves files from your own network.")
        }
    }

    /// Whether a host name or literal resolves to a loopback, private, link-local or unspecified address.
    public static func resolvesToPrivateAddress(_ host: String) -> Bool {
        let name = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if name.lowercased() == "localhost" || name.lowercased().hasSuffix(".localhost") { return true }
        // Under the network guard no non-loopback name is looked up at all (a literal address needs no lookup).
        if NetworkGuard.isActive && !NetworkGuard.isLoopback(name) && !NetworkGuard.isAddressLiteral(name) {
            try? NetworkGuard.check(host: name, context: "name lookup")
            return false
        }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &list) == 0, let first = list else { return false }
        defer { freeaddrinfo(list) }
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            if let address = entry.pointee.ai_addr {
                if entry.pointee.ai_family == AF_INET {
                    let raw = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
                    let a = raw >> 24, b = (raw >> 16) & 0xFF
                    if a == 10 || a == 127 || a == 0 || (a == 172 && (16...31).contains(b)) || (a == 192 && b == 168) || (a == 169 && b == 254) || (a == 100 && (64...127).contains(b)) {
                        return true
                    }
                } else if entry.pointee.ai_family == AF_INET6 {
                    let bytes = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) } }
                    let loopback = bytes.dropLast().allSatisfy { $0 == 0 } && bytes.last == 1
                    let unspecified = bytes.allSatisfy { $0 == 0 }
                    if loopback || unspecified || (bytes[0] & 0xFE) == 0xFC || (bytes[0] == 0xFE && (bytes[1] & 0xC0) == 0x80) { return true }
                }
            }
            cursor = entry.pointee.ai_next
        }
        return false
    }
}
