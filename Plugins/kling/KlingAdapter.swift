import Foundation
import SwitchyardPluginSDK

// Kling's video API: POST /v1/videos/{text2video|image2video}, then poll
// GET /v1/videos/{same kind}/{task_id}. Auth is an HS256 JWT
// {iss: access key, exp: now+1800, nbf: now-5} signed with the secret key
// through the host's crypto service. Every answer is the envelope
// {code, message, request_id, data}; the business code, not the HTTP status,
// says what went wrong. Each task carries external_task_id = the host's job
// id, so a submit whose answer was lost is found again instead of repeated.

@_cdecl("sy_plugin_entry_v1") public func syPluginEntry(_ host: UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>? { PluginExport.entry(KlingAdapter.self, host: host) }

struct KlingAdapter: EngineAdapter {
    /// The Kling task kind serving each catalog capability.
    static let kinds = ["video.from_text": "text2video", "video.from_image": "image2video"]
    static let defaultModels = ["video.from_text": "kling-v2-1-master", "video.from_image": "kling-v2-1"]
    static let defaultBaseURL = "https://api-singapore.klingai.com"
    /// Kling's simple camera moves for the catalog's `motion` values: one axis, strength 5 of 10.
    static let motions: [String: (String, Double)] = [
        "zoom_in": ("zoom", 5), "zoom_out": ("zoom", -5), "pan_left": ("horizontal", -5),
        "pan_right": ("horizontal", 5), "pan_up": ("vertical", 5), "pan_down": ("vertical", -5),
    ]

    init() {}

    var descriptor: PluginDescriptor {
        PluginDescriptor(id: "kling", version: "0.1.0", name: "Kling video", capabilities: Self.kinds.keys.sorted(),
                         extensions: [SY_EXTENSION_RECONCILE, SY_EXTENSION_BALANCE])
    }

    struct Config {
        var baseURL: String
        var model: String
        var maxParallelTasks: Int?
        var parallelRetryMs: Int
        var callbackURL: String?
        var timeoutMs: Int

        init(_ config: [String: JSONValue], capability: String) {
            baseURL = (config["base_url"]?.stringValue ?? KlingAdapter.defaultBaseURL).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            model = config["models"]?[capability]?.stringValue ?? config["model"]?.stringValue ?? KlingAdapter.defaultModels[capability] ?? "kling-v2-1"
            maxParallelTasks = config["max_parallel_tasks"]?.intValue
            parallelRetryMs = config["parallel_retry_ms"]?.intValue ?? 15_000
            callbackURL = config["callback_url"]?.stringValue
            timeoutMs = config["request_timeout_ms"]?.intValue ?? 30_000
        }
    }

    // MARK: validate

    func validate(_ request: JobRequest, context: HostContext) -> [Diagnostic] {
        guard Self.kinds[request.capability] != nil else {
            return [Diagnostic(code: "CONTRACT_MISMATCH", message: "Kling does not offer \(request.capability).",
                               remediation: "Use video.from_text or video.from_image.", field: "$.capability")]
        }
        var findings: [Diagnostic] = []
        if let duration = request.inputs["duration_seconds"], !(duration.doubleValue == 5 || duration.doubleValue == 10) {
            findings.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "Kling renders 5 or 10 second videos only.",
                                       remediation: "Pass duration_seconds 5 or 10.", field: "$.inputs.duration_seconds"))
        }
        if let cfg = request.inputs["cfg_scale"]?.doubleValue, !(0...1).contains(cfg) {
            findings.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "Kling's cfg_scale runs from 0 to 1; got \(cfg).",
                                       remediation: "Pass a cfg_scale between 0 and 1.", field: "$.inputs.cfg_scale"))
        }
        for name in ["image", "end_image"] {
            if let url = request.inputs[name]?["url"]?.stringValue, !(url.hasPrefix("https://") || url.hasPrefix("http://")) {
                findings.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "\(name) must be an http(s) URL or an artifact.",
                                           remediation: "Pass a public URL, or the file itself so the host sends it inline.", field: "$.inputs.\(name)"))
            }
            if let size = request.inputs[name]?["size"]?.intValue, size > 10 << 20 {
                findings.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "\(name) is \(size) bytes; Kling accepts images up to 10 MB.",
                                           remediation: "Resize or compress the image.", field: "$.inputs.\(name)"))
            }
        }
        return findings
    }

    // MARK: auth

    /// Signs and caches tokens per key pair; re-signs 5 minutes before expiry.
    /// `skewMs` is the server clock minus ours, learned from `Date` when
    /// Kling says a token is expired or not yet valid.
    final class TokenCache: @unchecked Sendable {
        static let shared = TokenCache()
        let lock = NSLock()
        var tokens: [String: (token: String, expiresAt: Int64)] = [:]
        var skewMs: Int64 = 0
    }

    struct Credentials {
        var accessKey: String
        var secretKey: String
    }

    func credentials(_ context: HostContext) throws -> Credentials {
        guard let access = try context.secret("KLING_ACCESS_KEY"), !access.isEmpty,
              let secret = try context.secret("KLING_SECRET_KEY"), !secret.isEmpty else {
            throw PluginError(code: "AUTH_MISSING", message: "KLING_ACCESS_KEY and KLING_SECRET_KEY must both be set.",
                              remediation: "Create an API key pair in the Kling developer console, then run `yard secrets set KLING_ACCESS_KEY` and `yard secrets set KLING_SECRET_KEY`.")
        }
        return Credentials(accessKey: access, secretKey: secret)
    }

    func token(_ context: HostContext, fresh: Bool) throws -> String {
        let keys = try credentials(context)
        let cache = TokenCache.shared
        let slot = keys.accessKey + "\u{0}" + keys.secretKey
        let now = (context.nowUnixMs() + cache.lock.withLock { cache.skewMs }) / 1000
        if !fresh, let cached = cache.lock.withLock({ cache.tokens[slot] }), cached.expiresAt - now > 300 { return cached.token }
        let expires = now + 1800
        let jwt = try context.jwtHS256(claims: ["iss": .string(keys.accessKey), "exp": .number(Double(expires)), "nbf": .number(Double(now - 5))],
                                       secret: keys.secretKey)
        cache.lock.withLock { cache.tokens[slot] = (jwt, expires) }
        return jwt
    }

    /// Learns the server's clock from an HTTP `Date` header (RFC 7231).
    func learnSkew(_ response: HTTPResponse, context: HostContext) {
        guard let date = response.headers["date"] else { return }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let server = formatter.date(from: date) else { return }
        let skew = Int64(server.timeIntervalSince1970 * 1000) - context.nowUnixMs()
        TokenCache.shared.lock.withLock { TokenCache.shared.skewMs = abs(skew) > 2000 ? skew : 0 }
        if abs(skew) > 2000 { context.log(.warning, "kling: this host's clock is \(skew / 1000) s off Kling's; tokens are signed on Kling's time") }
    }

    struct Answer {
        var response: HTTPResponse
        var code: Int?
        var message: String
        var data: JSONValue?
    }

    /// One authenticated request. A token Kling calls expired (1004) or not
    /// yet valid (1003) is re-signed on Kling's clock and the request sent once more.
    func send(_ method: String, _ url: String, body: Data? = nil, timeoutMs: Int = 30_000, context: HostContext) throws -> Answer {
        var attempt = 0
        while true {
            let jwt = try token(context, fresh: attempt > 0)
            let response = try context.http(HTTPRequest(method: method, url: url, headers: ["authorization": "Bearer \(jwt)", "content-type": "application/json"],
                                                        bodyData: body, timeoutMs: timeoutMs))
            let envelope = try? response.decodeJSON([String: JSONValue].self)
            let answer = Answer(response: response, code: envelope?["code"]?.intValue, message: envelope?["message"]?.stringValue ?? "", data: envelope?["data"])
            if attempt == 0, answer.code == 1004 || answer.code == 1003 {
                learnSkew(response, context: context)
                context.log(.info, "kling: token \(answer.code == 1004 ? "expired" : "not yet valid") at Kling (\(answer.code ?? 0)); re-signed")
                attempt += 1
                continue
            }
            return answer
        }
    }

    /// Kling's business codes on stable host codes.
    func failure(_ answer: Answer) -> PluginError {
        let detail = "Kling \(answer.code.map(String.init) ?? "HTTP \(answer.response.status)"): \(answer.message.isEmpty ? String(decoding: answer.response.body.prefix(200), as: UTF8.self) : answer.message)"
        let retryAfter = answer.response.retryAfterMs()
        switch answer.code {
        case .some(1000...1004), .some(1100), .some(1103), .some(1304):
            return PluginError(code: "AUTH_FAILED", message: "Kling refused the credentials (\(detail)).",
                               remediation: "Check KLING_ACCESS_KEY and KLING_SECRET_KEY (`yard secrets set …`), that the pair is active, and this host's clock.")
        case .some(1101), .some(1102):
            return PluginError(code: "INSUFFICIENT_FUNDS", message: "Kling has no credit for this task (\(detail)).",
                               remediation: "Buy or renew a resource pack in the Kling developer console, then run again.")
        case .some(1200...1203):
            return PluginError(code: "CONTRACT_MISMATCH", message: "Kling rejected the request (\(detail)).",
                               remediation: "Fix the inputs Kling names; `yard plugin info kling` lists the accepted values.", field: "$.inputs")
        case .some(1300), .some(1301):
            return PluginError(code: "SAFETY_FILTER", message: "Kling's content policy refused this request (\(detail)).",
                               remediation: "Rephrase the prompt or use another image.", field: "$.inputs.prompt")
        case .some(1302), .some(1303):
            return PluginError(code: "RATE_LIMITED", message: "Kling's \(answer.code == 1303 ? "parallel task" : "request rate") limit (\(detail)).",
                               remediation: "Retried automatically after a pause.", retryable: true, charged: .no, retryAfterMs: retryAfter ?? 2_000)
        case .some(5000...5002):
            return PluginError(code: "ENGINE_UNAVAILABLE", message: "Kling's servers failed (\(detail)).", remediation: "Retried automatically; see Kling's status page.",
                               retryable: true, charged: .no, retryAfterMs: retryAfter)
        default:
            let server = answer.response.status >= 500
            return PluginError(code: server ? "ENGINE_UNAVAILABLE" : "ENGINE_ERROR", message: "Unexpected answer from Kling (\(detail)).",
                               remediation: server ? "Retried automatically." : "Report this with the job id.", retryable: server)
        }
    }

    func parallelLimited(_ config: Config) -> PluginError {
        PluginError(code: "RATE_LIMITED", message: "Kling's parallel task limit is reached (1303): the account runs as many tasks as its resource pack allows.",
                    remediation: "Retried after parallel_retry_ms; set max_parallel_tasks in the kling config to your pack's limit so Switchyard holds tasks back itself.",
                    retryable: true, charged: .no, retryAfterMs: config.parallelRetryMs)
    }

    // MARK: submit

    static func externalTaskID(_ job: JobInfo?) -> String? {
        guard let job else { return nil }
        return "sy-\(job.id)" + (job.attempt > 1 ? "-a\(job.attempt)" : "")
    }

    /// A file input as Kling takes it: a URL, or raw base64 with no `data:` prefix.
    func image(_ value: JSONValue, context: HostContext) throws -> String? {
        if let url = value["url"]?.stringValue {
            guard url.hasPrefix("data:") else { return url }
            return url.firstIndex(of: ",").map { String(url[url.index(after: $0)...]) }
        }
        if let handle = value["artifact"]?.stringValue {
            let bytes = try context.readArtifact(handle)
            guard bytes.count <= 10 << 20 else {
                throw PluginError(code: "CONTRACT_MISMATCH", message: "The image is \(bytes.count) bytes; Kling accepts up to 10 MB.",
                                  remediation: "Resize or compress the image.", field: "$.inputs.image")
            }
            return bytes.base64EncodedString()
        }
        return value.stringValue
    }

    func body(_ request: JobRequest, config: Config, context: HostContext) throws -> [String: JSONValue] {
        let inputs = request.inputs
        var body: [String: JSONValue] = ["model_name": .string(inputs["model"]?.stringValue ?? config.model)]
        for name in ["prompt", "negative_prompt", "mode", "cfg_scale"] { if let v = inputs[name] { body[name] = v } }
        if request.capability == "video.from_text", let ratio = inputs["aspect_ratio"] { body["aspect_ratio"] = ratio }
        if let seconds = inputs["duration_seconds"]?.doubleValue { body["duration"] = .string(seconds == 10 ? "10" : "5") }
        if let motion = inputs["motion"]?.stringValue, let (axis, amount) = Self.motions[motion] {
            body["camera_control"] = ["type": "simple", "config": .object([axis: .number(amount)])]
        }
        if request.capability == "video.from_image" {
            if let first = inputs["image"], let encoded = try image(first, context: context) { body["image"] = .string(encoded) }
            if let last = inputs["end_image"], let encoded = try image(last, context: context) { body["image_tail"] = .string(encoded) }
        }
        if let callback = config.callbackURL { body["callback_url"] = .string(callback) }
        if let external = Self.externalTaskID(request.job) { body["external_task_id"] = .string(external) }
        return body
    }

    func submit(_ request: JobRequest, context: HostContext) throws -> SubmitResult {
        guard let kind = Self.kinds[request.capability] else { throw PluginError.unsupported(request.capability) }
        let config = Config(request.config, capability: request.capability)
        let payload = try JSONEncoder().encode(body(request, config: config, context: context))
        let external = Self.externalTaskID(request.job)
        if let limit = config.maxParallelTasks, try ParallelSlots.inUse(context) >= limit {
            return try deferred(kind: kind, external: external, payload: payload, config: config, context: context)
        }
        let answer: Answer
        do {
            answer = try send("POST", "\(config.baseURL)/v1/videos/\(kind)", body: payload, timeoutMs: config.timeoutMs, context: context)
        } catch let error as PluginError where error.retryable && external != nil {
            // The request may have reached Kling; its external id tells.
            if let ref = try? find(kind: kind, externalID: external!, config: config, context: context) { return try accepted(ref, config: config, context: context) }
            throw error
        }
        if answer.code == 0, let taskID = answer.data?["task_id"]?.stringValue {
            context.log(.info, "kling: \(kind) task \(taskID) submitted")
            return try accepted(["kind": .string(kind), "task_id": .string(taskID), "external_task_id": external.map(JSONValue.string) ?? .null], config: config, context: context)
        }
        if let external, (answer.code == 1201 && answer.message.contains("external_task_id")) || answer.code.map({ (5000...5002).contains($0) }) == true {
            // An earlier attempt created the task (duplicate id), or Kling failed
            // after it may have: look the task up before saying anything else.
            if let ref = try find(kind: kind, externalID: external, config: config, context: context) { return try accepted(ref, config: config, context: context) }
        }
        if answer.code == 1303 { return try deferred(kind: kind, external: external, payload: payload, config: config, context: context) }
        throw failure(answer)
    }

    /// Over the parallel limit: the job waits queued in the host. Its request
    /// body is kept as an artifact and poll sends it once there is room; the
    /// task is then found by its external_task_id, so the ref need not change.
    func deferred(kind: String, external: String?, payload: Data, config: Config, context: HostContext) throws -> SubmitResult {
        guard let external, let body = try? context.putArtifact(payload, mediaType: "application/json") else { throw parallelLimited(config) }
        context.log(.info, "kling: the account's parallel task limit is reached; the task waits for a free slot")
        return .ref(["kind": .string(kind), "external_task_id": .string(external), "deferred_body": .string(body.artifact)],
                    nextPollAfterMs: config.parallelRetryMs)
    }

    /// Poll of a deferred job that Kling does not have yet: submit it if there is room.
    func submitDeferred(kind: String, body: String, config: Config, context: HostContext) throws -> PollResult {
        let waiting = PollResult(state: .queued, progress: 0, message: "waiting for a free Kling parallel slot", nextPollAfterMs: config.parallelRetryMs)
        if let limit = config.maxParallelTasks, try ParallelSlots.inUse(context) >= limit { return waiting }
        let answer = try send("POST", "\(config.baseURL)/v1/videos/\(kind)", body: try context.readArtifact(body), timeoutMs: config.timeoutMs, context: context)
        switch answer.code {
        case 0:
            if config.maxParallelTasks != nil, let task = answer.data?["task_id"]?.stringValue { try? ParallelSlots.add(task, context: context) }
            return PollResult(state: .queued, progress: 0.05, message: "submitted to Kling", nextPollAfterMs: 5_000)
        case 1303: return waiting
        case 1201 where answer.message.contains("external_task_id"):
            return PollResult(state: .queued, progress: 0.05, message: "submitted to Kling", nextPollAfterMs: 1_000)
        case .some(1302), .some(5000...5002), nil: throw failure(answer)
        default: return PollResult(state: .failed, error: failure(answer))
        }
    }

    func accepted(_ ref: JSONValue, config: Config, context: HostContext) throws -> SubmitResult {
        if config.maxParallelTasks != nil, let task = ref["task_id"]?.stringValue { try? ParallelSlots.add(task, context: context) }
        return .ref(ref, nextPollAfterMs: 5_000)
    }

    /// The task Kling holds under `externalID`, or nil when it has none.
    func find(kind: String, externalID: String, config: Config, context: HostContext) throws -> JSONValue? {
        let answer = try send("GET", "\(config.baseURL)/v1/videos/\(kind)/\(externalID)", context: context)
        if answer.code == 1203 || answer.code == 1201 { return nil }
        guard answer.code == 0, let taskID = answer.data?["task_id"]?.stringValue else { throw failure(answer) }
        return ["kind": .string(kind), "task_id": .string(taskID), "external_task_id": .string(externalID)]
    }

    func reconcile(_ request: JobRequest, context: HostContext) throws -> JSONValue? {
        guard let kind = Self.kinds[request.capability], let external = Self.externalTaskID(request.job) else { return nil }
        let config = Config(request.config, capability: request.capability)
        let ref = try find(kind: kind, externalID: external, config: config, context: context)
        if config.maxParallelTasks != nil, let task = ref?["task_id"]?.stringValue { try? ParallelSlots.add(task, context: context) }
        return ref
    }

    // MARK: poll

    func poll(_ request: RefRequest, context: HostContext) throws -> PollResult {
        guard let kind = request.ref["kind"]?.stringValue, let id = request.ref["task_id"]?.stringValue ?? request.ref["external_task_id"]?.stringValue else {
            throw PluginError(code: "INVALID_REF", message: "This ref has no Kling task.", remediation: "Poll refs made by the kling adapter.", field: "$.ref")
        }
        let config = Config(request.config, capability: kind == "text2video" ? "video.from_text" : "video.from_image")
        let answer = try send("GET", "\(config.baseURL)/v1/videos/\(kind)/\(id)", context: context)
        let taskID = answer.data?["task_id"]?.stringValue ?? id
        if answer.code == 1203, request.ref["task_id"] == nil, let body = request.ref["deferred_body"]?.stringValue {
            return try submitDeferred(kind: kind, body: body, config: config, context: context)
        }
        if answer.code == 1203 {
            ParallelSlots.remove(taskID, context: context)
            return PollResult(state: .failed, error: PluginError(code: "RESULT_EXPIRED", message: "Kling no longer knows task \(taskID).",
                                                                 remediation: "Run the job again.", charged: .unknown))
        }
        guard answer.code == 0, let data = answer.data, let status = data["task_status"]?.stringValue else {
            if answer.code == nil && answer.response.status < 300 {
                throw PluginError(code: "ENGINE_ERROR", message: "Kling's task answer is not its JSON envelope.", remediation: "Retried automatically.", retryable: true)
            }
            throw failure(answer)
        }
        switch status {
        case "submitted":
            return PollResult(state: .queued, progress: 0.05, message: "queued at Kling", nextPollAfterMs: 5_000)
        case "processing":
            return PollResult(state: .running, progress: 0.5, message: "rendering at Kling", nextPollAfterMs: 5_000)
        case "succeed":
            ParallelSlots.remove(taskID, context: context)
            guard let video = data["task_result"]?["videos"]?.arrayValue?.first, let url = video["url"]?.stringValue else {
                return PollResult(state: .failed, error: PluginError(code: "ENGINE_ERROR", message: "Kling reports task \(taskID) succeeded with no video.",
                                                                     remediation: "Contact Kling support with the task id.", charged: .yes))
            }
            let measured = video["duration"]?.stringValue.flatMap(Double.init) ?? video["duration"]?.doubleValue
            let seconds = measured ?? 5
            // Kling deletes videos after 30 days: the host downloads this URL at once.
            // Kling bills by the duration rendered and the mode (priced from inputs.mode).
            return PollResult(state: .succeeded, progress: 1, outputs: ["video": ["url": .string(url), "media_type": "video/mp4"],
                                                                         "duration_seconds": .number(seconds)],
                              usage: measured.map { Usage(videoSeconds: $0) })
        case "failed":
            ParallelSlots.remove(taskID, context: context)
            let reason = data["task_status_msg"]?.stringValue ?? "no reason given"
            let policy = ["risk", "policy", "sensitive", "safety", "violat"].contains { reason.lowercased().contains($0) }
            return PollResult(state: .failed, error: PluginError(code: policy ? "SAFETY_FILTER" : "ENGINE_ERROR", message: "Kling task \(taskID) failed: \(reason)",
                                                                 remediation: policy ? "Rephrase the prompt or use another image." : "Run again; if it repeats, contact Kling with the task id.",
                                                                 charged: .no))
        default:
            throw PluginError(code: "ENGINE_ERROR", message: "Kling answered an unknown task_status \"\(status)\".", remediation: "Retried automatically.", retryable: true)
        }
    }

    // MARK: cancel, health

    /// Kling has no cancel API: a task runs to its end and is billed. Cancel
    /// says so truthfully, and the host stops following the task.
    func cancel(_ request: RefRequest, context: HostContext) throws -> CancelResult {
        guard let kind = request.ref["kind"]?.stringValue, let id = request.ref["task_id"]?.stringValue ?? request.ref["external_task_id"]?.stringValue else {
            return CancelResult(outcome: .notFound, charged: .no)
        }
        let config = Config(request.config, capability: kind == "text2video" ? "video.from_text" : "video.from_image")
        let answer = try send("GET", "\(config.baseURL)/v1/videos/\(kind)/\(id)", context: context)
        let taskID = answer.data?["task_id"]?.stringValue ?? id
        if answer.code == 1203 {
            // A deferred job Kling never received: stopping it here costs nothing.
            return request.ref["task_id"] == nil ? CancelResult(outcome: .cancelledInQueue, charged: .no) : CancelResult(outcome: .notFound, charged: .unknown)
        }
        guard answer.code == 0, let status = answer.data?["task_status"]?.stringValue else { throw failure(answer) }
        switch status {
        case "succeed": return CancelResult(outcome: .alreadyFinished, charged: .yes)
        case "failed": return CancelResult(outcome: .alreadyFinished, charged: .no)
        default:
            ParallelSlots.remove(taskID, context: context)
            return CancelResult(outcome: .cancelledRunning, charged: .yes,
                                message: "Kling has no cancel API: task \(taskID) keeps running and is billed; Switchyard stops following it")
        }
    }

    /// What is left of the account's resource packs: GET /account/costs over
    /// the last year, summing `remaining_quantity` of the packs that are
    /// online (expired and run-out packs cannot be spent). Kling counts these
    /// in its own units, not money.
    func balance(_ request: ConfigRequest, context: HostContext) throws -> CostEstimate {
        let config = Config(request.config, capability: "video.from_text")
        let end = context.nowUnixMs(), start = end - 365 * 24 * 3600 * 1000
        let answer = try send("GET", "\(config.baseURL)/account/costs?start_time=\(start)&end_time=\(end)", context: context)
        guard answer.code == 0, let data = answer.data else { throw failure(answer) }
        let packs = data["resource_pack_subscribe_infos"]?.arrayValue ?? []
        let live = packs.filter { $0["status"]?.stringValue == "online" }
        let remaining = live.compactMap { $0["remaining_quantity"]?.doubleValue }.reduce(0, +)
        return CostEstimate(amountMinor: 0, currency: "USD", basis: "\(live.count) of \(packs.count) resource pack(s) online (Kling reports remaining units with up to 12 h delay)",
                            quantity: remaining, unit: "units")
    }

    func health(_ request: ConfigRequest, context: HostContext) -> HealthReport {
        let config = Config(request.config, capability: "video.from_text")
        do {
            let answer = try send("GET", "\(config.baseURL)/v1/videos/text2video?pageNum=1&pageSize=1", context: context)
            if answer.code == 0 { return HealthReport(status: .ok, message: "credentials accepted") }
            let error = failure(answer)
            let busy = answer.code == 1302 || answer.code == 1303
            return HealthReport(status: busy ? .degraded : .offline, message: error.message,
                                details: ["code": .string(error.code == "ENGINE_UNAVAILABLE" ? "ENGINE_OFFLINE" : error.code)])
        } catch let error as PluginError {
            return HealthReport(status: .offline, message: error.message, details: ["code": .string(error.code)])
        } catch {
            return HealthReport(status: .offline, message: "\(error)")
        }
    }
}

/// Tasks this host has running at Kling, kept in the host's kv so the count
/// survives restarts. Only used when config.max_parallel_tasks is set: the
/// adapter then waits for a free slot instead of drawing 1303 from Kling.
enum ParallelSlots {
    static let lock = NSLock()
    static let key = "parallel-tasks"
    /// A slot is given back after this long even if its task was never seen to finish.
    static let leaseMs: Int64 = 2 * 3600 * 1000

    static func load(_ context: HostContext) throws -> [String: Int64] {
        guard let data = try context.kvGet(key), let map = try? JSONDecoder().decode([String: Int64].self, from: data) else { return [:] }
        let now = context.nowUnixMs()
        return map.filter { $0.value > now }
    }

    static func inUse(_ context: HostContext) throws -> Int { try lock.withLock { try load(context).count } }

    static func add(_ task: String, context: HostContext) throws {
        try lock.withLock {
            var map = try load(context)
            map[task] = context.nowUnixMs() + leaseMs
            try context.kvPut(key, JSONEncoder().encode(map))
        }
    }

    static func remove(_ task: String, context: HostContext) {
        lock.withLock {
            guard var map = try? load(context), map.removeValue(forKey: task) != nil, let data = try? JSONEncoder().encode(map) else { return }
            try? context.kvPut(key, data)
        }
    }
}
