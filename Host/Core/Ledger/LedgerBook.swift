import Foundation
import GRDB

public enum GrantCategory: String, Codable, Sendable, CaseIterable { case paid, promotional }

/// A grant of credits with what is left of it.
public struct GrantBalance: Codable, Sendable, Hashable {
    public var id: String
    public var category: GrantCategory
    public var amountMinor: Int
    public var remainingMinor: Int
    public var currency: String
    public var expiresAt: Date?
    public var source: String
    public var expired: Bool

    enum CodingKeys: String, CodingKey {
        case id, category, currency, source, expired
        case amountMinor = "amount_minor"
        case remainingMinor = "remaining_minor"
        case expiresAt = "expires_at"
    }
}

/// An account's balance, derived from its entries at `asOf`.
public struct AccountBalance: Codable, Sendable, Hashable {
    public var accountID: String
    public var currency: String
    /// What new jobs may reserve: unexpired grants minus open reservations.
    public var availableMinor: Int
    /// Reserved for jobs still running.
    public var heldMinor: Int
    public var stripeCustomerID: String?
    public var grants: [GrantBalance]

    enum CodingKeys: String, CodingKey {
        case currency, grants
        case accountID = "account"
        case availableMinor = "available_minor"
        case heldMinor = "held_minor"
        case stripeCustomerID = "stripe_customer_id"
    }
}

/// One posting in an account's history.
public struct LedgerPosting: Codable, Sendable, Hashable {
    public var id: Int64
    public var kind: String
    public var jobID: String?
    public var memo: String
    public var at: Date
    /// Change of the account's available balance.
    public var amountMinor: Int
    public var currency: String

    enum CodingKeys: String, CodingKey {
        case id, kind, memo, at, currency
        case jobID = "job_id"
        case amountMinor = "amount_minor"
    }
}

/// The double-entry book, as SQL on one connection. Every function runs
/// inside the caller's write transaction: reservation, job row, settlement,
/// outbox row and budget alerts commit together or not at all.
enum LedgerBook {
    /// Where granted credits come from (its balance is minus everything ever granted).
    static let issued = "@issued"
    /// Credits spent on jobs.
    static let revenue = "@revenue"
    /// Credits that expired unused.
    static let expired = "@expired"
    static func reserved(_ account: String) -> String { "reserved:\(account)" }

    struct Leg {
        var account: String
        var grant: String?
        var amount: Int
    }

    struct Account {
        var id: String
        var currency: String
        var stripeCustomerID: String?
    }

    static func account(_ db: Database, _ id: String) throws -> Account? {
        try Row.fetchOne(db, sql: "SELECT id, currency, stripe_customer_id FROM ledger_account WHERE id = ?", arguments: [id])
            .map { Account(id: $0["id"], currency: $0["currency"], stripeCustomerID: $0["stripe_customer_id"]) }
    }

    @discardableResult
    static func ensureAccount(_ db: Database, _ id: String, currency: String, now: Date) throws -> Account {
        if let existing = try account(db, id) { return existing }
        try db.execute(sql: "INSERT INTO ledger_account (id, currency, created_at) VALUES (?, ?, ?)", arguments: [id, currency, now])
        return Account(id: id, currency: currency, stripeCustomerID: nil)
    }

    /// Posts one balanced transaction under a unique key; false when that key
    /// was already posted (the cause was handled before).
    @discardableResult
    static func post(_ db: Database, key: String, kind: String, account: String, job: String?, memo: String,
                     currency: String, legs: [Leg], at: Date) throws -> Bool {
        let legs = legs.filter { $0.amount != 0 }
        var perGrant: [String: Int] = [:]
        for leg in legs { perGrant[leg.grant ?? "", default: 0] += leg.amount }
        guard perGrant.values.allSatisfy({ $0 == 0 }) else {
            throw YardError("LEDGER_UNBALANCED", "Posting \(key) does not balance: \(legs.map { "\($0.account) \($0.amount)" }).",
                            remediation: "This is a bug in the ledger; report it with `yard doctor`.")
        }
        if try Bool.fetchOne(db, sql: "SELECT 1 FROM ledger_txn WHERE key = ?", arguments: [key]) == true { return false }
        try db.execute(sql: "INSERT INTO ledger_txn (key, kind, account_id, job_id, memo, at) VALUES (?, ?, ?, ?, ?, ?)",
                       arguments: [key, kind, account, job, memo, at])
        let txn = db.lastInsertedRowID
        for leg in legs {
            try db.execute(sql: "INSERT INTO ledger_entry (txn_id, account_id, grant_id, job_id, amount_minor, currency) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [txn, leg.account, leg.grant, job, leg.amount, currency])
        }
        return true
    }

    /// Records a grant and credits it; false when a grant with this id exists.
    @discardableResult
    static func grant(_ db: Database, id: String, account: String, category: GrantCategory, amountMinor: Int, currency: String,
                      expiresAt: Date?, source: String, memo: String, now: Date) throws -> Bool {
        guard amountMinor > 0 else {
            throw YardError(.usage, "A grant must be a positive amount.", remediation: "Pass --amount greater than zero.", field: "amount")
        }
        let acct = try ensureAccount(db, account, currency: currency, now: now)
        guard acct.currency == currency else {
            throw YardError("CURRENCY_MISMATCH", "Account \(account) keeps \(acct.currency); the grant is in \(currency).",
                            remediation: "Grant in \(acct.currency), or use another account.", field: "currency")
        }
        if try Bool.fetchOne(db, sql: "SELECT 1 FROM credit_grant WHERE id = ?", arguments: [id]) == true { return false }
        try db.execute(sql: "INSERT INTO credit_grant (id, account_id, category, amount_minor, currency, expires_at, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       arguments: [id, account, category.rawValue, amountMinor, currency, expiresAt, source, now])
        return try post(db, key: "grant:\(id)", kind: "grant", account: account, job: nil, memo: memo, currency: currency,
                        legs: [Leg(account: account, grant: id, amount: amountMinor), Leg(account: issued, grant: id, amount: -amountMinor)], at: now)
    }

    /// Moves what is left of expired grants out of the account, so entries
    /// keep telling the truth after the expiry date.
    static func sweepExpired(_ db: Database, account: String, now: Date) throws {
        let rows = try Row.fetchAll(db, sql: """
            SELECT g.id, g.currency, SUM(e.amount_minor) AS remaining FROM credit_grant g
            JOIN ledger_entry e ON e.grant_id = g.id AND e.account_id = g.account_id
            WHERE g.account_id = ? AND g.expires_at IS NOT NULL AND g.expires_at <= ?
            GROUP BY g.id HAVING remaining > 0
            """, arguments: [account, now])
        for row in rows {
            let grantID: String = row["id"], remaining: Int = row["remaining"]
            try post(db, key: "expire:\(grantID):\(Int64(now.timeIntervalSince1970 * 1000))", kind: "expire", account: account, job: nil,
                     memo: "grant \(grantID) expired with \(remaining) unused", currency: row["currency"],
                     legs: [Leg(account: account, grant: grantID, amount: -remaining), Leg(account: expired, grant: grantID, amount: remaining)], at: now)
        }
    }

    /// The order credits are drawn in: promotional before paid, soonest expiry first.
    static let grantOrder = "CASE g.category WHEN 'promotional' THEN 0 ELSE 1 END, g.expires_at IS NULL, g.expires_at, g.created_at, g.id"

    static func spendable(_ db: Database, account: String, now: Date) throws -> [(grant: String, remaining: Int)] {
        try Row.fetchAll(db, sql: """
            SELECT g.id, SUM(e.amount_minor) AS remaining FROM credit_grant g
            JOIN ledger_entry e ON e.grant_id = g.id AND e.account_id = g.account_id
            WHERE g.account_id = ? AND (g.expires_at IS NULL OR g.expires_at > ?)
            GROUP BY g.id HAVING remaining > 0 ORDER BY \(grantOrder)
            """, arguments: [account, now]).map { ($0["id"], $0["remaining"]) }
    }

    /// Holds `amount` for a job, drawing on grants in order; INSUFFICIENT_FUNDS
    /// when the account cannot cover it. Callers hold the write lock, so the
    /// check and the hold are one step for every concurrent job.
    static func reserve(_ db: Database, account: String, job: String, amount: Int, currency: String, now: Date) throws {
        guard amount > 0 else { return }
        try sweepExpired(db, account: account, now: now)
        let grants = try spendable(db, account: account, now: now)
        let available = grants.reduce(0) { $0 + $1.remaining }
        guard available >= amount else {
            throw YardError("INSUFFICIENT_FUNDS",
                            "Account \(account) has \(MinorUnits.text(available, currency)) available; this job needs \(MinorUnits.text(amount, currency)) reserved.",
                            remediation: "Add credits (`yard credits grant --account \(account) --amount …`, or a Stripe top-up), or lower the job's size.",
                            field: "account")
        }
        var left = amount
        var legs: [Leg] = []
        for (grant, remaining) in grants where left > 0 {
            let take = min(left, remaining)
            legs.append(Leg(account: account, grant: grant, amount: -take))
            legs.append(Leg(account: reserved(account), grant: grant, amount: take))
            left -= take
        }
        try post(db, key: "reserve:\(job)", kind: "reserve", account: account, job: job,
                 memo: "reserved \(MinorUnits.text(amount, currency)) for \(job)", currency: currency, legs: legs, at: now)
    }

    /// Settles a job's hold: `charge` goes to revenue, the rest back to the
    /// grants it came from. False when the job was settled before.
    @discardableResult
    static func settle(_ db: Database, account: String, job: String, charge: Int, currency: String, memo: String, now: Date) throws -> Bool {
        let pieces = try Row.fetchAll(db, sql: """
            SELECT e.grant_id AS grant, SUM(e.amount_minor) AS held FROM ledger_entry e JOIN credit_grant g ON g.id = e.grant_id
            WHERE e.account_id = ? AND e.job_id = ? GROUP BY e.grant_id HAVING held > 0 ORDER BY \(grantOrder)
            """, arguments: [reserved(account), job]).map { (grant: $0["grant"] as String, held: $0["held"] as Int) }
        var toCharge = charge
        var legs: [Leg] = []
        for piece in pieces {
            let take = min(toCharge, piece.held)
            toCharge -= take
            legs.append(Leg(account: reserved(account), grant: piece.grant, amount: -piece.held))
            legs.append(Leg(account: revenue, grant: piece.grant, amount: take))
            legs.append(Leg(account: account, grant: piece.grant, amount: piece.held - take))
        }
        return try post(db, key: "settle:\(job)", kind: charge == 0 ? "refund" : "settle", account: account, job: job, memo: memo,
                        currency: currency, legs: legs, at: now)
    }

    static func balance(_ db: Database, account id: String, now: Date) throws -> AccountBalance? {
        guard let acct = try account(db, id) else { return nil }
        let grants = try Row.fetchAll(db, sql: """
            SELECT g.*, COALESCE((SELECT SUM(e.amount_minor) FROM ledger_entry e WHERE e.grant_id = g.id AND e.account_id = g.account_id), 0) AS remaining
            FROM credit_grant g WHERE g.account_id = ? ORDER BY \(grantOrder)
            """, arguments: [id]).map { row -> GrantBalance in
                let expiresAt: Date? = row["expires_at"]
                return GrantBalance(id: row["id"], category: GrantCategory(rawValue: row["category"]) ?? .paid, amountMinor: row["amount_minor"],
                                    remainingMinor: row["remaining"], currency: row["currency"], expiresAt: expiresAt, source: row["source"],
                                    expired: expiresAt.map { $0 <= now } ?? false)
            }
        let held = try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(amount_minor), 0) FROM ledger_entry WHERE account_id = ?", arguments: [reserved(id)]) ?? 0
        let ungranted = try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(amount_minor), 0) FROM ledger_entry WHERE account_id = ? AND grant_id IS NULL", arguments: [id]) ?? 0
        let available = grants.filter { !$0.expired }.reduce(ungranted) { $0 + $1.remainingMinor }
        return AccountBalance(accountID: id, currency: acct.currency, availableMinor: available, heldMinor: held,
                              stripeCustomerID: acct.stripeCustomerID, grants: grants)
    }

    static func history(_ db: Database, account: String, limit: Int) throws -> [LedgerPosting] {
        try Row.fetchAll(db, sql: """
            SELECT t.id, t.kind, t.job_id, t.memo, t.at, COALESCE(SUM(e.amount_minor), 0) AS amount, COALESCE(MAX(e.currency), a.currency) AS currency
            FROM ledger_txn t JOIN ledger_account a ON a.id = t.account_id
            LEFT JOIN ledger_entry e ON e.txn_id = t.id AND e.account_id = t.account_id
            WHERE t.account_id = ? GROUP BY t.id ORDER BY t.id DESC LIMIT ?
            """, arguments: [account, limit]).map {
                LedgerPosting(id: $0["id"], kind: $0["kind"], jobID: $0["job_id"], memo: $0["memo"], at: $0["at"], amountMinor: $0["amount"], currency: $0["currency"])
            }
    }

    /// Everything that must hold for the book to be right; empty when it is.
    static func audit(_ db: Database) throws -> [String] {
        var problems: [String] = []
        for row in try Row.fetchAll(db, sql: """
            SELECT txn_id, currency, COALESCE(grant_id, '') AS grant, SUM(amount_minor) AS total FROM ledger_entry
            GROUP BY txn_id, currency, grant HAVING total != 0
            """) {
            problems.append("transaction \(row["txn_id"] as Int64) does not balance for grant \(row["grant"] as String): \(row["total"] as Int)")
        }
        for row in try Row.fetchAll(db, sql: """
            SELECT account_id, grant_id, SUM(amount_minor) AS total FROM ledger_entry
            WHERE account_id NOT LIKE '@%' GROUP BY account_id, grant_id HAVING total < 0
            """) {
            problems.append("account \(row["account_id"] as String) is negative on grant \(row["grant_id"] as String? ?? "-"): \(row["total"] as Int)")
        }
        for row in try Row.fetchAll(db, sql: """
            SELECT j.job_id, COALESCE(SUM(e.amount_minor), 0) AS held FROM ledger_job j
            LEFT JOIN ledger_entry e ON e.job_id = j.job_id AND e.account_id = 'reserved:' || j.account_id
            WHERE j.state NOT IN ('held', 'parked') GROUP BY j.job_id HAVING held != 0
            """) {
            problems.append("job \(row["job_id"] as String) is settled but still holds \(row["held"] as Int)")
        }
        for row in try Row.fetchAll(db, sql: """
            SELECT g.id, g.amount_minor, COALESCE(SUM(e.amount_minor), 0) AS issued FROM credit_grant g
            LEFT JOIN ledger_entry e ON e.grant_id = g.id AND e.account_id = '@issued' GROUP BY g.id HAVING -issued != g.amount_minor
            """) {
            problems.append("grant \(row["id"] as String) of \(row["amount_minor"] as Int) was issued as \(-(row["issued"] as Int))")
        }
        return problems
    }
}

/// Integer minor units as text, e.g. "USD 12.05".
public enum MinorUnits {
    public static func text(_ minor: Int, _ currency: String) -> String {
        let sign = minor < 0 ? "-" : ""
        let value = abs(minor)
        return "\(currency) \(sign)\(value / 100).\(String(format: "%02d", value % 100))"
    }

    /// Parses "12.05" (or "12") into minor units of a two-decimal currency.
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let decimal = Decimal(string: trimmed, locale: Locale(identifier: "en_US_POSIX")), decimal >= 0 else { return nil }
        var scaled = decimal * 100, rounded = Decimal()
        NSDecimalRound(&rounded, &scaled, 0, .plain)
        guard rounded == scaled else { return nil }
        return NSDecimalNumber(decimal: rounded).intValue
    }
}
