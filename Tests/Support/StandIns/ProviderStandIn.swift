import Foundation
import SwitchyardHost

/// What every provider stand-in shares: a scripted server on loopback that
/// answers through `handle`, a virtual clock, and start/stop.
public class ProviderStandIn: @unchecked Sendable {
    public let clock: VirtualClock
    var server: ScriptedHTTPServer!

    init(clock: VirtualClock) { self.clock = clock }

    public var port: Int { server.port }
    /// Every request the stand-in answered, in order.
    public var requestsSeen: [ScriptedHTTPServer.Request] { server.requests }

    public func start(port: Int = 0) async throws {
        server = ScriptedHTTPServer { [unowned self] request in self.handle(request) }
        try await server.start(port: port)
    }

    public func stop() async { await server?.stop() }
    public func waitUntilStopped() async { await server?.waitUntilStopped() }

    /// Moves virtual time, e.g. past a ttl or a result's retention.
    public func advance(ms: Int64) { clock.advance(ms: ms) }

    /// Each provider's protocol; the base answers 501.
    func handle(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response { .init(status: 501) }
}
