import Foundation
import SwitchyardHost
import SwitchyardJSON

/// The Modal app Switchyard ships (Registry/modal/switchyard_app.py), as Modal
/// serves it once deployed (PROVIDERS.md: Modal): one web app behind proxy
/// auth with POST /spawn, GET /result/{call_id}, POST /cancel/{call_id},
/// GET /calls/{idempotency_key} and GET /health.
///
/// What Modal itself adds is simulated too: `Modal-Key`/`Modal-Secret`
/// checked by Modal's proxy (401 `modal-http: missing credentials for proxy
/// authorization`); a web request that runs past 150 s answered with 303 to the
/// same URL plus `__modal_function_call_id=fc-…`, whose GET waits for the same
/// call (the work is not repeated); cold starts; results kept 7 days. Call
/// statuses are Modal's InputStatus: PENDING, SUCCESS, FAILURE, INIT_FAILURE,
/// TERMINATED, TIMEOUT. Calls advance with the clock, never with queries: a
/// call runs `runMs`, then ends; its result carries the GPU time the app
/// measured (`usage.execution_ms`), as the shipped app reports it.
public final class ModalStandIn: ProviderStandIn, @unchecked Sendable {
    public struct Faults: Sendable {
        /// Milliseconds a call runs before it ends: the execution time its result reports.
        public var runMs: Int64 = 20
        /// The app's timeout (SWITCHYARD_TIMEOUT), what a TIMEOUT call reports it used.
        public var timeoutMs: Int64 = 1_800_000
        /// Milliseconds a cold container takes to boot; over 150 s the web
        /// request is answered 303 (the first request of a cold app).
        public var coldStartMs: Int64 = 0
        /// How the next calls end instead of SUCCESS, with their error text.
        public var endWith: (status: String, error: String)?
        /// The next N requests answer 5xx from Modal's edge.
        public var serverErrorNext = 0
        /// Calls never leave PENDING (no GPU capacity).
        public var stuckPending = false
        public init() {}
    }

    struct Call {
        var id: String
        var body: [String: JSONValue]
        var status = "PENDING"
        var error: String?
        var createdMs: Int64
        var finishedMs: Int64?
        var executionMs: Int64?
    }

    public let key: String
    public let secret: String
    /// Accept any non-empty Modal-Key/Modal-Secret (for `yard plugin test`).
    public var acceptAnyKey = false
    public var faults = Faults()
    /// Modal keeps function call results for 7 days.
    public var retentionMs: Int64 = 7 * 24 * 3600 * 1000
    public let model: String
    public let gpu: String

    private let lock = NSLock()
    private var calls: [String: Call] = [:]
    private var order: [String] = []
    private var byIdempotencyKey: [String: String] = [:]
    /// Web requests cut at 150 s, by their own function call id: the answer they will give.
    private var webCalls: [String: ScriptedHTTPServer.Response] = [:]
    private var warm = false
    private(set) public var spawns = 0
    private(set) public var redirectsIssued = 0

    public init(key: String = "wk-standin0000", secret: String = "ws-standin0000secret", model: String = "black-forest-labs/FLUX.1-schnell",
                gpu: String = "L40S", clock: any AdjustableClock = WallClock()) {
        self.key = key
        self.secret = secret
        self.model = model
        self.gpu = gpu
        super.init(clock: clock)
    }

    public var baseURL: String { server.baseURL }
    public func configure(_ change: (inout Faults) -> Void) { lock.withLock { change(&faults) } }
    public var callIDs: [String] { lock.withLock { order } }
    public func status(of id: String) -> String? { lock.withLock { calls[id].map { advanced($0, now: clock.nowUnixMs()).status } } }

    /// Where a call is at `now`: what time alone has done to it.
    func advanced(_ call: Call, now: Int64) -> Call {
        var call = call
        guard call.status == "PENDING", !faults.stuckPending, now >= call.createdMs + faults.runMs else { return call }
        call.status = faults.endWith?.status ?? "SUCCESS"
        call.error = faults.endWith?.error
        call.finishedMs = call.createdMs + faults.runMs
        call.executionMs = call.status == "TIMEOUT" ? faults.timeoutMs : call.status == "INIT_FAILURE" ? nil : faults.runMs
        return call
    }
    /// Containers scale to zero: the next request boots a cold one.
    public func scaleToZero() { lock.withLock { warm = false } }

    func json(_ value: JSONValue, status: Int = 200) -> ScriptedHTTPServer.Response {
        .init(status: status, headers: ["content-type": "application/json"], body: value.serialized())
    }

    override func handle(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        lock.lock()
        defer { lock.unlock() }
        let key = request.headers["modal-key"] ?? "", secret = request.headers["modal-secret"] ?? ""
        if key.isEmpty || secret.isEmpty {
            return .init(status: 401, headers: ["content-type": "text/plain"], body: Data("modal-http: missing credentials for proxy authorization".utf8))
        }
        if !(acceptAnyKey || (key == self.key && secret == self.secret)) {
            return .init(status: 401, headers: ["content-type": "text/plain"], body: Data("modal-http: invalid credentials for proxy authorization".utf8))
        }
        if faults.serverErrorNext > 0 {
            faults.serverErrorNext -= 1
            return .init(status: 502, headers: ["content-type": "text/plain"], body: Data("modal-http: app for invoked web endpoint is stopped".utf8))
        }
        let query = Dictionary(request.query.split(separator: "&").map { pair -> (String, String) in
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            return (kv[0], kv.count > 1 ? kv[1] : "")
        }, uniquingKeysWith: { a, _ in a })
        if let webCall = query["__modal_function_call_id"] {
            // Following the 303: a GET that waits for the web call already running.
            guard request.method == "GET", let answer = webCalls.removeValue(forKey: webCall) else {
                return json(["detail": "function call not found"], status: 404)
            }
            return answer
        }
        let now = clock.nowUnixMs()
        for (id, call) in calls { calls[id] = advanced(call, now: now) }
        let answer = route(request)
        if !warm {
            warm = true
            if faults.coldStartMs > 150_000 {
                // The web request outlived Modal's 150 s limit while a container booted.
                let id = "fc-web\(UUID().uuidString.prefix(12).lowercased())"
                webCalls[id] = answer
                redirectsIssued += 1
                return .init(status: 303, headers: ["location": "\(server.baseURL)\(request.path)?__modal_function_call_id=\(id)"])
            }
        }
        return answer
    }

    func route(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        let parts = request.path.split(separator: "/").map(String.init)
        switch (request.method, parts.first ?? "", parts.count) {
        case ("POST", "spawn", 1): return spawn(request.body)
        case ("GET", "result", 2): return result(parts[1])
        case ("POST", "cancel", 2): return cancel(parts[1])
        case ("GET", "calls", 2):
            guard let id = byIdempotencyKey[parts[1]] else { return json(["detail": "no call for this idempotency key"], status: 404) }
            return json(["call_id": .string(id), "status": .string(calls[id]?.status ?? "PENDING")])
        case ("GET", "health", 1): return json(["app": "switchyard", "model": .string(model), "gpu": .string(gpu)])
        default: return json(["detail": "Not Found"], status: 404)
        }
    }

    func spawn(_ raw: Data) -> ScriptedHTTPServer.Response {
        guard let body = (try? JSONValue(parsing: raw))?.objectValue, let capability = body["capability"]?.stringValue,
              body["inputs"]?.objectValue != nil else {
            return json(["detail": "body must be {\"capability\", \"inputs\"}"], status: 422)
        }
        if let wanted = body["model"]?.stringValue, wanted != model {
            return json(["detail": .string("this app serves \(model), not \(wanted); redeploy with SWITCHYARD_MODEL=\(wanted)")], status: 400)
        }
        guard ["image.generate", "video.from_text"].contains(capability) else {
            return json(["detail": .string("unsupported capability \(capability)")], status: 400)
        }
        if let idem = body["idempotency_key"]?.stringValue, let existing = byIdempotencyKey[idem] {
            return json(["call_id": .string(existing), "status": .string(calls[existing]?.status ?? "PENDING")])
        }
        spawns += 1
        let id = "fc-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(26).uppercased()
        calls[id] = Call(id: id, body: body, createdMs: clock.nowUnixMs())
        order.append(id)
        if let idem = body["idempotency_key"]?.stringValue { byIdempotencyKey[idem] = id }
        return json(["call_id": .string(id), "status": "PENDING"])
    }

    func result(_ id: String) -> ScriptedHTTPServer.Response {
        guard let call = calls[id] else { return json(["status": "NOT_FOUND", "error": .string("no function call \(id)")], status: 404) }
        if let finished = call.finishedMs, clock.nowUnixMs() - finished > retentionMs {
            return json(["status": "EXPIRED", "error": "function call results are kept for 7 days"], status: 410)
        }
        switch call.status {
        case "PENDING": return json(["status": "PENDING"], status: 202)
        case "SUCCESS":
            // What Registry/modal/switchyard_app.py returns: the catalog's outputs, files as data: URIs.
            let capability = call.body["capability"]?.stringValue ?? "image.generate"
            let inputs = call.body["inputs"]
            let seed = inputs?["seed"] ?? 42
            let outputs: JSONValue
            if capability == "video.from_text" {
                let clip = StandInMedia.clip(seconds: 5)
                outputs = ["video": .string("data:video/mp4;base64," + clip.base64EncodedString()), "duration_seconds": 5, "width": 160, "height": 90,
                           "fps": 8, "seed": seed]
            } else {
                let width = inputs?["width"]?.intValue ?? 1024, height = inputs?["height"]?.intValue ?? 1024
                let png = StandInMedia.png(width: width, height: height, seed: id)
                outputs = ["images": [["file": .string("data:image/png;base64," + png.base64EncodedString()), "width": .number(Double(width)),
                                       "height": .number(Double(height)), "seed": seed]],
                           "seed": seed, "model": .string(model)]
            }
            return json(["status": "SUCCESS", "outputs": outputs, "usage": usage(call)])
        default:
            var answer: [String: JSONValue] = ["status": .string(call.status), "error": .string(call.error ?? call.status.lowercased())]
            if call.executionMs != nil { answer["usage"] = usage(call) }
            return json(.object(answer))
        }
    }

    /// The app's usage member: the GPU time measured inside the function.
    func usage(_ call: Call) -> JSONValue {
        ["execution_ms": call.executionMs.map { .number(Double($0)) } ?? .null, "gpu": .string(gpu)]
    }

    func cancel(_ id: String) -> ScriptedHTTPServer.Response {
        guard var call = calls[id] else { return json(["status": "NOT_FOUND", "error": .string("no function call \(id)")], status: 404) }
        let before = call.status
        if before == "PENDING" {
            call.status = "TERMINATED"
            call.error = "cancelled"
            call.finishedMs = clock.nowUnixMs()
            calls[id] = call
        }
        return json(["status": .string(before), "cancelled": .bool(before == "PENDING")])
    }
}
