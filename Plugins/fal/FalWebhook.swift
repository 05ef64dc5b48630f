import Foundation
import SwitchyardPluginSDK

// fal webhooks (PROVIDERS.md: fal): the delivery body is
// {request_id, gateway_request_id, status: "OK"|"ERROR", payload, error?, payload_error?},
// signed with Ed25519 (hex) over
//   request_id \n user_id \n timestamp \n hex(sha256(body))
// in the X-Fal-Webhook-{Request-Id,User-Id,Timestamp,Signature} headers, with
// fal's public keys published as a JWKS. fal retries a delivery 10 times over
// two hours, so duplicates are normal: the dedupe key is the request id.

extension FalAdapter {
    static let defaultJWKSURL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
    static let webhookToleranceSeconds: Int64 = 300
    static let jwksCacheKey = "webhook/jwks"
    static let jwksCacheTTLMs: Int64 = 24 * 3600 * 1000

    func webhook(_ request: WebhookRequest, context: HostContext) throws -> WebhookUpdate {
        func denied(_ message: String, _ fix: String) -> PluginError {
            PluginError(code: "WEBHOOK_REJECTED", message: message, remediation: fix)
        }
        let h = request.headers
        guard let requestID = h["x-fal-webhook-request-id"], let userID = h["x-fal-webhook-user-id"],
              let timestamp = h["x-fal-webhook-timestamp"], let signatureHex = h["x-fal-webhook-signature"] else {
            throw denied("The delivery lacks fal's X-Fal-Webhook-Request-Id/User-Id/Timestamp/Signature headers.",
                         "Only fal's own deliveries are accepted; check that a proxy keeps these headers.")
        }
        guard let seconds = Int64(timestamp) else { throw denied("X-Fal-Webhook-Timestamp is not a number.", "Check the sender.") }
        let skew = abs(context.nowUnixMs() / 1000 - seconds)
        guard skew <= Self.webhookToleranceSeconds else {
            throw denied("The delivery's timestamp is \(skew) s away from this host's clock (tolerance \(Self.webhookToleranceSeconds) s).",
                         "Check this host's clock (NTP); an old delivery replayed later is refused on purpose.")
        }
        guard let signature = Data(hex: signatureHex), signature.count == 64 else {
            throw denied("X-Fal-Webhook-Signature is not a 64-byte hex Ed25519 signature.", "Check the sender.")
        }
        let digest = try context.sha256(request.body).hexString
        let message = Data("\(requestID)\n\(userID)\n\(timestamp)\n\(digest)".utf8)
        let jwksURL = request.config["webhook_jwks_url"]?.stringValue ?? Self.defaultJWKSURL
        var keys = try webhookKeys(url: jwksURL, refresh: false, context: context)
        var verified = try keys.contains { try context.ed25519Verify(publicKey: $0, signature: signature, message: message) }
        if !verified {
            // fal may have rotated its keys since they were cached: fetch once more.
            keys = try webhookKeys(url: jwksURL, refresh: true, context: context)
            verified = try keys.contains { try context.ed25519Verify(publicKey: $0, signature: signature, message: message) }
        }
        guard verified else {
            throw denied("The delivery's Ed25519 signature matches none of fal's published keys.",
                         "Only fal's own deliveries are accepted. If this is fal, check webhook_jwks_url.")
        }
        guard let body = try? JSONDecoder().decode([String: JSONValue].self, from: request.body) else {
            throw denied("The signed delivery body is not a JSON object.", "Report this to fal.")
        }
        guard body["request_id"]?.stringValue == requestID else {
            throw denied("The body's request_id differs from the signed X-Fal-Webhook-Request-Id.", "Only fal's own deliveries are accepted.")
        }
        let update: PollResult
        switch body["status"]?.stringValue {
        case "OK":
            if let payload = body["payload"]?.objectValue {
                let answer = JSONValue.object(payload)
                update = PollResult(state: .succeeded, progress: 1, outputs: try Self.outputMap(capability: nil, answer: answer).apply(to: answer, context: context))
            } else {
                // fal sends payload null with payload_error when the output was not valid JSON.
                update = PollResult(state: .failed, error: PluginError(
                    code: "ENGINE_ERROR", message: "fal finished the request but could not send its output: \(body["payload_error"]?.stringValue ?? "no payload")",
                    remediation: "Fetch the result again with `yard jobs resume`, or run the job again.", charged: .yes))
            }
        case "ERROR":
            let detail = body["payload"]?["detail"]?.arrayValue?.first
            let path = (detail?["loc"]?.arrayValue ?? []).compactMap(\.stringValue).filter { $0 != "body" }
            let isInput = detail != nil
            update = PollResult(state: .failed, error: PluginError(
                code: isInput ? "CONTRACT_MISMATCH" : "ENGINE_ERROR",
                message: "fal reported an error: \(body["error"]?.stringValue ?? "unknown")\(detail?["msg"]?.stringValue.map { " — \($0)" } ?? "")",
                remediation: isInput ? "Fix the input named in field." : "Check the request and fal's status page.",
                field: isInput ? "$.inputs" + path.map { ".\($0)" }.joined() : nil, charged: .unknown))
        default:
            throw denied("The delivery's status is neither OK nor ERROR.", "Report this to fal.")
        }
        return WebhookUpdate(match: ["request_id": .string(requestID)], update: update, dedupeKey: "fal:\(requestID)")
    }

    /// fal's public keys from the JWKS, cached for a day in the plugin's kv.
    func webhookKeys(url: String, refresh: Bool, context: HostContext) throws -> [Data] {
        if !refresh, let cached = try context.kvGet(Self.jwksCacheKey), let keys = Self.okpKeys(cached), !keys.isEmpty { return keys }
        let response = try context.http(HTTPRequest(method: "GET", url: url, headers: ["accept": "application/json"]))
        guard response.isSuccess, let keys = Self.okpKeys(response.body), !keys.isEmpty else {
            throw PluginError(code: "ENGINE_UNAVAILABLE", message: "Could not read fal's webhook keys from \(url) (HTTP \(response.status)).",
                              remediation: "fal redelivers for two hours; check the network or webhook_jwks_url.", retryable: true)
        }
        try context.kvPut(Self.jwksCacheKey, response.body, ttlMs: Self.jwksCacheTTLMs)
        return keys
    }

    /// The Ed25519 public keys (kty OKP, crv Ed25519, x base64url) of a JWKS document.
    static func okpKeys(_ jwks: Data) -> [Data]? {
        guard let doc = try? JSONDecoder().decode([String: JSONValue].self, from: jwks), let keys = doc["keys"]?.arrayValue else { return nil }
        return keys.compactMap { key in
            guard key["kty"]?.stringValue == "OKP", key["crv"]?.stringValue == "Ed25519", let x = key["x"]?.stringValue else { return nil }
            return Data(base64URL: x).flatMap { $0.count == 32 ? $0 : nil }
        }
    }
}

extension Data {
    init?(hex: String) {
        guard hex.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.count / 2)
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        self.init(bytes)
    }

    init?(base64URL: String) {
        var text = base64URL.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        self.init(base64Encoded: text)
    }

    var hexString: String { map { String(format: "%02x", $0) }.joined() }
}
