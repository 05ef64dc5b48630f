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
        stripe = StripeStandIn()
        try await stripe.start()
    }

    override func tearDown() async throws {
        await stripe?.stop()
        try await super.tearDown()
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

    func testTheStripeBillingPluginPassesTheConformanceKitAgainstTheStandIn() async throws {
        stripe.acceptAnyKey = true
        let configJSON = #"{"base_url":"\#(stripe.baseURL)"}"#
        let result = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { [dir] in
                continuation.resume(with: Result { try yard(["plugin", "test", "stripe-billing", "--json", "--isolation", "both", "--config", configJSON], home: dir!.appendingPathComponent("h")) })
            }
        }
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertGreaterThan(stripe.recordedEvents.count, 0, "the kit's submits reached the stand-in")
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

    func testACustomerBalanceCreditTopsUpAndUnknownCustomersAreNotLost() async throws {
        let ledger = try webhookLedger()
        let created = try await post("/v1/customers/cus_ACME/balance_transactions", form: "amount=-1500&currency=usd", key: "bt1")
        XCTAssertEqual(created.status, 200)
        let event = try XCTUnwrap(stripe.events.last)
        let delivery = StripeStandIn.signedDelivery(event: event, secrets: [secret], at: Int64(Date().timeIntervalSince1970))
        XCTAssertEqual(try ledger.receiveStripeWebhook(payload: delivery.payload, signatureHeader: delivery.header, secret: secret).amountMinor, 1_500)
        let stranger = try await grantEvent(customer: "cus_UNKNOWN")
        let unknown = StripeStandIn.signedDelivery(event: stranger, secrets: [secret], at: Int64(Date().timeIntervalSince1970))
        XCTAssertRefusal("ACCOUNT_NOT_FOUND") { _ = try ledger.receiveStripeWebhook(payload: unknown.payload, signatureHeader: unknown.header, secret: secret) }
        try ledger.linkCustomer(account: "newco", customerID: "cus_UNKNOWN")
        XCTAssertEqual(try ledger.receiveStripeWebhook(payload: unknown.payload, signatureHeader: unknown.header, secret: secret).accountID, "newco",
                       "a refused delivery is not recorded, so Stripe's retry is credited once the customer is linked")
        XCTAssertLedgerBalances(ledger)
    }
}
