import CPluginAPI
import Foundation

/// The host services available to one call. Every service may be absent (the
/// host decides what it offers); wrappers then throw SERVICE_UNAVAILABLE, so
/// an adapter reports a clear error instead of crashing.
///
/// Valid only during the call that received it: do not store it.
public struct HostContext: @unchecked Sendable {
    let call: UnsafePointer<sy_call_t>
    let host: UnsafePointer<sy_host_t>

    init(call: UnsafePointer<sy_call_t>) {
        self.call = call
        self.host = call.pointee.host
    }

    /// The job this call serves, or empty outside a job.
    public var jobID: String { String(syStr: call.pointee.job_id) }

    /// A host service table, or nil when the host lacks it or hands out a
    /// table smaller than v1.0's (a later host appends fields; a smaller one is
    /// not a table this SDK can call into).
    func service<T>(_ id: String, as type: T.Type) -> UnsafePointer<T>? {
        guard host.pointee.struct_size >= UInt32(SY_HOST_V1_0_SIZE), let getService = host.pointee.get_service,
              let minimum = FrozenLayout.serviceV1_0Sizes[id],
              let raw = id.withSyStr({ getService(host, $0) }),
              raw.load(as: UInt32.self) >= UInt32(minimum) else { return nil }
        return raw.assumingMemoryBound(to: T.self)
    }

    static func unavailable(_ id: String) -> PluginError {
        PluginError(code: "SERVICE_UNAVAILABLE", message: "The host does not offer \(id) to this plugin.",
                    remediation: "Run the plugin in a host that provides \(id), or use a capability that does not need it.")
    }

    // MARK: sy.log/1

    public enum LogLevel: Int32, Sendable { case debug = 0, info = 1, warning = 2, error = 3 }

    /// Logs a line into the job's events. Never log secret values.
    public func log(_ level: LogLevel, _ message: String) {
        guard let svc = service(SY_SERVICE_LOG, as: sy_service_log_t.self), let fn = svc.pointee.log else { return }
        message.withSyStr { fn(call, level.rawValue, $0) }
    }

    // MARK: sy.clock/1

    /// Wall-clock milliseconds since the epoch, from the host's (possibly virtual) clock.
    public func nowUnixMs() -> Int64 {
        guard let svc = service(SY_SERVICE_CLOCK, as: sy_service_clock_t.self), let fn = svc.pointee.now_unix_ms else {
            return Int64(Date().timeIntervalSince1970 * 1000)
        }
        return fn(call)
    }

    // MARK: sy.http/1

    public func http(_ request: HTTPRequest) throws -> HTTPResponse {
        guard let svc = service(SY_SERVICE_HTTP, as: sy_service_http_t.self), let fn = svc.pointee.request else {
            throw Self.unavailable(SY_SERVICE_HTTP)
        }
        let body = try JSONEncoder().encode(request)
        let (status, out) = SinkBuffer.collect { sink in body.withSyStr { fn(call, $0, sink) } }
        switch status {
        case SY_OK:
            return try JSONDecoder().decode(HTTPResponse.self, from: out)
        case SY_E_DENIED:
            throw PluginError(code: "NETWORK_DENIED",
                              message: "The host refused a request to \(request.url): the host is not in this plugin's network allow-list.",
                              remediation: "Add the host to network.hosts in plugin.json, or fix the configured base URL.",
                              field: "$.config")
        case SY_E_TIMEOUT:
            throw PluginError(code: "ENGINE_TIMEOUT", message: "No answer from \(request.url) in time.",
                              remediation: "Retry later; check the engine's status.", retryable: true, charged: .unknown)
        default:
            if let doc = try? JSONDecoder().decode(ErrorDocument.self, from: out) { throw doc.error }
            throw PluginError(code: "ENGINE_UNREACHABLE", message: "Request to \(request.url) failed (status \(status)).",
                              remediation: "Check the network and the engine's base URL.", retryable: true, charged: .unknown)
        }
    }

    // MARK: sy.secrets/1

    /// The value of a secret declared in plugin.json, or nil when it is not set.
    public func secret(_ name: String) throws -> String? {
        guard let svc = service(SY_SERVICE_SECRETS, as: sy_service_secrets_t.self), let fn = svc.pointee.get else {
            throw Self.unavailable(SY_SERVICE_SECRETS)
        }
        let (status, out) = SinkBuffer.collect { sink in name.withSyStr { fn(call, $0, sink) } }
        switch status {
        case SY_OK: return String(decoding: out, as: UTF8.self)
        case SY_E_NOT_FOUND: return nil
        default:
            throw PluginError(code: "SECRET_DENIED", message: "The host refused secret \(name): plugin.json does not declare it.",
                              remediation: "Declare \(name) under secrets in plugin.json.")
        }
    }

    // MARK: sy.artifacts/1

    /// Stores bytes in the host's content-addressed store; returns the handle ("sha256:...").
    public func putArtifact(_ data: Data, mediaType: String) throws -> ArtifactHandle {
        guard let svc = service(SY_SERVICE_ARTIFACTS, as: sy_service_artifacts_t.self), let fn = svc.pointee.put else {
            throw Self.unavailable(SY_SERVICE_ARTIFACTS)
        }
        let (status, out) = SinkBuffer.collect { sink in
            mediaType.withSyStr { mt in data.withUnsafeBytes { fn(call, mt, $0.baseAddress, $0.count, sink) } }
        }
        return try Self.decodeHandle(status, out)
    }

    /// Downloads a URL into the artifact store (allow-list applies).
    public func downloadArtifact(url: String, headers: [String: String] = [:], mediaType: String? = nil,
                                 sha256: String? = nil) throws -> ArtifactHandle {
        guard let svc = service(SY_SERVICE_ARTIFACTS, as: sy_service_artifacts_t.self), let fn = svc.pointee.download else {
            throw Self.unavailable(SY_SERVICE_ARTIFACTS)
        }
        var doc: [String: JSONValue] = ["url": .string(url), "headers": .object(headers.mapValues { .string($0) })]
        if let mediaType { doc["media_type"] = .string(mediaType) }
        if let sha256 { doc["sha256"] = .string(sha256) }
        let body = try JSONEncoder().encode(doc)
        let (status, out) = SinkBuffer.collect { sink in body.withSyStr { fn(call, $0, sink) } }
        return try Self.decodeHandle(status, out)
    }

    public func readArtifact(_ handle: String) throws -> Data {
        guard let svc = service(SY_SERVICE_ARTIFACTS, as: sy_service_artifacts_t.self), let fn = svc.pointee.read else {
            throw Self.unavailable(SY_SERVICE_ARTIFACTS)
        }
        let (status, out) = SinkBuffer.collect { sink in handle.withSyStr { fn(call, $0, sink) } }
        guard status == SY_OK else {
            throw PluginError(code: "ARTIFACT_NOT_FOUND", message: "No artifact \(handle) in the host's store.",
                              remediation: "Pass an artifact handle the host gave you.")
        }
        return out
    }

    static func decodeHandle(_ status: sy_status_t, _ out: Data) throws -> ArtifactHandle {
        guard status == SY_OK else {
            if let doc = try? JSONDecoder().decode(ErrorDocument.self, from: out) { throw doc.error }
            throw PluginError(code: "ARTIFACT_FAILED", message: "The host could not store the artifact (status \(status)).",
                              remediation: "See the job's events for the host's reason.", retryable: true)
        }
        return try JSONDecoder().decode(ArtifactHandle.self, from: out)
    }

    // MARK: sy.crypto/1

    public func sha256(_ data: Data) throws -> Data {
        guard let svc = service(SY_SERVICE_CRYPTO, as: sy_service_crypto_t.self), let fn = svc.pointee.sha256 else {
            throw Self.unavailable(SY_SERVICE_CRYPTO)
        }
        return SinkBuffer.collect { sink in data.withSyStr { fn(call, $0, sink) } }.1
    }

    public func hmacSHA256(key: Data, data: Data) throws -> Data {
        guard let svc = service(SY_SERVICE_CRYPTO, as: sy_service_crypto_t.self), let fn = svc.pointee.hmac_sha256 else {
            throw Self.unavailable(SY_SERVICE_CRYPTO)
        }
        return SinkBuffer.collect { sink in key.withSyStr { k in data.withSyStr { fn(call, k, $0, sink) } } }.1
    }

    public func ed25519Verify(publicKey: Data, signature: Data, message: Data) throws -> Bool {
        guard let svc = service(SY_SERVICE_CRYPTO, as: sy_service_crypto_t.self), let fn = svc.pointee.ed25519_verify else {
            throw Self.unavailable(SY_SERVICE_CRYPTO)
        }
        let status = publicKey.withSyStr { k in signature.withSyStr { s in message.withSyStr { fn(call, k, s, $0) } } }
        return status == SY_OK
    }

    /// A compact HS256 JWT over `claims`, signed with `secret`.
    public func jwtHS256(claims: [String: JSONValue], secret: String) throws -> String {
        guard let svc = service(SY_SERVICE_CRYPTO, as: sy_service_crypto_t.self), let fn = svc.pointee.jwt_hs256 else {
            throw Self.unavailable(SY_SERVICE_CRYPTO)
        }
        let body = try JSONEncoder().encode(claims)
        let out = SinkBuffer.collect { sink in body.withSyStr { c in secret.withSyStr { fn(call, c, $0, sink) } } }.1
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: sy.kv/1

    public func kvGet(_ key: String) throws -> Data? {
        guard let svc = service(SY_SERVICE_KV, as: sy_service_kv_t.self), let fn = svc.pointee.get else {
            throw Self.unavailable(SY_SERVICE_KV)
        }
        let (status, out) = SinkBuffer.collect { sink in key.withSyStr { fn(call, $0, sink) } }
        return status == SY_OK ? out : nil
    }

    public func kvPut(_ key: String, _ value: Data, ttlMs: Int64 = 0) throws {
        guard let svc = service(SY_SERVICE_KV, as: sy_service_kv_t.self), let fn = svc.pointee.put else {
            throw Self.unavailable(SY_SERVICE_KV)
        }
        let status = key.withSyStr { k in value.withSyStr { fn(call, k, $0, ttlMs) } }
        guard status == SY_OK else {
            throw PluginError(code: "KV_FAILED", message: "The host refused to store key \(key) (status \(status)).",
                              remediation: "Keep values under 1 MiB.")
        }
    }
}

public struct ArtifactHandle: Codable, Sendable, Hashable {
    public var artifact: String
    public var size: Int
    public var mediaType: String?

    enum CodingKeys: String, CodingKey {
        case artifact, size
        case mediaType = "media_type"
    }
}

public struct HTTPRequest: Codable, Sendable {
    public var method: String
    public var url: String
    public var headers: [String: String]
    public var body: String?
    public var bodyBase64: String?
    public var timeoutMs: Int?

    public init(method: String, url: String, headers: [String: String] = [:], body: String? = nil,
                bodyData: Data? = nil, timeoutMs: Int? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.bodyBase64 = bodyData?.base64EncodedString()
        self.timeoutMs = timeoutMs
    }

    enum CodingKeys: String, CodingKey {
        case method, url, headers, body
        case bodyBase64 = "body_base64"
        case timeoutMs = "timeout_ms"
    }
}

public struct HTTPResponse: Codable, Sendable {
    public var status: Int
    /// Lower-case header names.
    public var headers: [String: String]
    public var bodyBase64: String

    public var body: Data { Data(base64Encoded: bodyBase64) ?? Data() }

    public func decodeJSON<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: body)
    }

    enum CodingKeys: String, CodingKey {
        case status, headers
        case bodyBase64 = "body_base64"
    }
}

struct ErrorDocument: Codable {
    var error: PluginError
}
