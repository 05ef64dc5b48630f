import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardHost
import ServiceLifecycle
import SwitchyardJSON

/// Server-Sent Events from the job event log, fed by the server's one
/// `EventBroadcaster`. Each progress event's `id:` is its row id in the log,
/// so a client that reconnects with `Last-Event-ID` gets exactly what it
/// missed, across restarts. A job's stream ends at the event that finished
/// the job, with a `job` event carrying the finished job; a run's stream
/// carries its step jobs' events and a `run` event at each change of the
/// run, and ends with the finished run; the account's stream runs until the
/// client leaves.
enum EventStream {
    static func frame(id: Int64?, event: String, data: JSONValue) -> ByteBuffer {
        var text = ""
        if let id { text += "id: \(id)\n" }
        text += "event: \(event)\ndata: \(String(decoding: data.serialized(), as: UTF8.self))\n\n"
        return ByteBuffer(string: text)
    }

    static func progressView(_ live: LiveEvent) -> JSONValue {
        guard let event = live.event, case .object(var view) = APIRoutes.eventView(event) else { return .null }
        if let run = live.runID { view["run_id"] = .string(run) }
        return .object(view)
    }

    /// - closing: for a job's or run's stream, the frame that ends it when the
    ///   job or run is finished now (nil while it is not).
    /// - runView: the data of a `run` frame.
    static func response(channel: any Channel, broadcaster: EventBroadcaster, pool: DatabasePool, filter: StreamFilter, after: Int64,
                         closing: @escaping @Sendable () throws -> (event: String, data: JSONValue)?,
                         runView: @escaping @Sendable (String) throws -> JSONValue?) -> Response {
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache", HTTPField.Name("X-Accel-Buffering")!: "no"]
        let endsBySubject = filter.jobID != nil || filter.runID != nil
        let body = ResponseBody { writer in
            var last = after
            // Written first, so a client knows the stream is open before any event.
            try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))

            /// Writes a batch of events in one write; true when it ended the stream.
            func send(_ batch: [LiveEvent]) async throws -> Bool {
                var out = ByteBuffer()
                var ended = false
                for live in batch {
                    if let id = live.id {
                        guard id > last else { continue }
                        var shared = live.frame ?? frame(id: id, event: "progress", data: progressView(live))
                        out.writeBuffer(&shared)
                        last = id
                        if filter.jobID != nil, live.endsJob, let end = try closing() {
                            var closing = frame(id: nil, event: end.event, data: end.data)
                            out.writeBuffer(&closing)
                            ended = true
                            break
                        }
                    } else if let runID = live.runID {
                        if filter.runID != nil, live.endsRun, let end = try closing() {
                            var closing = frame(id: nil, event: end.event, data: end.data)
                            out.writeBuffer(&closing)
                            ended = true
                            break
                        }
                        if let view = try runView(runID) {
                            var change = frame(id: nil, event: "run", data: view)
                            out.writeBuffer(&change)
                        }
                    }
                }
                if out.readableBytes > 0 { try await writer.write(out) }
                return ended
            }

            let current = CurrentSubscription()
            try await withGracefulShutdownHandler {
            streaming: while true {
                // Subscribed before the replay, so nothing falls between the two.
                let subscription = broadcaster.subscribe(filter)
                defer { subscription.end() }
                guard current.set(subscription) else { break streaming }
                // A client that hangs up ends its subscription at once, not at the next keep-alive.
                channel.closeFuture.whenComplete { _ in subscription.end() }
                var page: [LiveEvent]
                repeat {
                    let from = last
                    page = try EventBroadcaster.replayBlocking(pool, after: from, filter: filter, limit: 500)
                    if try await send(page) { break streaming }
                } while page.count == 500
                if endsBySubject, let end = try closing() {
                    // Finished before (or without) an event that says so here.
                    try await writer.write(frame(id: nil, event: end.event, data: end.data))
                    break streaming
                }
                let batches = subscription.batches
                for await batch in batches {
                    // Until the subject ends, the client leaves (its connection closes) or the server shuts down.
                    if !channel.isActive || Task.isCancelled || Task.isShuttingDownGracefully { break streaming }
                    if batch.isEmpty {
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                        continue
                    }
                    if try await send(batch) { break streaming }
                }
                // The subscription ended: this client fell behind (catch up from the log and listen again), or the server stops.
                guard subscription.overflowed, channel.isActive, !Task.isShuttingDownGracefully else { break }
            }
            } onGracefulShutdown: {
                // The server is stopping: end the stream now, not at the next keep-alive.
                current.stop()
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}

/// The subscription a stream listens on now, so a graceful shutdown can end it from outside.
final class CurrentSubscription: @unchecked Sendable {
    private let lock = NSLock()
    private var subscription: EventBroadcaster.Subscription?
    private var stopped = false

    /// False once the server stops: the stream must not listen again.
    func set(_ next: EventBroadcaster.Subscription) -> Bool {
        lock.withLock {
            subscription = next
            return !stopped
        }
    }

    func stop() {
        let last = lock.withLock { () -> EventBroadcaster.Subscription? in
            stopped = true
            return subscription
        }
        last?.end()
    }
}
