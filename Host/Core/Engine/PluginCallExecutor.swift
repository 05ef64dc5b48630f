import Foundation

/// Runs blocking plugin calls on the host's own threads. Plugin calls block
/// (sy.http/1 waits for its answer); on Swift concurrency's cooperative pool a
/// few of them would starve the whole host on a 2-core machine, so async
/// callers hop to a dedicated queue and back.
public final class PluginCallExecutor: Sendable {
    let queue = DispatchQueue(label: "switchyard.plugin-calls", qos: .userInitiated, attributes: .concurrent)

    /// The host's one pool for blocking plugin work.
    public static let shared = PluginCallExecutor()

    public init() {}

    public func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: work()) }
        }
    }

    /// Like `run`, but answers `onTimeout` once `timeoutMs` have passed. The
    /// work cannot be stopped (it is code in this process): it goes on on its
    /// thread and its late result is dropped.
    /// `onTimeout` is built only when the deadline passes: most calls never need it.
    public func run<T: Sendable>(timeoutMs: Int, onTimeout: @autoclosure @escaping @Sendable () -> T, _ work: @escaping @Sendable () -> T) async -> T {
        let once = ResumeOnce<T>()
        return await withCheckedContinuation { continuation in
            once.set(continuation)
            let deadline = CallDeadlines.shared.schedule(afterMs: timeoutMs) { once.resume(onTimeout()) }
            queue.async {
                let value = work()
                CallDeadlines.shared.cancel(deadline)
                once.resume(value)
            }
        }
    }
}

/// The deadlines of calls in flight, checked by one timer that ticks only
/// while some call is in flight: thousands of polls a second cost one
/// dictionary entry each while they run, not one timer each.
final class CallDeadlines: @unchecked Sendable {
    static let shared = CallDeadlines()
    /// Deadlines are honoured within this many milliseconds.
    static let tickMs = 10

    private let lock = NSLock()
    private var entries: [UInt64: (deadline: UInt64, action: @Sendable () -> Void)] = [:]
    private var nextID: UInt64 = 0
    private var timer: DispatchSourceTimer?
    private let queue = DispatchQueue(label: "switchyard.call-deadlines", qos: .userInitiated)

    /// Runs `action` once `ms` have passed, unless cancelled first.
    func schedule(afterMs ms: Int, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(ms, 0)) * 1_000_000
        return lock.withLock {
            nextID += 1
            entries[nextID] = (deadline, action)
            if timer == nil {
                let source = DispatchSource.makeTimerSource(queue: queue)
                source.schedule(deadline: .now() + .milliseconds(Self.tickMs), repeating: .milliseconds(Self.tickMs), leeway: .milliseconds(2))
                source.setEventHandler { [weak self] in self?.tick() }
                source.resume()
                timer = source
            }
            return nextID
        }
    }

    func cancel(_ id: UInt64) {
        _ = lock.withLock { entries.removeValue(forKey: id) }
    }

    private func tick() {
        let now = DispatchTime.now().uptimeNanoseconds
        let due: [@Sendable () -> Void] = lock.withLock {
            let expired = entries.filter { $0.value.deadline <= now }
            for id in expired.keys { entries.removeValue(forKey: id) }
            if entries.isEmpty {
                timer?.cancel()
                timer = nil
            }
            return expired.values.map(\.action)
        }
        for action in due { action() }
    }
}

/// Resumes a continuation with whichever value comes first.
final class ResumeOnce<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, Never>?

    func set(_ continuation: CheckedContinuation<T, Never>) { lock.withLock { self.continuation = continuation } }

    func resume(_ value: T) {
        let waiting: CheckedContinuation<T, Never>? = lock.withLock {
            defer { continuation = nil }
            return continuation
        }
        waiting?.resume(returning: value)
    }
}

/// Bounds the calls in flight to one adapter (plugin.json max_concurrency).
actor ConcurrencyGate {
    private let limit: Int
    private var inFlight = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = max(1, limit) }

    func acquire() async {
        if inFlight < limit { inFlight += 1; return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty { inFlight -= 1 } else { waiters.removeFirst().resume() }
    }
}
