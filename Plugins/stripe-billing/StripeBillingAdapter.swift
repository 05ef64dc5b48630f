import Foundation
import SwitchyardPluginSDK

// Stripe usage-based billing: one meter event per settled job attempt,
// POST /v1/billing/meter_events, form-encoded, `Authorization: Bearer sk_…`.
// The Idempotency-Key is derived from the event's identifier, never from the
// attempt, so a retry after a timeout or a crash is the same request; a
// "duplicate identifier" answer means Stripe already has the event.

@_cdecl("sy_plugin_entry_v1") public func syPluginEntry(_ host: UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>? { PluginExport.entry(StripeBillingAdapter.self, host: host) }

struct StripeBillingAdapter: EngineAdapter {
    static let capability = "billing.meter"
    static let defaultBaseURL = "https://api.stripe.com"

    init() {}

    var descriptor: PluginDescriptor {
        PluginDescriptor(id: "stripe-billing", version: "0.1.0", name: "Stripe usage billing", capabilities: [Self.capability],
                         extensions: [SY_EXTENSION_BALANCE])
    }

    struct MeterEvent {
        var eventName: String
        var customer: String
        var value: Int
        var identifier: String
        var timestamp: Int64

        init(_ request: JobRequest, now: Int64) throws {
            func missing(_ name: String) -> PluginError {
                PluginError(code: "CONTRACT_MISMATCH", message: "billing.meter needs \(name).", remediation: "Pass inputs.\(name).", field: "$.inputs.\(name)")
            }
            guard let name = request.inputs["event_name"]?.stringValue, !name.isEmpty else { throw missing("event_name") }
            guard let customer = request.inputs["customer_id"]?.stringValue, !customer.isEmpty else { throw missing("customer_id") }
            guard let value = request.inputs["value"]?.intValue, value >= 0 else { throw missing("value (a whole number ≥ 0)") }
            eventName = name
            self.customer = customer
            self.value = value
            guard let identifier = request.inputs["identifier"]?.stringValue ?? request.job.map({ "sy-\($0.idempotencyKey)" }) else { throw missing("identifier") }
            self.identifier = String(identifier.prefix(100))
            if let text = request.inputs["timestamp"]?.stringValue {
                guard let date = ISO8601DateFormatter().date(from: text) else {
                    throw PluginError(code: "CONTRACT_MISMATCH", message: "timestamp \(text) is not an RFC 3339 date-time.",
                                      remediation: "Write e.g. 2026-11-03T14:05:00Z.", field: "$.inputs.timestamp")
                }
                timestamp = Int64(date.timeIntervalSince1970)
            } else {
                timestamp = now / 1000
            }
        }

        /// Stripe's form encoding, in a fixed order so a retry sends identical bytes.
        var form: String {
            let pairs = [("event_name", eventName), ("identifier", identifier), ("payload[stripe_customer_id]", customer),
                         ("payload[value]", String(value)), ("timestamp", String(timestamp))]
            return pairs.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
        }

        static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        static func encode(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text }
    }

    func validate(_ request: JobRequest, context: HostContext) -> [Diagnostic] {
        do { _ = try MeterEvent(request, now: 0) } catch let error as PluginError {
            return [Diagnostic(code: error.code, message: error.message, remediation: error.remediation, field: error.field)]
        } catch { return [] }
        return []
    }

    func submit(_ request: JobRequest, context: HostContext) throws -> SubmitResult {
        let event = try MeterEvent(request, now: context.nowUnixMs())
        guard let key = try context.secret("STRIPE_API_KEY") else {
            throw PluginError(code: "AUTH_MISSING", message: "STRIPE_API_KEY is not set.", remediation: "Run `yard secrets set STRIPE_API_KEY`.")
        }
        let base = (request.config["base_url"]?.stringValue ?? Self.defaultBaseURL).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let headers = ["authorization": "Bearer \(key)", "content-type": "application/x-www-form-urlencoded",
                       "idempotency-key": request.job?.idempotencyKey ?? "sy-meter-\(event.identifier)", "stripe-version": "2025-03-31.basil"]
        let response: HTTPResponse
        do {
            response = try context.http(HTTPRequest(method: "POST", url: "\(base)/v1/billing/meter_events", headers: headers, body: event.form, timeoutMs: 30_000))
        } catch let error as PluginError {
            throw PluginError(code: error.code, message: "Stripe did not answer: \(error.message)", remediation: "Delivered again from the outbox later.",
                              retryable: true, charged: .no)
        }
        let done = PollResult(state: .succeeded, progress: 1, outputs: [
            "identifier": .string(event.identifier), "event_name": .string(event.eventName), "customer_id": .string(event.customer),
            "value": .number(Double(event.value)), "timestamp": .string(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(event.timestamp)))),
        ])
        if response.isSuccess { return .finished(done) }
        let error = (try? response.decodeJSON([String: JSONValue].self))?["error"]
        let message = error?["message"]?.stringValue ?? String(decoding: response.body.prefix(200), as: UTF8.self)
        let shouldRetry = response.headers["stripe-should-retry"]
        if response.status == 400, error?["param"]?.stringValue == "identifier", message.contains("already exists") {
            context.log(.info, "stripe: meter event \(event.identifier) was recorded before; counted as delivered")
            return .finished(done)
        }
        switch response.status {
        case 401, 403:
            throw PluginError(code: "AUTH_FAILED", message: "Stripe refused the API key (HTTP \(response.status)).",
                              remediation: "Check STRIPE_API_KEY (`yard secrets set STRIPE_API_KEY`); it needs meter event write access.")
        case 429:
            throw PluginError(code: "RATE_LIMITED", message: "Stripe rate limit: \(message)", remediation: "Retried after a delay.",
                              retryable: shouldRetry != "false", charged: .no, retryAfterMs: response.retryAfterMs() ?? 1000)
        case 500...:
            throw PluginError(code: "ENGINE_UNAVAILABLE", message: "Stripe answered HTTP \(response.status): \(message)",
                              remediation: shouldRetry == "false" ? "Stripe said not to retry this request; check its status page." : "Retried with the same Idempotency-Key.",
                              retryable: shouldRetry != "false", charged: .no)
        default:
            if error?["type"]?.stringValue == "idempotency_error" {
                throw PluginError(code: "IDEMPOTENCY_CONFLICT", message: "Stripe: \(message)",
                                  remediation: "An event with this identifier was sent with other values; correct it with a meter event adjustment.", field: "$.inputs.identifier")
            }
            throw PluginError(code: "CONTRACT_MISMATCH", message: "Stripe refused the meter event: \(message)",
                              remediation: "Check the meter's event name and the customer id.", field: error?["param"]?.stringValue.map { "$.inputs.\($0)" },
                              retryable: shouldRetry == "true", charged: .no)
        }
    }

    func poll(_ request: RefRequest, context: HostContext) throws -> PollResult {
        throw PluginError(code: "INVALID_REF", message: "Meter events finish during submit; there is nothing to poll.", remediation: "Use submit's result.", field: "$.ref")
    }

    func cancel(_ request: RefRequest, context: HostContext) throws -> CancelResult {
        CancelResult(outcome: .notFound, charged: .no, message: "meter events finish during submit")
    }

    func base(_ config: [String: JSONValue]) -> String {
        (config["base_url"]?.stringValue ?? Self.defaultBaseURL).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
    }

    func readHeaders(_ context: HostContext) throws -> [String: String] {
        guard let key = try context.secret("STRIPE_API_KEY"), !key.isEmpty else {
            throw PluginError(code: "AUTH_MISSING", message: "STRIPE_API_KEY is not set.", remediation: "Run `yard secrets set STRIPE_API_KEY`.")
        }
        return ["authorization": "Bearer \(key)", "stripe-version": "2025-03-31.basil"]
    }

    /// Verifies the key with a read call (GET /v1/billing/meters?limit=1):
    /// a key Stripe refuses is AUTH_FAILED here, not at the first meter event.
    func health(_ request: ConfigRequest, context: HostContext) -> HealthReport {
        do {
            let response = try context.http(HTTPRequest(method: "GET", url: "\(base(request.config))/v1/billing/meters?limit=1", headers: try readHeaders(context), timeoutMs: 10_000))
            let error = (try? response.decodeJSON([String: JSONValue].self))?["error"]
            let message = error?["message"]?.stringValue ?? String(decoding: response.body.prefix(200), as: UTF8.self)
            switch response.status {
            case HTTPStatusClass.success:
                let meters = (try? response.decodeJSON([String: JSONValue].self))?["data"]?.arrayValue?.count ?? 0
                return HealthReport(status: .ok, message: "key accepted (billing meters readable\(meters == 0 ? "; no meter yet: create one for the event name in billing.json" : ""))",
                                    details: ["read": "GET /v1/billing/meters → 200"])
            case 401:
                return HealthReport(status: .offline, message: "Stripe refused STRIPE_API_KEY: \(message)", details: ["code": "AUTH_FAILED"])
            case 403:
                // A restricted key without read access to meters can still write meter events.
                return HealthReport(status: .degraded, message: "the key is valid but may not read billing meters: \(message)", details: ["code": "AUTH_FAILED"])
            case 429:
                return HealthReport(status: .degraded, message: "Stripe rate limit: \(message)", details: ["code": "RATE_LIMITED"])
            default:
                return HealthReport(status: .offline, message: "Stripe answered HTTP \(response.status): \(message)", details: ["code": "ENGINE_OFFLINE"])
            }
        } catch let error as PluginError {
            return HealthReport(status: .offline, message: error.message, details: ["code": .string(error.code == "ENGINE_UNAVAILABLE" ? "ENGINE_OFFLINE" : error.code)])
        } catch {
            return HealthReport(status: .offline, message: "\(error)", details: ["code": "ENGINE_OFFLINE"])
        }
    }

    /// A customer's Stripe credit balance: GET /v1/billing/credit_balance_summary
    /// for config.customer_id (credit grants that apply to metered prices).
    func balance(_ request: ConfigRequest, context: HostContext) throws -> CostEstimate {
        guard let customer = request.config["customer_id"]?.stringValue, !customer.isEmpty else {
            throw PluginError(code: "CONFIG_INVALID", message: "No customer_id configured: Stripe keeps credit balances per customer.",
                              remediation: "Set customer_id (cus_…) in $YARD_HOME/config/stripe-billing.json to show its credit balance.", field: "$.config.customer_id")
        }
        let query = "customer=\(MeterEvent.encode(customer))&filter%5Btype%5D=applicability_scope&filter%5Bapplicability_scope%5D%5Bprice_type%5D=metered"
        let response = try context.http(HTTPRequest(method: "GET", url: "\(base(request.config))/v1/billing/credit_balance_summary?\(query)", headers: try readHeaders(context), timeoutMs: 10_000))
        let answer = try? response.decodeJSON([String: JSONValue].self)
        guard response.isSuccess else {
            let message = answer?["error"]?["message"]?.stringValue ?? "HTTP \(response.status)"
            throw PluginError(code: response.status == 401 || response.status == 403 ? "AUTH_FAILED" : "ENGINE_ERROR",
                              message: "Stripe did not give the credit balance: \(message)", remediation: "Check STRIPE_API_KEY and customer_id.")
        }
        let monetary = answer?["balances"]?.arrayValue?.compactMap { $0["available_balance"]?["monetary"] } ?? []
        let total = monetary.compactMap { $0["value"]?.intValue }.reduce(0, +)
        let currency = monetary.first?["currency"]?.stringValue?.uppercased() ?? "USD"
        return CostEstimate(amountMinor: total, currency: currency, basis: "Stripe credit balance of \(customer)")
    }
}
