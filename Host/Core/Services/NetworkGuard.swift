import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Keeps a process on loopback: while active, every outgoing HTTP request
/// and every name lookup the host makes is checked first, and one that would
/// reach a non-loopback host is refused before a socket is opened or a DNS
/// query sent. The test suite and `yard plugin test --standin` turn it on, so
/// no test, conformance run or suite command can contact (or even look up) a
/// real provider; each refusal is recorded so the run fails, not just the request.
///
/// Active when `YARD_NETWORK_GUARD=loopback` is in the environment (tests set
/// it for every `yard` they start; children inherit it), or after
/// `activate()`. With `YARD_NETWORK_GUARD_LOG=FILE`, each refusal is also
/// appended to FILE, so a parent process sees what its children tried.
public enum NetworkGuard {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var forced = false
    nonisolated(unsafe) private static var refused: [String] = []
    private static let environmentMode = ProcessInfo.processInfo.environment["YARD_NETWORK_GUARD"]
    private static let logFile = ProcessInfo.processInfo.environment["YARD_NETWORK_GUARD_LOG"]

    public static var isActive: Bool { lock.withLock { forced } || environmentMode == "loopback" }

    /// Turns the guard on for this process (it stays on).
    public static func activate() { lock.withLock { forced = true } }

    /// Every refusal so far, as "HOST (URL)", oldest first.
    public static var violations: [String] { lock.withLock { refused } }

    /// Forgets the refusals recorded so far (between tests).
    public static func resetViolations() { lock.withLock { refused = [] } }

    /// Whether `host` is a loopback name or literal: localhost, *.localhost, 127.0.0.0/8, ::1.
    public static func isLoopback(_ host: String) -> Bool {
        let name = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        if name == "localhost" || name.hasSuffix(".localhost") || name == "::1" { return true }
        let octets = name.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }) else { return false }
        return octets[0] == "127"
    }

    /// Whether `host` is an IPv4 or IPv6 address literal: resolving one sends no DNS query.
    public static func isAddressLiteral(_ host: String) -> Bool {
        let name = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, name, &v4) == 1 || inet_pton(AF_INET6, name, &v6) == 1
    }

    /// Refuses a request to `url` unless the guard is off or its host is loopback.
    public static func check(url: String) throws {
        guard isActive else { return }
        let host = URLComponents(string: url)?.host ?? ""
        try check(host: host, context: url)
    }

    /// Refuses a name lookup (or a connection) to `host` unless it is loopback.
    public static func check(host: String, context: String? = nil) throws {
        guard isActive, !isLoopback(host) else { return }
        let entry = host.isEmpty ? "(no host) \(context ?? "")" : "\(host)\(context.map { " (\($0))" } ?? "")"
        lock.withLock { refused.append(entry) }
        let line = "network guard: refused \(entry): only loopback hosts may be contacted here\n"
        FileHandle.standardError.write(Data(line.utf8))
        if let logFile {
            if !FileManager.default.fileExists(atPath: logFile) { FileManager.default.createFile(atPath: logFile, contents: nil) }
            if let handle = FileHandle(forWritingAtPath: logFile) {
                handle.seekToEndOfFile()
                handle.write(Data("\(entry)\n".utf8))
                try? handle.close()
            }
        }
        throw Refusal(host: host.isEmpty ? context ?? "" : host)
    }

    public struct Refusal: Error, CustomStringConvertible, Sendable {
        public var host: String
        public var description: String { "network guard: \(host) is not a loopback host; only loopback may be contacted in tests and stand-in runs" }
    }
}
