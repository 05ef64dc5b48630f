import Foundation

/// Runs blocking plugin calls on the host's own threads. Plugin calls block
/// (sy.http/1 waits for its answer); on Swift concurrency's cooperative pool a
/// few of them would starve the whole host on a 2-core machine, so async
/// callers hop to a dedicated queue and back.
public final class PluginCallExecutor: Sendable {
    let queue = DispatchQueue(label: "switchyard.plugin-calls", qos: .userInitiated, attributes: .concurrent)

    public init() {}

    public func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: work()) }
        }
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
