import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

struct DroppedConnection: Error {}

/// A real HTTP server on 127.0.0.1 with an ephemeral port, answering from a
/// script: each request goes to `respond`, which returns status, headers and
/// body. Records every request so a test can count what a provider saw. The
/// base of the provider stand-ins.
public final class ScriptedHTTPServer: @unchecked Sendable {
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var query: String
        public var headers: [String: String]
        public var body: Data
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: ResponseBody

        public enum ResponseBody: Sendable {
            /// Bytes the body promises (its Content-Length).
            var length: Int {
                switch self {
                case .bytes(let data): return data.count
                case .generated(let count): return count
                case .paced(let data, _, _): return data.count
                }
            }

            case bytes(Data)
            /// `count` bytes of a repeating pattern, streamed in chunks (large artifacts).
            case generated(count: Int)
            /// `data` in chunks: at most `bytesPerSecond` (nil: at once), and,
            /// with `dropAfter`, the connection closes after that many bytes of
            /// the promised Content-Length (a dropped connection mid-response).
            case paced(Data, bytesPerSecond: Int?, dropAfter: Int?)
        }

        public init(status: Int, headers: [String: String] = [:], body: Data, bytesPerSecond: Int?, dropAfter: Int?) {
            self.status = status
            self.headers = headers
            self.body = bytesPerSecond == nil && dropAfter == nil ? .bytes(body) : .paced(body, bytesPerSecond: bytesPerSecond, dropAfter: dropAfter)
        }

        public init(status: Int, headers: [String: String] = [:], body: Data = Data()) {
            self.status = status
            self.headers = headers
            self.body = .bytes(body)
        }

        public init(status: Int, headers: [String: String] = [:], generatedBytes: Int) {
            self.status = status
            self.headers = headers
            self.body = .generated(count: generatedBytes)
        }

        /// This answer, cut off after `bytes` bytes of its body.
        public func dropped(after bytes: Int) -> Response {
            var copy = self
            if case .bytes(let data) = body { copy.body = .paced(data, bytesPerSecond: nil, dropAfter: min(bytes, max(0, data.count - 1))) }
            return copy
        }

        /// Headers and the start of a longer announced body, then a dropped connection.
        public init(status: Int, headers: [String: String] = [:], droppedAfter partial: Data) {
            self.status = status
            self.headers = headers
            self.body = .paced(partial + Data(count: 4096), bytesPerSecond: nil, dropAfter: partial.count)
        }

        public static func json(_ object: Any, status: Int = 200) -> Response {
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return Response(status: status, headers: ["content-type": "application/json"], body: data)
        }
    }

    private let lock = NSLock()
    private var recorded: [Request] = []
    private var task: Task<Void, Error>?
    public private(set) var port = 0
    let respond: @Sendable (Request) -> Response

    public init(respond: @escaping @Sendable (Request) -> Response) {
        self.respond = respond
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }
    public var requests: [Request] { lock.withLock { recorded } }

    /// Starts listening on 127.0.0.1 (`port` 0: an ephemeral one); returns once bound.
    public func start(port requested: Int = 0) async throws {
        let router = Router()
        let handler: @Sendable (Hummingbird.Request, BasicRequestContext) async throws -> Hummingbird.Response = { [self] request, _ in
            let body = try await request.body.collect(upTo: 64 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            // HTTPTypes carries Host as the :authority pseudo-header.
            if let authority = request.head.authority { headers["host"] = authority }
            let incoming = Request(method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "",
                                   headers: headers, body: Data(body.readableBytesView))
            lock.withLock { recorded.append(incoming) }
            let answer = respond(incoming)
            var fields = HTTPFields()
            for (name, value) in answer.headers { if let field = HTTPField.Name(name) { fields[field] = value } }
            if incoming.method == "HEAD" {
                // What GET would send, without the body.
                if fields[.contentLength] == nil { fields[.contentLength] = String(answer.body.length) }
                return Hummingbird.Response(status: .init(code: answer.status), headers: fields, body: .init())
            }
            switch answer.body {
            case .bytes(let data):
                return Hummingbird.Response(status: .init(code: answer.status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
            case .paced(let data, let rate, let dropAfter):
                fields[.contentLength] = String(data.count)
                return Hummingbird.Response(status: .init(code: answer.status), headers: fields, body: .init { writer in
                    let chunk = 32 << 10
                    var offset = 0
                    while offset < min(data.count, dropAfter ?? .max) {
                        let end = min(data.count, offset + chunk, dropAfter ?? .max)
                        try await writer.write(ByteBuffer(bytes: data[offset..<end]))
                        if let rate, rate > 0 { try await Task.sleep(nanoseconds: UInt64(Double(end - offset) / Double(rate) * 1e9)) }
                        offset = end
                    }
                    // Throwing mid-body makes the server close the connection short of Content-Length.
                    if let dropAfter, dropAfter < data.count { throw DroppedConnection() }
                    try await writer.finish(nil)
                })
            case .generated(let count):
                fields[.contentLength] = String(count)
                return Hummingbird.Response(status: .init(code: answer.status), headers: fields, body: .init { writer in
                    let chunk = ByteBuffer(bytes: (0..<(1 << 16)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
                    var left = count
                    while left > 0 {
                        let n = min(left, chunk.readableBytes)
                        try await writer.write(chunk.getSlice(at: 0, length: n)!)
                        left -= n
                    }
                    try await writer.finish(nil)
                })
            }
        }
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .head] {
            router.on("**", method: method, use: handler)
        }
        let bound = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "scripted-http-server")
        logger.logLevel = .critical // shutdown races are expected in tests
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: requested)),
                              onServerRunning: { channel in bound.continuation.yield(channel.localAddress?.port ?? 0) },
                              logger: logger)
        task = Task { try await app.runService() }
        for await port in bound.stream {
            self.port = port
            break
        }
    }

    /// Returns when the server stops (after stop(), or SIGTERM/SIGINT, which the
    /// service lifecycle turns into a graceful shutdown).
    public func waitUntilStopped() async {
        _ = try? await task?.value
    }

    public func stop() async {
        task?.cancel()
        _ = try? await task?.value
    }
}
