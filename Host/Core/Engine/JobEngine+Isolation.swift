import CPluginAPI
import Foundation
import SwitchyardJSON

/// Crashes and missed deadlines per job, counted in this host process. A job
/// whose plugin fails on it again and again is quarantined (needs_attention)
/// instead of being retried forever, so it never holds up other jobs.
final class JobQuarantine: @unchecked Sendable {
    private let lock = NSLock()
    private var failures: [String: Int] = [:]

    /// Counts one failure against `jobID`; returns the new count.
    @discardableResult
    func note(_ jobID: String) -> Int { lock.withLock { failures[jobID, default: 0] += 1; return failures[jobID] ?? 1 } }
    func count(_ jobID: String) -> Int { lock.withLock { failures[jobID] ?? 0 } }
    func clear(_ jobID: String) { _ = lock.withLock { failures.removeValue(forKey: jobID) } }
}

extension PluginCallFailure {
    /// Whether the plugin ran far enough to have reached the provider: a
    /// submit that failed this way is unconfirmed, never repeated blindly.
    public var mayHaveReachedProvider: Bool {
        if case .unavailable = self { return false }
        return true
    }

    var isCrashOrTimeout: Bool {
        switch self {
        case .crashed, .timedOut: return true
        case .outputInvalid, .unavailable: return false
        }
    }
}

extension JobEngine {
    /// Crashes, missed deadlines and invalid answers repeated on one job
    /// trip its quarantine.
    public static let quarantineAfterFailures = 3

    /// Records a failed call: in the host's log always, on the job's events
    /// when it served a job. A failure that is the call's own (or any failed
    /// submit) counts towards the job's quarantine.
    func noteFailure(_ failure: PluginCallFailure, of kind: PluginCallKind, plugin: LoadedPlugin, jobID: String?, attributed: Bool) {
        let message = plugin.context.redact(Self.failureMessage(failure, kind: kind, plugin: plugin))
        logger.warning("plugin call failed", metadata: ["engine": "\(plugin.manifest.id)", "call": "\(kind.description)", "code": "\(failure.code)",
                                                         "job": "\(jobID ?? "-")", "reason": "\(message)"])
        guard let jobID, !jobID.isEmpty else { return }
        // Its own crash or deadline, any failed submit, or a plugin that cannot
        // even start: each is one more reason to stop retrying this job.
        let startFailed: Bool = { if case .unavailable = failure { return true }; return false }()
        if attributed || kind == .operation(.submit) || startFailed { quarantine.note(jobID) }
        let eventKind = switch failure {
        case .crashed, .unavailable: "plugin_crash"
        case .timedOut: "plugin_timeout"
        case .outputInvalid: "plugin_output"
        }
        event(jobID, kind: eventKind, message: "\(failure.code): \(message)", data: nil)
    }

    static func failureMessage(_ failure: PluginCallFailure, kind: PluginCallKind, plugin: LoadedPlugin) -> String {
        switch failure {
        case .crashed(let why): return "\(kind.description) crashed: \(why)"
        case .timedOut(let ms): return "\(kind.description) missed its \(ms) ms deadline"
        case .outputInvalid(let why): return why
        case .unavailable(let why): return "\(kind.description) could not run: \(why)"
        }
    }

    /// After a failed poll: parks the job in needs_attention once its plugin
    /// has crashed, hung or answered garbage on it `quarantineAfterFailures`
    /// times. nil: keep polling (the failure counts as a retryable poll error).
    func quarantineIfRepeated(_ result: PluginCallResult, job: JobRecord, plugin: LoadedPlugin, during activity: String) throws -> JobRecord? {
        guard let failure = result.failure, quarantine.count(job.id) >= Self.quarantineAfterFailures else { return nil }
        let count = quarantine.count(job.id)
        let last = plugin.context.redact(result.answer?["error"]?["message"]?.stringValue ?? failure.code)
        return try park(job, plugin: plugin, code: failure.code, charged: "unknown",
                        message: "Quarantined: \(plugin.manifest.id) failed \(count) times while \(activity) this job (last: \(last)). Other jobs, resumes and the server go on. The job may still be running, and billing, at the provider; its ref is kept.",
                        remediation: "Update the plugin or report it to its author (`yard plugin test \(plugin.manifest.id)` reproduces most faults). Check the job in the provider's console and cancel it there if it still runs; re-run with a new idempotency key once the plugin is fixed.")
    }

    /// A submit that crashed or missed its deadline may have reached the
    /// provider. With sy.reconcile/1 the plugin (restarted) is asked whether
    /// the provider has the job; without a sure "no" the job is parked,
    /// never resubmitted on a guess.
    func submitUnconfirmed(_ job: JobRecord, plugin: LoadedPlugin, result: PluginCallResult) async throws -> JobRecord {
        let failure = result.failure ?? .crashed("unknown")
        let reason = plugin.context.redact(result.answer?["error"]?["message"]?.stringValue ?? failure.code)
        let attempts = quarantine.count(job.id)
        if plugin.hasExtension(SY_EXTENSION_RECONCILE) {
            if let answer = await callExtension(plugin, SY_EXTENSION_RECONCILE, jobRequest(job), jobID: job.id), answer.isOK, let doc = answer.answer {
                if let ref = doc["ref"], !ref.isNull {
                    let refText = text(ref).map(plugin.context.redact)
                    let when = now
                    event(job.id, kind: "reconciled", message: "submit failed (\(failure.code)), but the provider has the job: polling it", data: refText)
                    return try commit(job.id) { row in
                        row.refJSON = refText
                        row.phase = .queued
                        row.submittedAt = row.submittedAt ?? when
                        row.nextPollAt = when
                    }
                }
                if attempts < Self.quarantineAfterFailures {
                    event(job.id, kind: "retry", message: "submit failed (\(failure.code)) and the provider confirms it never received the job: submitting again with the same idempotency key", data: nil)
                    return try await submit(job, plugin: plugin)
                }
                return try park(job, plugin: plugin, code: failure.code, charged: "no",
                                message: "Quarantined: \(plugin.manifest.id) failed \(attempts) times submitting this job (last: \(reason)); the provider confirms it never received it.",
                                remediation: "Update the plugin or report it to its author (`yard plugin test \(plugin.manifest.id)`), then run the job again.")
            }
        }
        return try park(job, plugin: plugin, code: failure.code, charged: "unknown",
                        message: "Submit unconfirmed: \(reason) The provider may have received the job, so it was not resubmitted, to avoid paying twice.",
                        remediation: "Check the provider's dashboard for a job with idempotency key \(job.idempotencyKey); if it has none, re-run with a new key.")
    }

    func park(_ job: JobRecord, plugin: LoadedPlugin, code: String, charged: String, message: String, remediation: String) throws -> JobRecord {
        let error: JSONValue = ["code": .string(code), "message": .string(message), "remediation": .string(remediation), "retryable": false, "charged": .string(charged)]
        let errorText = text(error).map(plugin.context.redact)
        let note = plugin.context.redact(message)
        let when = now
        logger.error("job quarantined", metadata: ["job": "\(job.id)", "engine": "\(plugin.manifest.id)", "code": "\(code)"])
        event(job.id, kind: "quarantined", message: note, data: errorText)
        return try commit(job.id) { row in
            guard !row.phase.isTerminal else { return }
            row.phase = .needsAttention
            row.message = note
            row.errorJSON = errorText
            row.finishedAt = when
        }
    }
}
