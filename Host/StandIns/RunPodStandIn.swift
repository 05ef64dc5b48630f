import Foundation
import SwitchyardHost

/// A RunPod serverless endpoint on loopback (PROVIDERS.md: RunPod), with real
/// job state and the failure modes it lists: stuck in queue, cold start,
/// COMPLETED with no output, 404 after ttl or retention, 429 with
/// Retry-After, TIMED_OUT, FAILED, a late IN_PROGRESS after COMPLETED, wrong
/// keys, 5xx. Jobs advance with the stand-in's clock, never with reads: a job
/// waits `queueMs` for a worker, runs `runMs`, then ends; `/status` only
/// reports. Terminal answers carry `executionTime` (ms on a worker) as
/// RunPod's do — COMPLETED, FAILED, TIMED_OUT and a CANCELLED job that had
/// started — and a FAILED `error` is the JSON string the official worker SDK
/// sends. Counts submissions, for exactly-once checks.
public final class RunPodStandIn: ProviderStandIn, @unchecked Sendable {
    public struct Faults: Sendable {
        /// Jobs never leave IN_QUEUE (no capacity, or a crash-looping worker).
        public var stuckInQueue = false
        /// Milliseconds a job waits for a worker (a cold start when large).
        public var queueMs: Int64 = 5
        /// Milliseconds a job runs on a worker: its executionTime.
        public var runMs: Int64 = 30
        public var completeWithoutOutput = false
        /// The handler raises with this message: FAILED, with the worker SDK's error JSON.
        public var failWith: String?
        /// The handler returns {"error": text} itself: FAILED with that plain text.
        public var failWithHandlerText: String?
        /// The worker never finishes: RunPod stops it at the job's executionTimeout (TIMED_OUT).
        public var timeOut = false
        /// The next N requests answer 429 with Retry-After.
        public var rateLimitNext = 0
        public var retryAfterSeconds = 1
        /// The next N requests answer 500.
        public var serverErrorNext = 0
        /// The next N /status answers are not JSON.
        public var malformedNext = 0
        /// After a COMPLETED answer, the next /status answers a stale IN_PROGRESS once (a lagging replica).
        public var lateProgressAfterCompletion = false
        /// Health reports no workers (with jobs waiting).
        public var noWorkers = false
        /// The next /run creates the job, then the connection drops before the answer is complete.
        public var dropNextRun = false
        /// The next N /status answers are cut off mid-body.
        public var dropNextStatus = 0
        /// Milliseconds a new endpoint's /health answers 404 while it provisions.
        public var provisioningMs: Int64 = 20
        /// Extra copies of each webhook (RunPod retries; receivers see duplicates).
        public var duplicateWebhooks = 0
        public init() {}
    }

    struct Job {
        var id: String
        var input: Any
        var status: String
        var createdMs: Int64
        var startedMs: Int64?
        var finishedMs: Int64?
        var executionMs: Int?
        var ttlMs: Int64
        var executionTimeoutMs: Int64
        var latePending = false
        var lateServed = false
        var webhook: String?
        var error: String?
        var endpoint: String = ""
    }

    /// What kind of worker an endpoint runs, i.e. how its handler answers
    /// (PROVIDERS.md: the public worker output shapes).
    public enum Worker: String, Sendable, CaseIterable {
        /// `{"image_url", "seed"}`: a URL on the worker's bucket (here, this server).
        case imageURL = "image-url"
        /// worker-sdxl style: `{"images": ["data:image/png;base64,…"], "image_url", "seed"}`.
        case sdxl
        /// runpod/worker-comfyui 5.x: needs `input.workflow`; answers `{"images": [{"filename", "type": "base64", "data"}]}`.
        case comfyUI = "comfyui"
        /// worker-comfyui with a bucket configured: `type: "s3_url"`, `data` a presigned link that expires.
        case comfyUIS3 = "comfyui-s3"
        /// `{"video_url"}` of a clip as long as `duration_seconds` asks (5, 6 or 10 s).
        case videoURL = "video-url"
        /// `{"audio_url"}` of speech as long as the text takes to say.
        case audioURL = "audio-url"
    }

    public let apiKey: String
    /// The worker of the default endpoint, and per endpoint id for endpoints added with `addEndpoint`.
    public var worker: Worker = .imageURL
    public private(set) var workers: [String: Worker] = [:]
    /// Accept any non-empty key (for `yard plugin test`, which sends canary secrets).
    public var acceptAnyKey = false
    public let endpointID: String
    public var faults = Faults()
    /// Output the worker returns: default {"image_url": <this server>/outputs/<id>.png, "seed": 42}.
    public var output: (@Sendable (_ jobID: String, _ baseURL: String) -> Any)?
    /// Result retention after completion (RunPod /run: 30 minutes).
    public var retentionMs: Int64 = 30 * 60 * 1000
    /// The account's credit, as GraphQL `myself { clientBalance }` answers it (USD).
    public var clientBalance = 25.0

    let lock = NSLock()
    var jobs: [String: Job] = [:]
    /// Templates and endpoints created through the REST API (endpoint.deploy).
    var templates: [[String: Any]] = []
    var endpoints: [[String: Any]] = []
    var endpointCreatedMs: [String: Int64] = [:]
    private var order: [String] = []
    /// Result files under /outputs/, by name.
    var files: [String: (type: String, data: Data)] = [:]
    private(set) public var submissions = 0

    public init(apiKey: String = "rpa_STANDIN_KEY_0000000000", endpointID: String = "standin-endpoint", clock: any AdjustableClock = WallClock()) {
        self.apiKey = apiKey
        self.endpointID = endpointID
        super.init(clock: clock)
    }

    public var baseURL: String { "\(server.baseURL)/v2" }
    public var graphqlURL: String { "\(server.baseURL)/graphql" }

    public func configure(_ change: (inout Faults) -> Void) { lock.withLock { change(&faults) } }

    public func status(of id: String) -> String? { lock.withLock { jobs[id].map { advanced($0, now: clock.nowUnixMs()).status } } }
    /// The executionTime RunPod reports for a job (nil while it has not ended, or if it never ran).
    public func executionTime(of id: String) -> Int? { lock.withLock { jobs[id].map { advanced($0, now: clock.nowUnixMs()).executionMs } ?? nil } }
    /// Another serverless endpoint on this account, running `worker`.
    public func addEndpoint(_ id: String, worker: Worker) { lock.withLock { workers[id] = worker } }

    public var jobIDs: [String] { lock.withLock { order } }

    /// Where a job is at `now`: what time alone has done to it since it was created.
    func advanced(_ job: Job, now: Int64) -> Job {
        var job = job
        if job.status == "IN_QUEUE", !faults.stuckInQueue, now >= job.createdMs + faults.queueMs {
            job.status = "IN_PROGRESS"
            job.startedMs = job.createdMs + faults.queueMs
        }
        if job.status == "IN_PROGRESS", let started = job.startedMs {
            if faults.timeOut {
                if now >= started + job.executionTimeoutMs {
                    job.status = "TIMED_OUT"
                    job.finishedMs = started + job.executionTimeoutMs
                    job.executionMs = Int(job.executionTimeoutMs)
                }
            } else if now >= started + faults.runMs {
                job.finishedMs = started + faults.runMs
                job.executionMs = Int(faults.runMs)
                if let message = faults.failWith {
                    job.status = "FAILED"
                    job.error = Self.workerSDKError(message)
                } else if let text = faults.failWithHandlerText {
                    job.status = "FAILED"
                    job.error = text
                } else {
                    job.status = "COMPLETED"
                }
            }
        }
        return job
    }

    /// The `error` of a FAILED job whose handler raised, as runpod-python's
    /// rp_job.run_job sends it: json.dumps of type, message and traceback.
    static func workerSDKError(_ message: String) -> String {
        let info: [String: Any] = [
            "error_type": "<class 'RuntimeError'>", "error_message": message,
            "error_traceback": "Traceback (most recent call last):\n  File \"/usr/local/lib/python3.11/site-packages/runpod/serverless/modules/rp_job.py\", line 182, in run_job\n    handler_return = handler(job)\n  File \"/handler.py\", line 24, in handler\n    raise RuntimeError(\(String(reflecting: message)))\nRuntimeError: \(message)\n",
            "hostname": "standin-worker-0", "worker_id": "standin-worker-0", "runpod_version": "1.7.9",
        ]
        let data = (try? JSONSerialization.data(withJSONObject: info, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Brings every job up to `now` (under the lock).
    func advanceAll(now: Int64) {
        for (id, job) in jobs { jobs[id] = advanced(job, now: now) }
    }

    override func handle(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        lock.lock()
        defer { lock.unlock() }
        if faults.rateLimitNext > 0 {
            faults.rateLimitNext -= 1
            return .init(status: 429, headers: ["retry-after": String(faults.retryAfterSeconds), "content-type": "application/json"],
                         body: Data(#"{"error":"Too many requests"}"#.utf8))
        }
        if faults.serverErrorNext > 0 {
            faults.serverErrorNext -= 1
            return .init(status: 500, body: Data("Internal Server Error".utf8))
        }
        let now = clock.nowUnixMs()
        advanceAll(now: now)
        if request.method == "GET", request.path.hasPrefix("/outputs/") {
            // Results are served like a bucket: no auth, gone after retention.
            let name = String(request.path.dropFirst("/outputs/".count))
            let id = String(name.split(separator: ".").first ?? "")
            guard let job = jobs[id], let finished = job.finishedMs, now - finished <= retentionMs else {
                return .init(status: 404)
            }
            if let file = files[name] { return .init(status: 200, headers: ["content-type": file.type], body: file.data) }
            return .init(status: 200, headers: ["content-type": "image/png"], body: StandInMedia.png(width: 512, height: 512, seed: id))
        }
        let auth = request.headers["authorization"] ?? ""
        guard auth == "Bearer \(apiKey)" || auth == apiKey || (acceptAnyKey && auth.count > "Bearer ".count) else {
            return .init(status: 401, body: Data("Unauthorized".utf8))
        }
        let parts = request.path.split(separator: "/").map(String.init)
        if parts.first == "rest" { return rest(request, Array(parts.dropFirst())) }
        if parts == ["graphql"], request.method == "POST" { return graphql(request) }
        let deployed = endpoints.first { $0["id"] as? String == (parts.count > 1 ? parts[1] : "") }
        if let deployed, parts.count >= 3, parts[2] == "health" { return deployedHealth(deployed, now: now) }
        guard parts.count >= 3, parts[0] == "v2", parts[1] == endpointID || workers[parts[1]] != nil || deployed != nil else {
            return .json(["error": "endpoint not found"], status: 404)
        }
        switch (request.method, parts[2]) {
        case ("POST", "run"): return run(request, endpoint: parts[1], now: now)
        case ("GET", "status") where parts.count == 4: return status(parts[3], now: now)
        case ("POST", "cancel") where parts.count == 4: return cancel(parts[3], now: now)
        case ("GET", "health"): return health()
        case ("POST", "purge-queue"):
            let queued = jobs.values.filter { $0.status == "IN_QUEUE" }.map(\.id)
            for id in queued { jobs[id]?.status = "CANCELLED"; jobs[id]?.finishedMs = now }
            return .json(["removed": queued.count, "status": "completed"])
        default: return .json(["error": "not found"], status: 404)
        }
    }

    func run(_ request: ScriptedHTTPServer.Request, endpoint: String, now: Int64) -> ScriptedHTTPServer.Response {
        guard request.body.count <= 10 << 20 else { return .json(["error": "payload too large (10 MB max for /run)"], status: 413) }
        guard let body = (try? JSONSerialization.jsonObject(with: request.body)) as? [String: Any], let input = body["input"] else {
            return .json(["error": "request body must be a JSON object with \"input\""], status: 400)
        }
        submissions += 1
        let id = UUID().uuidString.lowercased() + "-u1"
        let policy = body["policy"] as? [String: Any]
        let ttl = (policy?["ttl"] as? Int).map(Int64.init) ?? 24 * 3600 * 1000
        let timeout = (policy?["executionTimeout"] as? Int).map(Int64.init) ?? 600_000
        jobs[id] = Job(id: id, input: input, status: "IN_QUEUE", createdMs: now, ttlMs: ttl, executionTimeoutMs: timeout, webhook: body["webhook"] as? String, endpoint: endpoint)
        order.append(id)
        if faults.dropNextRun {
            faults.dropNextRun = false
            return ScriptedHTTPServer.Response.json(["id": id, "status": "IN_QUEUE"]).dropped(after: 6)
        }
        return .json(["id": id, "status": "IN_QUEUE"])
    }

    func status(_ id: String, now: Int64) -> ScriptedHTTPServer.Response {
        guard var job = jobs[id] else { return .json(["error": "job not found"], status: 404) }
        if now - job.createdMs > job.ttlMs || (job.finishedMs.map { now - $0 > retentionMs } ?? false) {
            jobs.removeValue(forKey: id)
            return .json(["error": "job not found"], status: 404)
        }
        if faults.dropNextStatus > 0 {
            faults.dropNextStatus -= 1
            return ScriptedHTTPServer.Response.json(["id": id, "status": job.status]).dropped(after: 10)
        }
        if faults.malformedNext > 0 {
            faults.malformedNext -= 1
            return .init(status: 200, headers: ["content-type": "application/json"], body: Data(#"{"id":"\#(id)","status":"IN_PROG"#.utf8))
        }
        if job.latePending {
            // A lagging replica answers once with the state before completion.
            job.latePending = false
            jobs[id] = job
            return .json(["id": id, "status": "IN_PROGRESS", "delayTime": delayTime(job)])
        }
        if job.status == "COMPLETED", faults.lateProgressAfterCompletion, !job.lateServed {
            job.lateServed = true
            job.latePending = true
            jobs[id] = job
        }
        return .json(statusBody(job))
    }

    func delayTime(_ job: Job) -> Int64 { (job.startedMs ?? clock.nowUnixMs()) - job.createdMs }

    /// What /status (and a webhook) says about a job.
    func statusBody(_ job: Job) -> [String: Any] {
        let id = job.id
        var answer: [String: Any] = ["id": id, "status": job.status, "delayTime": delayTime(job)]
        if let executionMs = job.executionMs { answer["executionTime"] = executionMs }
        if job.status == "COMPLETED", !faults.completeWithoutOutput {
            if let output { answer["output"] = output(id, server.baseURL) } else {
                switch workerOutput(job) {
                case .success(let value): answer["output"] = value
                case .failure(let reason):
                    // The runpod SDK marks a job whose handler returned {"error"} as FAILED.
                    answer["status"] = "FAILED"
                    answer["error"] = reason.message
                }
            }
        }
        if job.status == "FAILED" { answer["error"] = job.error ?? Self.workerSDKError("handler raised") }
        return answer
    }

    struct HandlerError: Error { var message: String }

    /// What the endpoint's worker returns for the job's input. Files live
    /// under /outputs/ (like a bucket) or come inline, as each worker does it.
    func workerOutput(_ job: Job) -> Result<Any, HandlerError> {
        let input = job.input as? [String: Any] ?? [:]
        let kind = workers[job.endpoint] ?? worker
        let base = server.baseURL
        func publish(_ data: Data, _ type: String, _ ext: String, _ n: Int = 0) -> String {
            let name = n == 0 ? "\(job.id).\(ext)" : "\(job.id).\(n).\(ext)"
            files[name] = (type, data)
            return "\(base)/outputs/\(name)"
        }
        let seed = input["seed"] as? Int ?? 42
        switch kind {
        case .imageURL:
            // An upscaler worker scales its input; a generator makes width x height (default 512).
            let scale = input["scale"] as? Double ?? Double(input["scale"] as? Int ?? 1)
            let (w, h) = Self.inlineImageSize(input["image"]).map { (Int(Double($0.0) * scale), Int(Double($0.1) * scale)) }
                ?? (input["width"] as? Int ?? 512, input["height"] as? Int ?? 512)
            return .success(["image_url": publish(StandInMedia.png(width: w, height: h, seed: job.id), "image/png", "png"), "seed": seed])
        case .sdxl:
            let w = input["width"] as? Int ?? 1024, h = input["height"] as? Int ?? 1024
            let count = max(1, input["num_images"] as? Int ?? 1)
            let images = (0..<count).map { "data:image/png;base64," + StandInMedia.png(width: w, height: h, seed: "\(job.id)-\($0)").base64EncodedString() }
            return .success(["images": images, "image_url": images[0], "seed": seed])
        case .comfyUI, .comfyUIS3:
            guard let workflow = input["workflow"] as? [String: Any] else { return .failure(HandlerError(message: "Missing 'workflow' parameter")) }
            let (w, h, batch) = Self.latentSize(workflow)
            let images: [[String: Any]] = (0..<batch).map { n in
                let png = StandInMedia.png(width: w, height: h, seed: "\(job.id)-\(n)")
                let filename = String(format: "ComfyUI_%05d_.png", n + 1)
                return kind == .comfyUIS3 ? ["filename": filename, "type": "s3_url", "data": publish(png, "image/png", "png", n + 1)]
                                          : ["filename": filename, "type": "base64", "data": png.base64EncodedString()]
            }
            return .success(["images": images])
        case .videoURL:
            let seconds = input["duration_seconds"] as? Double ?? Double(input["duration_seconds"] as? Int ?? 5)
            return .success(["video_url": publish(StandInMedia.clip(seconds: seconds), "video/mp4", "mp4"), "seed": seed])
        case .audioURL:
            let text = input["text"] as? String ?? ""
            return .success(["audio_url": publish(StandInMedia.wav(seconds: StandInMedia.speechSeconds(text)), "audio/wav", "wav")])
        }
    }

    /// The size of an image sent inline (a data: URI), as the worker would decode it.
    static func inlineImageSize(_ value: Any?) -> (Int, Int)? {
        guard let text = value as? String, text.hasPrefix("data:"), let comma = text.firstIndex(of: ","),
              let data = Data(base64Encoded: String(text[text.index(after: comma)...])) else { return nil }
        return TinyPNG.size(data)
    }

    /// The image size and batch of a ComfyUI graph's EmptyLatentImage (or EmptyImage), else 512x512x1.
    static func latentSize(_ workflow: [String: Any]) -> (Int, Int, Int) {
        for node in workflow.values {
            guard let node = node as? [String: Any], let type = node["class_type"] as? String, ["EmptyLatentImage", "EmptyImage", "EmptySD3LatentImage"].contains(type),
                  let inputs = node["inputs"] as? [String: Any] else { continue }
            return (inputs["width"] as? Int ?? 512, inputs["height"] as? Int ?? 512, max(1, inputs["batch_size"] as? Int ?? 1))
        }
        return (512, 512, 1)
    }

    func cancel(_ id: String, now: Int64) -> ScriptedHTTPServer.Response {
        guard var job = jobs[id] else { return .json(["error": "job not found"], status: 404) }
        if ["IN_QUEUE", "IN_PROGRESS"].contains(job.status) {
            // A worker stops at once; the time it ran is billed (executionTime).
            if let started = job.startedMs { job.executionMs = Int(now - started) }
            job.status = "CANCELLED"
            job.finishedMs = now
            jobs[id] = job
        }
        return .json(["id": id, "status": job.status])
    }

    func health() -> ScriptedHTTPServer.Response {
        let values = Array(jobs.values)
        let count: (String) -> Int = { s in values.filter { $0.status == s }.count }
        return .json(["jobs": ["completed": count("COMPLETED"), "failed": count("FAILED"), "inProgress": count("IN_PROGRESS"),
                               "inQueue": count("IN_QUEUE"), "retried": 0],
                      "workers": ["idle": faults.noWorkers ? 0 : 1, "running": faults.noWorkers ? 0 : count("IN_PROGRESS")]])
    }

    /// RunPod's GraphQL API, as far as an adapter reads it: `myself { clientBalance }`.
    func graphql(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        guard let body = (try? JSONSerialization.jsonObject(with: request.body)) as? [String: Any], let query = body["query"] as? String else {
            return .json(["errors": [["message": "Must provide query string."]]], status: 400)
        }
        guard query.contains("myself") else {
            return .json(["errors": [["message": "This stand-in answers only `myself` queries."]], "data": NSNull()])
        }
        return .json(["data": ["myself": ["clientBalance": clientBalance]]])
    }
}
