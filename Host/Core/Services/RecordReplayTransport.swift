import Foundation

/// One exchange of sy.http/1 traffic, as stored on disk (JSON lines).
public struct RecordedExchange: Codable, Sendable {
    public var method: String
    public var url: String
    public var requestBodyBase64: String?
    public var status: Int
    public var headers: [String: String]
    public var bodyBase64: String

    enum CodingKeys: String, CodingKey {
        case method, url, status, headers
        case requestBodyBase64 = "request_body_base64"
        case bodyBase64 = "body_base64"
    }
}

/// Records every exchange through another transport to a JSONL file, with
/// secret values redacted from URLs, request bodies and answers, so a
/// recorded session can be committed as a test fixture.
public final class RecordingTransport: HTTPTransport, @unchecked Sendable {
    let inner: any HTTPTransport
    let file: URL
    let redact: @Sendable (String) -> String
    private let lock = NSLock()

    public init(wrapping inner: any HTTPTransport, to file: URL, redact: @escaping @Sendable (String) -> String = { $0 }) {
        self.inner = inner
        self.file = file
        self.redact = redact
    }

    public func perform(_ request: HostHTTPRequest) throws -> HostHTTPResponse {
        let response = try inner.perform(request)
        let scrub: (Data) -> String = { data in
            let text = String(decoding: data, as: UTF8.self)
            let cleaned = self.redact(text)
            return (cleaned == text ? data : Data(cleaned.utf8)).base64EncodedString()
        }
        let exchange = RecordedExchange(method: request.method.uppercased(), url: redact(request.url),
                                        requestBodyBase64: request.body.map(scrub), status: response.status,
                                        headers: response.headers.mapValues(redact), bodyBase64: scrub(response.body))
        var line = try JSONEncoder().encode(exchange)
        line.append(0x0A)
        try lock.withLock {
            if !FileManager.default.fileExists(atPath: file.path) {
                try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
                FileManager.default.createFile(atPath: file.path, contents: nil)
            }
            let handle = try FileHandle(forWritingTo: file)
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: line)
        }
        return response
    }
}

/// Answers from a recording, without any network: each request takes the
/// next unused exchange with the same method and URL. A request the
/// recording lacks fails loudly, so a test notices when an adapter's traffic changes.
public final class ReplayTransport: HTTPTransport, @unchecked Sendable {
    private var exchanges: [RecordedExchange]
    private var used: [Bool]
    private let lock = NSLock()

    public init(file: URL) throws {
        let text = try String(contentsOf: file, encoding: .utf8)
        exchanges = try text.split(separator: "\n").map { try JSONDecoder().decode(RecordedExchange.self, from: Data($0.utf8)) }
        used = Array(repeating: false, count: exchanges.count)
    }

    public var unused: Int { lock.withLock { used.filter { !$0 }.count } }

    public func perform(_ request: HostHTTPRequest) throws -> HostHTTPResponse {
        try lock.withLock {
            guard let index = exchanges.indices.first(where: { !used[$0] && exchanges[$0].method == request.method.uppercased() && exchanges[$0].url == request.url }) else {
                throw HostHTTPError.failed("no recorded exchange left for \(request.method) \(request.url)")
            }
            used[index] = true
            let exchange = exchanges[index]
            return HostHTTPResponse(status: exchange.status, headers: exchange.headers, body: Data(base64Encoded: exchange.bodyBase64) ?? Data())
        }
    }
}
