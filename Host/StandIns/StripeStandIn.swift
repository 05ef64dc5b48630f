import Foundation
import SwitchyardHost

/// Stripe's billing API on loopback (PROVIDERS.md: Stripe): form-encoded
/// bodies with bracket keys, `Authorization: Bearer sk_…`, Idempotency-Key on
/// every POST (same key + other params → 400 idempotency_error; same key +
/// same params → the saved answer replayed), meter events with required
/// fields and identifier uniqueness over 24 h (duplicate → 400,
/// `Stripe-Should-Retry: false`), timestamps ≤ 35 days old, credit grants,
/// credit balance summary, customer balance transactions, billing meters,
/// Checkout Sessions for top-ups, signed webhooks of the event types the
/// official SDK lists, and injected 429 / 5xx (with `Stripe-Should-Retry`)
/// and lost answers. Its clock follows wall time (meter event timestamps more
/// than 5 minutes ahead or 35 days behind are refused against it). Counts
/// meter events per identifier, for exactly-once checks.
public final class StripeStandIn: ProviderStandIn, @unchecked Sendable {
    public struct Faults: Sendable {
        /// The next N requests answer 429 (rate limited) before doing anything.
        public var rateLimitNext = 0
        /// The next N requests answer 500 with `Stripe-Should-Retry: true` before doing anything.
        public var serverErrorNext = 0
        /// The next N meter events are recorded, then answered 500 (the answer is lost on the way).
        public var loseAnswerNext = 0
        /// The next N requests answer 503 with `Stripe-Should-Retry: false`.
        public var noRetryNext = 0
        /// Refuse POSTs without an Idempotency-Key (Stripe accepts them; PROVIDERS.md asks for one on every POST).
        public var requireIdempotencyKey = true
        public init() {}
    }

    public struct MeterEventRecord: Sendable, Hashable {
        public var identifier: String
        public var eventName: String
        public var customer: String
        public var value: Int
        public var timestamp: Int64
    }

    public let apiKey: String
    /// Accept any `sk_…` key (for `yard plugin test`, which sends canary secrets).
    public var acceptAnyKey = false
    public var faults = Faults()
    private let lock = NSLock()
    private var idempotency: [String: (fingerprint: String, status: Int, body: Data, savedMs: Int64)] = [:]
    private var identifiers: [String: Int64] = [:]
    private(set) public var meterEvents: [MeterEventRecord] = []
    private var grants: [[String: Any]] = []
    private var balances: [String: Int] = [:]
    /// Events the account would send to a webhook endpoint, oldest first.
    private(set) public var events: [[String: Any]] = []
    private var sequence = 0

    private var meters: [[String: Any]] = []
    private var sessions: [String: [String: Any]] = [:]

    /// The clock follows wall time: meter event timestamps are checked against it.
    public init(apiKey: String = "sk_test_STANDIN_0000000000000000", clock: any AdjustableClock = WallClock()) {
        self.apiKey = apiKey
        super.init(clock: clock)
    }

    public var baseURL: String { server.baseURL }
    public func configure(_ change: (inout Faults) -> Void) { lock.withLock { change(&faults) } }

    /// How many times the provider recorded a meter event with this identifier.
    public func recordedCount(identifier: String) -> Int { lock.withLock { meterEvents.filter { $0.identifier == identifier }.count } }
    public var recordedEvents: [MeterEventRecord] { lock.withLock { meterEvents } }
    /// Every meter event request received, answered or not, in order.
    public var meterEventRequestsSeen: [ScriptedHTTPServer.Request] { server.requests.filter { $0.path == "/v1/billing/meter_events" } }
    public var meterEventRequests: Int { meterEventRequestsSeen.count }

    /// A webhook delivery as Stripe sends it: the raw body and its
    /// Stripe-Signature header, signed with each secret (rotation: several v1).
    public static func signedDelivery(event: [String: Any], secrets: [String], at timestamp: Int64) -> (payload: Data, header: String) {
        let payload = (try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys])) ?? Data()
        let signatures = secrets.map { "v1=" + StripeSignature.sign(payload: payload, secret: $0, timestamp: timestamp) }
        return (payload, (["t=\(timestamp)"] + signatures).joined(separator: ","))
    }

    static func error(_ status: Int, type: String, message: String, code: String? = nil, param: String? = nil, shouldRetry: Bool? = nil) -> ScriptedHTTPServer.Response {
        var error: [String: Any] = ["type": type, "message": message]
        if let code { error["code"] = code }
        if let param { error["param"] = param }
        var response = ScriptedHTTPServer.Response.json(["error": error], status: status)
        if let shouldRetry { response.headers["stripe-should-retry"] = shouldRetry ? "true" : "false" }
        response.headers["request-id"] = "req_standin\(Int.random(in: 100_000...999_999))"
        return response
    }

    /// Form body (application/x-www-form-urlencoded) as flat bracket keys.
    static func form(_ body: Data) -> [String: String]? {
        let text = String(decoding: body, as: UTF8.self)
        var result: [String: String] = [:]
        for pair in text.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
            guard let key = parts[0], let value = parts.count > 1 ? parts[1] : "" else { return nil }
            result[key] = value
        }
        return result
    }

    override func handle(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        lock.lock()
        defer { lock.unlock() }
        if faults.rateLimitNext > 0 {
            faults.rateLimitNext -= 1
            var response = Self.error(429, type: "invalid_request_error", message: "Too many requests hit the API too quickly.", code: "rate_limit", shouldRetry: true)
            response.headers["retry-after"] = "1"
            return response
        }
        if faults.serverErrorNext > 0 {
            faults.serverErrorNext -= 1
            return Self.error(500, type: "api_error", message: "Something went wrong on Stripe's end.", shouldRetry: true)
        }
        if faults.noRetryNext > 0 {
            faults.noRetryNext -= 1
            return Self.error(503, type: "api_error", message: "The request cannot be retried.", shouldRetry: false)
        }
        let auth = request.headers["authorization"] ?? ""
        guard auth == "Bearer \(apiKey)" || (acceptAnyKey && auth.count > "Bearer ".count) else {
            return Self.error(401, type: "invalid_request_error", message: "Invalid API Key provided.", code: "api_key_invalid")
        }
        var params: [String: String] = [:]
        if request.method == "POST" {
            guard request.headers["content-type"]?.hasPrefix("application/x-www-form-urlencoded") == true, let parsed = Self.form(request.body) else {
                return Self.error(400, type: "invalid_request_error", message: "Request bodies must be application/x-www-form-urlencoded.")
            }
            params = parsed
        } else {
            params = Self.form(Data(request.query.utf8)) ?? [:]
        }
        let key = request.headers["idempotency-key"]
        if request.method == "POST" {
            guard let key, !key.isEmpty else {
                if faults.requireIdempotencyKey {
                    return Self.error(400, type: "invalid_request_error", message: "This stand-in requires an Idempotency-Key on every POST.", param: "Idempotency-Key")
                }
                return route(request, params)
            }
            let fingerprint = request.path + "?" + params.keys.sorted().map { "\($0)=\(params[$0] ?? "")" }.joined(separator: "&")
            let now = clock.nowUnixMs()
            if let saved = idempotency[key], now - saved.savedMs < 24 * 3600 * 1000 {
                guard saved.fingerprint == fingerprint else {
                    return Self.error(400, type: "idempotency_error",
                                      message: "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '\(key)' if you meant to execute a different request.")
                }
                var replay = ScriptedHTTPServer.Response(status: saved.status, headers: ["content-type": "application/json", "idempotent-replayed": "true"], body: saved.body)
                if saved.status == 400 { replay.headers["stripe-should-retry"] = "false" }
                return replay
            }
            let response = route(request, params)
            // Stripe saves the result of any request that started executing, except server errors.
            if response.status < 500, case .bytes(let body) = response.body {
                idempotency[key] = (fingerprint, response.status, body, now)
            }
            return response
        }
        return route(request, params)
    }

    func route(_ request: ScriptedHTTPServer.Request, _ params: [String: String]) -> ScriptedHTTPServer.Response {
        let parts = request.path.split(separator: "/").map(String.init)
        switch (request.method, request.path) {
        case ("POST", "/v1/billing/meter_events"): return meterEvent(params)
        case ("POST", "/v1/billing/credit_grants"): return creditGrant(params)
        case ("GET", "/v1/billing/credit_balance_summary"): return balanceSummary(params)
        case ("GET", "/v1/billing/meters"): return list(meters, url: "/v1/billing/meters", limit: Int(params["limit"] ?? "") ?? 10)
        case ("POST", "/v1/billing/meters"): return createMeter(params)
        case ("POST", "/v1/checkout/sessions"): return createCheckout(params)
        default:
            if request.method == "POST", parts.count == 4, parts[1] == "customers", parts[3] == "balance_transactions" {
                return balanceTransaction(customer: parts[2], params)
            }
            return Self.error(404, type: "invalid_request_error", message: "Unrecognized request URL (\(request.method): \(request.path)).")
        }
    }

    func missing(_ params: [String: String], _ names: [String]) -> ScriptedHTTPServer.Response? {
        for name in names where (params[name] ?? "").isEmpty {
            return Self.error(400, type: "invalid_request_error", message: "Missing required param: \(name).", code: "parameter_missing", param: name)
        }
        return nil
    }

    func meterEvent(_ params: [String: String]) -> ScriptedHTTPServer.Response {
        if let refusal = missing(params, ["event_name", "payload[stripe_customer_id]", "payload[value]"]) { return refusal }
        guard let value = Int(params["payload[value]"] ?? ""), value >= 0 else {
            return Self.error(400, type: "invalid_request_error", message: "payload[value] must be a whole number.", code: "parameter_invalid_integer", param: "payload[value]")
        }
        let nowSeconds = clock.nowUnixMs() / 1000
        let timestamp = params["timestamp"].flatMap { Int64($0) } ?? nowSeconds
        if params["timestamp"] != nil, Int64(params["timestamp"] ?? "") == nil {
            return Self.error(400, type: "invalid_request_error", message: "Invalid integer: \(params["timestamp"] ?? "")", code: "parameter_invalid_integer", param: "timestamp")
        }
        guard timestamp >= nowSeconds - 35 * 24 * 3600, timestamp <= nowSeconds + 300 else {
            return Self.error(400, type: "invalid_request_error", message: "Timestamp must be within the past 35 days and at most 5 minutes in the future.", param: "timestamp")
        }
        sequence += 1
        let identifier = params["identifier"] ?? "standin_\(sequence)"
        if let seen = identifiers[identifier], clock.nowUnixMs() - seen < 24 * 3600 * 1000 {
            return Self.error(400, type: "invalid_request_error", message: "An event already exists with identifier \(identifier).",
                              code: "resource_already_exists", param: "identifier", shouldRetry: false)
        }
        identifiers[identifier] = clock.nowUnixMs()
        let record = MeterEventRecord(identifier: identifier, eventName: params["event_name"] ?? "", customer: params["payload[stripe_customer_id]"] ?? "", value: value, timestamp: timestamp)
        meterEvents.append(record)
        if faults.loseAnswerNext > 0 {
            faults.loseAnswerNext -= 1
            return Self.error(500, type: "api_error", message: "The answer was lost.", shouldRetry: true)
        }
        return .json(["object": "billing.meter_event", "created": nowSeconds, "event_name": record.eventName, "identifier": identifier, "livemode": false,
                      "payload": ["stripe_customer_id": record.customer, "value": String(value)], "timestamp": timestamp])
    }

    func emit(_ type: String, _ object: [String: Any]) {
        sequence += 1
        events.append(["id": "evt_standin\(sequence)", "object": "event", "type": type, "created": clock.nowUnixMs() / 1000,
                       "livemode": false, "data": ["object": object]])
    }

    func creditGrant(_ params: [String: String]) -> ScriptedHTTPServer.Response {
        if let refusal = missing(params, ["customer", "amount[type]", "amount[monetary][value]", "amount[monetary][currency]", "category",
                                          "applicability_config[scope][price_type]"]) { return refusal }
        guard let value = Int(params["amount[monetary][value]"] ?? ""), value > 0 else {
            return Self.error(400, type: "invalid_request_error", message: "amount[monetary][value] must be a positive integer.", param: "amount[monetary][value]")
        }
        guard ["paid", "promotional"].contains(params["category"] ?? "") else {
            return Self.error(400, type: "invalid_request_error", message: "Invalid category: must be one of paid, promotional.", param: "category")
        }
        sequence += 1
        var grant: [String: Any] = ["id": "credgr_standin\(sequence)", "object": "billing.credit_grant", "customer": params["customer"] ?? "",
                                    "amount": ["type": "monetary", "monetary": ["value": value, "currency": params["amount[monetary][currency]"] ?? "usd"]],
                                    "category": params["category"] ?? "paid", "created": clock.nowUnixMs() / 1000]
        if let expires = params["expires_at"].flatMap({ Int64($0) }) { grant["expires_at"] = expires }
        grants.append(grant)
        balances[params["customer"] ?? "", default: 0] += value
        emit("billing.credit_grant.created", grant)
        return .json(grant)
    }

    func balanceSummary(_ params: [String: String]) -> ScriptedHTTPServer.Response {
        if let refusal = missing(params, ["customer", "filter[type]"]) { return refusal }
        let customer = params["customer"] ?? ""
        return .json(["object": "billing.credit_balance_summary", "customer": customer, "livemode": false,
                      "balances": [["available_balance": ["type": "monetary", "monetary": ["value": balances[customer] ?? 0, "currency": "usd"]]]]])
    }

    func balanceTransaction(customer: String, _ params: [String: String]) -> ScriptedHTTPServer.Response {
        if let refusal = missing(params, ["amount", "currency"]) { return refusal }
        guard let amount = Int(params["amount"] ?? "") else {
            return Self.error(400, type: "invalid_request_error", message: "Invalid integer: \(params["amount"] ?? "")", param: "amount")
        }
        sequence += 1
        let transaction: [String: Any] = ["id": "cbtxn_standin\(sequence)", "object": "customer_balance_transaction", "customer": customer,
                                          "amount": amount, "currency": params["currency"] ?? "usd", "type": "adjustment", "created": clock.nowUnixMs() / 1000]
        // Stripe sends no event for a customer balance transaction (there is no
        // customer.balance_transaction.created in its event list).
        return .json(transaction)
    }

    /// Stripe's list object.
    func list(_ items: [[String: Any]], url: String, limit: Int) -> ScriptedHTTPServer.Response {
        let page = Array(items.prefix(max(1, min(limit, 100))))
        return .json(["object": "list", "data": page, "has_more": items.count > page.count, "url": url])
    }

    /// A meter, as POST /v1/billing/meters creates one.
    public func addMeter(eventName: String, displayName: String = "Switchyard usage") {
        lock.withLock { _ = createMeter(["event_name": eventName, "display_name": displayName, "default_aggregation[formula]": "sum"]) }
    }

    func createMeter(_ params: [String: String]) -> ScriptedHTTPServer.Response {
        if let refusal = missing(params, ["display_name", "event_name", "default_aggregation[formula]"]) { return refusal }
        guard ["sum", "count", "last"].contains(params["default_aggregation[formula]"] ?? "") else {
            return Self.error(400, type: "invalid_request_error", message: "Invalid default_aggregation[formula]: must be one of sum, count, last", param: "default_aggregation[formula]")
        }
        if meters.contains(where: { $0["event_name"] as? String == params["event_name"] && $0["status"] as? String == "active" }) {
            return Self.error(400, type: "invalid_request_error", message: "An active meter with event_name \(params["event_name"] ?? "") already exists.", param: "event_name")
        }
        sequence += 1
        let meter: [String: Any] = ["id": "mtr_standin\(sequence)", "object": "billing.meter", "display_name": params["display_name"] ?? "",
                                    "event_name": params["event_name"] ?? "", "status": "active", "default_aggregation": ["formula": params["default_aggregation[formula]"] ?? "sum"],
                                    "customer_mapping": ["event_payload_key": "stripe_customer_id", "type": "by_id"],
                                    "value_settings": ["event_payload_key": "value"], "created": clock.nowUnixMs() / 1000, "livemode": false]
        meters.append(meter)
        return .json(meter)
    }

    /// A Checkout Session for a one-off payment (a top-up), as Stripe returns it: open and unpaid.
    func createCheckout(_ params: [String: String]) -> ScriptedHTTPServer.Response {
        guard params["mode"] == "payment" || params["mode"] == "subscription" || params["mode"] == "setup" else {
            return Self.error(400, type: "invalid_request_error", message: "Missing required param: mode.", code: "parameter_missing", param: "mode")
        }
        if let refusal = missing(params, ["success_url"]) { return refusal }
        let amount = Int(params["line_items[0][price_data][unit_amount]"] ?? "") ?? 0
        let quantity = Int(params["line_items[0][quantity]"] ?? "1") ?? 1
        guard params["mode"] != "payment" || amount > 0 else {
            return Self.error(400, type: "invalid_request_error", message: "Missing required param: line_items[0][price_data][unit_amount].", code: "parameter_missing",
                              param: "line_items[0][price_data][unit_amount]")
        }
        sequence += 1
        let id = "cs_test_standin\(sequence)"
        var metadata: [String: Any] = [:]
        for (key, value) in params where key.hasPrefix("metadata[") { metadata[String(key.dropFirst("metadata[".count).dropLast())] = value }
        var session: [String: Any] = ["id": id, "object": "checkout.session", "mode": params["mode"] ?? "payment", "status": "open", "payment_status": "unpaid",
                                      "amount_subtotal": amount * quantity, "amount_total": amount * quantity,
                                      "currency": params["line_items[0][price_data][currency]"] ?? "usd", "metadata": metadata,
                                      "success_url": params["success_url"] ?? "", "url": "\(server.baseURL)/pay/\(id)", "created": clock.nowUnixMs() / 1000, "livemode": false]
        session["customer"] = params["customer"] ?? NSNull()
        session["client_reference_id"] = params["client_reference_id"] ?? NSNull()
        sessions[id] = session
        return .json(session)
    }

    /// The customer pays a Checkout Session. A card settles at once:
    /// checkout.session.completed with payment_status "paid". A delayed method
    /// (bank debit) completes it "unpaid"; `settleDelayedPayment` then sends
    /// checkout.session.async_payment_succeeded or …_failed.
    public func payCheckout(_ id: String, delayed: Bool = false) {
        lock.withLock {
            guard var session = sessions[id] else { return }
            session["status"] = "complete"
            session["payment_status"] = delayed ? "unpaid" : "paid"
            sessions[id] = session
            emit("checkout.session.completed", session)
        }
    }

    public func settleDelayedPayment(_ id: String, succeeded: Bool) {
        lock.withLock {
            guard var session = sessions[id] else { return }
            session["payment_status"] = succeeded ? "paid" : "unpaid"
            sessions[id] = session
            emit(succeeded ? "checkout.session.async_payment_succeeded" : "checkout.session.async_payment_failed", session)
        }
    }

    /// Events the account would send to a webhook endpoint, oldest first.
    public var sentEvents: [[String: Any]] { lock.withLock { events } }
}
