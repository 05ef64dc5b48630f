import ArgumentParser
import Foundation
import SwitchyardHost

/// `yard credits`: the credits ledger, budgets, usage delivery and top-ups.
struct CreditsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credits",
        abstract: "Credits, budgets and usage billing (platform-billed engines are charged here; bring-your-own-key engines only record usage).",
        subcommands: [Balance.self, Grant.self, History.self, Budget.self, Account.self, Deliver.self, Webhook.self])

    static func ledger(_ global: GlobalOptions) throws -> JobLedger {
        try JobLedger.standard(store: try SQLiteJobStore(path: global.paths.jobStoreFile), paths: global.paths)
    }

    static func amount(_ text: String, field: String) throws -> Int {
        guard let minor = MinorUnits.parse(text) else {
            throw YardError(.usage, "\(text) is not an amount.", remediation: "Write it in major units with at most two decimals, e.g. 12.50.", field: field)
        }
        return minor
    }

    struct Balance: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Available and reserved credits of an account, per grant.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Account (default: billing.json default_account, else \"default\").") var account: String?

        func run() throws {
            do {
                let ledger = try CreditsCommand.ledger(global)
                // The default account exists implicitly; a named one must have been created (by a grant or a Stripe link).
                if let account, account != ledger.config.defaultAccount {
                    let known = try ledger.accountIDs()
                    guard known.contains(account) else {
                        throw YardError("ACCOUNT_NOT_FOUND", "No account \(account)." + NameSuggestion.sentence(for: account, among: known),
                                        remediation: "Accounts are created by `yard credits grant --account \(account) --amount …` or `yard credits account \(account) --stripe-customer cus_…`.", field: "--account")
                    }
                }
                let balance = try ledger.balance(account: account)
                if global.json { printJSON(balance); return }
                print("account    \(balance.accountID)\(balance.stripeCustomerID.map { " (Stripe \($0))" } ?? "")")
                print("available  \(MinorUnits.text(balance.availableMinor, balance.currency))")
                print("reserved   \(MinorUnits.text(balance.heldMinor, balance.currency)) for running jobs")
                if !balance.grants.isEmpty {
                    let formatter = ISO8601DateFormatter()
                    print(table(["GRANT", "CATEGORY", "GRANTED", "LEFT", "EXPIRES", "SOURCE"], balance.grants.map {
                        [$0.id, $0.category.rawValue, MinorUnits.text($0.amountMinor, $0.currency), $0.expired ? "expired" : MinorUnits.text($0.remainingMinor, $0.currency),
                         $0.expiresAt.map(formatter.string(from:)) ?? "never", $0.source]
                    }))
                }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Grant: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Grant credits to an account (creates it if needed).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Account to credit.") var account: String?
        @Option(help: "Amount in major units, e.g. 25.00.") var amount: String
        @Option(help: "Currency (default: billing.json currency, else USD).") var currency: String?
        @Option(help: "paid or promotional (promotional credits are spent first).") var category = "paid"
        @Option(name: .customLong("expires-in-days"), help: "Days until the unused rest expires (default: never).") var expiresInDays: Int?
        @Option(help: "Grant id, to make a repeated grant a no-op (default: a new id).") var id: String?
        @Option(help: "Why, for the history.") var reason: String?

        func run() throws {
            do {
                guard let category = GrantCategory(rawValue: category) else {
                    throw YardError(.usage, "Unknown category \(category).", remediation: "Use paid or promotional.", field: "--category")
                }
                let ledger = try CreditsCommand.ledger(global)
                let account = account ?? ledger.config.defaultAccount
                let minor = try CreditsCommand.amount(amount, field: "--amount")
                let created = try ledger.grant(account: account, amountMinor: minor, currency: currency, category: category,
                                               expiresAt: expiresInDays.map { Date().addingTimeInterval(Double($0) * 86_400) }, id: id, memo: reason)
                let balance = try ledger.balance(account: account)
                if global.json { printJSON(["granted": created ? minor : 0, "available_minor": balance.availableMinor]); return }
                print(created ? "Granted \(MinorUnits.text(minor, balance.currency)) to \(account); available \(MinorUnits.text(balance.availableMinor, balance.currency))."
                              : "Grant \(id ?? "") was recorded before; nothing changed.")
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An account's postings, newest first: grants, reservations, settlements, refunds, expiries.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Account (default: the default account).") var account: String?
        @Option(help: "How many postings.") var limit = 50

        func run() throws {
            do {
                let postings = try CreditsCommand.ledger(global).history(account: account, limit: limit)
                if global.json { printJSON(postings); return }
                if postings.isEmpty { print("No postings yet."); return }
                let formatter = ISO8601DateFormatter()
                print(table(["AT", "KIND", "AMOUNT", "JOB", "MEMO"], postings.map {
                    [formatter.string(from: $0.at), $0.kind, MinorUnits.text($0.amountMinor, $0.currency), $0.jobID ?? "", $0.memo]
                }))
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Budget: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show budgets; with --limit, set an account's budget (alerts at the thresholds, hard stop at 100 %).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Account whose budget to show or set.") var account: String?
        @Option(help: "Set the limit, in major units, e.g. 100.00.") var limit: String?
        @Option(help: "month (resets each calendar month, UTC) or none.") var period = "month"
        @Option(help: "Alert thresholds in percent, comma-separated (default 50,80,95,100).") var thresholds: String?
        @Flag(name: .customLong("no-hard-stop"), help: "Only alert at 100 %; keep admitting jobs.") var noHardStop = false
        @Option(help: "Budget id (default: budget_ACCOUNT).") var id: String?

        func run() throws {
            do {
                let ledger = try CreditsCommand.ledger(global)
                if let limit {
                    let values = try thresholds.map { text in
                        try text.split(separator: ",").map { part -> Int in
                            guard let value = Int(part.trimmingCharacters(in: .whitespaces)), (1...100).contains(value) else {
                                throw YardError(.usage, "\(part) is not a percentage.", remediation: "Write e.g. 50,80,95,100.", field: "--thresholds")
                            }
                            return value
                        }
                    }
                    _ = try ledger.setAccountBudget(account: account ?? ledger.config.defaultAccount, limitMinor: try CreditsCommand.amount(limit, field: "--limit"),
                                                    period: period, thresholds: values, hardStop: !noHardStop, id: id)
                }
                let budgets = try id.map { [try ledger.budget($0)] } ?? ledger.budgets(account: account)
                if global.json { printJSON(budgets); return }
                if budgets.isEmpty { print("No budgets. Set one with `yard credits budget --account A --limit 100.00`."); return }
                print(table(["BUDGET", "SCOPE", "ACCOUNT", "PERIOD", "USED", "LIMIT", "%", "ALERTS", "STOP"], budgets.map {
                    [$0.id, $0.scope, $0.accountID ?? "", $0.periodKey, MinorUnits.text($0.usageMinor, $0.currency), MinorUnits.text($0.limitMinor, $0.currency),
                     String($0.percent), $0.alertsFired.map(String.init).joined(separator: ","), $0.exhausted ? "STOPPED" : ($0.hardStop ? "at 100 %" : "alert only")]
                }))
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Account: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an account or link it to its Stripe customer (top-ups and usage go to that customer).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Account id.") var id: String
        @Option(name: .customLong("stripe-customer"), help: "The Stripe customer id (cus_…).") var stripeCustomer: String
        @Option(help: "Currency of a new account (default: billing.json currency).") var currency: String?

        func run() throws {
            do {
                let ledger = try CreditsCommand.ledger(global)
                try ledger.linkCustomer(account: id, customerID: stripeCustomer, currency: currency)
                let balance = try ledger.balance(account: id)
                if global.json { printJSON(balance); return }
                print("\(id) is linked to Stripe customer \(stripeCustomer).")
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Deliver: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deliver pending usage events to the billing provider now (each exactly once, whatever happened before).")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customLong("include-failed"), help: "Also retry events the provider refused before.") var includeFailed = false

        func run() async throws {
            do {
                let engine = try JobEngine.standard(paths: global.paths, registry: global.registry)
                guard let report = await engine.deliverUsage(includeFailed: includeFailed) else {
                    throw YardError("BILLING_NOT_CONFIGURED", "No meter is configured, so there is nothing to deliver.",
                                    remediation: "Add \"meter\": {\"plugin\": \"stripe-billing\", \"event_name\": \"…\"} to \(BillingConfig.file(global.paths).path).")
                }
                if global.json { printJSON(report); return }
                print("delivered \(report.delivered), still pending \(report.pending), refused \(report.failed)")
                if report.pending + report.failed > 0 { throw ExitCode(1) }
            } catch let exit as ExitCode { throw exit } catch { throw fail(error, json: global.json) }
        }
    }

    struct Webhook: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take one Stripe webhook delivery: verify Stripe-Signature, refuse replays, credit top-ups.",
            discussion: "Credits what Stripe documents as a top-up — checkout.session.completed with payment_status paid, checkout.session.async_payment_succeeded, billing.credit_grant.created — to the account linked to the customer (or named by the Checkout's client_reference_id); other event types are acknowledged and ignored. The endpoint secret is the STRIPE_WEBHOOK_SECRET secret.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "File holding the raw request body, byte for byte.") var payload: String
        @Option(help: "The Stripe-Signature header value (t=…,v1=…).") var signature: String

        func run() throws {
            do {
                guard let body = FileManager.default.contents(atPath: payload) else {
                    throw YardError(.usage, "Cannot read \(payload).", remediation: "Check the path.", field: "--payload")
                }
                guard let secret = SecretVault(paths: global.paths).value(of: "STRIPE_WEBHOOK_SECRET") else {
                    throw YardError("AUTH_MISSING", "STRIPE_WEBHOOK_SECRET is not set.", remediation: "Run `yard secrets set STRIPE_WEBHOOK_SECRET` with the endpoint's whsec_… secret.")
                }
                let outcome = try CreditsCommand.ledger(global).receiveStripeWebhook(payload: body, signatureHeader: signature, secret: secret)
                if global.json { printJSON(outcome); return }
                if outcome.result == "credited", let account = outcome.accountID, let amount = outcome.amountMinor {
                    print("\(outcome.eventID): credited \(amount) minor units to \(account) (grant \(outcome.grantID ?? ""))")
                } else {
                    print("\(outcome.eventID): \(outcome.type) verified; it moves no credits")
                }
            } catch { throw fail(error, json: global.json) }
        }
    }
}

/// Estimated and actual cost of a job, for run summaries and `yard jobs show`.
func costLine(_ job: JobRecord, paths: YardPaths) -> String {
    guard let charge = try? JobLedger.standard(store: try SQLiteJobStore(path: paths.jobStoreFile), paths: paths).charge(jobID: job.id) else {
        return job.estimateMinor.map { MinorUnits.text($0, "USD") + " (estimate)" } ?? "unknown"
    }
    var line = "estimated \(MinorUnits.text(charge.estimateMinor, charge.currency))"
    if let actual = charge.actualMinor { line += ", actual \(MinorUnits.text(actual, charge.currency))" }
    if let charged = charge.chargedMinor { line += ", charged \(MinorUnits.text(charged, charge.currency))" }
    if charge.state == "parked" { line += ", \(MinorUnits.text(charge.reservedMinor, charge.currency)) held until resolved (`yard jobs resolve \(job.id)`)" }
    let free = charge.estimateMinor == 0 && (charge.actualMinor ?? 0) == 0 && (charge.chargedMinor ?? 0) == 0
    line += " [\(free ? "free" : charge.mode == .byok ? "your own key: not charged" : charge.state)]"
    return line
}
