import Foundation

// The host services a plugin may ask for, as Swift protocols. The loader
// bridges them to the C vtables of PluginAPI/include/switchyard/ext/. Any of
// them may be absent: the conformance kit checks that plugins cope.

public protocol HostLogSink: Sendable {
    func record(pluginID: String, jobID: String?, level: Int32, message: String)
}

public protocol HostClock: Sendable {
    func nowUnixMs() -> Int64
    func monotonicNs() -> Int64
}

public struct SystemClock: HostClock {
    public init() {}
    public func nowUnixMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
    public func monotonicNs() -> Int64 { Int64(DispatchTime.now().uptimeNanoseconds) }
}

/// A clock the engine also waits on (its poll schedule, backoff, and
/// waiting for another process's submit): injected, so a test moves time
/// instead of sleeping through it. A clock that is not one of these is
/// waited on in real time.
public protocol SleepingClock: HostClock {
    /// Returns once `ms` milliseconds of this clock's time have passed.
    func sleep(ms: Int) async throws
}

extension SystemClock: SleepingClock {
    public func sleep(ms: Int) async throws { try await Task.sleep(nanoseconds: UInt64(max(0, ms)) * 1_000_000) }
}

/// Virtual time that passes only when a test says so: `sleep` waits until
/// `advance` has moved the clock past the sleeper's wake-up time, so a
/// minute-long Retry-After costs the test nothing.
public final class ManualClock: SleepingClock, @unchecked Sendable {
    private let lock = NSLock()
    private var nowMs: Int64
    private var sleepers: [(wakeMs: Int64, continuation: CheckedContinuation<Void, Never>)] = []

    public init(startUnixMs: Int64 = 1_767_225_600_000) { nowMs = startUnixMs }
    public func nowUnixMs() -> Int64 { lock.withLock { nowMs } }
    public func monotonicNs() -> Int64 { lock.withLock { nowMs * 1_000_000 } }

    /// How many callers are waiting for time to pass.
    public var sleeping: Int { lock.withLock { sleepers.count } }

    public func sleep(ms: Int) async throws {
        guard ms > 0 else { await Task.yield(); return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.withLock { sleepers.append((nowMs + Int64(ms), continuation)) }
        }
        try Task.checkCancellation()
    }

    /// Moves time on and wakes every sleeper whose time has come.
    public func advance(ms: Int64) {
        let woken: [CheckedContinuation<Void, Never>] = lock.withLock {
            nowMs += ms
            let due = sleepers.filter { $0.wakeMs <= nowMs }
            sleepers.removeAll { $0.wakeMs <= nowMs }
            return due.map(\.continuation)
        }
        for continuation in woken { continuation.resume() }
    }
}

/// A clock tests move by hand, so expiry and backoff run in milliseconds.
public final class VirtualClock: HostClock, @unchecked Sendable {
    private let lock = NSLock()
    private var nowMs: Int64

    public init(startUnixMs: Int64 = 1_767_225_600_000) { nowMs = startUnixMs }
    public func nowUnixMs() -> Int64 { lock.withLock { nowMs } }
    public func monotonicNs() -> Int64 { lock.withLock { nowMs * 1_000_000 } }
    public func advance(ms: Int64) { lock.withLock { nowMs += ms } }
}

public struct HostHTTPRequest: Sendable, Codable {
    public var method: String
    public var url: String
    public var headers: [String: String]
    public var body: Data?
    public var timeoutMs: Int?

    public init(method: String, url: String, headers: [String: String] = [:], body: Data? = nil, timeoutMs: Int? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeoutMs = timeoutMs
    }
}

public struct HostHTTPResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: Data

    public init(status: Int, headers: [String: String], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

public enum HostHTTPError: Error, Sendable {
    case timeout
    /// The request never left this host (no connection): the provider cannot have acted on it.
    case notSent(String)
    /// The connection failed after the request may have been sent (e.g. dropped mid-response):
    /// the provider may have acted on it.
    case failed(String)

    public var reason: String {
        switch self {
        case .timeout: return "the server did not answer in time"
        case .notSent(let reason), .failed(let reason): return reason
        }
    }
}

/// Performs one request, blocking the calling (worker) thread.
public protocol HTTPTransport: Sendable {
    func perform(_ request: HostHTTPRequest) throws -> HostHTTPResponse
}

public protocol SecretSource: Sendable {
    /// The value of a secret, or nil when it is not set.
    func value(of name: String) -> String?
}

/// Environment variables first, then the given values.
public struct EnvironmentSecrets: SecretSource {
    let environment: [String: String]
    let values: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, values: [String: String] = [:]) {
        self.environment = environment
        self.values = values
    }

    public func value(of name: String) -> String? { environment[name] ?? values[name] }
}

public protocol ArtifactSink: Sendable {
    /// Stores bytes, returns the hex sha256.
    func put(_ data: Data, mediaType: String) throws -> String
    /// The same, for a call made for `jobID` (the engine indexes it with the job's step).
    func put(_ data: Data, mediaType: String, jobID: String?) throws -> String
    func read(sha256: String) throws -> Data?
}

extension ArtifactSink {
    public func put(_ data: Data, mediaType: String, jobID: String?) throws -> String { try put(data, mediaType: mediaType) }
}

public protocol PluginKeyValueStore: Sendable {
    func get(pluginID: String, key: String) -> Data?
    func put(pluginID: String, key: String, value: Data, ttlMs: Int64)
    func remove(pluginID: String, key: String)
}

public final class MemoryKeyValueStore: PluginKeyValueStore, @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String: (Data, Date?)] = [:]
    private let clock: any HostClock

    public init(clock: any HostClock = SystemClock()) { self.clock = clock }

    private func now() -> Date { Date(timeIntervalSince1970: Double(clock.nowUnixMs()) / 1000) }

    public func get(pluginID: String, key: String) -> Data? {
        lock.withLock {
            guard let (value, expiry) = values[pluginID + "\u{0}" + key] else { return nil }
            if let expiry, expiry <= now() { return nil }
            return value
        }
    }

    public func put(pluginID: String, key: String, value: Data, ttlMs: Int64) {
        let expiry = ttlMs > 0 ? now().addingTimeInterval(Double(ttlMs) / 1000) : nil
        lock.withLock { values[pluginID + "\u{0}" + key] = (value, expiry) }
    }

    public func remove(pluginID: String, key: String) {
        _ = lock.withLock { values.removeValue(forKey: pluginID + "\u{0}" + key) }
    }
}

/// What a host offers its plugins. A nil member is a service the host does
/// not offer: get_service answers NULL for it.
public struct HostServiceSet: Sendable {
    public var log: (any HostLogSink)?
    public var clock: (any HostClock)?
    public var http: (any HTTPTransport)?
    public var secrets: (any SecretSource)?
    public var artifacts: (any ArtifactSink)?
    public var kv: (any PluginKeyValueStore)?
    public var crypto: Bool
    /// sy.process/1: child processes from the manifest's processes allow-list.
    public var process: HostProcessService?

    public init(log: (any HostLogSink)? = nil, clock: (any HostClock)? = SystemClock(), http: (any HTTPTransport)? = nil,
                secrets: (any SecretSource)? = nil, artifacts: (any ArtifactSink)? = nil,
                kv: (any PluginKeyValueStore)? = nil, crypto: Bool = true, process: HostProcessService? = nil) {
        self.log = log
        self.clock = clock
        self.http = http
        self.secrets = secrets
        self.artifacts = artifacts
        self.kv = kv
        self.crypto = crypto
        self.process = process
    }

    /// No services at all: how `plugin test` checks that a plugin copes.
    public static var none: HostServiceSet {
        HostServiceSet(log: nil, clock: nil, http: nil, secrets: nil, artifacts: nil, kv: nil, crypto: false)
    }
}
