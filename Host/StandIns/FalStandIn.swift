import Foundation
import SwitchyardHost

/// fal's queue API on loopback (PROVIDERS.md: fal): submit to
/// /{owner}/{app}[/{subpath}], then use the returned status/response/cancel
/// URLs (the subpath is on submit only); storage token + upload for input
/// files. Failure modes: 422 `detail` for bad input, 403 "User is locked …
/// Exhausted balance", 401 for a wrong key, 429 over concurrency,
/// X-Fal-Error-Type runner_* (503) and request_timeout (504), COMPLETED with
/// error/error_type, cancel of a finished request (400 ALREADY_COMPLETED),
/// results gone after retention. Requests advance with the clock, never with
/// reads: `queueMs` in the queue, `runMs` on a runner, then COMPLETED.
public final class FalStandIn: ProviderStandIn, @unchecked Sendable {
    public struct Faults: Sendable {
        /// Milliseconds a request waits in the queue.
        public var queueMs: Int64 = 5
        /// Milliseconds a request runs before it is COMPLETED.
        public var runMs: Int64 = 20
        /// Requests never leave the queue.
        public var stuckInQueue = false
        /// Submit answers 403 "User is locked. Reason: Exhausted balance…".
        public var exhaustedBalance = false
        /// The next N requests answer 429.
        public var rateLimitNext = 0
        /// The next N status requests answer 503 with X-Fal-Error-Type: runner_unavailable.
        public var runnerErrorNext = 0
        /// Requests finish COMPLETED with this error_type (e.g. "request_timeout").
        public var completeWithErrorType: String?
        /// Fields submit refuses with 422 when absent, per app id prefix (as each app's own input model does;
        /// the longest matching prefix wins).
        public var requiredFields: [String: [String]] = FalStandIn.appRequiredFields
        /// Webhooks: attempts per delivery until a 2xx (fal: 10 over 2 hours), and extra copies sent anyway.
        public var webhookAttempts = 3
        public var duplicateWebhooks = 0
        /// The webhook reports status ERROR with a 422 detail naming this field.
        public var webhookInputError: String?
        public init() {}
    }

    struct Request {
        var id: String
        var app: String
        /// The whole app path submitted to (owner/app/subpath), which decides the answer's shape.
        var model: String = ""
        var input: [String: Any]
        var status: String
        var createdMs: Int64
        var startedMs: Int64?
        var cancelled = false
        var webhookSent = false
        var finishedMs: Int64?
        /// Where fal POSTs the result (`?fal_webhook=` on submit).
        var webhookURL: String?
    }

    public let key: String
    /// Accept any `Key …` (for `yard plugin test`, which sends canary secrets).
    public var acceptAnyKey = false
    public var faults = Faults()
    public var retentionMs: Int64 = 7 * 24 * 3600 * 1000
    let lock = NSLock()
    var requests: [String: Request] = [:]
    /// fal's webhook signing keys, published as a JWKS.
    var webhookKeys = [WebhookKey(kid: "fal-1")]
    public let webhookUserID = "standin-user"
    private(set) public var jwksRequests = 0
    private var uploads: [String: Data] = [:]
    /// Result files, by path under /files/, kept for the request's retention.
    var resultFiles: [String: (request: String, type: String, data: Data)] = [:]
    private(set) public var submissions = 0

    /// The account's credits, as the Platform API's billing answer gives them (USD).
    public var creditBalance = 50.0

    public init(key: String = "fal-standin-key:secret", clock: any AdjustableClock = WallClock()) {
        self.key = key
        super.init(clock: clock)
    }

    public var baseURL: String { server.baseURL }
    public func configure(_ change: (inout Faults) -> Void) { lock.withLock { change(&faults) } }
    public var uploadedFiles: [Data] { lock.withLock { Array(uploads.values) } }
    public func input(of index: Int) -> [String: Any]? { lock.withLock { requests.values.sorted { $0.id < $1.id }.dropFirst(index).first?.input } }

    func detail(_ status: Int, _ detail: Any, headers: [String: String] = [:]) -> ScriptedHTTPServer.Response {
        var response = ScriptedHTTPServer.Response.json(["detail": detail], status: status)
        for (k, v) in headers { response.headers[k] = v }
        return response
    }

    /// Where a request is at `now`: what time alone has done to it.
    func advanced(_ job: Request, now: Int64) -> Request {
        var job = job
        if job.status == "IN_QUEUE", !faults.stuckInQueue, now >= job.createdMs + faults.queueMs {
            job.status = "IN_PROGRESS"
            job.startedMs = job.createdMs + faults.queueMs
        }
        if job.status == "IN_PROGRESS", let started = job.startedMs, now >= started + faults.runMs {
            job.status = "COMPLETED"
            job.finishedMs = started + faults.runMs
        }
        return job
    }

    func advanceAll(now: Int64) { for (id, job) in requests { requests[id] = advanced(job, now: now) } }

    override func handle(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        lock.lock()
        defer { lock.unlock() }
        advanceAll(now: clock.nowUnixMs())
        let path = request.path
        if request.method == "GET", path == "/.well-known/jwks.json" {
            jwksRequests += 1
            return .json(["keys": webhookKeys.map { ["kty": "OKP", "crv": "Ed25519", "kid": $0.kid, "x": $0.x] }])
        }
        if request.method == "GET", path.hasPrefix("/files/") {
            let id = String(path.dropFirst("/files/".count))
            if let data = uploads[id] { return .init(status: 200, headers: ["content-type": "application/octet-stream"], body: data) }
            guard let file = resultFiles[id], let done = requests[file.request], let finished = done.finishedMs,
                  clock.nowUnixMs() - finished <= retentionMs else { return .init(status: 404) }
            return .init(status: 200, headers: ["content-type": file.type], body: file.data)
        }
        if faults.rateLimitNext > 0 {
            faults.rateLimitNext -= 1
            return detail(429, "Too many concurrent requests", headers: ["retry-after": "0"])
        }
        if path == "/storage/files/upload", request.method == "POST" {
            // The upload token, not the fal key, authorises uploads.
            guard (request.headers["authorization"] ?? "").hasPrefix("Bearer upload-token-") else { return detail(401, "Invalid upload token") }
            return .json(["access_url": storeUpload(request.body)])
        }
        let auth = request.headers["authorization"] ?? ""
        guard auth == "Key \(key)" || (acceptAnyKey && auth.count > 4 && auth.hasPrefix("Key ")) else {
            return detail(401, "Invalid or missing credentials: expected `Authorization: Key <FAL_KEY>`")
        }
        if path == "/storage/auth/token", request.method == "POST" {
            return .json(["token": "upload-token-\(UUID().uuidString.prefix(8))", "token_type": "Bearer", "base_url": "\(server.baseURL)/storage",
                          "expires_at": "2099-01-01T00:00:00Z"])
        }
        if request.method == "GET", path == "/v1/account/billing" {
            // fal's Platform API: credits only when expanded.
            var answer: [String: Any] = ["username": webhookUserID]
            if request.query.contains("expand=credits") { answer["credits"] = ["current_balance": creditBalance, "currency": "USD"] }
            return .json(answer)
        }
        let parts = path.split(separator: "/").map(String.init)
        if let r = parts.firstIndex(of: "requests"), r >= 2, r + 1 < parts.count {
            let id = parts[r + 1]
            guard var job = requests[id] else { return detail(404, "Request \(id) not found") }
            if parts.count > r + 2, parts[r + 2] == "status", request.method == "GET" { return status(&job) }
            if parts.count > r + 2, parts[r + 2] == "cancel", request.method == "PUT" {
                if job.status == "COMPLETED" { return .json(["status": "ALREADY_COMPLETED"], status: 400) }
                job.cancelled = true
                job.status = "COMPLETED"
                job.finishedMs = clock.nowUnixMs()
                requests[id] = job
                return .json(["status": "CANCELLATION_REQUESTED"], status: 202)
            }
            if parts.count == r + 2, request.method == "GET" { return result(job) }
            return detail(405, "method not allowed")
        }
        guard request.method == "POST", parts.count >= 2 else { return detail(404, "not found") }
        return submit(parts, request)
    }

    func submit(_ parts: [String], _ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        if faults.exhaustedBalance {
            return detail(403, "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing.")
        }
        guard let input = (try? JSONSerialization.jsonObject(with: request.body)) as? [String: Any] else {
            return detail(422, [["loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"]])
        }
        let app = parts.prefix(2).joined(separator: "/")
        let model = parts.joined(separator: "/")
        let required = faults.requiredFields.filter { model.hasPrefix($0.key) }.max { $0.key.count < $1.key.count }?.value ?? []
        let missing = required.filter { input[$0] == nil }
        if !missing.isEmpty {
            return detail(422, missing.map { ["loc": ["body", $0], "msg": "Field required", "type": "missing"] })
        }
        if let problem = Self.invalidInput(model: model, input) { return detail(422, [problem]) }
        submissions += 1
        let id = UUID().uuidString.lowercased()
        let webhook = URLComponents(string: "http://x/?\(request.query)")?.queryItems?.first { $0.name == "fal_webhook" }?.value
        requests[id] = Request(id: id, app: app, model: model, input: input, status: "IN_QUEUE", createdMs: clock.nowUnixMs(), webhookURL: webhook)
        let base = "\(server.baseURL)/\(app)/requests/\(id)"
        return .json(["request_id": id, "status_url": "\(base)/status", "response_url": base, "cancel_url": "\(base)/cancel", "queue_position": 2])
    }

    func status(_ job: inout Request) -> ScriptedHTTPServer.Response {
        if faults.runnerErrorNext > 0 {
            faults.runnerErrorNext -= 1
            return detail(503, "Runner unavailable", headers: ["x-fal-error-type": "runner_unavailable"])
        }
        var answer: [String: Any] = ["status": job.status, "request_id": job.id]
        switch job.status {
        case "IN_QUEUE":
            answer["queue_position"] = requests.values.filter { $0.status == "IN_QUEUE" && $0.createdMs < job.createdMs }.count
        case "IN_PROGRESS":
            answer["logs"] = [["message": "running for \(clock.nowUnixMs() - (job.startedMs ?? job.createdMs)) ms", "timestamp": "2026-11-22T00:00:00Z"]]
        default:
            answer["logs"] = []
            if let started = job.startedMs, let finished = job.finishedMs { answer["metrics"] = ["inference_time": Double(finished - started) / 1000] }
            if job.cancelled { answer["error"] = "Request was cancelled"; answer["error_type"] = "request_cancelled" }
            else if let type = faults.completeWithErrorType { answer["error"] = "Request failed"; answer["error_type"] = type }
        }
        return .json(answer)
    }

    func result(_ job: Request) -> ScriptedHTTPServer.Response {
        guard job.status == "COMPLETED" else { return detail(400, "Request is still in progress") }
        if let finished = job.finishedMs, clock.nowUnixMs() - finished > retentionMs { return detail(404, "Request not found") }
        if job.cancelled { return detail(400, "Request was cancelled") }
        if let type = faults.completeWithErrorType {
            return detail(type == "request_timeout" ? 504 : 500, "Request failed: \(type)", headers: ["x-fal-error-type": type])
        }
        return .json(output(job))
    }
}

extension FalStandIn {
    /// What each app requires (its input model's required fields).
    public static let appRequiredFields: [String: [String]] = [
        "fal-ai/flux": ["prompt"], "fal-ai/flux-pro/kontext": ["prompt", "image_url"], "fal-ai/flux-pro/kontext/multi": ["prompt", "image_urls"],
        "fal-ai/clarity-upscaler": ["image_url"], "fal-ai/esrgan": ["image_url"],
        "fal-ai/kling-video": ["prompt", "image_url"], "fal-ai/minimax": ["prompt", "image_url"],
        "fal-ai/sync-lipsync": ["video_url", "audio_url"], "fal-ai/sadtalker": ["source_image_url", "driven_audio_url"],
        "fal-ai/playai/tts": ["input", "voice"], "fal-ai/kokoro": ["prompt"],
    ]

    /// The 422 detail fal's input models give for a value of the wrong form.
    static func invalidInput(model: String, _ input: [String: Any]) -> [String: Any]? {
        for (name, value) in input where name.hasSuffix("_url") {
            guard let url = value as? String, url.hasPrefix("http") || url.hasPrefix("data:") else {
                return ["loc": ["body", name], "msg": "Input should be a valid URL", "type": "url_parsing"]
            }
        }
        if model.hasPrefix("fal-ai/kling-video"), let duration = input["duration"], !["5", "10"].contains(duration as? String ?? "") {
            return ["loc": ["body", "duration"], "msg": "Input should be '5' or '10'", "type": "literal_error"]
        }
        if let size = input["image_size"] as? String, !["square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"].contains(size) {
            return ["loc": ["body", "image_size"], "msg": "Input should be 'square_hd', 'square', 'portrait_4_3', 'portrait_16_9', 'landscape_4_3' or 'landscape_16_9'", "type": "enum"]
        }
        return nil
    }

    /// A result file, served under /files/ until the request's retention ends.
    func publish(_ data: Data, type: String, ext: String, request: String, index: Int) -> [String: Any] {
        let name = "\(request)-\(index).\(ext)"
        resultFiles[name] = (request, type, data)
        return ["url": "\(server.baseURL)/files/\(name)", "content_type": type, "file_name": name, "file_size": data.count]
    }

    /// The pixel size of an uploaded input file this stand-in holds (fal's CDN), if any.
    func uploadedSize(_ url: Any?) -> (Int, Int)? {
        guard let url = url as? String, let id = url.split(separator: "/").last.map(String.init), let data = uploads[id] else { return nil }
        return TinyPNG.size(data)
    }

    /// The app's answer, shaped as that app documents it. Images are PNG
    /// whatever output_format asks (no JPEG encoder here), and say so.
    func output(_ job: Request) -> [String: Any] {
        let input = job.input
        let model = job.model
        let seed = input["seed"] as? Int ?? 7
        func image(_ width: Int, _ height: Int, _ index: Int) -> [String: Any] {
            var file = publish(StandInMedia.png(width: width, height: height, seed: "\(job.id)-\(index)"), type: "image/png", ext: "png", request: job.id, index: index)
            file["width"] = width
            file["height"] = height
            return file
        }
        if model.hasPrefix("fal-ai/clarity-upscaler") || model.hasPrefix("fal-ai/esrgan") {
            let factor = (input["upscale_factor"] ?? input["scale"]) as? Double ?? Double(input["upscale_factor"] as? Int ?? input["scale"] as? Int ?? 2)
            let (w, h) = uploadedSize(input["image_url"]) ?? (512, 512)
            var file = image(Int(Double(w) * factor), Int(Double(h) * factor), 0)
            if model.hasPrefix("fal-ai/esrgan") {
                // ESRGAN's answer carries no size: the adapter reads it from the file.
                file.removeValue(forKey: "width")
                file.removeValue(forKey: "height")
                return ["image": file]
            }
            return ["image": file, "seed": seed, "timings": ["inference": 1.1]]
        }
        if model.hasPrefix("fal-ai/kling-video") || model.hasPrefix("fal-ai/minimax") || model.hasPrefix("fal-ai/sync-lipsync") || model.hasPrefix("fal-ai/sadtalker") {
            let seconds = model.hasPrefix("fal-ai/minimax") ? 6 : Double(input["duration"] as? String ?? "5") ?? 5
            return ["video": publish(StandInMedia.clip(seconds: seconds), type: "video/mp4", ext: "mp4", request: job.id, index: 0)]
        }
        if model.hasPrefix("fal-ai/playai/tts") {
            var audio = publish(StandInMedia.speechMP3, type: "audio/mpeg", ext: "mp3", request: job.id, index: 0)
            audio["duration"] = StandInMedia.speechMP3Seconds
            return ["audio": audio]
        }
        if model.hasPrefix("fal-ai/kokoro") {
            let text = input["prompt"] as? String ?? ""
            return ["audio": publish(StandInMedia.wav(seconds: StandInMedia.speechSeconds(text)), type: "audio/wav", ext: "wav", request: job.id, index: 0)]
        }
        // FLUX text-to-image and Kontext edits: {images: [...], seed, has_nsfw_concepts, prompt, timings}.
        let sizes: [String: (Int, Int)] = ["square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024), "portrait_16_9": (576, 1024),
                                           "landscape_4_3": (1024, 768), "landscape_16_9": (1024, 576)]
        var size = model.hasPrefix("fal-ai/flux-pro/kontext") ? (uploadedSize(input["image_url"] ?? (input["image_urls"] as? [Any])?.first) ?? (1024, 1024)) : (1024, 768)
        if let named = input["image_size"] as? String, let known = sizes[named] { size = known }
        if let custom = input["image_size"] as? [String: Any], let w = custom["width"] as? Int, let h = custom["height"] as? Int { size = (w, h) }
        let count = max(1, min(4, input["num_images"] as? Int ?? 1))
        // FLUX's Image is {url, width, height, content_type}: no file name or size.
        let images = (0..<count).map { n -> [String: Any] in
            var file = image(size.0, size.1, n)
            file.removeValue(forKey: "file_name")
            file.removeValue(forKey: "file_size")
            return file
        }
        return ["images": images, "seed": seed, "has_nsfw_concepts": Array(repeating: false, count: count),
                "prompt": input["prompt"] ?? "", "timings": ["inference": 1.25]]
    }
}

extension FalStandIn {
    /// Storage uploads land under /storage/files/upload (served by handle()).
    func storeUpload(_ data: Data) -> String {
        let id = UUID().uuidString.lowercased()
        uploads[id] = data
        return "\(server.baseURL)/files/\(id)"
    }
}
