import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An advisory lock on a file under $YARD_HOME (flock). The kernel releases
/// it when the holding process ends, however it ends, so a crashed holder
/// never leaves a stale lock behind. Two opens of the same file conflict even
/// inside one process.
public final class StoreLock: @unchecked Sendable {
    public let file: URL
    private var descriptor: Int32
    private let lock = NSLock()

    private init(file: URL, descriptor: Int32) {
        self.file = file
        self.descriptor = descriptor
    }

    deinit { release() }

    /// Takes the lock without waiting; nil when another holder has it.
    /// `note` is written into the file for whoever wonders who holds it.
    public static func acquire(_ file: URL, note: String = "") -> StoreLock? {
        try? FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let fd = open(file.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            return nil
        }
        if !note.isEmpty {
            _ = ftruncate(fd, 0)
            let bytes = Array(note.utf8)
            _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }
        return StoreLock(file: file, descriptor: fd)
    }

    /// Whether some process holds the lock on `file` now.
    public static func isHeld(_ file: URL) -> Bool {
        let fd = open(file.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK
    }

    /// The note the current holder wrote, when the lock is held.
    public static func holderNote(_ file: URL) -> String? {
        guard isHeld(file), let text = try? String(contentsOf: file, encoding: .utf8) else { return nil }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Releases the lock; `removingFile` deletes it first (claims that are used once).
    public func release(removingFile: Bool = false) {
        lock.withLock {
            guard descriptor >= 0 else { return }
            if removingFile { unlink(file.path) }
            flock(descriptor, LOCK_UN)
            close(descriptor)
            descriptor = -1
        }
    }
}

/// The locks that keep two processes from working the same store at once.
extension YardPaths {
    /// Held by the one process that drives the store (polls and resumes jobs and runs).
    public var driverLockFile: URL { home.appendingPathComponent("driver.lock") }
    /// Held by the process that works a job or run now: while it submits a job
    /// (from before its row is written until its ref is stored), or for as
    /// long as an attached `yard run` follows its own job or run.
    public func claimFile(_ id: String) -> URL { home.appendingPathComponent("claims/\(id).lock") }
    /// Where the background driver writes what it did.
    public var driverLogFile: URL { home.appendingPathComponent("logs/driver.log") }
}
