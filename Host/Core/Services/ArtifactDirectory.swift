import Crypto
import Foundation

/// A content-addressed artifact directory: ROOT/sha256/ab/abcdef…; writes go
/// to a temporary name first and are renamed into place, so a reader never
/// sees a partial file and two writers of the same content agree.
public final class ArtifactDirectory: ArtifactSink, @unchecked Sendable {
    public let root: URL

    public init(root: URL) { self.root = root }

    /// The file of a digest. Anything but 64 lowercase hex digits names a
    /// file that never exists, inside the store: a hostile digest such as
    /// "../../etc/passwd" cannot point outside it. Handles from outside the
    /// host go through `file(forHandle:)`, which refuses them with a reason.
    public func path(for sha256: String) -> URL {
        let digest = Self.isDigest(sha256) ? sha256 : "invalid"
        return root.appendingPathComponent("sha256").appendingPathComponent(String(digest.prefix(2))).appendingPathComponent(digest)
    }

    /// 64 lowercase hex digits: the only digest form the store names files by.
    public static func isDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The digest of an artifact handle, "sha256:" + 64 lowercase hex, or nil.
    public static func digest(ofHandle handle: String) -> String? {
        guard handle.hasPrefix("sha256:") else { return nil }
        let digest = String(handle.dropFirst(7))
        return isDigest(digest) ? digest : nil
    }

    /// The stored file of a handle that came from outside the host (a
    /// provider's answer, a stored output, a pipeline input).
    public func file(forHandle handle: String, field: String? = nil) throws -> URL {
        guard let digest = Self.digest(ofHandle: handle) else { throw Self.invalidHandle(handle, field: field) }
        return path(for: digest)
    }

    public static func invalidHandle(_ handle: String, field: String?) -> YardError {
        let shown = handle.count > 80 ? String(handle.prefix(80)) + "…" : handle
        return YardError(.artifactHandleInvalid, "\"\(shown)\" is not an artifact handle: handles are \"sha256:\" and 64 lowercase hex digits.",
                         remediation: "Pass a handle this host produced (`yard jobs show` lists them) or the file itself (--input name=@file). A plugin or provider that answers such a handle is faulty: report it.",
                         field: field)
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
        let digest = sha256.lowercased()
        guard Self.isDigest(digest) else { return nil }
        return try? Data(contentsOf: path(for: digest))
    }
}
