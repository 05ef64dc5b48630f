import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardHost
import ServiceLifecycle
import SwitchyardJSON

/// Server-Sent Events from the job event log. Each event's `id:` is its row
/// id in the log, so a client that reconnects with `Last-Event-ID` gets
/// exactly what it missed. A job's stream ends with a `job` event carrying
/// the finished job; the account's stream runs until the client leaves.
enum EventStream {
    /// A comment line this often keeps proxies from closing a quiet stream.
    static let heartbeatSeconds: Double = 5

    static func frame(id: Int64?, event: String, data: JSONValue) -> ByteBuffer {
        var text = ""
        if let id { text += "id: \(id)\n" }
        text += "event: \(event)\ndata: \(String(decoding: data.serialized(), as: UTF8.self))\n\n"
        return ByteBuffer(string: text)
    }

    static func response(channel: any Channel, store: APIStore, engine: JobEngine, account: String, jobID: String?, after: Int64, pollInterval: Double,
                         view: @escaping @Sendable (JobRecord) -> JSONValue) -> Response {
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache", HTTPField.Name("X-Accel-Buffering")!: "no"]
        let body = ResponseBody { writer in
            var last = after
            var quiet: Double = 0
            // Written first, so a client knows the stream is open before any event.
            try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
            // Until the job ends, the client leaves (its connection closes) or the server shuts down.
            while !Task.isCancelled, channel.isActive, !Task.isShuttingDownGracefully {
                let events = try store.events(account: account, jobID: jobID, afterID: last)
                for event in events {
                    try await writer.write(frame(id: event.id, event: "progress", data: APIRoutes.eventView(event)))
                    last = max(last, event.id ?? last)
                }
                if let jobID, events.isEmpty, let job = try engine.store.job(id: jobID), job.phase.isTerminal {
                    // Nothing after the last event, and the job is over: say how it ended, and close.
                    if try store.events(account: account, jobID: jobID, afterID: last).isEmpty {
                        try await writer.write(frame(id: nil, event: "job", data: view(job)))
                        break
                    }
                }
                if events.isEmpty {
                    quiet += pollInterval
                    if quiet >= heartbeatSeconds {
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                        quiet = 0
                    }
                    try await Task.sleep(nanoseconds: UInt64(pollInterval * 1e9))
                } else {
                    quiet = 0
                }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}
