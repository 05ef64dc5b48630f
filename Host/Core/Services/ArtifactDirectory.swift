import Crypto
import Foundation

/// A content-addressed artifact directory: ROOT/sha256/ab/abcdef…; writes go
/// to a temporary name first and are renamed into place, so a reader never
/// sees a partial file and two writers of the same content agree.
public final class ArtifactDirectory: ArtifactSink, @unchecked Sendable {
    public let root: URL

    public init(root: URL) { self.root = root }

    public func path(for sha256: String) -> URL {
        root.appendingPathComponent("sha256").appendingPathComponent(String(sha256.prefix(2))).appendingPathComponent(sha256)
    }

    public func put(_ data: Data, mediaType: String) throws -> String {
        let digest = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        let target = path(for: digest)
        let fm = FileManager.default
        if fm.fileExists(atPath: target.path) { return digest }
        try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(digest).\(UUID().uuidString).tmp")
        try data.write(to: temporary)
        if rename(temporary.path, target.path) != 0 {
            try? fm.removeItem(at: temporary)
            if !fm.fileExists(atPath: target.path) {
                throw YardError(.ioFailed, "Could not store artifact \(digest.prefix(12)) in \(root.path).", remediation: "Check free space and permissions.")
            }
        }
        return digest
    }

    public func read(sha256: String) throws -> Data? {
        guard sha256.count == 64, sha256.allSatisfy(\.isHexDigit) else { return nil }
        return try? Data(contentsOf: path(for: sha256.lowercased()))
    }
}
