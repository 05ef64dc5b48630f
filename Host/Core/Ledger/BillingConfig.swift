import Foundation
import SwitchyardJSON

/// Who pays a provider for an engine's jobs.
public enum PaymentMode: String, Codable, Sendable {
    /// The host's own provider keys: every job is charged to the account's credits.
    case platform
    /// The user's own keys: nothing is charged; usage is still recorded and budgets still apply.
    case byok
}

/// Whose budget and credits a job uses. Set `JobSpec.billing`; nil means the
/// configured default account and its budgets.
public struct BillingScope: Sendable, Hashable {
    public var account: String?
    /// Extra budgets the job counts against, e.g. a pipeline run's (JobLedger.openRunBudget).
    public var budgets: [String]

    public init(account: String? = nil, budgets: [String] = []) {
        self.account = account
        self.budgets = budgets
    }
}

/// $YARD_HOME/config/billing.json. Every member is optional:
///
///     {"default_account": "acme", "currency": "USD", "margin_percent": 20,
///      "default_mode": "byok",
///      "engines": {"runpod": {"mode": "platform", "margin_percent": 30}},
///      "meter": {"plugin": "stripe-billing", "event_name": "switchyard_usage_minor"},
///      "budget_thresholds": [50, 80, 95, 100]}
public struct BillingConfig: Sendable {
    public struct Engine: Sendable {
        public var mode: PaymentMode?
        public var marginPercent: Decimal?
        public init(mode: PaymentMode? = nil, marginPercent: Decimal? = nil) {
            self.mode = mode
            self.marginPercent = marginPercent
        }
    }

    public struct Meter: Sendable {
        /// The billing plugin (capability billing.meter) usage is delivered through.
        public var plugin: String
        public var eventName: String
        public init(plugin: String = "stripe-billing", eventName: String = "switchyard_usage_minor") {
            self.plugin = plugin
            self.eventName = eventName
        }
    }

    public var defaultAccount = "default"
    public var currency = "USD"
    public var marginPercent: Decimal = 0
    /// Self-hosted users bring their own keys; a platform opts engines into `platform`.
    public var defaultMode: PaymentMode = .byok
    public var engines: [String: Engine] = [:]
    public var meter: Meter?
    public var thresholds = [50, 80, 95, 100]

    public init() {}

    public func mode(for engine: String) -> PaymentMode { engines[engine]?.mode ?? defaultMode }
    public func margin(for engine: String) -> Decimal { engines[engine]?.marginPercent ?? marginPercent }

    public static func file(_ paths: YardPaths) -> URL { paths.home.appendingPathComponent("config/billing.json") }

    public static func load(paths: YardPaths) throws -> BillingConfig {
        let url = file(paths)
        guard let data = try? Data(contentsOf: url) else { return BillingConfig() }
        func invalid(_ field: String, _ message: String) -> YardError {
            YardError("CONFIG_INVALID", "\(url.path): \(message)", remediation: "Fix the file; README \"Credits and billing\" lists its members.", field: field)
        }
        guard let object = (try? JSONValue(parsing: data))?.objectValue else { throw invalid("$", "not a JSON object") }
        var config = BillingConfig()
        if let account = object["default_account"]?.stringValue { config.defaultAccount = account }
        if let currency = object["currency"]?.stringValue { config.currency = currency.uppercased() }
        if let margin = object["margin_percent"] {
            guard let value = PriceRule.decimal(margin), value >= 0 else { throw invalid("$.margin_percent", "margin_percent must be a number ≥ 0") }
            config.marginPercent = value
        }
        if let mode = object["default_mode"] {
            guard let value = mode.stringValue.flatMap(PaymentMode.init(rawValue:)) else { throw invalid("$.default_mode", "default_mode must be \"platform\" or \"byok\"") }
            config.defaultMode = value
        }
        for (id, engine) in object["engines"]?.objectValue ?? [:] {
            var entry = Engine()
            if let mode = engine["mode"] {
                guard let value = mode.stringValue.flatMap(PaymentMode.init(rawValue:)) else { throw invalid("$.engines.\(id).mode", "mode must be \"platform\" or \"byok\"") }
                entry.mode = value
            }
            if let margin = engine["margin_percent"] {
                guard let value = PriceRule.decimal(margin), value >= 0 else { throw invalid("$.engines.\(id).margin_percent", "margin_percent must be a number ≥ 0") }
                entry.marginPercent = value
            }
            config.engines[id] = entry
        }
        if let meter = object["meter"]?.objectValue {
            config.meter = Meter(plugin: meter["plugin"]?.stringValue ?? "stripe-billing", eventName: meter["event_name"]?.stringValue ?? "switchyard_usage_minor")
        }
        if let thresholds = object["budget_thresholds"]?.arrayValue {
            let values = thresholds.compactMap(\.intValue)
            guard values.count == thresholds.count, values.allSatisfy({ (1...100).contains($0) }) else {
                throw invalid("$.budget_thresholds", "budget_thresholds must be whole percentages from 1 to 100")
            }
            config.thresholds = values.sorted()
        }
        return config
    }
}
