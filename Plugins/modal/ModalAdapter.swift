import Foundation
import SwitchyardPluginSDK

// Modal has no generic invoke API: this adapter speaks to the web app the
// user deployed from Registry/modal/switchyard_app.py (POST /spawn →
// call_id, GET /result/{call_id} → 202 while pending, POST /cancel/{call_id},
// GET /calls/{idempotency_key}, GET /health), behind Modal's proxy auth
// (`Modal-Key`/`Modal-Secret`). Modal answers a web request that runs past
// 150 s with 303 to the same URL plus `__modal_function_call_id`; the host's
// http service never follows redirects, so the adapter follows them itself.

@_cdecl("sy_plugin_entry_v1") public func syPluginEntry(_ host: UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>? { PluginExport.entry(ModalAdapter.self, host: host) }

struct ModalAdapter: EngineAdapter {
    /// Capabilities served by the deployed app; modal.deploy runs locally.
    static let capabilities = ["image.generate", "video.from_text"]
    /// Each hop of a 303 chain is one 150 s wait at Modal: 24 hops is an hour.
    static let maxRedirects = 24
    static let authRemediation = "Create a proxy auth token in the Modal dashboard (Settings → Proxy Auth Tokens), then run `yard secrets set MODAL_KEY` with its token id (wk-…) and `yard secrets set MODAL_SECRET` with its secret (ws-…). The app must be deployed with requires_proxy_auth=True."

    init() {}

    var descriptor: PluginDescriptor {
        PluginDescriptor(id: "modal", version: "0.1.0", name: "Modal (Switchyard app)", capabilities: Self.capabilities + [ModalDeploy.capability],
                         extensions: [SY_EXTENSION_RECONCILE])
    }

    struct Config {
        var appURL: String
        var model: String?
        var gpu: String?

        init(_ config: [String: JSONValue]) throws {
            guard let url = config["app_url"]?.stringValue, !url.isEmpty else {
                throw PluginError(code: "CONFIG_INVALID", message: "Modal needs app_url: the URL of your deployed Switchyard app.",
                                  remediation: "Deploy Registry/modal/switchyard_app.py (`modal deploy`), then set app_url to the URL it prints, e.g. https://you--switchyard-web.modal.run.",
                                  field: "$.config.app_url")
            }
            appURL = url.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            model = config["model"]?.stringValue
            gpu = config["gpu"]?.stringValue
        }
    }

    func validate(_ request: JobRequest, context: HostContext) -> [Diagnostic] {
        if request.capability == ModalDeploy.capability {
            do { _ = try ModalDeploy.Plan(inputs: request.inputs, config: request.config, job: nil) } catch let error as PluginError {
                return [Diagnostic(code: error.code, message: error.message, remediation: error.remediation, field: error.field)]
            } catch { return [] }
            return []
        }
        guard Self.capabilities.contains(request.capability) else {
            return [Diagnostic(code: "CONTRACT_MISMATCH", message: "The Switchyard Modal app does not serve \(request.capability).",
                               remediation: "Use \(Self.capabilities.joined(separator: " or ")).", field: "$.capability")]
        }
        do { _ = try Config(request.config) } catch let error as PluginError {
            return [Diagnostic(code: error.code, message: error.message, remediation: error.remediation, field: error.field)]
        } catch { return [] }
        return []
    }

    /// Proxy auth is optional in Modal (an app may be public); without the
    /// secrets no credentials are sent, and an app that needs them answers 401.
    func headers(_ context: HostContext) throws -> [String: String] {
        var headers = ["content-type": "application/json", "accept": "application/json"]
        if let key = try context.secret("MODAL_KEY"), !key.isEmpty { headers["modal-key"] = key }
        if let secret = try context.secret("MODAL_SECRET"), !secret.isEmpty { headers["modal-secret"] = secret }
        return headers
    }

    /// One request, following Modal's 303s (GET, same credentials) to the final answer.
    func send(_ method: String, _ url: String, body: Data? = nil, context: HostContext) throws -> HTTPResponse {
        let headers = try headers(context)
        var response = try context.http(HTTPRequest(method: method, url: url, headers: headers, bodyData: body, timeoutMs: 180_000))
        var hops = 0
        while [301, 302, 303, 307, 308].contains(response.status), let location = response.headers["location"] {
            hops += 1
            guard hops <= Self.maxRedirects else {
                throw PluginError(code: "ENGINE_TIMEOUT", message: "Modal kept redirecting \(url) (\(hops) × 150 s).",
                                  remediation: "Check the app's logs in the Modal dashboard.", retryable: true, charged: .unknown)
            }
            let next = URL(string: location, relativeTo: URL(string: url))?.absoluteString ?? location
            context.log(.info, "modal: request still running after 150 s; following the 303")
            // 303 means GET; 307/308 keep the method and body.
            let keep = response.status == 307 || response.status == 308
            response = try context.http(HTTPRequest(method: keep ? method : "GET", url: next, headers: headers, bodyData: keep ? body : nil, timeoutMs: 180_000))
        }
        return response
    }

    func failure(_ response: HTTPResponse, submitting: Bool) -> PluginError {
        let text = String(decoding: response.body.prefix(300), as: UTF8.self)
        let detail = (try? response.decodeJSON([String: JSONValue].self))?["detail"]?.stringValue ?? text
        switch response.status {
        case 401, 403:
            let missing = text.contains("missing credentials")
            return PluginError(code: "AUTH_FAILED", message: missing ? "The Modal app requires proxy auth and no credentials were sent (MODAL_KEY/MODAL_SECRET unset): \(text)"
                                                                     : "Modal refused the proxy auth credentials (HTTP \(response.status)): \(text)",
                               remediation: Self.authRemediation)
        case 400, 422:
            return PluginError(code: "CONTRACT_MISMATCH", message: "The Modal app rejected the request: \(detail)",
                               remediation: "Check the inputs, and that app_url serves the model in config.model.", field: "$.inputs")
        case 404:
            return PluginError(code: "ENGINE_OFFLINE", message: "No Switchyard app route at this URL (HTTP 404): \(detail)",
                               remediation: "Check config.app_url and that Registry/modal/switchyard_app.py is deployed (`modal app list`).", field: "$.config.app_url")
        case 429:
            return PluginError(code: "RATE_LIMITED", message: "Modal rate limit reached.", remediation: "Retried automatically.", retryable: true, charged: .no,
                               retryAfterMs: response.retryAfterMs() ?? 2000)
        default:
            return PluginError(code: "ENGINE_UNAVAILABLE", message: "Modal answered HTTP \(response.status): \(text)",
                               remediation: "Retried automatically; check the app in the Modal dashboard.", retryable: true, charged: submitting ? .unknown : .no)
        }
    }

    // MARK: submit

    func spawnBody(_ request: JobRequest, config: Config) throws -> Data {
        var body: [String: JSONValue] = ["capability": .string(request.capability), "inputs": .object(request.inputs)]
        if let model = config.model { body["model"] = .string(model) }
        if let job = request.job { body["idempotency_key"] = .string(job.idempotencyKey) }
        return try JSONEncoder().encode(body)
    }

    func submit(_ request: JobRequest, context: HostContext) throws -> SubmitResult {
        if request.capability == ModalDeploy.capability { return try ModalDeploy.submit(request, context: context) }
        guard Self.capabilities.contains(request.capability) else { throw PluginError.unsupported(request.capability) }
        let config = try Config(request.config)
        let response: HTTPResponse
        do {
            response = try send("POST", "\(config.appURL)/spawn", body: try spawnBody(request, config: config), context: context)
            guard response.isSuccess else { throw failure(response, submitting: true) }
        } catch var error as PluginError where error.retryable && request.job != nil {
            // The app answers a repeated idempotency key with the call it already
            // spawned, so retrying a spawn whose fate is unknown cannot pay twice.
            error.charged = .no
            throw error
        }
        guard let id = (try? response.decodeJSON([String: JSONValue].self))?["call_id"]?.stringValue else {
            throw PluginError(code: "ENGINE_ERROR", message: "The Modal app's /spawn answer has no call_id.",
                              remediation: "Redeploy Registry/modal/switchyard_app.py; app_url may point at another app.", charged: .unknown)
        }
        context.log(.info, "modal: spawned \(id)")
        return .ref(["call_id": .string(id), "capability": .string(request.capability)], nextPollAfterMs: 2_000)
    }

    /// The app remembers each idempotency key's call in a modal.Dict, so a
    /// spawn whose answer was lost is found again.
    func reconcile(_ request: JobRequest, context: HostContext) throws -> JSONValue? {
        guard let job = request.job else { return nil }
        // A deploy is keyed by its job: starting it again finds the same child, or redeploys harmlessly.
        if request.capability == ModalDeploy.capability { return nil }
        let config = try Config(request.config)
        let key = job.idempotencyKey.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? job.idempotencyKey
        let response = try send("GET", "\(config.appURL)/calls/\(key)", context: context)
        if response.status == 404, (try? response.decodeJSON([String: JSONValue].self))?["detail"] != nil { return nil }
        guard response.isSuccess, let id = (try? response.decodeJSON([String: JSONValue].self))?["call_id"]?.stringValue else {
            throw failure(response, submitting: false)
        }
        return ["call_id": .string(id)]
    }

    // MARK: poll

    func poll(_ request: RefRequest, context: HostContext) throws -> PollResult {
        if let plan = ModalDeploy.Plan(ref: request.ref) { return try ModalDeploy.poll(plan, context: context) }
        let config = try Config(request.config)
        guard let id = request.ref["call_id"]?.stringValue else {
            throw PluginError(code: "INVALID_REF", message: "This ref has no Modal call id.", remediation: "Poll refs made by the modal adapter.", field: "$.ref")
        }
        let response = try send("GET", "\(config.appURL)/result/\(id)", context: context)
        let answer = try? response.decodeJSON([String: JSONValue].self)
        let status = answer?["status"]?.stringValue
        let error = answer?["error"]?.stringValue ?? "no details"
        let usage = Self.usage(answer?["usage"])
        switch (response.status, status) {
        case (202, _):
            return PollResult(state: .running, progress: 0.3, message: "pending at Modal (queued, booting or running)", nextPollAfterMs: 3_000)
        case (200, "SUCCESS"):
            let outputs = answer?["outputs"] ?? .null
            let map = request.ref["capability"]?.stringValue == "video.from_text" || outputs["video"] != nil ? Self.videoOutputs : Self.imageOutputs
            return PollResult(state: .succeeded, progress: 1, outputs: try map.apply(to: outputs, context: context), usage: usage)
        case (200, "FAILURE"):
            return failed("ENGINE_ERROR", "The model raised an error on Modal: \(error)", "Check the app's logs in the Modal dashboard.", charged: .yes, usage: usage)
        case (200, "INIT_FAILURE"):
            return failed("ENGINE_UNAVAILABLE", "Modal could not start the container: \(error)",
                          "Check the HF token secret (huggingface-secret), the model id and the GPU type, then redeploy.", charged: .unknown, usage: usage)
        case (200, "TERMINATED"):
            return failed("ENGINE_ERROR", "Modal terminated the container running this call: \(error)",
                          "Run again; if it repeats, check the app's memory and preemption in the Modal dashboard.", charged: .yes, usage: usage)
        case (200, "TIMEOUT"):
            return failed("ENGINE_TIMEOUT", "The call ran past the app's timeout on Modal.", "Redeploy with a longer SWITCHYARD_TIMEOUT or a faster GPU.", charged: .yes, usage: usage)
        case (410, _), (404, "NOT_FOUND"):
            return failed("RESULT_EXPIRED", "Modal no longer has this call's result (kept 7 days): \(error)",
                          "Run the job again; Switchyard stores results as soon as they finish.", charged: .unknown)
        case (HTTPStatusClass.success, _):
            throw PluginError(code: "ENGINE_ERROR", message: "The Modal app answered an unknown status \(status ?? "(none)").", remediation: "Retried automatically.", retryable: true)
        default:
            throw failure(response, submitting: false)
        }
    }

    /// The app answers in the catalog's shape with files as data: URIs (stored
    /// at once); an app deployed before that answered `{"image": data URI}`.
    static let imageOutputs = OutputMap([
        "images": ["$first": [
            ["$each": "$.images", "$map": ["file": ["$file": "$.file"], "width": "$.width", "height": "$.height", "seed": "$.seed"]],
            [["file": ["$file": "$.image"], "seed": "$.seed"]],
        ]],
        "seed": "$.seed", "model": "$.model",
    ])
    static let videoOutputs = OutputMap(["video": ["$file": "$.video"], "duration_seconds": ["$number": "$.duration_seconds"],
                                         "width": "$.width", "height": "$.height", "fps": "$.fps", "seed": "$.seed"])

    func failed(_ code: String, _ message: String, _ remediation: String, charged: Charged, usage: Usage? = nil) -> PollResult {
        PollResult(state: .failed, error: PluginError(code: code, message: message, remediation: remediation, charged: charged), usage: usage)
    }

    /// The GPU time the app measured inside the function (its /result `usage`): what Modal bills.
    static func usage(_ value: JSONValue?) -> Usage? {
        guard let ms = value?["execution_ms"]?.doubleValue, ms.isFinite, ms >= 0 else { return nil }
        return Usage(executionMs: Int(ms.rounded(.up)), gpu: value?["gpu"]?.stringValue)
    }

    // MARK: cancel, health

    func cancel(_ request: RefRequest, context: HostContext) throws -> CancelResult {
        if let plan = ModalDeploy.Plan(ref: request.ref) { return try ModalDeploy.cancel(plan, context: context) }
        let config = try Config(request.config)
        guard let id = request.ref["call_id"]?.stringValue else { return CancelResult(outcome: .notFound, charged: .no) }
        let response = try send("POST", "\(config.appURL)/cancel/\(id)", context: context)
        if response.status == 404 { return CancelResult(outcome: .notFound, charged: .unknown) }
        guard response.isSuccess, let answer = try? response.decodeJSON([String: JSONValue].self) else {
            throw failure(response, submitting: false)
        }
        switch answer["status"]?.stringValue {
        case "PENDING":
            // Modal bills container time: a call that had started has been billed for it.
            return CancelResult(outcome: .cancelledRunning, charged: .unknown, message: "Modal bills any container time used before the cancel")
        case "SUCCESS", "FAILURE", "TIMEOUT", "INIT_FAILURE":
            return CancelResult(outcome: .alreadyFinished, charged: .yes)
        default:
            return CancelResult(outcome: .alreadyFinished, charged: .unknown, message: "the call had already ended (\(answer["status"]?.stringValue ?? "?"))")
        }
    }

    func health(_ request: ConfigRequest, context: HostContext) -> HealthReport {
        if request.config["app_url"]?.stringValue?.isEmpty != false {
            // Nothing deployed yet: modal.deploy can still run.
            return HealthReport(status: .degraded, message: "app_url is not set: only modal.deploy can run until the app is deployed")
        }
        do {
            let config = try Config(request.config)
            let response = try send("GET", "\(config.appURL)/health", context: context)
            guard response.isSuccess, let answer = try? response.decodeJSON([String: JSONValue].self) else {
                let error = failure(response, submitting: false)
                return HealthReport(status: .offline, message: error.message,
                                    details: ["code": .string(error.code == "ENGINE_UNAVAILABLE" ? "ENGINE_OFFLINE" : error.code)])
            }
            if let want = config.model, let serves = answer["model"]?.stringValue, want != serves {
                return HealthReport(status: .offline, message: "The app at app_url serves \(serves), not \(want).",
                                    details: ["code": "CONFIG_INVALID"])
            }
            return HealthReport(status: .ok, message: "app up: \(answer["model"]?.stringValue ?? "?") on \(answer["gpu"]?.stringValue ?? "?")", details: answer)
        } catch let error as PluginError {
            return HealthReport(status: .offline, message: error.message, details: ["code": .string(error.code)])
        } catch {
            return HealthReport(status: .offline, message: "\(error)")
        }
    }
}
