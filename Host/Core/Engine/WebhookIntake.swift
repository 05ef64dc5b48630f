import CPluginAPI
import Foundation
import SwitchyardJSON

/// What became of one webhook delivery.
public struct WebhookOutcome: Sendable, Codable {
    public enum Kind: String, Sendable, Codable {
        /// Verified and applied to its job.
        case applied
        /// A delivery already applied (providers retry and duplicate): dropped.
        case duplicate
        /// Verified, but its job had already finished (e.g. by polling): nothing changed.
        case stale
        /// Verified, but no job here has that ref: recorded, nothing changed.
        case unmatched
    }

    public var kind: Kind
    public var jobID: String?
    public var phase: String?

    /// The HTTP status a webhook endpoint should answer: 2xx stops the
    /// provider's retries, which is right for every verified delivery.
    public var httpStatus: Int { 200 }
}

extension JobEngine {
    /// Turns a provider's webhook delivery into a job update. The plugin
    /// verifies the signature (sy.webhook/1); the host finds the job by the
    /// ref members the plugin names, drops duplicates by the plugin's dedupe
    /// key, and applies the update like a poll answer, so it can never
    /// regress a finished job. A delivery the plugin refuses throws
    /// WEBHOOK_REJECTED and changes nothing.
    public func receiveWebhook(pluginID: String, headers: [String: String], body: Data,
                               config: [String: JSONValue] = [:]) async throws -> WebhookOutcome {
        // A delivery names an installed plugin by id; a path would load a plugin from any folder.
        guard pluginID.range(of: "^[a-z0-9][a-z0-9._-]{0,63}$", options: .regularExpression) != nil, !pluginID.contains("..") else {
            throw YardError(.pluginNotFound, "\"\(SafePath.shown(pluginID))\" is not an engine id.", remediation: "Deliver to /webhooks/ENGINE with an installed plugin's id.")
        }
        let plugin = try plugin(pluginID)
        let lowered = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        let request: JSONValue = ["headers": .object(lowered.mapValues(JSONValue.string)), "body_base64": .string(body.base64EncodedString()), "config": .object(config)]
        guard let result = await callExtension(plugin, SY_EXTENSION_WEBHOOK, request, jobID: nil) else {
            throw YardError("WEBHOOK_UNSUPPORTED", "Engine \(pluginID) does not take webhooks (it lacks \(SY_EXTENSION_WEBHOOK)).",
                            remediation: "Leave webhooks off for this engine; the host polls it.")
        }
        if result.failure != nil {
            // The plugin crashed, hung or answered garbage: nothing was verified or
            // applied, and the provider retries on a 5xx.
            let error = result.answer?["error"]
            throw YardError(YardError.Code(rawValue: error?["code"]?.stringValue ?? "PLUGIN_CRASHED"),
                            plugin.context.redact("Engine \(pluginID) could not check the delivery: \(error?["message"]?.stringValue ?? "its plugin failed")."),
                            remediation: error?["remediation"]?.stringValue ?? "Run `yard plugin test \(pluginID)`.")
        }
        guard result.isOK, let answer = result.answer, let match = answer["match"]?.objectValue, !match.isEmpty,
              let update = answer["update"], update.objectValue != nil else {
            let error = result.answer?["error"]
            throw YardError("WEBHOOK_REJECTED",
                            plugin.context.redact("Engine \(pluginID) refused the delivery: \(error?["message"]?.stringValue ?? "no reason given")."),
                            remediation: error?["remediation"]?.stringValue ?? "Only the provider's signed deliveries are accepted.")
        }
        let members = match.compactMapValues { value -> String? in
            switch value {
            case .string(let text): return text
            case .number(let n): return n.rounded() == n && abs(n) < 9e15 ? String(Int(n)) : String(n)
            case .bool(let b): return b ? "1" : "0"
            default: return nil
            }
        }
        let dedupeKey = answer["dedupe_key"]?.stringValue
            ?? String(decoding: JSONValue.object(["match": .object(match), "state": update["state"] ?? ""]).serialized(), as: UTF8.self)
        if try store.webhookDelivery(pluginID: pluginID, dedupeKey: dedupeKey) != nil {
            return WebhookOutcome(kind: .duplicate)
        }
        let candidates = try store.jobs(pluginID: pluginID, refMatching: members)
        guard let job = candidates.first else {
            try store.recordWebhookDelivery(.init(pluginID: pluginID, dedupeKey: dedupeKey, jobID: nil, outcome: "unmatched", receivedAt: now))
            return WebhookOutcome(kind: .unmatched)
        }
        if job.phase.isTerminal {
            try store.recordWebhookDelivery(.init(pluginID: pluginID, dedupeKey: dedupeKey, jobID: job.id, outcome: "stale", receivedAt: now))
            return WebhookOutcome(kind: .stale, jobID: job.id, phase: job.phase.rawValue)
        }
        try store.appendEvent(jobID: job.id, kind: "webhook", message: "delivery from \(pluginID): \(update["state"]?.stringValue ?? "?")", data: nil)
        var document = update
        if answer["poll"]?.boolValue == true {
            // The plugin asks for a poll with the job's own ref (which says how to map its outputs).
            let polled = await call(plugin, .poll, refRequest(job), jobID: job.id)
            guard polled.isOK, let doc = polled.answer else {
                _ = try recordPollError(polled, job: job, plugin: plugin)
                try store.recordWebhookDelivery(.init(pluginID: pluginID, dedupeKey: dedupeKey, jobID: job.id, outcome: "applied", receivedAt: now))
                return WebhookOutcome(kind: .applied, jobID: job.id, phase: (try store.job(id: job.id))?.phase.rawValue)
            }
            document = doc
        }
        let updated = try await apply(answer: document, to: job.id, plugin: plugin)
        // Recorded after the update is stored: a crash in between means the
        // provider's retry is applied again, which the no-regress rule makes harmless.
        try store.recordWebhookDelivery(.init(pluginID: pluginID, dedupeKey: dedupeKey, jobID: job.id, outcome: "applied", receivedAt: now))
        return WebhookOutcome(kind: .applied, jobID: job.id, phase: updated.phase.rawValue)
    }
}
