import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
#if canImport(Glibc)
import Glibc
#endif

/// sy.http/1's transport: AsyncHTTPClient, driven synchronously because plugin
/// calls run on the host's worker threads (never on the async cooperative
/// pool, where blocking would starve the whole host). Redirects are not
/// followed: the plugin gets the 3xx and must request the new location
/// through sy.http/1 again, where the allow-list applies to it.
public final class BlockingHTTPTransport: HTTPTransport, @unchecked Sendable {
    let client: HTTPClient
    let defaultTimeout: TimeAmount
    let maxBodyBytes: Int

    static let sharedClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        // A refused connection is an answer ("not running"), given at once: AsyncHTTPClient
        // would otherwise retry it until the request's deadline. The engine retries polls itself.
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    public init(client: HTTPClient? = nil, defaultTimeoutMs: Int = 60_000, maxBodyBytes: Int = 64 << 20) {
        self.client = client ?? Self.sharedClient
        self.defaultTimeout = .milliseconds(Int64(defaultTimeoutMs))
        self.maxBodyBytes = maxBodyBytes
    }

    public func perform(_ request: HostHTTPRequest) throws -> HostHTTPResponse {
        // Refused before a name is looked up or a socket opened: the provider never saw it.
        do { try NetworkGuard.check(url: request.url) } catch { throw HostHTTPError.notSent("\(error)") }
        var outgoing = HTTPClientRequest(url: request.url)
        outgoing.method = HTTPMethod(rawValue: request.method.uppercased())
        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
        if let body = request.body { outgoing.body = .bytes(ByteBuffer(bytes: body)) }
        let timeout = request.timeoutMs.map { TimeAmount.milliseconds(Int64($0)) } ?? defaultTimeout
        let box = ResultBox()
        let semaphore = DispatchSemaphore(value: 0)
        let client = self.client, limit = maxBodyBytes
        Task {
            do {
                let response = try await client.execute(outgoing, timeout: timeout)
                let body = try await response.body.collect(upTo: limit)
                var headers: [String: String] = [:]
                for header in response.headers { headers[header.name.lowercased()] = header.value }
                box.result = .success(HostHTTPResponse(status: Int(response.status.code), headers: headers, body: Data(body.readableBytesView)))
            } catch let error as HTTPClientError where error == .connectTimeout {
                box.result = .failure(HostHTTPError.notSent(Self.plainReason(error)))
            } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
                box.result = .failure(HostHTTPError.timeout)
            } catch {
                box.result = .failure(Self.neverSent(error) ? HostHTTPError.notSent(Self.plainReason(error)) : HostHTTPError.failed(Self.plainReason(error)))
            }
            semaphore.signal()
        }
        semaphore.wait()
        return try box.result!.get()
    }

    /// Errors raised while connecting, before a byte of the request was written.
    static func neverSent(_ error: Error) -> Bool {
        let kind = String(reflecting: type(of: error))
        let text = String(describing: error)
        return kind.contains("NIOConnectionError") || text.contains("connectionRefused") || text.contains("Connection refused")
    }

    /// A network failure as a person reads it ("connection refused"), not
    /// as NIO prints it ("connection reset (error set): Connection refused (errno: 111)").
    public static func plainReason(_ error: Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return "the connection timed out"
            case .readTimeout, .deadlineExceeded: return "the server did not answer in time"
            case .remoteConnectionClosed: return "the server closed the connection"
            case .cancelled: return "the request was cancelled"
            case .bodyLengthMismatch: return "the answer was cut short"
            default: break
            }
        }
        let text = String(describing: error)
        if text.contains("dnsAError: Optional") || text.contains("dnsAAAAError: Optional") || text.contains("NXDOMAIN") {
            return "the host name could not be resolved"
        }
        if let range = text.range(of: #"errno: [0-9]+"#, options: .regularExpression),
           let code = Int32(text[range].dropFirst("errno: ".count)), let cText = strerror(code) {
            return String(cString: cText).lowercased()
        }
        if text.contains("NIOSSL") || text.lowercased().contains("handshake") { return "the TLS handshake failed" }
        if text.lowercased().contains("connection reset") { return "the connection was reset" }
        return text
    }

    final class ResultBox: @unchecked Sendable {
        var result: Result<HostHTTPResponse, Error>?
    }
}
