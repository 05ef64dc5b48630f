import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// Usage billing: the outbox and the stripe-billing plugin against the
/// Stripe stand-in over real HTTP on loopback, and the webhook intake.
final class BillingTests: TemporaryDirectoryTestCase {
    var stripe: StripeStandIn!

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        stripe = try await started(StripeStandIn())
    }

    /// `deliverAfterCommit` false: the test drives delivery itself, so no background run races it.
    func meteredEngine(deliverAfterCommit: Bool = false) throws -> (JobEngine, JobLedger, BillingOutbox) {
        let plugins = try pricedEcho(in: dir, amountMinor: 125)
        try copyPlugin("stripe-billing", to: plugins)
        let (engine, ledger) = try makeLedgerEngine(home: dir.appendingPathComponent("home"), plugins: plugins,
                                                    billing: platformBilling(meter: true), secrets: ["STRIPE_API_KEY": stripe.apiKey])
        try ledger.linkCustomer(account: "acme", customerID: "cus_ACME")
        try ledger.grant(account: "acme", amountMinor: 1_000)
        let config: [String: JSONValue] = ["base_url": .string(stripe.baseURL)]
        let outbox = deliverAfterCommit ? try XCTUnwrap(engine.billingOutbox(config: config))
            : BillingOutbox(pool: ledger.store.pool, sender: PluginMeterSender(engine: engine, pluginID: "stripe-billing", config: config))
        outbox.baseBackoffMs = 5
        return (engine, ledger, outbox)
    }

    func execute(_ engine: JobEngine, _ sql: String) throws {
        try XCTUnwrap(engine.store as? SQLiteJobStore).pool.write { db in try db.execute(sql: sql) }
    }

    /// One request to the stand-in, off the cooperative threads.
    func post(_ path: String, form: String, key: String?, apiKey: String? = nil) async throws -> HostHTTPResponse {
        var headers = ["authorization": "Bearer \(apiKey ?? stripe.apiKey)", "content-type": "application/x-www-form-urlencoded"]
        headers["idempotency-key"] = key
        let request = HostHTTPRequest(method: "POST", url: stripe.baseURL + path, headers: headers, body: Data(form.utf8))
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try BlockingHTTPTransport(defaultTimeoutMs: 3_000).perform(request) }) }
        }
    }

    func errorOf(_ response: HostHTTPResponse) -> [String: Any] {
        ((try? JSONSerialization.jsonObject(with: response.body)) as? [String: Any])?["error"] as? [String: Any] ?? [:]
    }

    // MARK: meter events

    func testUsageIsDeliveredOnceThroughRateLimitsServerErrorsAndALostAnswer() async throws {
        let (engine, ledger, outbox) = try meteredEngine()
        stripe.configure { $0.rateLimitNext = 1; $0.serverErrorNext = 1; $0.loseAnswerNext = 1 }
        let job = try await engine.drive(try await engine.start(echoSpec()).id)
        XCTAssertEqual(job.phase, .succeeded)
        let report = await outbox.kick().value
        XCTAssertEqual(report.delivered, 1, "\((try? outbox.events()) ?? [])")
        let identifier = "\(job.id)-1"
        XCTAssertEqual(stripe.recordedCount(identifier: identifier), 1, "recorded exactly once")
        let event = try XCTUnwrap(stripe.recordedEvents.first)
        XCTAssertEqual(event.customer, "cus_ACME")
        XCTAssertEqual(event.value, 125)
        XCTAssertEqual(event.eventName, "switchyard_usage_minor")
        let sent = stripe.meterEventRequestsSeen
        XCTAssertEqual(sent.count, 4, "429, 500, lost answer, then the duplicate answer")
        XCTAssertEqual(Set(sent.compactMap { $0.headers["idempotency-key"] }), ["sy-meter-\(identifier)"], "one Idempotency-Key across retries")
        XCTAssertEqual(Set(sent.map { $0.body }).count, 1, "every retry sends the same form body")
        XCTAssertTrue(String(decoding: sent[0].body, as: UTF8.self).contains("payload%5Bstripe_customer_id%5D=cus_ACME"))
        XCTAssertEqual(try outbox.events(state: "delivered").count, 1)
        XCTAssertLedgerBalances(ledger)
    }

    func testUsageIsSentAsSoonAsTheSettlementCommits() async throws {
        let (engine, _, outbox) = try meteredEngine(deliverAfterCommit: true)
        let job = try await engine.drive(try await engine.start(echoSpec()).id)
        for _ in 0..<200 where try outbox.events(state: "delivered").isEmpty { try await Task.sleep(nanoseconds: 20_000_000) }
        XCTAssertEqual(try outbox.events(state: "delivered").map(\.jobID), [job.id], "delivered without anyone asking")
        XCTAssertEqual(stripe.recordedCount(identifier: "\(job.id)-1"), 1)
    }

    func testADuplicateIdentifierCountsAsDelivered() async throws {
        let (engine, _, outbox) = try meteredEngine()
        let job = try await engine.drive(try await engine.start(echoSpec()).id)
        _ = await outbox.kick().value
        // The same event again under another Idempotency-Key: Stripe answers "already exists".
        try execute(engine, "UPDATE billing_outbox SET state = 'pending', idempotency_key = 'another-key'")
        let report = await outbox.deliverPending()
        XCTAssertEqual(report.delivered, 1)
        let last = try XCTUnwrap(stripe.meterEventRequestsSeen.last)
        XCTAssertEqual(last.headers["idempotency-key"], "another-key")
        XCTAssertEqual(stripe.recordedCount(identifier: "\(job.id)-1"), 1)
    }

    func testStripeShouldRetryFalseLeavesTheEventPendingWithoutHammering() async throws {
        let (engine, _, outbox) = try meteredEngine()
        outbox.maxAttemptsPerRun = 3
        stripe.configure { $0.noRetryNext = 1 }
        _ = try await engine.drive(try await engine.start(echoSpec()).id)
        let first = await outbox.kick().value
        XCTAssertEqual(first.failed, 1, "Stripe said not to retry: refused, not retried in a loop")
        XCTAssertEqual(stripe.meterEventRequests, 1)
        let second = await outbox.deliverPending(includeFailed: true)
        XCTAssertEqual(second.delivered, 1, "an operator's retry delivers it")
        XCTAssertEqual(stripe.recordedEvents.count, 1)
    }

    func testNoCustomerOrBringYourOwnKeyWritesNoUsageEvent() async throws {
        var billing = platformBilling(meter: true)
        billing.engines["echo"] = BillingConfig.Engine(mode: .byok)
        let (engine, _) = try makeLedgerEngine(home: dir.appendingPathComponent("home"), plugins: try pricedEcho(in: dir, amountMinor: 125), billing: billing)
        _ = try await engine.drive(try await engine.start(echoSpec()).id)
        XCTAssertEqual(try engine.billingOutbox()?.events().count, 0)
    }

    /// The whole conformance kit against the built-in stand-in, as a plugin author runs it with no account.
    func testTheAdapterPassesTheConformanceKitAgainstItsStandIn() throws {
        try assertConformantAgainstItsStandIn("stripe-billing", home: dir.appendingPathComponent("h"))
    }

    // MARK: the stand-in's contract

    func testTheStandInEnforcesIdempotencyKeysAndRequiredFields() async throws {
        let form = "event_name=e&identifier=id1&payload%5Bstripe_customer_id%5D=cus_1&payload%5Bvalue%5D=3"
        let first = try await post("/v1/billing/meter_events", form: form, key: "k1")
        XCTAssertEqual(first.status, 200)
        let replay = try await post("/v1/billing/meter_events", form: form, key: "k1")
        XCTAssertEqual(replay.status, 200)
        XCTAssertEqual(replay.headers["idempotent-replayed"], "true")
        let conflict = try await post("/v1/billing/meter_events", form: form.replacingOccurrences(of: "=3", with: "=4"), key: "k1")
        XCTAssertEqual(conflict.status, 400)
        XCTAssertEqual(errorOf(conflict)["type"] as? String, "idempotency_error")
        let duplicate = try await post("/v1/billing/meter_events", form: form, key: "k2")
        XCTAssertEqual(duplicate.status, 400)
        XCTAssertEqual(duplicate.headers["stripe-should-retry"], "false")
        XCTAssertEqual(errorOf(duplicate)["param"] as? String, "identifier")
        let missing = try await post("/v1/billing/meter_events", form: "event_name=e&identifier=id2&payload%5Bvalue%5D=3", key: "k3")
        XCTAssertEqual(errorOf(missing)["param"] as? String, "payload[stripe_customer_id]")
        let noKey = try await post("/v1/billing/meter_events", form: "event_name=e&identifier=id3&payload%5Bstripe_customer_id%5D=c&payload%5Bvalue%5D=1", key: nil)
        XCTAssertEqual(noKey.status, 400)
        let old = try await post("/v1/billing/meter_events", form: form.replacingOccurrences(of: "id1", with: "id4") + "&timestamp=\(Int(Date().timeIntervalSince1970) - 40 * 86_400)", key: "k4")
        XCTAssertEqual(errorOf(old)["param"] as? String, "timestamp")
        let unauthorized = try await post("/v1/billing/meter_events", form: form, key: "k5", apiKey: "sk_test_wrong")
        XCTAssertEqual(unauthorized.status, 401)
        XCTAssertEqual(stripe.recordedEvents.count, 1)
    }

    // MARK: webhooks

    let secret = "whsec_standin_0123456789"

    func grantEvent(customer: String = "cus_ACME", value: Int = 2_500) async throws -> [String: Any] {
        let created = try await post("/v1/billing/credit_grants", form: "customer=\(customer)&amount%5Btype%5D=monetary&amount%5Bmonetary%5D%5Bvalue%5D=\(value)&amount%5Bmonetary%5D%5Bcurrency%5D=usd&category=paid&applicability_config%5Bscope%5D%5Bprice_type%5D=metered", key: UUID().uuidString)
        XCTAssertEqual(created.status, 200, String(decoding: created.body, as: UTF8.self))
        return try XCTUnwrap(stripe.events.last)
    }

    func webhookLedger() throws -> JobLedger {
        let store = try SQLiteJobStore(path: dir.appendingPathComponent("home/yard.sqlite"))
        let ledger = JobLedger(store: store, prices: PriceBook(directories: []))
        try ledger.linkCustomer(account: "acme", customerID: "cus_ACME")
        return ledger
    }

    func testASignedTopUpIsCreditedOnceAndItsReplayRefused() async throws {
        let ledger = try webhookLedger()
        let event = try await grantEvent()
        let now = Int64(Date().timeIntervalSince1970)
        let delivery = StripeStandIn.signedDelivery(event: event, secrets: [secret], at: now)
        let outcome = try ledger.receiveStripeWebhook(payload: delivery.payload, signatureHeader: delivery.header, secret: secret)
        XCTAssertEqual(outcome.result, "credited")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 2_500)
        XCTAssertRefusal("WEBHOOK_REPLAYED") {
            _ = try ledger.receiveStripeWebhook(payload: delivery.payload, signatureHeader: delivery.header, secret: secret)
        }
        let resigned = StripeStandIn.signedDelivery(event: event, secrets: [secret], at: now + 5)
        XCTAssertRefusal("WEBHOOK_REPLAYED") {
            _ = try ledger.receiveStripeWebhook(payload: resigned.payload, signatureHeader: resigned.header, secret: secret)
        }
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 2_500, "credited once")
        XCTAssertLedgerBalances(ledger)
    }

    func testBadSignaturesAreRefusedBeforeAnythingIsCredited() async throws {
        let ledger = try webhookLedger()
        let event = try await grantEvent()
        let now = Int64(Date().timeIntervalSince1970)
        let wrongSecret = StripeStandIn.signedDelivery(event: event, secrets: ["whsec_other"], at: now)
        XCTAssertRefusal("WEBHOOK_SIGNATURE_INVALID") { _ = try ledger.receiveStripeWebhook(payload: wrongSecret.payload, signatureHeader: wrongSecret.header, secret: secret) }
        let good = StripeStandIn.signedDelivery(event: event, secrets: [secret], at: now)
        var tampered = good.payload
        tampered.replaceSubrange(tampered.range(of: Data("2500".utf8))!, with: Data("9999".utf8))
        XCTAssertRefusal("WEBHOOK_SIGNATURE_INVALID") { _ = try ledger.receiveStripeWebhook(payload: tampered, signatureHeader: good.header, secret: secret) }
        XCTAssertRefusal("WEBHOOK_SIGNATURE_INVALID") { _ = try ledger.receiveStripeWebhook(payload: good.payload, signatureHeader: "v1=abc", secret: secret) }
        let stale = StripeStandIn.signedDelivery(event: event, secrets: [secret], at: now - 301)
        XCTAssertRefusal("WEBHOOK_REPLAYED") { _ = try ledger.receiveStripeWebhook(payload: stale.payload, signatureHeader: stale.header, secret: secret) }
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 0)
        // During a secret rotation Stripe signs with both; one matching v1 is enough.
        let rotated = StripeStandIn.signedDelivery(event: event, secrets: ["whsec_old", secret], at: now - 299)
        XCTAssertEqual(try ledger.receiveStripeWebhook(payload: rotated.payload, signatureHeader: rotated.header, secret: secret).result, "credited")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 2_500)
    }

    func deliver(_ event: [String: Any], to ledger: JobLedger) throws -> TopUpWebhookOutcome {
        let delivery = StripeStandIn.signedDelivery(event: event, secrets: [secret], at: Int64(Date().timeIntervalSince1970))
        return try ledger.receiveStripeWebhook(payload: delivery.payload, signatureHeader: delivery.header, secret: secret)
    }

    /// A Checkout Session for a top-up, created on the stand-in as a shop would create it.
    func checkout(cents: Int, customer: String? = "cus_ACME", clientReference: String? = nil, mode: String = "payment") async throws -> String {
        var form = "mode=\(mode)&success_url=https%3A%2F%2Fshop.example%2Fok&line_items%5B0%5D%5Bquantity%5D=1"
            + "&line_items%5B0%5D%5Bprice_data%5D%5Bcurrency%5D=usd&line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=\(cents)"
        if let customer { form += "&customer=\(customer)" }
        if let clientReference { form += "&client_reference_id=\(clientReference)" }
        let created = try await post("/v1/checkout/sessions", form: form, key: "cs-\(UUID().uuidString)")
        XCTAssertEqual(created.status, 200, String(decoding: created.body, as: UTF8.self))
        return try XCTUnwrap((try JSONSerialization.jsonObject(with: created.body) as? [String: Any])?["id"] as? String)
    }

    func event(_ type: String) throws -> [String: Any] {
        try XCTUnwrap(stripe.sentEvents.last { $0["type"] as? String == type }, "the stand-in sent \(type)")
    }

    func testAPaidCheckoutIsCreditedOnceWhicheverEventsNameIt() async throws {
        let ledger = try webhookLedger()
        let session = try await checkout(cents: 2_000)
        stripe.payCheckout(session)
        let completed = try deliver(try event("checkout.session.completed"), to: ledger)
        XCTAssertEqual(completed.result, "credited")
        XCTAssertEqual(completed.amountMinor, 2_000)
        XCTAssertEqual(completed.grantID, "stripe_\(session)")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 2_000)
        // Another event id naming the same session (Stripe sends a new event, not a replay): already credited, and said so.
        var again = try event("checkout.session.completed")
        again["id"] = "evt_other_\(UUID().uuidString.prefix(6))"
        let repeated = try deliver(again, to: ledger)
        XCTAssertEqual(repeated.result, "already_credited", "not reported as credited")
        XCTAssertEqual(repeated.amountMinor, 0)
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 2_000)
        XCTAssertLedgerBalances(ledger)
    }

    func testADelayedCheckoutPaymentIsCreditedWhenItSucceedsAndNotWhenItFails() async throws {
        let ledger = try webhookLedger()
        let paid = try await checkout(cents: 1_200)
        stripe.payCheckout(paid, delayed: true)
        XCTAssertEqual(try deliver(try event("checkout.session.completed"), to: ledger).result, "awaiting_payment", "payment_status unpaid: nothing credited yet")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 0)
        stripe.settleDelayedPayment(paid, succeeded: true)
        let succeeded = try deliver(try event("checkout.session.async_payment_succeeded"), to: ledger)
        XCTAssertEqual(succeeded.result, "credited")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 1_200)
        let bounced = try await checkout(cents: 900)
        stripe.payCheckout(bounced, delayed: true)
        _ = try deliver(try event("checkout.session.completed"), to: ledger)
        stripe.settleDelayedPayment(bounced, succeeded: false)
        XCTAssertEqual(try deliver(try event("checkout.session.async_payment_failed"), to: ledger).result, "payment_failed")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 1_200)
        XCTAssertLedgerBalances(ledger)
    }

    func testACheckoutNamingTheAccountByClientReferenceIsCreditedToIt() async throws {
        let ledger = try webhookLedger()
        try ledger.grant(account: "newco", amountMinor: 1, id: "seed")
        let session = try await checkout(cents: 500, customer: nil, clientReference: "newco")
        stripe.payCheckout(session)
        let outcome = try deliver(try event("checkout.session.completed"), to: ledger)
        XCTAssertEqual(outcome.accountID, "newco")
        XCTAssertEqual(try ledger.balance(account: "newco").availableMinor, 501)
    }

    func testEventsThatMoveNoCreditsAreAcknowledgedAndIgnored() async throws {
        let ledger = try webhookLedger()
        // Not a Stripe event type at all (absent from the official SDK's list): never a top-up.
        let balanceTransaction: [String: Any] = ["id": "evt_bt", "type": "customer.balance_transaction.created",
                                                 "data": ["object": ["id": "cbtxn_1", "object": "customer_balance_transaction", "customer": "cus_ACME", "amount": -1_500, "currency": "usd"]]]
        XCTAssertEqual(try deliver(balanceTransaction, to: ledger).result, "ignored")
        let created = try await post("/v1/customers/cus_ACME/balance_transactions", form: "amount=-1500&currency=usd", key: "bt1")
        XCTAssertEqual(created.status, 200)
        XCTAssertFalse(stripe.sentEvents.contains { ($0["type"] as? String ?? "").contains("balance_transaction") }, "Stripe sends no such event")
        let other: [String: Any] = ["id": "evt_inv", "type": "invoice.paid", "data": ["object": ["id": "in_1", "customer": "cus_ACME", "amount_paid": 9_900]]]
        XCTAssertEqual(try deliver(other, to: ledger).result, "ignored")
        let subscription = try await checkout(cents: 700, mode: "subscription")
        stripe.payCheckout(subscription)
        XCTAssertEqual(try deliver(try event("checkout.session.completed"), to: ledger).result, "ignored", "a subscription Checkout is not a top-up")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 0)
        XCTAssertLedgerBalances(ledger)
    }

    func testACreditGrantForAnUnknownCustomerIsNotLost() async throws {
        let ledger = try webhookLedger()
        let stranger = try await grantEvent(customer: "cus_UNKNOWN")
        XCTAssertRefusal("ACCOUNT_NOT_FOUND") { _ = try deliver(stranger, to: ledger) }
        try ledger.linkCustomer(account: "newco", customerID: "cus_UNKNOWN")
        XCTAssertEqual(try deliver(stranger, to: ledger).accountID, "newco",
                       "a refused delivery is not recorded, so Stripe's retry is credited once the customer is linked")
        XCTAssertLedgerBalances(ledger)
    }

    func testTheTopUpTypesAreStripeEventTypes() throws {
        // From the official SDK's event list (stripe-node types/EventTypes.d.ts), copied to Tests/Fixtures/stripe.
        let listed = Set(try String(contentsOf: Build.repository.appendingPathComponent("Tests/Fixtures/stripe/event_types.txt"), encoding: .utf8)
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") })
        XCTAssertTrue(JobLedger.topUpEventTypes.isSubset(of: listed), "\(JobLedger.topUpEventTypes.subtracting(listed))")
        XCTAssertFalse(listed.contains("customer.balance_transaction.created"))
    }
}
