import CPluginAPI
import Crypto
import Foundation

/// The host side of one loaded plugin: its manifest (allow-list, declared
/// secrets, kv scope) and the services it was given. `sy_host_t.host_data`
/// points here.
public final class PluginContext: @unchecked Sendable {
    public let manifest: PluginManifest
    public let services: HostServiceSet
    private let lock = NSLock()
    private var denied: [String] = []
    private var requested: [String] = []
    private var leaks: [String] = []

    init(manifest: PluginManifest, services: HostServiceSet) {
        self.manifest = manifest
        self.services = services
    }

    /// URLs the plugin tried to reach outside its allow-list (each was refused).
    public var deniedRequests: [String] { lock.withLock { denied } }
    /// Hosts the plugin reached through sy.http/1.
    public var requestedHosts: [String] { lock.withLock { requested } }

    /// Names of secrets whose values the plugin tried to log (redacted before storage).
    public var secretLeaks: [String] { lock.withLock { leaks } }

    func noteDenied(_ url: String) { lock.withLock { denied.append(url) } }
    func noteLeak(_ names: [String]) { lock.withLock { leaks.append(contentsOf: names) } }
    func noteRequested(_ host: String) { lock.withLock { requested.append(host) } }

    /// Whether sy.http/1 may reach `url`: http(s) only, host in network.hosts
    /// (exact, or "*.example.com" for its subdomains).
    public func isAllowed(_ url: String) -> Bool {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = components.host?.lowercased(), !host.isEmpty else {
            return false
        }
        return manifest.network.hosts.contains { pattern in
            let pattern = pattern.lowercased()
            if pattern.hasPrefix("*.") { return host.hasSuffix(String(pattern.dropFirst(1))) }
            return host == pattern
        }
    }

    /// The values of every secret this plugin declares that is set, for redaction.
    func secretValues() -> [(String, String)] {
        guard let source = services.secrets else { return [] }
        return manifest.secrets.compactMap { secret in
            guard let value = source.value(of: secret.name), value.count >= 4 else { return nil }
            return (secret.name, value)
        }
    }

    /// Credentials the host saw pass for this plugin that are not declared
    /// secrets: authorization-style header values it sent through sy.http/1
    /// and tokens the host signed for it (a Kling JWT). The newest are kept.
    private var sensitive: [Redactor.Value] = []
    static let sensitiveLimit = 64

    func noteSensitive(_ value: String, name: String) {
        guard value.count >= Redactor.minimumLength else { return }
        lock.withLock {
            guard !sensitive.contains(where: { $0.value == value }) else { return }
            sensitive.append(Redactor.Value(name: name, value: value))
            if sensitive.count > Self.sensitiveLimit { sensitive.removeFirst(sensitive.count - Self.sensitiveLimit) }
        }
    }

    /// Records the credential headers of a request the plugin is sending.
    func noteSensitiveHeaders(_ headers: [String: String]) {
        for (name, value) in headers where Redactor.isCredentialHeader(name) {
            for credential in Redactor.credentials(inHeaderValue: value) { noteSensitive(credential, name: name.lowercased()) }
        }
    }

    /// The last redactor built, and what it was built from: rebuilt only
    /// when a secret's value or the credentials seen change.
    private var builtRedactor: (values: [Redactor.Value], redactor: Redactor)?

    public var redactor: Redactor {
        let values = secretValues().map { Redactor.Value(name: $0.0, value: $0.1) } + lock.withLock { sensitive }
        if let built = lock.withLock({ builtRedactor }), built.values == values { return built.redactor }
        let redactor = Redactor(values: values)
        lock.withLock { builtRedactor = (values, redactor) }
        return redactor
    }

    /// Replaces every known secret value, credential header and signed token
    /// in `text` (also fragments of them, and JWT-shaped text) with a marker.
    public func redact(_ text: String) -> String { redactor.redact(text) }
}

/// The context of one call into the plugin; `sy_call_t.host_data` points here.
final class CallContext: @unchecked Sendable {
    let plugin: PluginContext
    let jobID: String?

    init(plugin: PluginContext, jobID: String?) {
        self.plugin = plugin
        self.jobID = jobID
    }

    static func from(_ call: UnsafePointer<sy_call_t>?) -> CallContext? {
        guard let data = call?.pointee.host_data else { return nil }
        return Unmanaged<CallContext>.fromOpaque(data).takeUnretainedValue()
    }
}

func hostWrite(_ sink: UnsafePointer<sy_sink_t>?, _ data: Data) {
    // A sink smaller than v1.0's has no `write` we could trust: drop the answer.
    guard let sink, sink.pointee.struct_size >= UInt32(SY_SINK_V1_0_SIZE), let write = sink.pointee.write else { return }
    data.withUnsafeBytes { raw in write(sink, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count) }
}

func hostWrite(_ sink: UnsafePointer<sy_sink_t>?, json: Any) {
    if let data = try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]) { hostWrite(sink, data) }
}

func errorDocument(_ code: String, _ message: String, _ remediation: String, retryable: Bool = false, charged: String = "no") -> [String: Any] {
    ["error": ["code": code, "message": message, "remediation": remediation, "retryable": retryable, "charged": charged]]
}

extension String {
    init(syStr s: sy_str_t) {
        guard let data = s.data, s.size > 0 else { self = ""; return }
        self = String(decoding: UnsafeRawBufferPointer(start: data, count: s.size), as: UTF8.self)
    }
}

extension Data {
    init(syStr s: sy_str_t) {
        guard let data = s.data, s.size > 0 else { self = Data(); return }
        self = Data(bytes: data, count: s.size)
    }

    func withSyStr<R>(_ body: (sy_str_t) -> R) -> R {
        withUnsafeBytes { raw in body(sy_str_t(data: raw.baseAddress?.assumingMemoryBound(to: CChar.self), size: raw.count)) }
    }
}

extension Data {
    var hexString: String { map { String(format: "%02x", $0) }.joined() }
}

/// The C vtables of the host services: one static copy each, for every plugin.
/// Each function finds its plugin through the call context, so one table
/// serves all plugins while enforcing each one's manifest.
enum ServiceTables {
    /// scheme://host[:port] of a URL: what a connection error is about, without path or query.
    static func origin(_ url: String) -> String {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme, let host = parts.host else { return url }
        return "\(scheme)://\(host)\(parts.port.map { ":\($0)" } ?? "")"
    }

    static func keep<T>(_ value: T) -> UnsafeRawPointer {
        let p = UnsafeMutablePointer<T>.allocate(capacity: 1)
        p.initialize(to: value)
        return UnsafeRawPointer(p)
    }

    nonisolated(unsafe) static let log = keep(sy_service_log_t(struct_size: UInt32(MemoryLayout<sy_service_log_t>.size)) { call, level, message in
        guard let ctx = CallContext.from(call), let sink = ctx.plugin.services.log else { return }
        let raw = String(syStr: message)
        let leaked = ctx.plugin.secretValues().filter { raw.contains($0.1) }.map(\.0)
        if !leaked.isEmpty { ctx.plugin.noteLeak(leaked) }
        sink.record(pluginID: ctx.plugin.manifest.id, jobID: ctx.jobID, level: level, message: ctx.plugin.redact(raw))
    })

    nonisolated(unsafe) static let clock = keep(sy_service_clock_t(
        struct_size: UInt32(MemoryLayout<sy_service_clock_t>.size),
        now_unix_ms: { call in CallContext.from(call)?.plugin.services.clock?.nowUnixMs() ?? SystemClock().nowUnixMs() },
        monotonic_ns: { call in CallContext.from(call)?.plugin.services.clock?.monotonicNs() ?? SystemClock().monotonicNs() }
    ))

    nonisolated(unsafe) static let http = keep(sy_service_http_t(struct_size: UInt32(MemoryLayout<sy_service_http_t>.size)) { call, request, response in
        guard let ctx = CallContext.from(call), let transport = ctx.plugin.services.http else { return SY_E_INTERNAL }
        guard let doc = try? JSONSerialization.jsonObject(with: Data(syStr: request)) as? [String: Any],
              let url = doc["url"] as? String else {
            hostWrite(response, json: errorDocument("INVALID_REQUEST", "The http request document lacks \"url\".", "See ext/http.h."))
            return SY_E_INVALID_ARGUMENT
        }
        guard ctx.plugin.isAllowed(url) else {
            ctx.plugin.noteDenied(url)
            let host = URLComponents(string: url)?.host ?? url
            hostWrite(response, json: errorDocument("NETWORK_DENIED", "\(host) is not in \(ctx.plugin.manifest.id)'s network allow-list.",
                                                    "Add it to network.hosts in plugin.json."))
            return SY_E_DENIED
        }
        ctx.plugin.noteRequested(URLComponents(string: url)?.host ?? url)
        var body: Data?
        if let text = doc["body"] as? String { body = Data(text.utf8) }
        if let b64 = doc["body_base64"] as? String { body = Data(base64Encoded: b64) }
        let requestHeaders = (doc["headers"] as? [String: String]) ?? [:]
        ctx.plugin.noteSensitiveHeaders(requestHeaders)
        let request = HostHTTPRequest(method: (doc["method"] as? String) ?? "GET", url: url,
                                      headers: requestHeaders, body: body,
                                      timeoutMs: doc["timeout_ms"] as? Int)
        do {
            let answer = try transport.perform(request)
            // Redaction before truncation: a provider that echoes the key back
            // (an error body quoting the request) has it removed here, before
            // the plugin can cut the body to an excerpt that no longer matches.
            let redactor = ctx.plugin.redactor
            var headers: [String: String] = [:]
            for (name, value) in answer.headers { headers[name.lowercased()] = ResponseRedaction.text(value, redactor) }
            hostWrite(response, json: ["status": answer.status, "headers": headers,
                                       "body_base64": ResponseRedaction.body(answer.body, redactor).base64EncodedString()])
            return SY_OK
        } catch HostHTTPError.timeout {
            return SY_E_TIMEOUT
        } catch HostHTTPError.notSent(let reason) {
            hostWrite(response, json: errorDocument("ENGINE_UNREACHABLE", ctx.plugin.redact("Could not connect to \(Self.origin(url)): \(reason)"),
                                                    "Check the engine's base URL and that it is running.", retryable: true))
            return SY_E_FAILED
        } catch {
            // The request may have reached the provider before the connection failed:
            // a submit that fails this way must not be repeated blindly.
            hostWrite(response, json: errorDocument("ENGINE_UNREACHABLE", ctx.plugin.redact("The request to \(Self.origin(url)) failed: \((error as? HostHTTPError).map(\.reason) ?? "\(error)")"),
                                                    "Check the engine's base URL and that it is running.", retryable: true, charged: "unknown"))
            return SY_E_FAILED
        }
    })

    nonisolated(unsafe) static let secrets = keep(sy_service_secrets_t(struct_size: UInt32(MemoryLayout<sy_service_secrets_t>.size)) { call, name, value in
        guard let ctx = CallContext.from(call), let source = ctx.plugin.services.secrets else { return SY_E_INTERNAL }
        let name = String(syStr: name)
        guard ctx.plugin.manifest.secrets.contains(where: { $0.name == name }) else { return SY_E_DENIED }
        guard let secret = source.value(of: name) else { return SY_E_NOT_FOUND }
        hostWrite(value, Data(secret.utf8))
        return SY_OK
    })

    nonisolated(unsafe) static let artifacts = keep(sy_service_artifacts_t(
        struct_size: UInt32(MemoryLayout<sy_service_artifacts_t>.size),
        put: { call, mediaType, bytes, size, handle in
            guard let ctx = CallContext.from(call), let store = ctx.plugin.services.artifacts else { return SY_E_INTERNAL }
            let data = bytes.map { Data(bytes: $0, count: size) } ?? Data()
            let type = String(syStr: mediaType)
            do {
                let digest = try store.put(data, mediaType: type, jobID: ctx.jobID)
                hostWrite(handle, json: ["artifact": "sha256:\(digest)", "size": data.count, "media_type": type])
                return SY_OK
            } catch {
                hostWrite(handle, json: errorDocument("ARTIFACT_FAILED", "Could not store the artifact: \(error)", "Check free disk space.", retryable: true))
                return SY_E_FAILED
            }
        },
        download: { call, request, handle in
            guard let ctx = CallContext.from(call), let store = ctx.plugin.services.artifacts,
                  let transport = ctx.plugin.services.http else { return SY_E_INTERNAL }
            guard let doc = try? JSONSerialization.jsonObject(with: Data(syStr: request)) as? [String: Any],
                  let url = doc["url"] as? String else { return SY_E_INVALID_ARGUMENT }
            guard ctx.plugin.isAllowed(url) else {
                ctx.plugin.noteDenied(url)
                return SY_E_DENIED
            }
            let headers = (doc["headers"] as? [String: String]) ?? [:]
            ctx.plugin.noteSensitiveHeaders(headers)
            do {
                let answer = try transport.perform(HostHTTPRequest(method: "GET", url: url, headers: headers))
                guard (200..<300).contains(answer.status) else {
                    hostWrite(handle, json: errorDocument(answer.status == 404 ? "RESULT_EXPIRED" : "ENGINE_ERROR",
                                                          "Downloading \(url) answered HTTP \(answer.status).", "Check that the result still exists.",
                                                          retryable: answer.status >= 500))
                    return SY_E_FAILED
                }
                let digest = SHA256.hash(data: answer.body).map { String(format: "%02x", $0) }.joined()
                if let expected = doc["sha256"] as? String, expected.lowercased() != digest {
                    hostWrite(handle, json: errorDocument("CHECKSUM_MISMATCH", "\(url) has sha256 \(digest), expected \(expected).", "Retry the download."))
                    return SY_E_FAILED
                }
                let type = (doc["media_type"] as? String) ?? answer.headers["content-type"] ?? "application/octet-stream"
                _ = try store.put(answer.body, mediaType: type, jobID: ctx.jobID)
                hostWrite(handle, json: ["artifact": "sha256:\(digest)", "size": answer.body.count, "media_type": type])
                return SY_OK
            } catch {
                hostWrite(handle, json: errorDocument("ENGINE_UNREACHABLE", "Downloading \(url) failed: \(error)", "Retry later.", retryable: true))
                return SY_E_FAILED
            }
        },
        read: { call, handle, data in
            guard let ctx = CallContext.from(call), let store = ctx.plugin.services.artifacts else { return SY_E_INTERNAL }
            let id = String(syStr: handle)
            let digest = id.hasPrefix("sha256:") ? String(id.dropFirst(7)) : id
            guard let bytes = try? store.read(sha256: digest) else { return SY_E_NOT_FOUND }
            hostWrite(data, bytes)
            return SY_OK
        }
    ))

    nonisolated(unsafe) static let crypto = keep(sy_service_crypto_t(
        struct_size: UInt32(MemoryLayout<sy_service_crypto_t>.size),
        sha256: { _, data, digest in
            hostWrite(digest, Data(SHA256.hash(data: Data(syStr: data))))
            return SY_OK
        },
        hmac_sha256: { _, key, data, mac in
            let code = HMAC<SHA256>.authenticationCode(for: Data(syStr: data), using: SymmetricKey(data: Data(syStr: key)))
            hostWrite(mac, Data(code))
            return SY_OK
        },
        ed25519_verify: { _, publicKey, signature, message in
            let keyBytes = Data(syStr: publicKey), sig = Data(syStr: signature)
            guard keyBytes.count == 32, sig.count == 64,
                  let key = try? Curve25519.Signing.PublicKey(rawRepresentation: keyBytes) else { return SY_E_INVALID_ARGUMENT }
            return key.isValidSignature(sig, for: Data(syStr: message)) ? SY_OK : SY_E_FAILED
        },
        jwt_hs256: { call, claims, secret, token in
            guard let object = try? JSONSerialization.jsonObject(with: Data(syStr: claims)), object is [String: Any],
                  let payload = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
                return SY_E_INVALID_ARGUMENT
            }
            let signed = JWT.hs256(payload: payload, secret: Data(syStr: secret))
            // A signed token is a credential for its lifetime (Kling: 30 minutes).
            CallContext.from(call)?.plugin.noteSensitive(signed, name: "JWT")
            hostWrite(token, Data(signed.utf8))
            return SY_OK
        }
    ))

    nonisolated(unsafe) static let kv = keep(sy_service_kv_t(
        struct_size: UInt32(MemoryLayout<sy_service_kv_t>.size),
        get: { call, key, value in
            guard let ctx = CallContext.from(call), let store = ctx.plugin.services.kv else { return SY_E_INTERNAL }
            guard let data = store.get(pluginID: ctx.plugin.manifest.id, key: String(syStr: key)) else { return SY_E_NOT_FOUND }
            hostWrite(value, data)
            return SY_OK
        },
        put: { call, key, value, ttl in
            guard let ctx = CallContext.from(call), let store = ctx.plugin.services.kv else { return SY_E_INTERNAL }
            guard value.size <= 1 << 20 else { return SY_E_INVALID_ARGUMENT }
            store.put(pluginID: ctx.plugin.manifest.id, key: String(syStr: key), value: Data(syStr: value), ttlMs: ttl)
            return SY_OK
        },
        remove: { call, key in
            guard let ctx = CallContext.from(call), let store = ctx.plugin.services.kv else { return SY_E_INTERNAL }
            store.remove(pluginID: ctx.plugin.manifest.id, key: String(syStr: key))
            return SY_OK
        }
    ))

    /// get_service for a plugin: NULL for unknown ids and for services the host does not offer.
    static func lookup(_ id: String, for plugin: PluginContext) -> UnsafeRawPointer? {
        let s = plugin.services
        switch id {
        case SY_SERVICE_LOG: return s.log == nil ? nil : log
        case SY_SERVICE_CLOCK: return s.clock == nil ? nil : clock
        case SY_SERVICE_HTTP: return s.http == nil ? nil : http
        case SY_SERVICE_SECRETS: return s.secrets == nil ? nil : secrets
        case SY_SERVICE_ARTIFACTS: return s.artifacts == nil ? nil : artifacts
        case SY_SERVICE_CRYPTO: return s.crypto ? crypto : nil
        case SY_SERVICE_KV: return s.kv == nil ? nil : kv
        case SY_SERVICE_PROCESS: return s.process == nil ? nil : ProcessServiceTable.table
        default: return nil
        }
    }
}

/// Redaction of provider answers before a plugin sees them. Only values of
/// 8 characters or more are replaced in bodies, so media bytes are left
/// alone in practice (a chance match of 8 given bytes is about 2^-64).
enum ResponseRedaction {
    static func body(_ data: Data, _ redactor: Redactor) -> Data {
        let values = redactor.values.filter { $0.value.utf8.count >= 8 }
        guard !values.isEmpty else { return data }
        var data = data
        for item in values {
            let needle = Data(item.value.utf8)
            guard data.range(of: needle) != nil else { continue }
            let marker = Data("[REDACTED:\(item.name)]".utf8)
            var out = Data()
            var rest = data[...]
            while let found = rest.range(of: needle) {
                out.append(rest[rest.startIndex..<found.lowerBound])
                out.append(marker)
                rest = rest[found.upperBound...]
            }
            out.append(rest)
            data = out
        }
        return data
    }

    static func text(_ value: String, _ redactor: Redactor) -> String {
        String(decoding: body(Data(value.utf8), redactor), as: UTF8.self)
    }
}

/// Compact HS256 JWTs (RFC 7519), for providers such as Kling.
public enum JWT {
    public static func hs256(payload: Data, secret: Data) -> String {
        let header = base64URL(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let body = base64URL(payload)
        let signingInput = "\(header).\(body)"
        let mac = HMAC<SHA256>.authenticationCode(for: Data(signingInput.utf8), using: SymmetricKey(data: secret))
        return "\(signingInput).\(base64URL(Data(mac)))"
    }

    public static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
