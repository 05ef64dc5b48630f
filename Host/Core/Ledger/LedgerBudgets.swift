import Foundation
import GRDB

/// A spending cap: per account (optionally per calendar month) or per
/// pipeline run. Usage counts what is reserved for running jobs plus what
/// finished jobs were charged (their provider cost in bring-your-own-key mode).
public struct BudgetStatus: Encodable, Sendable, Hashable {
    public var id: String
    /// "account" or "run".
    public var scope: String
    public var accountID: String?
    public var label: String?
    public var limitMinor: Int
    public var currency: String
    /// "month" or "none".
    public var period: String
    public var periodKey: String
    public var usageMinor: Int
    public var thresholds: [Int]
    public var alertsFired: [Int]
    public var hardStop: Bool

    public var percent: Int { limitMinor == 0 ? 100 : Int((Double(usageMinor) * 100 / Double(limitMinor)).rounded(.down)) }
    /// At 100 % with a hard stop: no further job is admitted (a pipeline cancels its remaining steps).
    public var exhausted: Bool { hardStop && usageMinor >= limitMinor }

    enum CodingKeys: String, CodingKey {
        case id, scope, label, currency, period, thresholds, percent, exhausted
        case accountID = "account"
        case limitMinor = "limit_minor"
        case periodKey = "period_key"
        case usageMinor = "usage_minor"
        case alertsFired = "alerts_fired"
        case hardStop = "hard_stop"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(scope, forKey: .scope)
        try c.encodeIfPresent(accountID, forKey: .accountID)
        try c.encodeIfPresent(label, forKey: .label)
        try c.encode(limitMinor, forKey: .limitMinor)
        try c.encode(currency, forKey: .currency)
        try c.encode(period, forKey: .period)
        try c.encode(periodKey, forKey: .periodKey)
        try c.encode(usageMinor, forKey: .usageMinor)
        try c.encode(percent, forKey: .percent)
        try c.encode(thresholds, forKey: .thresholds)
        try c.encode(alertsFired, forKey: .alertsFired)
        try c.encode(hardStop, forKey: .hardStop)
        try c.encode(exhausted, forKey: .exhausted)
    }
}

enum LedgerBudgets {
    static func periodKey(_ period: String, _ now: Date) -> String {
        guard period == "month" else { return "all" }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? .current
        let parts = calendar.dateComponents([.year, .month], from: now)
        return String(format: "%04d-%02d", parts.year ?? 0, parts.month ?? 0)
    }

    static func status(_ db: Database, _ row: Row, now: Date) throws -> BudgetStatus {
        let id: String = row["id"], period: String = row["period"]
        let key = periodKey(period, now)
        let usage = try Int.fetchOne(db, sql: """
            SELECT COALESCE(SUM(CASE WHEN j.state = 'held' THEN j.reserved_minor
                                    WHEN j.mode = 'byok' THEN COALESCE(j.actual_minor, 0)
                                    ELSE COALESCE(j.charged_minor, 0) END), 0)
            FROM ledger_budget_job b JOIN ledger_job j ON j.job_id = b.job_id
            WHERE b.budget_id = ? AND b.period_key = ?
            """, arguments: [id, key]) ?? 0
        let fired = try Int.fetchAll(db, sql: "SELECT threshold FROM ledger_alert WHERE budget_id = ? AND period_key = ? ORDER BY threshold", arguments: [id, key])
        let thresholds = (try? JSONDecoder().decode([Int].self, from: Data((row["thresholds_json"] as String).utf8))) ?? []
        return BudgetStatus(id: id, scope: row["scope"], accountID: row["account_id"], label: row["label"], limitMinor: row["limit_minor"],
                            currency: row["currency"], period: period, periodKey: key, usageMinor: usage, thresholds: thresholds,
                            alertsFired: fired, hardStop: row["hard_stop"])
    }

    static func status(_ db: Database, id: String, now: Date) throws -> BudgetStatus? {
        try Row.fetchOne(db, sql: "SELECT * FROM ledger_budget WHERE id = ?", arguments: [id]).map { try status(db, $0, now: now) }
    }

    static func list(_ db: Database, account: String?, now: Date) throws -> [BudgetStatus] {
        let rows = account == nil
            ? try Row.fetchAll(db, sql: "SELECT * FROM ledger_budget ORDER BY created_at, id")
            : try Row.fetchAll(db, sql: "SELECT * FROM ledger_budget WHERE account_id = ? ORDER BY created_at, id", arguments: [account])
        return try rows.map { try status(db, $0, now: now) }
    }

    static func save(_ db: Database, id: String, scope: String, account: String?, label: String?, limitMinor: Int, currency: String,
                     period: String, thresholds: [Int], hardStop: Bool, now: Date) throws {
        guard limitMinor >= 0 else {
            throw YardError(.usage, "A budget's limit cannot be negative.", remediation: "Pass --limit 0 or more.", field: "limit")
        }
        guard ["month", "none"].contains(period) else {
            throw YardError(.usage, "Unknown budget period \(period).", remediation: "Use month or none.", field: "period")
        }
        let thresholdText = String(decoding: try JSONEncoder().encode(thresholds.sorted()), as: UTF8.self)
        try db.execute(sql: """
            INSERT INTO ledger_budget (id, scope, account_id, label, limit_minor, currency, period, thresholds_json, hard_stop, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(id) DO UPDATE SET limit_minor = excluded.limit_minor, period = excluded.period,
                thresholds_json = excluded.thresholds_json, hard_stop = excluded.hard_stop, label = excluded.label
            """, arguments: [id, scope, account, label, limitMinor, currency, period, thresholdText, hardStop, now])
    }

    /// Links a new job to every budget it counts against and refuses it when a
    /// hard-stop budget would pass 100 %. Runs in the reservation's transaction.
    static func admit(_ db: Database, account: String, extra: [String], job: String, amount: Int, now: Date) throws -> [BudgetStatus] {
        var rows = try Row.fetchAll(db, sql: "SELECT * FROM ledger_budget WHERE scope = 'account' AND account_id = ?", arguments: [account])
        for id in extra {
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM ledger_budget WHERE id = ?", arguments: [id]) else {
                throw YardError("BUDGET_NOT_FOUND", "No budget \(id).", remediation: "Create it first (`yard credits budget`, or JobLedger.openRunBudget).", field: "budget")
            }
            if !rows.contains(where: { ($0["id"] as String) == id }) { rows.append(row) }
        }
        var statuses: [BudgetStatus] = []
        for row in rows {
            let status = try status(db, row, now: now)
            if status.hardStop && status.usageMinor + amount > status.limitMinor {
                let left = max(0, status.limitMinor - status.usageMinor)
                throw YardError("BUDGET_EXCEEDED",
                                "Budget \(status.id)\(status.label.map { " (\($0))" } ?? "") has \(MinorUnits.text(left, status.currency)) left of \(MinorUnits.text(status.limitMinor, status.currency)); this job needs \(MinorUnits.text(amount, status.currency)).",
                                remediation: "Raise it (`yard credits budget --id \(status.id) --limit …`), wait for the next period, or run a cheaper job.",
                                field: "budget")
            }
            try db.execute(sql: "INSERT OR IGNORE INTO ledger_budget_job (budget_id, job_id, period_key) VALUES (?, ?, ?)",
                           arguments: [status.id, job, status.periodKey])
            statuses.append(status)
        }
        return statuses
    }

    /// Fires each threshold the job's budgets have crossed, once per period,
    /// as a ledger_alert row and a `budget_alert` event on the job.
    static func fireAlerts(_ db: Database, job: String, now: Date) throws {
        let rows = try Row.fetchAll(db, sql: "SELECT b.* FROM ledger_budget b JOIN ledger_budget_job l ON l.budget_id = b.id WHERE l.job_id = ?", arguments: [job])
        for row in rows {
            let status = try status(db, row, now: now)
            for threshold in status.thresholds where status.percent >= threshold && !status.alertsFired.contains(threshold) {
                try db.execute(sql: "INSERT OR IGNORE INTO ledger_alert (budget_id, period_key, threshold, job_id, usage_minor, at) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [status.id, status.periodKey, threshold, job, status.usageMinor, now])
                let data = String(decoding: try JSONEncoder().encode(status), as: UTF8.self)
                var event = JobEvent(id: nil, jobID: job, at: now, kind: "budget_alert",
                                     message: "budget \(status.id) reached \(threshold) % (\(MinorUnits.text(status.usageMinor, status.currency)) of \(MinorUnits.text(status.limitMinor, status.currency)))\(threshold >= 100 && status.hardStop ? "; further jobs are refused" : "")",
                                     dataJSON: data)
                try event.insert(db)
            }
        }
    }
}
