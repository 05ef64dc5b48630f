import GRDB

/// The credits ledger's tables, appended to the job store's migrations so a
/// reservation commits in the same SQLite transaction as the job row.
///
/// Double entry: every `ledger_txn` has `ledger_entry` rows that sum to zero
/// per currency. Customer balances are never stored; they are sums of
/// entries. Entries on a customer's account carry the credit grant they draw
/// on, so expiry and the paid/promotional split are sums too.
enum LedgerSchema {
    static func register(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("2026-11-22 ledger.accounts, grants, entries, budgets, outbox") { db in
            try db.create(table: "ledger_account") { t in
                t.primaryKey("id", .text)
                t.column("currency", .text).notNull()
                t.column("stripe_customer_id", .text).unique()
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "credit_grant") { t in
                t.primaryKey("id", .text)
                t.column("account_id", .text).notNull().indexed()
                t.column("category", .text).notNull()
                t.column("amount_minor", .integer).notNull()
                t.column("currency", .text).notNull()
                t.column("expires_at", .datetime)
                t.column("source", .text).notNull()
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "ledger_txn") { t in
                t.autoIncrementedPrimaryKey("id")
                // One posting per cause ("reserve:JOB", "settle:JOB", "grant:GRANT", …): a retried or replayed cause cannot post twice.
                t.column("key", .text).notNull().unique()
                t.column("kind", .text).notNull()
                t.column("account_id", .text).notNull().indexed()
                t.column("job_id", .text)
                t.column("memo", .text).notNull()
                t.column("at", .datetime).notNull()
            }
            try db.create(table: "ledger_entry") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("txn_id", .integer).notNull().indexed().references("ledger_txn")
                t.column("account_id", .text).notNull().indexed()
                t.column("grant_id", .text).indexed()
                t.column("job_id", .text).indexed()
                t.column("amount_minor", .integer).notNull()
                t.column("currency", .text).notNull()
            }
            try db.create(table: "ledger_job") { t in
                t.primaryKey("job_id", .text)
                t.column("account_id", .text).notNull().indexed()
                t.column("mode", .text).notNull()
                t.column("currency", .text).notNull()
                t.column("estimate_minor", .integer).notNull()
                t.column("reserved_minor", .integer).notNull()
                t.column("actual_minor", .integer)
                t.column("charged_minor", .integer)
                t.column("overage_minor", .integer)
                t.column("state", .text).notNull()
                t.column("provider_charged", .text)
                t.column("basis", .text).notNull()
                t.column("pricing_json", .text)
                t.column("created_at", .datetime).notNull()
                t.column("settled_at", .datetime)
            }
            try db.create(table: "ledger_budget") { t in
                t.primaryKey("id", .text)
                t.column("scope", .text).notNull()
                t.column("account_id", .text).indexed()
                t.column("label", .text)
                t.column("limit_minor", .integer).notNull()
                t.column("currency", .text).notNull()
                t.column("period", .text).notNull()
                t.column("thresholds_json", .text).notNull()
                t.column("hard_stop", .boolean).notNull()
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "ledger_budget_job") { t in
                t.column("budget_id", .text).notNull()
                t.column("job_id", .text).notNull().indexed()
                t.column("period_key", .text).notNull()
                t.primaryKey(["budget_id", "job_id"])
            }
            try db.create(table: "ledger_alert") { t in
                t.column("budget_id", .text).notNull()
                t.column("period_key", .text).notNull()
                t.column("threshold", .integer).notNull()
                t.column("job_id", .text)
                t.column("usage_minor", .integer).notNull()
                t.column("at", .datetime).notNull()
                t.primaryKey(["budget_id", "period_key", "threshold"])
            }
            try db.create(table: "billing_outbox") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("job_id", .text).notNull()
                t.column("identifier", .text).notNull().unique()
                t.column("idempotency_key", .text).notNull()
                t.column("event_name", .text).notNull()
                t.column("customer_id", .text).notNull()
                t.column("value", .integer).notNull()
                t.column("timestamp", .integer).notNull()
                t.column("state", .text).notNull().indexed()
                t.column("attempts", .integer).notNull()
                t.column("last_error", .text)
                t.column("next_attempt_at", .datetime)
                t.column("delivered_at", .datetime)
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "billing_webhook_event") { t in
                t.primaryKey("event_id", .text)
                t.column("type", .text).notNull()
                t.column("signed_at", .integer).notNull()
                t.column("received_at", .datetime).notNull()
                t.column("outcome", .text).notNull()
            }
        }
    }
}
