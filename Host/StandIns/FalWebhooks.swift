import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import SwitchyardHost

/// fal's webhooks (PROVIDERS.md: fal): when a request with `?fal_webhook=`
/// finishes, fal POSTs {request_id, gateway_request_id, status, payload,
/// error?} to that URL, signed with Ed25519 (hex) over
/// `request_id\nuser_id\ntimestamp\nhex(sha256(body))` in the
/// X-Fal-Webhook-* headers, with its public keys at /.well-known/jwks.json.
/// A delivery is retried (10 times over 2 hours at fal) until it gets a 2xx,
/// and duplicates happen even then.
extension FalStandIn {
    public struct WebhookDelivery: Sendable {
        public var url: String
        public var headers: [String: String]
        public var body: Data
        /// The receiver's HTTP status per attempt (nil: connection failed).
        public var attempts: [Int?] = []
    }

    public struct WebhookKey: Sendable {
        public let kid: String
        let privateKey: Curve25519.Signing.PrivateKey
        var x: String { Data(privateKey.publicKey.rawRepresentation).base64URL }

        public init(kid: String) {
            self.kid = kid
            privateKey = Curve25519.Signing.PrivateKey()
        }
    }

    /// Replaces the published keys (fal rotating its keys); new deliveries are signed with the first.
    public func rotateWebhookKey() { lock.withLock { webhookKeys = [WebhookKey(kid: "fal-\(webhookKeys.count + 1)")] } }

    /// Signs a delivery body as fal does. `timestampOffset` shifts the signed
    /// timestamp from the stand-in's clock (a stale or replayed delivery).
    public func signedDelivery(requestID: String, body: Data, timestampOffset: Int64 = 0, key: WebhookKey? = nil) -> (headers: [String: String], body: Data) {
        let signer = key ?? lock.withLock { webhookKeys[0] }
        let timestamp = String(clock.nowUnixMs() / 1000 + timestampOffset)
        let digest = SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined()
        let message = Data("\(requestID)\n\(webhookUserID)\n\(timestamp)\n\(digest)".utf8)
        let signature = (try? signer.privateKey.signature(for: message)).map { Data($0).map { String(format: "%02x", $0) }.joined() } ?? ""
        return (["content-type": "application/json", "x-fal-webhook-request-id": requestID, "x-fal-webhook-user-id": webhookUserID,
                 "x-fal-webhook-timestamp": timestamp, "x-fal-webhook-signature": signature], body)
    }

    /// The body fal sends for a finished request.
    func webhookBody(_ job: Request) -> Data {
        var body: [String: Any] = ["request_id": job.id, "gateway_request_id": job.id]
        if let type = faults.completeWithErrorType {
            body["status"] = "ERROR"
            body["error"] = "Request failed: \(type)"
            body["payload"] = ["detail": [["loc": ["body"], "msg": type, "type": type]]]
        } else if let missing = faults.webhookInputError {
            body["status"] = "ERROR"
            body["error"] = "Invalid status code: 422"
            body["payload"] = ["detail": [["loc": ["body", missing], "msg": "field required", "type": "value_error.missing"]]]
        } else {
            body["status"] = "OK"
            body["payload"] = output(job)
        }
        return (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
    }

    /// Finishes every pending request (or `requestID`) at once and sends the
    /// webhook of each that asked for one and has not had it yet (a request
    /// that finished with time gets its webhook here too): retried until a
    /// 2xx, up to `faults.webhookAttempts` times, then `faults.duplicateWebhooks` extra copies.
    @discardableResult
    public func finishAndDeliver(_ requestID: String? = nil) async -> [WebhookDelivery] {
        let finished: [Request] = lock.withLock {
            advanceAll(now: clock.nowUnixMs())
            var done: [Request] = []
            for (id, var job) in requests where (requestID == nil || id == requestID) && !job.webhookSent {
                if job.status != "COMPLETED" {
                    job.status = "COMPLETED"
                    job.startedMs = job.startedMs ?? clock.nowUnixMs()
                    job.finishedMs = clock.nowUnixMs()
                }
                job.webhookSent = true
                requests[id] = job
                done.append(job)
            }
            return done.sorted { $0.createdMs < $1.createdMs }
        }
        var deliveries: [WebhookDelivery] = []
        for job in finished {
            guard let url = job.webhookURL else { continue }
            let (attempts, copies) = lock.withLock { (faults.webhookAttempts, faults.duplicateWebhooks) }
            let signed = signedDelivery(requestID: job.id, body: lock.withLock { webhookBody(job) })
            var delivery = WebhookDelivery(url: url, headers: signed.headers, body: signed.body)
            for _ in 0..<max(1, attempts) {
                let status = await Self.post(url: url, headers: signed.headers, body: signed.body)
                delivery.attempts.append(status)
                if let status, (200..<300).contains(status) { break }
            }
            for _ in 0..<copies { delivery.attempts.append(await Self.post(url: url, headers: signed.headers, body: signed.body)) }
            deliveries.append(delivery)
        }
        return deliveries
    }

}

extension ProviderStandIn {
    /// POSTs a webhook delivery; the receiver's status, or nil when the connection failed.
    static func post(url: String, headers: [String: String], body: Data) async -> Int? {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(10)) else { return nil }
        _ = try? await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }
}

extension Data {
    var base64URL: String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
