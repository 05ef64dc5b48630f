import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardHost
import SwitchyardJSON

/// Webhook intake: providers POST finished jobs to /webhooks/ENGINE; the
/// engine's plugin verifies the signature, the host applies the update.
/// Stripe top-ups arrive on /webhooks/stripe. No API token: each delivery is
/// authenticated by its provider's signature.
public enum WebhookRoutes {
    static func register(on router: Router<APIRequestContext>, engine: JobEngine, paths: YardPaths, limit: Int, readTimeoutMs: Int) {
        router.post("webhooks/:engine") { request, context -> Response in
            let engineID = context.parameters.get("engine") ?? ""
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let reply: (Int, [String: Any])
            // Refusals that need no body come first; the connection is then
            // closed, so an unread body is never drained.
            if let refusal = WebhookBody.earlyRefusal(request, engineID: engineID, engine: engine, limit: limit) {
                context.closeAfterResponse()
                return WebhookRoutes.respond(engineID, (refusal.0, WebhookRoutes.errorDocument(refusal.1)))
            }
            if engineID == "stripe" {
                reply = await WebhookRoutes.stripeTopUp(request, engine: engine, paths: paths, limit: limit, readTimeoutMs: readTimeoutMs)
                if reply.0 == 413 || reply.0 == 408 { context.closeAfterResponse() }
                return WebhookRoutes.respond(engineID, reply)
            }
            do {
                let body = try await WebhookBody.read(request, limit: limit, timeoutMs: readTimeoutMs)
                let outcome = try await engine.receiveWebhook(pluginID: engineID, headers: headers, body: body,
                                                              config: try EngineConfigs(paths: paths).config(for: engineID))
                var doc: [String: Any] = ["outcome": outcome.kind.rawValue]
                if let id = outcome.jobID { doc["job_id"] = id }
                if let phase = outcome.phase { doc["phase"] = phase }
                reply = (outcome.httpStatus, doc)
            } catch let error as YardError {
                let status = switch error.code.rawValue {
                case "WEBHOOK_REJECTED": 401
                case "PLUGIN_NOT_FOUND", "WEBHOOK_UNSUPPORTED": 404
                case "WEBHOOK_TOO_LARGE": 413
                case "WEBHOOK_TIMEOUT": 408
                default: 503 // the provider retries; nothing was applied
                }
                if status == 413 || status == 408 { context.closeAfterResponse() }
                reply = (status, WebhookRoutes.errorDocument(error))
            } catch {
                reply = (400, WebhookRoutes.errorDocument(YardError("WEBHOOK_INVALID", "The delivery could not be read: \(error).", remediation: "Send the body again.")))
            }
            return WebhookRoutes.respond(engineID, reply)
        }
    }

    /// Stripe top-ups (`/webhooks/stripe`): Stripe-Signature verified against
    /// STRIPE_WEBHOOK_SECRET, replays refused, credits granted once. A repeated
    /// event is answered 200 so Stripe stops redelivering what is already credited.
    static func stripeTopUp(_ request: Request, engine: JobEngine, paths: YardPaths, limit: Int, readTimeoutMs: Int) async -> (Int, [String: Any]) {
        func refusal(_ status: Int, _ error: YardError) -> (Int, [String: Any]) {
            (status, errorDocument(error))
        }
        guard let ledger = engine.ledger else {
            return refusal(404, YardError("WEBHOOK_UNSUPPORTED", "This host keeps no credits ledger.", remediation: "Configure billing (README: Credits and billing)."))
        }
        guard let secret = SecretVault(paths: paths).value(of: "STRIPE_WEBHOOK_SECRET") else {
            return refusal(503, YardError("AUTH_MISSING", "STRIPE_WEBHOOK_SECRET is not set.", remediation: "Run `yard secrets set STRIPE_WEBHOOK_SECRET` with the endpoint's whsec_… secret."))
        }
        do {
            let body = try await WebhookBody.read(request, limit: limit, timeoutMs: readTimeoutMs)
            let outcome = try ledger.receiveStripeWebhook(payload: body, signatureHeader: request.headers[.init("stripe-signature")!] ?? "", secret: secret)
            let doc = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(outcome))) as? [String: Any] ?? [:]
            return (200, doc)
        } catch let error as YardError {
            switch error.code.rawValue {
            case "WEBHOOK_SIGNATURE_INVALID": return refusal(401, error)
            case "WEBHOOK_REPLAYED" where error.message.hasPrefix("Event"): return (200, ["outcome": "duplicate", "message": error.message])
            case "WEBHOOK_REPLAYED", "WEBHOOK_INVALID": return refusal(400, error)
            case "WEBHOOK_TOO_LARGE": return refusal(413, error)
            case "WEBHOOK_TIMEOUT": return refusal(408, error)
            default: return refusal(503, error) // e.g. no account linked yet: Stripe retries
            }
        } catch {
            return refusal(400, YardError("WEBHOOK_INVALID", "The delivery could not be read: \(error).", remediation: "Send the body again."))
        }
    }

    static func errorDocument(_ error: YardError) -> [String: Any] {
        ["error": ["code": error.code.rawValue, "message": error.message, "remediation": error.remediation, "field": error.field ?? NSNull()] as [String: Any]]
    }

    static func respond(_ engineID: String, _ reply: (Int, [String: Any])) -> Response {
        FileHandle.standardError.write(Data("webhook \(engineID): HTTP \(reply.0) \(reply.1["outcome"] ?? (reply.1["error"] as? [String: Any])?["code"] ?? "")\n".utf8))
        let data = (try? JSONSerialization.data(withJSONObject: reply.1, options: [.sortedKeys])) ?? Data()
        return Response(status: .init(code: reply.0), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Webhook bodies: bounded in size and in time, refused early when the
/// headers already say enough.
public enum WebhookBody {
    static func tooLarge(_ limit: Int) -> YardError {
        YardError(.webhookTooLarge, "The delivery is larger than \(limit) bytes.", remediation: "Raise --max-body-bytes if the provider's deliveries are that large.")
    }

    /// 413 when Content-Length is over the limit, 404 for an engine this host
    /// does not have; nil when the body must be read to decide.
    static func earlyRefusal(_ request: Request, engineID: String, engine: JobEngine, limit: Int) -> (Int, YardError)? {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { return (413, tooLarge(limit)) }
        guard engineID != "stripe" else { return nil }
        // An installed plugin's id, never a path: the registry would load a plugin from any folder it names.
        guard engineID.range(of: "^[a-z0-9][a-z0-9._-]{0,63}$", options: .regularExpression) != nil, !engineID.contains("..") else {
            return (404, YardError(.pluginNotFound, "\"\(SafePath.shown(engineID))\" is not an engine id.", remediation: "Post to /webhooks/ENGINE with an installed plugin's id (`yard plugin list`)."))
        }
        do { _ = try engine.registry.resolve(engineID) } catch let error as YardError {
            return (404, error)
        } catch {
            return (404, YardError(.pluginNotFound, "No engine \(engineID).", remediation: "Run `yard plugin list`."))
        }
        return nil
    }

    /// The whole body, at most `limit` bytes, within `timeoutMs`.
    static func read(_ request: Request, limit: Int, timeoutMs: Int) async throws -> Data {
        let body = request.body
        return try await withThrowingTaskGroup(of: Data?.self) { group in
            group.addTask {
                do { return Data(try await body.collect(upTo: limit).readableBytesView) } catch is NIOTooManyBytesError {
                    throw tooLarge(limit)
                }
            }
            group.addTask {
                try await Task.sleep(nanoseconds: UInt64(max(timeoutMs, 1)) * 1_000_000)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let data = first else {
                throw YardError(.webhookTimeout, "The delivery's body did not arrive within \(timeoutMs) ms.",
                                remediation: "Send the body at once; raise --read-timeout-ms for a slow link.")
            }
            return data
        }
    }
}
