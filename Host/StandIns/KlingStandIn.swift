import Foundation
import SwitchyardHost
import SwitchyardJSON

/// Kling's video API on loopback (PROVIDERS.md: Kling). Every answer is the
/// envelope `{code, message, request_id, data}` with Kling's HTTP status for
/// the code. Auth is an HS256 JWT `{iss, exp, nbf}` checked like Kling does:
/// missing → 1001, malformed or bad signature → 1002, unknown access key →
/// 1000, nbf in the future → 1003, expired → 1004.
///
/// Two clocks: `authClock` is the server's wall clock, which tokens are checked
/// against (real time by default, so it agrees with the `Date` header the
/// server sends); `clock` ages tasks and results (wall time, which a test can
/// move 30 days ahead without the host's tokens looking 30 days stale).
///
/// Tasks advance with `clock`, never with queries: `queueMs` submitted, then
/// `processingMs` processing, then succeed|failed. `/account/costs` lists the
/// account's resource packs.
/// Result URLs are served like Kling's CDN: no auth, 404 after 30 days.
/// Failure modes: forced error codes (1102, 1301, 1302, 1303, 5000…), a parallel
/// task limit (1303), a content filter on prompts (1301), bad params (1200/1201),
/// duplicate external_task_id, failed tasks, malformed answers.
public final class KlingStandIn: ProviderStandIn, @unchecked Sendable {
    public struct Faults: Sendable {
        /// Milliseconds a task stays `submitted` before it starts (queue, cold capacity).
        public var queueMs: Int64 = 5
        /// Milliseconds a task stays `processing` before it ends.
        public var processingMs: Int64 = 20
        /// Tasks never leave `submitted`.
        public var stuckSubmitted = false
        /// Tasks end `failed` with this task_status_msg.
        public var failWith: String?
        /// The next requests answer these codes, one each (e.g. [1302, 5000]).
        public var errorNext: [Int] = []
        /// Tasks in submitted/processing at once before submits answer 1303.
        public var parallelLimit = 20
        /// Prompts containing one of these words answer 1301 (content policy).
        public var blockedWords: [String] = ["forbidden-content"]
        /// The next N task queries answer a truncated body.
        public var malformedNext = 0
        /// The next submit creates its task, then answers only after this many
        /// milliseconds (an answer lost to a client timeout).
        public var slowNextSubmitMs = 0
        public init() {}
    }

    public struct Task: Sendable {
        public var id: String
        public var kind: String
        public var externalID: String?
        public var body: [String: JSONValue]
        public var status: String
        public var startedMs: Int64?
        public var createdMs: Int64
        public var finishedMs: Int64?
    }

    public let accessKey: String
    public let secretKey: String
    /// Accept any access key and skip the signature check, still checking the
    /// token's shape and times (for `yard plugin test`, which sends canaries).
    public var acceptAnyKey = false
    public var faults = Faults()
    public let authClock: any HostClock
    /// Kling deletes generated videos after 30 days.
    public var retentionMs: Int64 = 30 * 24 * 3600 * 1000

    private let lock = NSLock()
    private var tasks: [String: Task] = [:]
    private var order: [String] = []
    private var tokens: [String] = []
    private var authErrors: [Int] = []
    private var answered: [Int] = []
    private(set) public var submissions = 0
    /// Task queries that named a task by its external_task_id.
    private(set) public var lookupsByExternalID = 0

    public init(accessKey: String = "ak_standin_0000000000", secretKey: String = "sk_standin_secret_0000000000",
                clock: any AdjustableClock = WallClock(),
                authClock: any HostClock = SystemClock()) {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.authClock = authClock
        super.init(clock: clock)
    }

    public var baseURL: String { server.baseURL }
    public func configure(_ change: (inout Faults) -> Void) { lock.withLock { change(&faults) } }
    public var taskIDs: [String] { lock.withLock { order } }
    public func task(_ id: String) -> Task? { lock.withLock { tasks[id].map { advanced($0, now: clock.nowUnixMs()) } } }
    /// The account's resource packs, as /account/costs lists them.
    public var resourcePacks: [[String: JSONValue]] = [
        ["resource_pack_name": "Video Generation - 1000 units", "resource_pack_id": "pack-standin-1", "resource_pack_type": "decreasing_total",
         "total_quantity": 1000, "remaining_quantity": 740.5, "status": "online"],
        ["resource_pack_name": "Trial - 66 units", "resource_pack_id": "pack-standin-0", "resource_pack_type": "decreasing_total",
         "total_quantity": 66, "remaining_quantity": 12, "status": "expired"],
    ]

    /// Where a task is at `now`: what time alone has done to it.
    func advanced(_ task: Task, now: Int64) -> Task {
        var task = task
        if task.status == "submitted", !faults.stuckSubmitted, now >= task.createdMs + faults.queueMs {
            task.status = "processing"
            task.startedMs = task.createdMs + faults.queueMs
        }
        if task.status == "processing", let started = task.startedMs, now >= started + faults.processingMs {
            task.status = faults.failWith == nil ? "succeed" : "failed"
            task.finishedMs = started + faults.processingMs
        }
        return task
    }
    /// Every bearer token presented, in order (to check re-signing).
    public var tokensSeen: [String] { lock.withLock { tokens } }
    /// The auth codes (1000–1004) answered so far.
    public var authErrorsAnswered: [Int] { lock.withLock { authErrors } }
    /// Every non-zero business code answered so far.
    public var codesAnswered: [Int] { lock.withLock { answered } }

    /// Kling's HTTP status for each business code.
    static func httpStatus(_ code: Int) -> Int {
        switch code {
        case 0: return 200
        case 1000...1004: return 401
        case 1100...1102, 1302...1304: return 429
        case 1103: return 403
        case 1202, 1203: return 404
        case 1200, 1201, 1300, 1301: return 400
        case 5001: return 503
        case 5002: return 504
        default: return 500
        }
    }

    static let messages: [Int: String] = [
        1000: "Authentication failed", 1001: "Authorization is empty", 1002: "Authorization is invalid",
        1003: "Authorization is not yet valid", 1004: "Authorization has expired", 1102: "Resource pack depleted or expired",
        1200: "Invalid request parameters", 1201: "Invalid parameters", 1203: "Requested resource does not exist",
        1301: "Trigger the content security policy of the platform", 1302: "The API request is too fast, exceeding the platform's rate limit",
        1303: "Concurrency or QPS exceeds the prepaid resource package limit", 5000: "Server internal error",
        5001: "Server temporarily unavailable, usually due to maintenance", 5002: "Server internal timeout, usually due to a backlog",
    ]

    func envelope(_ code: Int, _ message: String? = nil, data: JSONValue = .null) -> ScriptedHTTPServer.Response {
        if code != 0 { answered.append(code) }
        let body: JSONValue = ["code": .number(Double(code)), "message": .string(message ?? Self.messages[code] ?? "SUCCEED"),
                               "request_id": .string(UUID().uuidString.lowercased()), "data": data]
        return .init(status: Self.httpStatus(code), headers: ["content-type": "application/json"], body: body.serialized())
    }

    override func handle(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        lock.lock()
        let answer = respond(request)
        let delay = request.method == "POST" ? faults.slowNextSubmitMs : 0
        if delay > 0 { faults.slowNextSubmitMs = 0 }
        lock.unlock()
        // Outside the lock: other requests (the client's look-up) go on meanwhile.
        if delay > 0 { Thread.sleep(forTimeInterval: Double(delay) / 1000) }
        return answer
    }

    func respond(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        if request.method == "GET", request.path.hasPrefix("/kling-cdn/") {
            let id = String(request.path.dropFirst("/kling-cdn/".count).split(separator: ".").first ?? "")
            guard let task = tasks[id], let finished = task.finishedMs, task.status == "succeed", clock.nowUnixMs() - finished <= retentionMs else {
                return .init(status: 404, body: Data("<Error><Code>NoSuchKey</Code></Error>".utf8))
            }
            // A real H.264 clip as long as the task asked for (5 or 10 s).
            let seconds = Double(task.body["duration"]?.stringValue ?? "5") ?? 5
            return .init(status: 200, headers: ["content-type": "video/mp4"], body: StandInMedia.clip(seconds: seconds))
        }
        if let code = authenticate(request.headers["authorization"]) {
            authErrors.append(code)
            return envelope(code)
        }
        if !faults.errorNext.isEmpty { return envelope(faults.errorNext.removeFirst()) }
        let now = clock.nowUnixMs()
        for (id, task) in tasks { tasks[id] = advanced(task, now: now) }
        if request.method == "GET", request.path == "/account/costs" {
            let params = Dictionary(request.query.split(separator: "&").map { pair -> (String, String) in
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                return (kv[0], kv.count > 1 ? kv[1] : "")
            }, uniquingKeysWith: { a, _ in a })
            guard Int64(params["start_time"] ?? "") != nil, Int64(params["end_time"] ?? "") != nil else {
                return envelope(1201, "start_time and end_time are required (Unix milliseconds)")
            }
            return envelope(0, "SUCCEED", data: ["code": 0, "msg": "success", "resource_pack_subscribe_infos": .array(resourcePacks.map(JSONValue.object))])
        }
        let parts = request.path.split(separator: "/").map(String.init)
        guard parts.count >= 3, parts[0] == "v1", parts[1] == "videos", ["text2video", "image2video"].contains(parts[2]) else {
            return envelope(1203, "Requested resource does not exist: \(request.path)")
        }
        switch (request.method, parts.count) {
        case ("POST", 3): return create(kind: parts[2], request.body)
        case ("GET", 4): return query(kind: parts[2], id: parts[3])
        case ("GET", 3): return list(kind: parts[2])
        default: return envelope(1202, "invalid request method")
        }
    }

    /// nil when the token is good; else Kling's code for what is wrong with it.
    func authenticate(_ header: String?) -> Int? {
        guard let header, header.hasPrefix("Bearer "), header.count > 7 else { return 1001 }
        let token = String(header.dropFirst(7))
        tokens.append(token)
        let pieces = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard pieces.count == 3, let headerData = Self.base64URLDecode(pieces[0]), let payloadData = Self.base64URLDecode(pieces[1]),
              let head = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any], head["alg"] as? String == "HS256",
              let claims = (try? JSONSerialization.jsonObject(with: payloadData)) as? [String: Any] else { return 1002 }
        let iss = claims["iss"] as? String ?? ""
        if !acceptAnyKey {
            guard iss == accessKey else { return 1000 }
            let expected = JWT.hs256(payload: payloadData, secret: Data(secretKey.utf8))
            guard expected == token else { return 1002 }
        } else if iss.isEmpty { return 1000 }
        let now = Double(authClock.nowUnixMs()) / 1000
        guard let exp = (claims["exp"] as? NSNumber)?.doubleValue else { return 1002 }
        if let nbf = (claims["nbf"] as? NSNumber)?.doubleValue, nbf > now { return 1003 }
        if exp <= now { return 1004 }
        return nil
    }

    public static func base64URLDecode(_ text: String) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }

    static let models = ["kling-v1", "kling-v1-5", "kling-v1-6", "kling-v2-master", "kling-v2-1", "kling-v2-1-master", "kling-v2-5-turbo"]
    static let cameraTypes = ["simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward"]

    func create(kind: String, _ raw: Data) -> ScriptedHTTPServer.Response {
        guard let parsed = try? JSONValue(parsing: raw), let body = parsed.objectValue else {
            return envelope(1200, "Invalid request parameters: body is not a JSON object")
        }
        if let problem = invalidParameter(kind: kind, body) { return envelope(1201, problem) }
        let prompt = (body["prompt"]?.stringValue ?? "") + " " + (body["negative_prompt"]?.stringValue ?? "")
        if faults.blockedWords.contains(where: { prompt.localizedCaseInsensitiveContains($0) }) { return envelope(1301) }
        let external = body["external_task_id"]?.stringValue
        if let external, tasks.values.contains(where: { $0.externalID == external }) {
            return envelope(1201, "external_task_id \(external) already exists")
        }
        let running = tasks.values.filter { $0.status == "submitted" || $0.status == "processing" }.count
        if running >= faults.parallelLimit { return envelope(1303) }
        submissions += 1
        let id = String(800_000_000_000_000_000 + UInt64(submissions) * 7919)
        let now = clock.nowUnixMs()
        tasks[id] = Task(id: id, kind: kind, externalID: external, body: body, status: "submitted", createdMs: now)
        order.append(id)
        return envelope(0, "SUCCEED", data: taskData(tasks[id]!))
    }

    /// Kling's parameter rules, as its 1201 answers state them.
    func invalidParameter(kind: String, _ body: [String: JSONValue]) -> String? {
        if let model = body["model_name"] {
            guard let name = model.stringValue, Self.models.contains(name) else { return "model_name is invalid: \(body["model_name"]?.stringValue ?? "?")" }
        }
        let prompt = body["prompt"]?.stringValue
        if kind == "text2video", (prompt ?? "").isEmpty { return "prompt is required" }
        if let prompt, prompt.count > 2500 { return "prompt cannot exceed 2500 characters" }
        if let negative = body["negative_prompt"]?.stringValue, negative.count > 2500 { return "negative_prompt cannot exceed 2500 characters" }
        if let duration = body["duration"] {
            guard let text = duration.stringValue else { return "duration must be a string: \"5\" or \"10\"" }
            guard text == "5" || text == "10" else { return "duration must be \"5\" or \"10\"" }
        }
        if let mode = body["mode"], !["std", "pro"].contains(mode.stringValue ?? "") { return "mode must be std or pro" }
        if let ratio = body["aspect_ratio"] {
            guard kind == "text2video" else { return "aspect_ratio is not supported for image2video" }
            guard ["16:9", "9:16", "1:1"].contains(ratio.stringValue ?? "") else { return "aspect_ratio must be 16:9, 9:16 or 1:1" }
        }
        if let cfg = body["cfg_scale"] {
            guard let value = cfg.doubleValue, (0...1).contains(value) else { return "cfg_scale must be in [0, 1]" }
        }
        if kind == "image2video" {
            guard let image = body["image"]?.stringValue, !image.isEmpty else { return "image is required" }
            for (name, value) in [("image", image), ("image_tail", body["image_tail"]?.stringValue)] {
                guard let value else { continue }
                if value.hasPrefix("data:") { return "\(name): base64 must not carry a data: prefix" }
                if !value.hasPrefix("http://") && !value.hasPrefix("https://") && Data(base64Encoded: value) == nil {
                    return "\(name) is neither a URL nor base64"
                }
                if let bytes = Data(base64Encoded: value), bytes.count > 10 << 20 { return "\(name) exceeds 10MB" }
            }
        }
        if let camera = body["camera_control"] {
            guard let type = camera["type"]?.stringValue, Self.cameraTypes.contains(type) else { return "camera_control.type is invalid" }
            if type == "simple" {
                let values = (camera["config"]?.objectValue ?? [:]).compactMapValues(\.doubleValue)
                guard values.values.allSatisfy({ (-10...10).contains($0) }) else { return "camera_control.config values must be in [-10, 10]" }
                guard values.values.filter({ $0 != 0 }).count == 1 else { return "camera_control.config: exactly one non-zero value for type simple" }
            } else if camera["config"] != nil, camera["config"] != .null {
                return "camera_control.config must be empty unless type is simple"
            }
        }
        return nil
    }

    func query(kind: String, id: String) -> ScriptedHTTPServer.Response {
        if tasks[id] == nil { lookupsByExternalID += 1 }
        guard let task = tasks[id] ?? tasks.values.first(where: { $0.externalID == id }), task.kind == kind else {
            return envelope(1203, "task not found: \(id)")
        }
        if faults.malformedNext > 0 {
            faults.malformedNext -= 1
            return .init(status: 200, headers: ["content-type": "application/json"], body: Data(#"{"code":0,"message":"SUCCEED","data":{"task_id":"#.utf8))
        }
        return envelope(0, "SUCCEED", data: taskData(task))
    }

    func list(kind: String) -> ScriptedHTTPServer.Response {
        let items = order.compactMap { tasks[$0] }.filter { $0.kind == kind }.suffix(30).map(taskData)
        return envelope(0, "SUCCEED", data: .array(items))
    }

    func taskData(_ task: Task) -> JSONValue {
        var data: [String: JSONValue] = ["task_id": .string(task.id), "task_status": .string(task.status),
                                         "task_info": task.externalID.map { ["external_task_id": .string($0)] } ?? [:],
                                         "created_at": .number(Double(task.createdMs)), "updated_at": .number(Double(task.finishedMs ?? task.createdMs))]
        if task.status == "failed" { data["task_status_msg"] = .string(faults.failWith ?? "generation failed") }
        if task.status == "succeed" {
            let duration = task.body["duration"]?.stringValue ?? "5"
            data["task_result"] = ["videos": [["id": .string("v-\(task.id)"), "url": .string("\(server.baseURL)/kling-cdn/\(task.id).mp4"),
                                               "duration": .string(duration)]]]
        }
        return .object(data)
    }
}
