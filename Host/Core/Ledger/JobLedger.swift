import Foundation
import GRDB
import SwitchyardJSON

/// What the ledger knows about one job's money.
public struct JobCharge: Codable, Sendable, Hashable {
    public var jobID: String
    public var accountID: String
    public var mode: PaymentMode
    public var currency: String
    public var estimateMinor: Int
    public var reservedMinor: Int
    /// Cost from what the provider reported (with the margin); nil until the job ends.
    public var actualMinor: Int?
    /// What the account paid: 0 in bring-your-own-key mode and for refunds.
    public var chargedMinor: Int?
    /// Actual cost above the reservation, not charged (reservations are upper bounds).
    public var overageMinor: Int?
    /// held → settled | refunded | provisional (the provider may still charge: review it).
    public var state: String
    /// What the provider said about billing a job that did not succeed: yes, no, unknown.
    public var providerCharged: String?
    public var basis: String

    enum CodingKeys: String, CodingKey {
        case mode, currency, state, basis
        case jobID = "job_id"
        case accountID = "account"
        case estimateMinor = "estimate_minor"
        case reservedMinor = "reserved_minor"
        case actualMinor = "actual_minor"
        case chargedMinor = "charged_minor"
        case overageMinor = "overage_minor"
        case providerCharged = "provider_charged"
    }

    init(row: Row) {
        jobID = row["job_id"]; accountID = row["account_id"]; mode = PaymentMode(rawValue: row["mode"]) ?? .byok
        currency = row["currency"]; estimateMinor = row["estimate_minor"]; reservedMinor = row["reserved_minor"]
        actualMinor = row["actual_minor"]; chargedMinor = row["charged_minor"]; overageMinor = row["overage_minor"]
        state = row["state"]; providerCharged = row["provider_charged"]; basis = row["basis"]
    }
}

/// The credits ledger as the job engine uses it: prices a job, reserves the
/// estimate in the transaction that inserts the job row, and settles it in
/// the transaction that records the job's end (writing the usage to the
/// billing outbox there too). Attach with `JobEngine.ledger`.
public final class JobLedger: @unchecked Sendable {
    public let store: SQLiteJobStore
    public let config: BillingConfig
    public let prices: PriceBook
    let clock: any HostClock
    private let lock = NSLock()
    private var committedUsage: [@Sendable () -> Void] = []

    public init(store: SQLiteJobStore, config: BillingConfig = BillingConfig(), prices: PriceBook, clock: any HostClock = SystemClock()) {
        self.store = store
        self.config = config
        self.prices = prices
        self.clock = clock
        store.finishHook = { [weak self] db, job in try self?.settle(db, job) }
        store.parkedHook = { [weak self] db, job, resolution, audit in try self?.resolveParked(db, job, resolution, audit: audit) }
    }

    public static func standard(store: SQLiteJobStore, paths: YardPaths) throws -> JobLedger {
        JobLedger(store: store, config: try BillingConfig.load(paths: paths), prices: PriceBook.standard(paths: paths))
    }

    var pool: DatabasePool { store.pool }
    var now: Date { Date(timeIntervalSince1970: Double(clock.nowUnixMs()) / 1000) }

    /// Called after a settlement that wrote usage to the outbox has committed.
    public func onUsageCommitted(_ action: @escaping @Sendable () -> Void) { lock.withLock { committedUsage.append(action) } }

    // MARK: pricing

    public func mode(for engine: String) -> PaymentMode { config.mode(for: engine) }

    /// The price of a job from data (pricing files, then the manifest); else
    /// the plugin's own estimate (sy.estimate/1), with the margin either way.
    /// Throws PRICING_INVALID for a rule that cannot be used (negative, not
    /// finite, a total no ledger can hold): a broken price never becomes 0.
    public func quote(manifest: PluginManifest, capability: String, inputs: [String: JSONValue], config engineConfig: [String: JSONValue],
                      pluginEstimate: CostEstimateInfo? = nil) throws -> PriceQuote? {
        let margin = mode(for: manifest.id) == .platform ? config.margin(for: manifest.id) : 0
        let model = engineConfig["models"]?[capability]?.stringValue
        if let rule = try prices.rule(for: manifest, capability: capability, model: model) {
            let (cost, basis) = rule.estimate(inputs: inputs, config: engineConfig, capability: capability)
            guard let amount = PriceQuote.minorChecked(cost, margin: margin) else { throw Self.unpriceable(manifest.id, capability, basis) }
            return PriceQuote(amountMinor: amount, currency: rule.currency,
                              basis: basis + (margin > 0 ? " + \(margin) % margin" : "") + " (\(rule.source))", rule: rule, marginPercent: margin)
        }
        guard let pluginEstimate else { return nil }
        guard pluginEstimate.amountMinor >= 0 else {
            throw YardError("PRICING_INVALID", "\(manifest.id) estimated \(capability) at \(pluginEstimate.amountMinor) minor units, a negative price.",
                            remediation: "Report this to the plugin's author, or price the capability in $YARD_HOME/pricing/\(manifest.id).json.", field: "estimate")
        }
        guard let amount = PriceQuote.minorChecked(Decimal(pluginEstimate.amountMinor), margin: margin) else {
            throw Self.unpriceable(manifest.id, capability, pluginEstimate.basis)
        }
        return PriceQuote(amountMinor: amount, currency: pluginEstimate.currency,
                          basis: pluginEstimate.basis + (margin > 0 ? " + \(margin) % margin" : ""), rule: nil, marginPercent: margin)
    }

    static func unpriceable(_ engine: String, _ capability: String, _ basis: String) -> YardError {
        YardError("PRICING_INVALID", "\(engine) prices \(capability) beyond what a ledger can hold (\(basis)).",
                  remediation: "Fix the price in $YARD_HOME/pricing/\(engine).json or Registry/pricing/\(engine).json: prices are minor units per unit.", field: "amount_minor")
    }

    /// For the pre-flight verdict: would this job be refused for money? The
    /// reservation itself decides, atomically, when the job is started.
    public func fundsFinding(engine: String, scope: BillingScope?, quote: PriceQuote) -> PreflightFinding? {
        let account = scope?.account ?? config.defaultAccount
        do {
            try pool.read { db in
                for status in try LedgerBudgets.list(db, account: account, now: now) where status.scope == "account" && status.hardStop
                    && status.usageMinor + quote.amountMinor > status.limitMinor {
                    throw YardError("BUDGET_EXCEEDED", "Budget \(status.id) has \(MinorUnits.text(max(0, status.limitMinor - status.usageMinor), status.currency)) left; this job needs \(MinorUnits.text(quote.amountMinor, quote.currency)).",
                                    remediation: "Raise it with `yard credits budget --id \(status.id) --limit …`.", field: "budget")
                }
                guard mode(for: engine) == .platform, quote.amountMinor > 0 else { return }
                let available = try LedgerBook.balance(db, account: account, now: now)?.availableMinor ?? 0
                if available < quote.amountMinor {
                    throw YardError("INSUFFICIENT_FUNDS", "Account \(account) has \(MinorUnits.text(available, quote.currency)) available; this job needs \(MinorUnits.text(quote.amountMinor, quote.currency)).",
                                    remediation: "Add credits: `yard credits grant --account \(account) --amount …`, or a Stripe top-up.", field: "account")
                }
            }
        } catch let error as YardError {
            return PreflightFinding(step: "credits", code: error.code.rawValue, message: error.message, remediation: error.remediation, field: error.field, severity: .error)
        } catch {
            return nil
        }
        return nil
    }

    // MARK: the engine's two transactions

    /// Inserts the job row and reserves its price in one write transaction:
    /// the balance check, the budget check and the hold see every other job's
    /// reservation, so a burst can never overspend. A refusal rolls the job
    /// row back too. A repeated idempotency key returns the stored job.
    public func insertReserving(_ record: JobRecord, spec: JobSpec, manifest: PluginManifest, estimate: CostEstimateInfo?) throws -> (JobRecord, created: Bool) {
        // The verdict's estimate already carries the margin; a data rule is kept for settlement.
        var quote = try quote(manifest: manifest, capability: spec.capability, inputs: spec.inputs, config: spec.config)
        if quote == nil, let estimate {
            quote = PriceQuote(amountMinor: estimate.amountMinor, currency: estimate.currency, basis: estimate.basis, rule: nil, marginPercent: 0)
        }
        return try insertReserving(record, scope: spec.billing, quote: quote)
    }

    public func insertReserving(_ record: JobRecord, scope: BillingScope?, quote: PriceQuote?) throws -> (JobRecord, created: Bool) {
        let account = scope?.account ?? config.defaultAccount
        let mode = mode(for: record.pluginID)
        let at = now
        let amount = quote?.amountMinor ?? 0
        let currency = quote?.currency ?? config.currency
        var snapshot: [String: JSONValue] = ["margin_percent": .string("\(quote?.marginPercent ?? 0)")]
        if let rule = quote?.rule { snapshot["rule"] = rule.json }
        let pricing = String(decoding: JSONValue.object(snapshot).serialized(), as: UTF8.self)
        return try pool.write { db in
            let (stored, created) = try SQLiteJobStore.insert(record, db)
            guard created else { return (stored, false) }
            let acct = try LedgerBook.ensureAccount(db, account, currency: config.currency, now: at)
            if acct.currency != currency && amount > 0 {
                throw YardError("CURRENCY_MISMATCH", "\(record.pluginID) prices \(record.capability) in \(currency); account \(account) keeps \(acct.currency).",
                                remediation: "Use an account in \(currency), or price the engine in \(acct.currency) (Registry/pricing/).", field: "account")
            }
            _ = try LedgerBudgets.admit(db, account: account, extra: scope?.budgets ?? [], job: record.id, amount: amount, now: at)
            if mode == .platform { try LedgerBook.reserve(db, account: account, job: record.id, amount: amount, currency: currency, now: at) }
            try db.execute(sql: """
                INSERT INTO ledger_job (job_id, account_id, mode, currency, estimate_minor, reserved_minor, state, basis, pricing_json, created_at)
                VALUES (?, ?, ?, ?, ?, ?, 'held', ?, ?, ?)
                """, arguments: [record.id, account, mode.rawValue, currency, amount, amount, quote?.basis ?? "unpriced", pricing, at])
            try LedgerBudgets.fireAlerts(db, job: record.id, now: at)
            return (stored, true)
        }
    }

    /// Runs in the transaction that moves a job to a terminal phase.
    func settle(_ db: Database, _ job: JobRecord) throws {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM ledger_job WHERE job_id = ?", arguments: [job.id]) else { return }
        let charge = JobCharge(row: row)
        // A parked job that reconcile or a person re-opened is settled when it ends.
        guard charge.state == "held" || charge.state == "parked" else { return }
        let at = now
        let decision = Settlement.decide(job: job, charge: charge, pricingJSON: row["pricing_json"])
        if decision.state == "parked" {
            guard charge.state != "parked" else { return }
            try db.execute(sql: "UPDATE ledger_job SET state = 'parked', provider_charged = ? WHERE job_id = ?", arguments: [decision.providerCharged, job.id])
            var event = JobEvent(id: nil, jobID: job.id, at: at, kind: "ledger", message: "parked: \(decision.reason)", dataJSON: nil)
            try event.insert(db)
            return
        }
        let paid = charge.mode == .platform ? decision.chargedMinor : 0
        if charge.mode == .platform {
            try LedgerBook.settle(db, account: charge.accountID, job: job.id, charge: paid, currency: charge.currency,
                                  memo: "\(job.id) \(job.phase.rawValue): charged \(MinorUnits.text(paid, charge.currency)) of \(MinorUnits.text(charge.reservedMinor, charge.currency)) held; \(decision.reason)", now: at)
        }
        try db.execute(sql: """
            UPDATE ledger_job SET actual_minor = ?, charged_minor = ?, overage_minor = ?, state = ?, provider_charged = ?, basis = ?, settled_at = ?
            WHERE job_id = ?
            """, arguments: [decision.actualMinor, paid, decision.overageMinor, decision.state, decision.providerCharged,
                             decision.basis ?? charge.basis, at, job.id])
        var event = JobEvent(id: nil, jobID: job.id, at: at, kind: "ledger",
                             message: "\(decision.state): charged \(MinorUnits.text(paid, charge.currency)) of \(MinorUnits.text(charge.reservedMinor, charge.currency)) reserved (\(decision.reason))",
                             dataJSON: nil)
        try event.insert(db)
        try LedgerBudgets.fireAlerts(db, job: job.id, now: at)
        if charge.mode == .platform, paid > 0, let meter = config.meter,
           let customer = try LedgerBook.account(db, charge.accountID)?.stripeCustomerID {
            try BillingOutbox.enqueue(db, job: job, customer: customer, eventName: meter.eventName, value: paid, at: at)
            let actions = lock.withLock { committedUsage }
            db.afterNextTransaction(onCommit: { _ in for action in actions { action() } })
        }
        FaultInjection.point("settle-before-commit")
    }

    /// A parked job resolved: refunded when the provider never received it;
    /// held again when it did (it is then polled and settled from usage).
    func resolveParked(_ db: Database, _ job: JobRecord, _ resolution: ParkedResolution, audit: String) throws {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM ledger_job WHERE job_id = ?", arguments: [job.id]) else { return }
        let charge = JobCharge(row: row)
        guard charge.state == "parked" || charge.state == "held" else { return }
        let at = now
        switch resolution {
        case .notSubmitted:
            if charge.mode == .platform {
                try LedgerBook.settle(db, account: charge.accountID, job: job.id, charge: 0, currency: charge.currency,
                                      memo: "\(job.id) never reached the provider: \(MinorUnits.text(charge.reservedMinor, charge.currency)) refunded (\(audit))", now: at)
            }
            try db.execute(sql: "UPDATE ledger_job SET actual_minor = 0, charged_minor = 0, state = 'refunded', provider_charged = 'no', settled_at = ? WHERE job_id = ?",
                           arguments: [at, job.id])
            var event = JobEvent(id: nil, jobID: job.id, at: at, kind: "ledger",
                                 message: "refunded: charged \(MinorUnits.text(0, charge.currency)) of \(MinorUnits.text(charge.reservedMinor, charge.currency)) reserved (never reached the provider: \(audit))", dataJSON: nil)
            try event.insert(db)
            try LedgerBudgets.fireAlerts(db, job: job.id, now: at)
        case .submitted:
            try db.execute(sql: "UPDATE ledger_job SET state = 'held' WHERE job_id = ?", arguments: [job.id])
            var event = JobEvent(id: nil, jobID: job.id, at: at, kind: "ledger",
                                 message: "held again: the provider has the job; it is settled from its usage when it ends (\(audit))", dataJSON: nil)
            try event.insert(db)
        }
    }

    // MARK: accounts and credits

    /// Grants credits; false when a grant with this id was recorded before.
    @discardableResult
    public func grant(account: String, amountMinor: Int, currency: String? = nil, category: GrantCategory = .paid, expiresAt: Date? = nil,
                      id: String? = nil, source: String = "cli", memo: String? = nil) throws -> Bool {
        let at = now
        let grantID = id ?? "gr_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
        let currency = (currency ?? config.currency).uppercased()
        return try pool.write { db in
            try LedgerBook.grant(db, id: grantID, account: account, category: category, amountMinor: amountMinor, currency: currency,
                                 expiresAt: expiresAt, source: source, memo: memo ?? "\(category.rawValue) grant \(MinorUnits.text(amountMinor, currency)) (\(source))", now: at)
        }
    }

    public func balance(account: String? = nil) throws -> AccountBalance {
        let id = account ?? config.defaultAccount
        return try pool.read { db in try LedgerBook.balance(db, account: id, now: now) }
            ?? AccountBalance(accountID: id, currency: config.currency, availableMinor: 0, heldMinor: 0, stripeCustomerID: nil, grants: [])
    }

    /// Every account the ledger knows, by id.
    public func accountIDs() throws -> [String] {
        try pool.read { db in try String.fetchAll(db, sql: "SELECT id FROM ledger_account ORDER BY id") }
    }

    public func history(account: String? = nil, limit: Int = 50) throws -> [LedgerPosting] {
        try pool.read { db in try LedgerBook.history(db, account: account ?? config.defaultAccount, limit: limit) }
    }

    /// Links an account to its billing provider's customer (Stripe cus_…), creating the account if needed.
    public func linkCustomer(account: String, customerID: String, currency: String? = nil) throws {
        let at = now
        try pool.write { db in
            try LedgerBook.ensureAccount(db, account, currency: (currency ?? config.currency).uppercased(), now: at)
            try db.execute(sql: "UPDATE ledger_account SET stripe_customer_id = ? WHERE id = ?", arguments: [customerID, account])
        }
    }

    public func charge(jobID: String) throws -> JobCharge? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM ledger_job WHERE job_id = ?", arguments: [jobID]).map(JobCharge.init(row:)) }
    }

    /// Cost per step and in total, for a pipeline's run summary. Jobs the ledger
    /// does not know (not priced) are left out; actual and charged count finished steps only.
    public func costs(jobIDs: [String]) throws -> CostSummary {
        let steps = try jobIDs.compactMap { try charge(jobID: $0) }
        return CostSummary(steps: steps, currency: steps.first?.currency ?? config.currency,
                           estimateMinor: steps.reduce(0) { $0 + $1.estimateMinor },
                           actualMinor: steps.reduce(0) { $0 + ($1.actualMinor ?? 0) },
                           chargedMinor: steps.reduce(0) { $0 + ($1.chargedMinor ?? 0) })
    }

    /// Problems with the book (unbalanced postings, negative accounts, settled
    /// jobs still holding credits); empty when it balances to the cent.
    public func audit() throws -> [String] { try pool.read { db in try LedgerBook.audit(db) } }

    // MARK: budgets

    /// Creates or updates an account's budget (hard stop at 100 % unless `hardStop` is false).
    @discardableResult
    public func setAccountBudget(account: String, limitMinor: Int, period: String = "month", thresholds: [Int]? = nil,
                                 hardStop: Bool = true, id: String? = nil) throws -> BudgetStatus {
        let budgetID = id ?? "budget_\(account)"
        let at = now
        return try pool.write { db in
            let acct = try LedgerBook.ensureAccount(db, account, currency: config.currency, now: at)
            try LedgerBudgets.save(db, id: budgetID, scope: "account", account: account, label: nil, limitMinor: limitMinor, currency: acct.currency,
                                   period: period, thresholds: thresholds ?? config.thresholds, hardStop: hardStop, now: at)
            guard let status = try LedgerBudgets.status(db, id: budgetID, now: at) else { throw YardError.budgetNotFound(budgetID) }
            return status
        }
    }

    /// A budget for one pipeline run: pass the returned id in every step's
    /// `JobSpec.billing.budgets`; check `budget(id).exhausted` before each step.
    public func openRunBudget(limitMinor: Int, account: String? = nil, label: String? = nil, currency: String? = nil, thresholds: [Int]? = nil) throws -> String {
        let id = "run_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        let at = now
        try pool.write { db in
            try LedgerBudgets.save(db, id: String(id), scope: "run", account: account ?? config.defaultAccount, label: label, limitMinor: limitMinor,
                                   currency: (currency ?? config.currency).uppercased(), period: "none", thresholds: thresholds ?? config.thresholds, hardStop: true, now: at)
        }
        return String(id)
    }

    public func budget(_ id: String) throws -> BudgetStatus {
        guard let status = try pool.read({ db in try LedgerBudgets.status(db, id: id, now: now) }) else { throw YardError.budgetNotFound(id) }
        return status
    }

    public func budgets(account: String? = nil) throws -> [BudgetStatus] {
        try pool.read { db in try LedgerBudgets.list(db, account: account, now: now) }
    }

    /// Every threshold alert recorded, newest first.
    public func alerts(budget: String) throws -> [(threshold: Int, jobID: String?, usageMinor: Int)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT threshold, job_id, usage_minor FROM ledger_alert WHERE budget_id = ? ORDER BY threshold", arguments: [budget])
                .map { ($0["threshold"], $0["job_id"], $0["usage_minor"]) }
        }
    }
}

public struct CostSummary: Encodable, Sendable, Hashable {
    public var steps: [JobCharge]
    public var currency: String
    public var estimateMinor: Int
    public var actualMinor: Int
    public var chargedMinor: Int

    enum CodingKeys: String, CodingKey {
        case steps, currency
        case estimateMinor = "estimate_minor"
        case actualMinor = "actual_minor"
        case chargedMinor = "charged_minor"
    }
}

extension YardError {
    static func budgetNotFound(_ id: String) -> YardError {
        YardError("BUDGET_NOT_FOUND", "No budget \(id).", remediation: "List budgets with `yard credits budget`.", field: "budget")
    }
}

/// How a finished job is settled, from its phase, what the provider said
/// about billing and what it measured. The rules, in order:
///
/// 1. A job that may have reached the provider but whose submission was
///    never confirmed (needs_attention without a ref) is *parked*: its
///    reservation stays held, nothing is charged, until reconcile finds it,
///    proves it absent (refund), its window passes (refund), or someone
///    resolves it by hand (`yard jobs resolve`).
/// 2. The provider said it did not bill (failed before it started, cancelled
///    in the queue): refunded.
/// 3. The price rule prices what the provider measured (usage: execution
///    time, seconds of video, images…), on success, failure, cancel or
///    timeout alike; the charge is capped at the reservation (the excess is
///    recorded as overage).
/// 4. The provider billed but measured nothing and the rule cannot guess
///    (a GPU second): the job is provisional — held at the reservation and
///    flagged for review, said so in its ledger event.
/// 5. No price rule at all (a plugin's own estimate): the quoted estimate is
///    the price, on success or when the provider billed.
struct Settlement {
    var state: String
    var actualMinor: Int?
    var chargedMinor: Int
    var overageMinor: Int?
    var providerCharged: String
    var reason: String
    var basis: String?

    static func object(_ text: String?) -> [String: JSONValue] { text.flatMap { try? JSONValue(parsing: Data($0.utf8)) }?.objectValue ?? [:] }

    /// Whether a terminal job is parked: its submission was never confirmed, so
    /// the host cannot know whether the provider has it.
    static func isParked(_ job: JobRecord) -> Bool { job.phase == .needsAttention && job.refJSON == nil }

    static func decide(job: JobRecord, charge: JobCharge, pricingJSON: String?) -> Settlement {
        let error = object(job.errorJSON), cancel = object(job.cancelOutcomeJSON)
        let providerCharged: String
        switch job.phase {
        case .succeeded: providerCharged = "yes"
        case .cancelled: providerCharged = cancel["charged"]?.stringValue ?? error["charged"]?.stringValue ?? "unknown"
        default: providerCharged = error["charged"]?.stringValue ?? cancel["charged"]?.stringValue ?? "unknown"
        }
        let reserved = charge.reservedMinor
        if isParked(job) {
            return Settlement(state: "parked", actualMinor: nil, chargedMinor: 0, overageMinor: nil, providerCharged: providerCharged,
                              reason: "submission unconfirmed: \(MinorUnits.text(reserved, charge.currency)) stays held until reconcile finds the job, proves it absent or its window passes, or `yard jobs resolve \(job.id) --not-submitted | --submitted REF`",
                              basis: nil)
        }
        if providerCharged == "no" {
            return Settlement(state: "refunded", actualMinor: 0, chargedMinor: 0, overageMinor: nil, providerCharged: "no",
                              reason: job.phase == .cancelled ? "cancelled before the provider charged: refunded" : "\(job.phase.rawValue) without charge: refunded", basis: nil)
        }
        let snapshot = object(pricingJSON)
        let margin = snapshot["margin_percent"].flatMap(PriceRule.decimal) ?? 0
        let marginText = margin > 0 ? " + \(margin) % margin" : ""
        if let ruleValue = snapshot["rule"], let rule = try? PriceRule(ruleValue, source: "reservation") {
            if let (cost, basis) = rule.actual(phase: job.phase.rawValue, charged: providerCharged, inputs: object(job.inputsJSON), config: object(job.configJSON),
                                               outputs: object(job.outputsJSON), usage: object(job.usageJSON), capability: job.capability) {
                let actual = PriceQuote.minor(cost, margin: margin)
                let paid = min(actual, reserved)
                return Settlement(state: "settled", actualMinor: actual, chargedMinor: paid, overageMinor: actual > reserved ? actual - reserved : nil,
                                  providerCharged: providerCharged, reason: "\(job.phase.rawValue): \(basis)\(marginText)", basis: basis + marginText)
            }
            return Settlement(state: "provisional", actualMinor: reserved, chargedMinor: reserved, overageMinor: nil, providerCharged: providerCharged,
                              reason: "\(job.phase.rawValue), charged: \(providerCharged), and the provider measured nothing to price \(rule.unit) by: held at the reservation for review; refund with `yard credits grant` after checking the provider's bill", basis: nil)
        }
        if job.phase == .succeeded || providerCharged == "yes" {
            return Settlement(state: "settled", actualMinor: reserved, chargedMinor: reserved, overageMinor: nil, providerCharged: providerCharged,
                              reason: "\(job.phase.rawValue): no price rule for \(job.capability); priced at the quoted estimate (\(charge.basis))", basis: nil)
        }
        return Settlement(state: "provisional", actualMinor: reserved, chargedMinor: reserved, overageMinor: nil, providerCharged: providerCharged,
                          reason: "\(job.phase.rawValue), charged: \(providerCharged): held at the quoted estimate for review; refund with `yard credits grant` after checking", basis: nil)
    }
}
