import Crypto
import Foundation
import GRDB
import SwitchyardJSON

/// Verifies a `Stripe-Signature` header: `t=<unix>,v1=<hex>[,v1=<hex>…]`,
/// each v1 an HMAC-SHA256 with the endpoint secret of "<t>.<raw body>".
/// Several v1 values appear while a secret is rotated; one match suffices.
public enum StripeSignature {
    public static let toleranceSeconds: Int64 = 300

    public static func sign(payload: Data, secret: String, timestamp: Int64) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(timestamp).".utf8) + payload, using: SymmetricKey(data: Data(secret.utf8)))
        return Data(mac).map { String(format: "%02x", $0) }.joined()
    }

    /// The header's timestamp when a v1 signature matches and it is fresh; a refusal otherwise.
    public static func verify(payload: Data, header: String, secret: String, now: Int64, tolerance: Int64 = toleranceSeconds) throws -> Int64 {
        var timestamp: Int64?
        var signatures: [String] = []
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else { continue }
            if pair[0] == "t" { timestamp = Int64(pair[1]) }
            if pair[0] == "v1" { signatures.append(pair[1].lowercased()) }
        }
        guard let timestamp, !signatures.isEmpty else {
            throw YardError("WEBHOOK_SIGNATURE_INVALID", "The Stripe-Signature header has no t=… and v1=… members.",
                            remediation: "Pass the header exactly as Stripe sent it, e.g. t=1700000000,v1=5257a8….", field: "Stripe-Signature")
        }
        let expected = Array(sign(payload: payload, secret: secret, timestamp: timestamp).utf8)
        let matched = signatures.contains { candidate in
            let bytes = Array(candidate.utf8)
            guard bytes.count == expected.count else { return false }
            return zip(bytes, expected).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
        }
        guard matched else {
            throw YardError("WEBHOOK_SIGNATURE_INVALID", "No v1 signature matches the payload: it was altered, or signed with another secret.",
                            remediation: "Check STRIPE_WEBHOOK_SECRET (the endpoint's whsec_… secret) and pass the raw body unchanged.", field: "Stripe-Signature")
        }
        guard abs(now - timestamp) <= tolerance else {
            throw YardError("WEBHOOK_REPLAYED", "The signature is \(now - timestamp) s old; deliveries older than \(tolerance) s are refused as replays.",
                            remediation: "Check the host's clock; Stripe resends the event with a fresh signature.", field: "Stripe-Signature")
        }
        return timestamp
    }
}

/// What the intake did with one delivery.
public struct TopUpWebhookOutcome: Codable, Sendable, Hashable {
    public var eventID: String
    public var type: String
    /// credited; already_credited (another event named a top-up credited
    /// before); awaiting_payment (a Checkout completed with payment pending:
    /// credited on checkout.session.async_payment_succeeded); payment_failed;
    /// ignored (a type that moves no credits, acknowledged so Stripe stops sending it).
    public var result: String
    public var accountID: String?
    public var amountMinor: Int?
    public var grantID: String?
    /// What happened, in words.
    public var message: String?

    enum CodingKeys: String, CodingKey {
        case type, result, message
        case eventID = "event_id"
        case accountID = "account"
        case amountMinor = "amount_minor"
        case grantID = "grant_id"
    }
}

extension JobLedger {
    /// The event types that can move credits, as Stripe defines them (the
    /// official SDK's event list, stripe-node types/EventTypes.d.ts).
    public static let topUpEventTypes: Set<String> = [
        "checkout.session.completed", "checkout.session.async_payment_succeeded", "checkout.session.async_payment_failed",
        "billing.credit_grant.created",
    ]

    /// Stripe webhook intake for top-ups. Verifies the signature and its age
    /// before reading the body, refuses an event id seen before (a replay),
    /// and credits what Stripe documents as a payment or a grant:
    /// `checkout.session.completed` with `payment_status` "paid" (or its
    /// `checkout.session.async_payment_succeeded`, for delayed methods), and
    /// `billing.credit_grant.created`. Every other type is acknowledged and
    /// ignored. A top-up is credited once whichever events name it: the grant
    /// id is Stripe's object id. Recording the event and crediting it commit together.
    public func receiveStripeWebhook(payload: Data, signatureHeader: String, secret: String) throws -> TopUpWebhookOutcome {
        let nowSeconds = clock.nowUnixMs() / 1000
        let signedAt = try StripeSignature.verify(payload: payload, header: signatureHeader, secret: secret, now: nowSeconds)
        guard let event = (try? JSONValue(parsing: payload))?.objectValue, let eventID = event["id"]?.stringValue, let type = event["type"]?.stringValue,
              let object = event["data"]?["object"]?.objectValue else {
            throw YardError("WEBHOOK_INVALID", "The payload is not a Stripe event (id, type, data.object).", remediation: "Pass the raw request body.", field: "payload")
        }
        let decision = try Self.topUp(type: type, object: object)
        let at = now
        return try pool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM billing_webhook_event WHERE event_id = ?", arguments: [eventID]) == true {
                throw YardError("WEBHOOK_REPLAYED", "Event \(eventID) was received before; it is not credited twice.",
                                remediation: "Nothing to do: answer the sender 200 so it stops retrying.", field: "id")
            }
            var outcome: TopUpWebhookOutcome
            switch decision {
            case .credit(let credit):
                let account = try Self.account(db, for: credit)
                let grantID = "stripe_\(credit.sourceID)"
                let credited = try LedgerBook.grant(db, id: grantID, account: account, category: credit.category, amountMinor: credit.amountMinor, currency: credit.currency,
                                                    expiresAt: credit.expiresAt, source: "stripe \(eventID)", memo: "top-up from Stripe \(type) \(credit.sourceID)", now: at)
                outcome = credited
                    ? TopUpWebhookOutcome(eventID: eventID, type: type, result: "credited", accountID: account, amountMinor: credit.amountMinor, grantID: grantID,
                                          message: "credited \(MinorUnits.text(credit.amountMinor, credit.currency)) to \(account) from \(credit.sourceID)")
                    : TopUpWebhookOutcome(eventID: eventID, type: type, result: "already_credited", accountID: account, amountMinor: 0, grantID: grantID,
                                          message: "\(credit.sourceID) was credited before (grant \(grantID)); nothing added")
            case .noCredit(let result, let message):
                outcome = TopUpWebhookOutcome(eventID: eventID, type: type, result: result, message: message)
            }
            try db.execute(sql: "INSERT INTO billing_webhook_event (event_id, type, signed_at, received_at, outcome) VALUES (?, ?, ?, ?, ?)",
                           arguments: [eventID, type, signedAt, at, outcome.result])
            return outcome
        }
    }

    struct TopUp {
        var sourceID: String
        var customer: String?
        /// An account named by the Checkout itself (client_reference_id or metadata.switchyard_account).
        var namedAccount: String?
        var amountMinor: Int
        var currency: String
        var category: GrantCategory
        var expiresAt: Date?
    }

    /// Stripe amounts have at most 8 digits; anything past 10^12 minor units
    /// is not a real top-up (and -Int.min would trap).
    static let maxAmountMinor = 1_000_000_000_000

    enum TopUpDecision {
        case credit(TopUp)
        case noCredit(result: String, message: String)
    }

    /// The account a top-up goes to: the one linked to its Stripe customer,
    /// else an existing account the Checkout named.
    static func account(_ db: Database, for credit: TopUp) throws -> String {
        if let customer = credit.customer,
           let account = try String.fetchOne(db, sql: "SELECT id FROM ledger_account WHERE stripe_customer_id = ?", arguments: [customer]) {
            return account
        }
        if let named = credit.namedAccount, try Bool.fetchOne(db, sql: "SELECT 1 FROM ledger_account WHERE id = ?", arguments: [named]) == true {
            return named
        }
        let who = credit.customer ?? credit.namedAccount ?? "(no customer)"
        throw YardError("ACCOUNT_NOT_FOUND", "No account is linked to Stripe customer \(who).",
                        remediation: "Link it: `yard credits account ACCOUNT --stripe-customer \(credit.customer ?? "cus_…")`; Stripe retries the event.", field: "data.object.customer")
    }

    static func topUp(type: String, object: [String: JSONValue]) throws -> TopUpDecision {
        func invalid(_ field: String) -> YardError {
            YardError("WEBHOOK_INVALID", "\(type) lacks \(field).", remediation: "Pass the event as Stripe sent it.", field: "data.object.\(field)")
        }
        switch type {
        case "billing.credit_grant.created":
            guard let id = object["id"]?.stringValue else { throw invalid("id") }
            guard let customer = object["customer"]?.stringValue else { throw invalid("customer") }
            guard let monetary = object["amount"]?["monetary"], let value = monetary["value"]?.intValue, value > 0, value <= maxAmountMinor,
                  let currency = monetary["currency"]?.stringValue else { throw invalid("amount.monetary") }
            let expires = object["expires_at"]?.doubleValue.map { Date(timeIntervalSince1970: $0) }
            return .credit(TopUp(sourceID: id, customer: customer, namedAccount: nil, amountMinor: value, currency: currency.uppercased(),
                                 category: object["category"]?.stringValue == "promotional" ? .promotional : .paid, expiresAt: expires))
        case "checkout.session.completed", "checkout.session.async_payment_succeeded":
            guard let id = object["id"]?.stringValue else { throw invalid("id") }
            guard object["mode"]?.stringValue ?? "payment" == "payment" else {
                return .noCredit(result: "ignored", message: "Checkout \(id) is a \(object["mode"]?.stringValue ?? "?") session, not a one-off payment: no credits")
            }
            switch object["payment_status"]?.stringValue {
            case "paid": break
            case "unpaid":
                return .noCredit(result: "awaiting_payment", message: "Checkout \(id) completed with payment pending; credited when checkout.session.async_payment_succeeded arrives")
            case let other:
                return .noCredit(result: "ignored", message: "Checkout \(id) has payment_status \(other ?? "(none)"): nothing was paid")
            }
            let metadata = object["metadata"]?.objectValue ?? [:]
            let named = object["client_reference_id"]?.stringValue ?? metadata["switchyard_account"]?.stringValue
            let customer = object["customer"]?.stringValue
            guard customer != nil || named != nil else { throw invalid("customer (or client_reference_id naming an account)") }
            // Credits bought: the metadata's figure when the Checkout was made with one, else the
            // subtotal (before tax; a discount still buys the full amount).
            let amount = metadata["credits_minor"]?.stringValue.flatMap(Int.init) ?? object["amount_subtotal"]?.intValue ?? object["amount_total"]?.intValue
            guard let amount, amount > 0, amount <= maxAmountMinor else { throw invalid("amount_subtotal") }
            guard let currency = object["currency"]?.stringValue else { throw invalid("currency") }
            return .credit(TopUp(sourceID: id, customer: customer, namedAccount: named, amountMinor: amount, currency: currency.uppercased(), category: .paid, expiresAt: nil))
        case "checkout.session.async_payment_failed":
            return .noCredit(result: "payment_failed", message: "Checkout \(object["id"]?.stringValue ?? "?")'s delayed payment failed: nothing credited")
        default:
            return .noCredit(result: "ignored", message: "\(type) moves no credits: acknowledged and ignored")
        }
    }
}
