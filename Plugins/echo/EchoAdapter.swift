import Foundation
import SwitchyardPluginSDK

// The reference adapter. It needs no provider, so the conformance kit, the
// engine's tests and plugin authors can run the whole job model locally:
// submit returns a ref, poll advances it through queued → running →
// succeeded over `polls` calls (counted in the host's kv, or by the clock when
// kv is absent), and every host service is exercised along the way.

@_cdecl("sy_plugin_entry_v1") public func syPluginEntry(_ host: UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>? { PluginExport.entry(EchoAdapter.self, host: host) }

struct EchoAdapter: EngineAdapter {
    static let capability = "debug.echo"
    static let maxTextLength = 10_000

    init() {}

    var descriptor: PluginDescriptor {
        PluginDescriptor(id: "echo", version: "1.0.0", name: "Echo (reference adapter)",
                         capabilities: [Self.capability],
                         extensions: [SY_EXTENSION_ESTIMATE, SY_EXTENSION_BALANCE, SY_EXTENSION_WEBHOOK, SY_EXTENSION_RECONCILE])
    }

    func validate(_ request: JobRequest, context: HostContext) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        switch request.inputs["text"] {
        case .string(let text) where text.unicodeScalars.count > Self.maxTextLength:
            diagnostics.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "text is \(text.unicodeScalars.count) characters; at most \(Self.maxTextLength) are allowed.",
                                          remediation: "Shorten the text.", field: "$.inputs.text"))
        case .string: break
        case nil:
            diagnostics.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "text is required.",
                                          remediation: "Pass --input text=...", field: "$.inputs.text"))
        default:
            diagnostics.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "text must be a string.",
                                          remediation: "Pass a string.", field: "$.inputs.text"))
        }
        if let polls = request.inputs["polls"] {
            if polls.intValue.map({ (0...50).contains($0) }) != true {
                diagnostics.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "polls must be an integer from 0 to 50.",
                                              remediation: "Pass a smaller whole number.", field: "$.inputs.polls"))
            }
        }
        if let fail = request.inputs["fail_with"], fail.stringValue == nil {
            diagnostics.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "fail_with must be an error code string.",
                                          remediation: "Pass e.g. ENGINE_TIMEOUT.", field: "$.inputs.fail_with"))
        }
        if let url = request.inputs["url"], url.stringValue == nil {
            diagnostics.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "url must be a string.",
                                          remediation: "Pass an http(s) URL on an allowed host.", field: "$.inputs.url"))
        }
        if let faults = request.inputs["poll_faults"], faults.arrayValue?.allSatisfy({ $0.stringValue != nil }) != true {
            diagnostics.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "poll_faults must be a list of error codes (CODE or CODE:retry_after_ms).",
                                          remediation: "Pass e.g. [\"RATE_LIMITED:200\",\"ENGINE_UNAVAILABLE\"].", field: "$.inputs.poll_faults"))
        }
        if let url = request.inputs["output_url"], url.stringValue == nil {
            diagnostics.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "output_url must be a string.",
                                          remediation: "Pass an http(s) URL on an allowed host.", field: "$.inputs.output_url"))
        }
        for key in request.inputs.keys where !["text", "polls", "fail_with", "url", "poll_faults", "output_url"].contains(key) {
            diagnostics.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "Unknown input \(key).",
                                          remediation: "Remove it; echo takes text, polls, fail_with, url, poll_faults and output_url.", field: "$.inputs.\(key)"))
        }
        return diagnostics
    }

    func submit(_ request: JobRequest, context: HostContext) throws -> SubmitResult {
        let problems = validate(request, context: context).filter { $0.severity == .error }
        if let first = problems.first {
            throw PluginError(code: first.code, message: first.message, remediation: first.remediation, field: first.field)
        }
        // Counted in the host's durable kv: tests prove a job was submitted
        // exactly once across crashes and restarts.
        let key = request.job?.idempotencyKey ?? "adhoc"
        let submissions = counter("submissions/\(key)", context) ?? 0
        try? context.kvPut("submissions/\(key)", Data(String(submissions + 1).utf8), ttlMs: 0)
        context.log(.info, "echo: accepted job \(context.jobID)")
        return .ref(ref(for: request, now: context.nowUnixMs()), nextPollAfterMs: 10)
    }

    /// Deterministic from the request, which is what makes reconcile possible.
    private func ref(for request: JobRequest, now: Int64) -> JSONValue {
        [
            "key": .string(request.job?.idempotencyKey ?? "adhoc"),
            "text": request.inputs["text"] ?? "",
            "polls": .number(Double(request.inputs["polls"]?.intValue ?? 2)),
            "fail_with": request.inputs["fail_with"] ?? .null,
            "url": request.inputs["url"] ?? .null,
            "poll_faults": request.inputs["poll_faults"] ?? .array([]),
            "output_url": request.inputs["output_url"] ?? .null,
            "submitted_ms": .number(Double(now)),
        ]
    }

    func poll(_ request: RefRequest, context: HostContext) throws -> PollResult {
        guard let key = request.ref["key"]?.stringValue, let text = request.ref["text"]?.stringValue else {
            throw PluginError(code: "INVALID_REF", message: "This ref was not made by echo.", remediation: "Poll refs returned by echo's submit.", field: "$.ref")
        }
        if (try? context.kvGet("cancelled/\(key)")) != nil {
            return PollResult(state: .cancelled, message: "cancelled")
        }
        // Scripted provider trouble: the first polls fail as a provider would
        // (RATE_LIMITED with Retry-After, ENGINE_UNAVAILABLE…), then the job proceeds.
        if let faults = request.ref["poll_faults"]?.arrayValue, !faults.isEmpty {
            let used = counter("faults/\(key)", context) ?? 0
            if used < faults.count, let spec = faults[used].stringValue {
                try? context.kvPut("faults/\(key)", Data(String(used + 1).utf8), ttlMs: 86_400_000)
                let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
                throw PluginError(code: parts[0], message: "echo simulated \(parts[0]) on poll \(used + 1).",
                                  remediation: "Remove poll_faults from the inputs.", retryable: true, charged: .no,
                                  retryAfterMs: parts.count > 1 ? Int(parts[1]) : nil)
            }
        }
        let needed = request.ref["polls"]?.intValue ?? 2
        let seen = try nextPollCount(key: key, submittedMs: request.ref["submitted_ms"]?.intValue, context: context)
        if seen <= needed {
            let state: JobState = seen == 0 ? .queued : .running
            return PollResult(state: state, progress: needed == 0 ? 0 : Double(seen) / Double(needed + 1), message: "poll \(seen) of \(needed)", nextPollAfterMs: 10)
        }
        if let code = request.ref["fail_with"]?.stringValue {
            return PollResult(state: .failed, error: PluginError(code: code, message: "echo was asked to fail with \(code).",
                                                                  remediation: "Remove fail_with from the inputs.", retryable: code == "ENGINE_TIMEOUT"))
        }
        var outputs: [String: JSONValue] = ["text": .string(text)]
        let bytes = Data(text.utf8)
        let digest = try context.sha256(bytes)
        outputs["sha256"] = .string(digest.map { String(format: "%02x", $0) }.joined())
        let handle = try context.putArtifact(bytes, mediaType: "text/plain")
        outputs["file"] = ["artifact": .string(handle.artifact), "media_type": "text/plain", "size": .number(Double(handle.size))]
        if let url = request.ref["url"]?.stringValue {
            let response = try context.http(HTTPRequest(method: "GET", url: url))
            outputs["http_status"] = .number(Double(response.status))
        }
        if let remote = request.ref["output_url"]?.stringValue {
            // As a remote provider answers: a URL the host must harvest before retention ends.
            outputs["remote"] = ["url": .string(remote), "media_type": "application/octet-stream"]
        }
        outputs["authenticated"] = .bool(try context.secret("ECHO_TOKEN") != nil)
        if let count = counter("submissions/\(key)", context) {
            outputs["submissions"] = .number(Double(count))
        }
        context.log(.info, "echo: finished job \(context.jobID)")
        return PollResult(state: .succeeded, progress: 1, outputs: outputs)
    }

    /// Counts polls in kv so the lifecycle is the same however fast the host
    /// polls; without kv, one poll per 10 ms of host clock stands in.
    private func nextPollCount(key: String, submittedMs: Int?, context: HostContext) throws -> Int {
        do {
            let current = try context.kvGet("polls/\(key)").flatMap(Self.integer) ?? 0
            try context.kvPut("polls/\(key)", Data(String(current + 1).utf8), ttlMs: 86_400_000)
            return current
        } catch let error as PluginError where error.code == "SERVICE_UNAVAILABLE" {
            let elapsed = context.nowUnixMs() - Int64(submittedMs ?? 0)
            return Int(max(0, elapsed / 10))
        }
    }

    static func integer(_ data: Data) -> Int? { Int(String(decoding: data, as: UTF8.self)) }

    /// A counter echo keeps in the host's kv; nil when absent or kv is unavailable.
    private func counter(_ key: String, _ context: HostContext) -> Int? {
        (try? context.kvGet(key)).flatMap { $0.flatMap(Self.integer) }
    }

    func cancel(_ request: RefRequest, context: HostContext) throws -> CancelResult {
        guard let key = request.ref["key"]?.stringValue else {
            return CancelResult(outcome: .notFound, charged: .no, message: "This ref was not made by echo.")
        }
        let needed = request.ref["polls"]?.intValue ?? 2
        let seen = counter("polls/\(key)", context) ?? 0
        if (try? context.kvGet("cancelled/\(key)")) ?? nil != nil {
            return CancelResult(outcome: seen == 0 ? .cancelledInQueue : .cancelledRunning, charged: .no, message: "already cancelled")
        }
        if seen > needed {
            return CancelResult(outcome: .alreadyFinished, charged: .no)
        }
        try? context.kvPut("cancelled/\(key)", Data("1".utf8), ttlMs: 86_400_000)
        return CancelResult(outcome: seen == 0 ? .cancelledInQueue : .cancelledRunning, charged: .no)
    }

    func health(_ request: ConfigRequest, context: HostContext) -> HealthReport {
        if request.config["simulate_offline"]?.boolValue == true {
            return HealthReport(status: .offline, message: "echo was configured to report offline")
        }
        return HealthReport(status: .ok, message: "echo is always available")
    }

    func estimate(_ request: JobRequest, context: HostContext) throws -> CostEstimate {
        let length = request.inputs["text"]?.stringValue?.unicodeScalars.count ?? 0
        return CostEstimate(amountMinor: 0, basis: "echo is free (\(length) characters)")
    }

    func balance(_ request: ConfigRequest, context: HostContext) throws -> CostEstimate {
        CostEstimate(amountMinor: 0, basis: "echo has no account")
    }

    func webhook(_ request: WebhookRequest, context: HostContext) throws -> WebhookUpdate {
        guard let doc = try? JSONDecoder().decode([String: JSONValue].self, from: request.body),
              let key = doc["key"]?.stringValue else {
            throw PluginError(code: "WEBHOOK_INVALID", message: "The delivery is not an echo webhook.", remediation: "Send {\"key\":...}.")
        }
        return WebhookUpdate(match: ["key": .string(key)], update: PollResult(state: .succeeded, outputs: doc["outputs"]?.objectValue ?? [:]))
    }

    func reconcile(_ request: JobRequest, context: HostContext) throws -> JSONValue? {
        ref(for: request, now: context.nowUnixMs())
    }
}
