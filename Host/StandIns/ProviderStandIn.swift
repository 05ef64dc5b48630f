import Foundation
import SwitchyardHost

/// A clock a stand-in's time is read from, which a test can move forward
/// (past a ttl, a result's retention, a job's run time).
public protocol AdjustableClock: HostClock, AnyObject {
    func advance(ms: Int64)
}

extension VirtualClock: AdjustableClock {}

/// Wall time plus whatever a test added with `advance`: the default clock
/// of every stand-in, so a stand-in left running (`yard standin …`) keeps
/// the provider's time — a real provider's clock does not stand still — while
/// a test can still jump ahead. Pass a VirtualClock for fully virtual time.
public final class WallClock: AdjustableClock, @unchecked Sendable {
    private let lock = NSLock()
    private var offsetMs: Int64 = 0

    public init() {}
    public func nowUnixMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) + lock.withLock { offsetMs } }
    public func monotonicNs() -> Int64 { Int64(DispatchTime.now().uptimeNanoseconds) + lock.withLock { offsetMs } * 1_000_000 }
    public func advance(ms: Int64) { lock.withLock { offsetMs += ms } }
}

/// What every provider stand-in shares: a scripted server on loopback that
/// answers through `handle`, a clock jobs advance by (reads never move a
/// job: a provider's state changes with time, not with being looked at),
/// and start/stop.
public class ProviderStandIn: @unchecked Sendable {
    public let clock: any AdjustableClock
    var server: ScriptedHTTPServer!

    init(clock: any AdjustableClock) { self.clock = clock }

    public var port: Int { server.port }
    /// Every request the stand-in answered, in order.
    public var requestsSeen: [ScriptedHTTPServer.Request] { server.requests }

    public func start(port: Int = 0) async throws {
        server = ScriptedHTTPServer { [unowned self] request in self.handle(request) }
        try await server.start(port: port)
    }

    public func stop() async { await server?.stop() }
    public func waitUntilStopped() async { await server?.waitUntilStopped() }

    /// Moves the stand-in's time, e.g. past a job's run time, a ttl or a result's retention.
    public func advance(ms: Int64) { clock.advance(ms: ms) }

    /// Each provider's protocol; the base answers 501.
    func handle(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response { .init(status: 501) }
}

/// How `yard standin …` announces itself: on stderr, written straight to the
/// file descriptor (no stdio buffer), so a script or a log sees the URL and
/// the setup lines at once, and stdout stays free for data.
public enum StandInBanner {
    public static func write(_ text: String) {
        FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }
}
