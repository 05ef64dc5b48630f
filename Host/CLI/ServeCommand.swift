import ArgumentParser
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SwitchyardHost
import SwitchyardJSON

/// Webhook intake: providers POST finished jobs to /webhooks/ENGINE; the
/// engine's plugin verifies the signature, the host applies the update.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Receive provider webhooks on /webhooks/ENGINE (signature-verified, deduplicated) and deliver settled usage to the billing provider.",
        discussion: """
            Point a provider at http(s)://YOUR-HOST/webhooks/ENGINE, e.g. set "webhook_url" in \
            $YARD_HOME/config/fal.json. Polling goes on regardless: a webhook only makes a job finish sooner. \
            Put a TLS-terminating proxy in front when the address is public. With a billing meter configured, \
            pending usage events are delivered at start, after each settlement and every --outbox-interval seconds.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port; the first line printed names it).") var port = 8790
    @Option(help: "Largest delivery body accepted, in bytes.") var maxBodyBytes = 10 << 20
    @Option(help: "Seconds between deliveries of pending usage events from the billing outbox (0: only when a settlement commits).")
    var outboxInterval: Double = 30
    @Option(help: "Milliseconds a delivery's body may take to arrive (slow senders are cut off with 408).") var readTimeoutMs = 10_000
    @Option(help: "Seconds an idle connection is kept open.") var idleTimeoutSeconds = 30

    /// Stripe top-ups (`/webhooks/stripe`): Stripe-Signature verified against
    /// STRIPE_WEBHOOK_SECRET, replays refused, credits granted once. A repeated
    /// event is answered 200 so Stripe stops redelivering what is already credited.
    static func stripeTopUp(_ request: Request, engine: JobEngine, paths: YardPaths, limit: Int, readTimeoutMs: Int) async -> (Int, [String: Any]) {
        func refusal(_ status: Int, _ error: YardError) -> (Int, [String: Any]) {
            (status, ["error": ["code": error.code.rawValue, "message": error.message, "remediation": error.remediation]])
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

    func run() async throws {
        let engine: JobEngine
        do { engine = try JobEngine.standard(paths: global.paths, registry: global.registry) } catch { throw fail(error, json: global.json) }
        // Usage settled while serving (a webhook finishing a job) goes out at
        // once; what a crash or an unreachable provider left behind, on a timer.
        let outbox = engine.billingOutbox()
        let interval = outboxInterval
        let drain = Task {
            guard let outbox else { return }
            while !Task.isCancelled {
                let report = await outbox.kick().value
                if report.delivered + report.failed > 0 {
                    FileHandle.standardError.write(Data("billing outbox: \(report.delivered) delivered, \(report.pending) pending, \(report.failed) failed\n".utf8))
                }
                guard interval > 0 else { return }
                try? await Task.sleep(nanoseconds: UInt64(interval * 1e9))
            }
        }
        defer { drain.cancel() }
        let router = Router(context: WebhookRequestContext.self)
        let paths = global.paths
        let limit = maxBodyBytes
        let readTimeoutMs = readTimeoutMs
        router.get("healthz") { _, _ in "ok\n" }
        router.post("webhooks/:engine") { request, context -> Response in
            let engineID = context.parameters.get("engine") ?? ""
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let reply: (Int, [String: Any])
            // Refusals that need no body come first; the connection is then
            // closed, so an unread body is never drained.
            if let refusal = WebhookBody.earlyRefusal(request, engineID: engineID, engine: engine, limit: limit) {
                context.closeAfterResponse()
                return Self.respond(engineID, (refusal.0, Self.errorDocument(refusal.1)))
            }
            if engineID == "stripe" {
                reply = await Self.stripeTopUp(request, engine: engine, paths: paths, limit: limit, readTimeoutMs: readTimeoutMs)
                if reply.0 == 413 || reply.0 == 408 { context.closeAfterResponse() }
                return Self.respond(engineID, reply)
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
                reply = (status, Self.errorDocument(error))
            } catch {
                reply = (400, Self.errorDocument(YardError("WEBHOOK_INVALID", "The delivery could not be read: \(error).", remediation: "Send the body again.")))
            }
            return Self.respond(engineID, reply)
        }
        var logger = Logger(label: "switchyard.serve")
        logger.logLevel = .warning
        let app = Application(router: router, server: .http1(configuration: .init(idleTimeout: .seconds(Int64(idleTimeoutSeconds)))),
                              configuration: .init(address: .hostname(host, port: port)),
                              onServerRunning: { channel in
                                  // Written straight to fd 1: a test or supervisor reads the port from this line.
                                  FileHandle.standardOutput.write(Data("listening on http://\(host):\(channel.localAddress?.port ?? port)\n".utf8))
                              }, logger: logger)
        try await app.runService()
    }

    static func errorDocument(_ error: YardError) -> [String: Any] {
        ["error": ["code": error.code.rawValue, "message": error.message, "remediation": error.remediation]]
    }

    static func respond(_ engineID: String, _ reply: (Int, [String: Any])) -> Response {
        FileHandle.standardError.write(Data("webhook \(engineID): HTTP \(reply.0) \(reply.1["outcome"] ?? (reply.1["error"] as? [String: Any])?["code"] ?? "")\n".utf8))
        let data = (try? JSONSerialization.data(withJSONObject: reply.1, options: [.sortedKeys])) ?? Data()
        return Response(status: .init(code: reply.0), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// A request context that can ask for its connection to be closed once the
/// response is written (Hummingbird otherwise reads the rest of an unread
/// body before the next request on the connection).
struct WebhookRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    func closeAfterResponse() {
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }
}

/// Webhook bodies: bounded in size and in time, refused early when the
/// headers already say enough.
enum WebhookBody {
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
