import AsyncHTTPClient
import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// Real `yard` processes, killed with SIGKILL at the worst moments of
/// settlement and usage delivery, then restarted: every usage event reaches
/// the Stripe stand-in exactly once and the ledger balances to the cent.
final class BillingCrashTests: TemporaryDirectoryTestCase {
    var stripe: StripeStandIn!
    var home: URL { dir.appendingPathComponent("home") }
    let webhookSecret = "whsec_cli_test_secret"

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        stripe = try await started(StripeStandIn())
        let config = home.appendingPathComponent("config"), pricing = home.appendingPathComponent("pricing")
        for folder in [config, pricing] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        try Data(#"{"default_mode":"platform","default_account":"acme","meter":{"plugin":"stripe-billing","event_name":"switchyard_usage_minor"}}"#.utf8)
            .write(to: config.appendingPathComponent("billing.json"))
        try Data(#"{"base_url":"\#(stripe.baseURL)"}"#.utf8).write(to: config.appendingPathComponent("stripe-billing.json"))
        try Data(#"{"engine":"echo","capabilities":{"debug.echo":{"unit":"request","amount_minor":100,"currency":"USD"}}}"#.utf8)
            .write(to: pricing.appendingPathComponent("echo.json"))
        XCTAssertEqual(try cli(["credits", "account", "acme", "--stripe-customer", "cus_ACME"]).status, 0)
        XCTAssertEqual(try cli(["credits", "grant", "--account", "acme", "--amount", "10.00"]).status, 0)
    }

    /// yard in a child process (the stand-in answers it from this process's event loops).
    func cli(_ arguments: [String], fault: String? = nil) throws -> ProcessResult {
        var env = ["STRIPE_API_KEY": stripe.apiKey, "STRIPE_WEBHOOK_SECRET": webhookSecret]
        env["YARD_FAULT"] = fault
        return try yard(arguments, home: home, extraEnvironment: env)
    }

    func runEcho(fault: String? = nil) throws -> ProcessResult {
        try cli(["run", "debug.echo", "--engine", "echo", "--input", "text=crash", "--input", "polls=1", "--json"], fault: fault)
    }

    func onlyJob() throws -> [String: Any] {
        let jobs = try XCTUnwrap(try cli(["jobs", "list", "--json"]).json as? [[String: Any]])
        XCTAssertEqual(jobs.count, 1)
        return try XCTUnwrap(jobs.first)
    }

    func balance() throws -> [String: Any] {
        try XCTUnwrap(try cli(["credits", "balance", "--account", "acme", "--json"]).json as? [String: Any])
    }

    func assertBalancesToTheCent() throws {
        let ledger = JobLedger(store: try SQLiteJobStore(path: home.appendingPathComponent("yard.sqlite")), prices: PriceBook(directories: []))
        XCTAssertLedgerBalances(ledger)
    }

    func testSIGKILLDuringSettlementLosesNothingAndDeliversOnce() async throws {
        let killed = try runEcho(fault: "settle-before-commit")
        XCTAssertNotEqual(killed.status, 0, "the fault point kills yard inside the settlement transaction")
        let job = try onlyJob()
        let id = try XCTUnwrap(job["id"] as? String)
        XCTAssertNotEqual(job["state"] as? String, "succeeded", "the terminal state rolled back with its settlement")
        XCTAssertEqual(try balance()["held_minor"] as? Int, 100, "the reservation survived the crash")
        XCTAssertEqual(stripe.meterEventRequests, 0)

        let resumed = try cli(["jobs", "resume", "--json"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try onlyJob()["state"] as? String, "succeeded")
        XCTAssertEqual(stripe.recordedCount(identifier: "\(id)-1"), 1)
        XCTAssertEqual(stripe.recordedEvents.count, 1)
        let after = try balance()
        XCTAssertEqual(after["available_minor"] as? Int, 900)
        XCTAssertEqual(after["held_minor"] as? Int, 0)
        let shown = try XCTUnwrap(try cli(["jobs", "show", id, "--json"]).json as? [String: Any])
        let cost = try XCTUnwrap(shown["cost"] as? [String: Any])
        XCTAssertEqual(cost["estimate_minor"] as? Int, 100)
        XCTAssertEqual(cost["actual_minor"] as? Int, 100)
        XCTAssertEqual(cost["state"] as? String, "settled")
        try assertBalancesToTheCent()
    }

    func testSIGKILLAfterSendingUsageRedeliversTheSameEventOnce() async throws {
        let killed = try runEcho(fault: "outbox-after-send")
        XCTAssertNotEqual(killed.status, 0)
        let id = try XCTUnwrap(try onlyJob()["id"] as? String)
        XCTAssertEqual(stripe.recordedCount(identifier: "\(id)-1"), 1, "Stripe recorded it before the crash")
        XCTAssertEqual(try balance()["available_minor"] as? Int, 900, "settled and committed before delivery")

        let delivered = try cli(["credits", "deliver", "--json"])
        XCTAssertEqual(delivered.status, 0, delivered.stderr)
        XCTAssertEqual((delivered.json as? [String: Any])?["delivered"] as? Int, 1)
        XCTAssertEqual(stripe.meterEventRequests, 2, "sent again after the restart")
        XCTAssertEqual(Set(stripe.meterEventRequestsSeen.compactMap { $0.headers["idempotency-key"] }).count, 1, "with the same Idempotency-Key")
        XCTAssertEqual(stripe.recordedCount(identifier: "\(id)-1"), 1, "and recorded once")
        let again = try cli(["credits", "deliver", "--json"])
        XCTAssertEqual((again.json as? [String: Any])?["delivered"] as? Int, 0, "a delivered row is never sent again")
        XCTAssertEqual(stripe.meterEventRequests, 2)
        try assertBalancesToTheCent()
    }

    func testParallelYardProcessesCannotOverspend() async throws {
        // 10.00 granted in setUp; each job costs 1.00, and 30 processes race for them.
        let home = home, key = stripe.apiKey
        let statuses = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let tally = StatusTally()
                DispatchQueue.concurrentPerform(iterations: 30) { i in
                    let result = try? yard(["run", "debug.echo", "--engine", "echo", "--input", "text=p\(i)", "--input", "polls=3", "--detach", "--json"],
                                           home: home, extraEnvironment: ["STRIPE_API_KEY": key])
                    tally.add(result?.status ?? -1)
                }
                continuation.resume(returning: tally.counts)
            }
        }
        XCTAssertEqual(statuses[0], 10, "exactly the affordable jobs were accepted: \(statuses)")
        XCTAssertEqual(statuses[1], 20)
        XCTAssertEqual(try balance()["available_minor"] as? Int, 0, "every credit is held or spent by the ten accepted jobs")
        // The background driver --detach started finishes them; wait for it, then resume what may be left.
        let paths = YardPaths(home: home)
        let deadline = Date().addingTimeInterval(60)
        while StoreDriver.isDriven(paths: paths) && Date() < deadline { try await Task.sleep(nanoseconds: 100_000_000) }
        XCTAssertEqual(try cli(["jobs", "resume"]).status, 0)
        let settled = try balance()
        XCTAssertEqual(settled["held_minor"] as? Int, 0)
        XCTAssertEqual(settled["available_minor"] as? Int, 0, "ten jobs at 1.00 each spent the 10.00, and nothing more")
        XCTAssertEqual(stripe.recordedEvents.count, 10, "one usage event per job")
        try assertBalancesToTheCent()
    }

    func testTheCLIShowsEstimatesHistoryAndBudgetsAndRefusesWithRemediation() async throws {
        let dry = try XCTUnwrap(try cli(["run", "debug.echo", "--engine", "echo", "--input", "text=x", "--dry-run", "--json"]).json as? [String: Any])
        XCTAssertEqual((dry["estimate"] as? [String: Any])?["amount_minor"] as? Int, 100)
        let budget = try cli(["credits", "budget", "--account", "acme", "--limit", "1.50", "--json"])
        XCTAssertEqual(((budget.json as? [[String: Any]])?.first)?["limit_minor"] as? Int, 150, budget.stderr)
        XCTAssertEqual(try runEcho().status, 0)
        let refused = try runEcho()
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stdout.contains("BUDGET_EXCEEDED"), refused.stdout + refused.stderr)
        let history = try XCTUnwrap(try cli(["credits", "history", "--account", "acme", "--json"]).json as? [[String: Any]])
        XCTAssertEqual(history.map { $0["kind"] as? String ?? "" }, ["settle", "reserve", "grant"])
        XCTAssertEqual(history.compactMap { $0["amount_minor"] as? Int }, [0, -100, 1_000])
        let budgets = try XCTUnwrap(try cli(["credits", "budget", "--json"]).json as? [[String: Any]])
        XCTAssertEqual(budgets.first?["alerts_fired"] as? [Int], [50])
        let bad = try cli(["credits", "grant", "--amount", "ten"])
        XCTAssertEqual(bad.status, 2, "a usage error")
        XCTAssertTrue(bad.stderr.contains("fix:"), bad.stderr)
    }

    func testYardServeCreditsAStripeTopUpOnceAndRefusesForgeries() async throws {
        let (serve, base) = try startYardServe(home: home, environment: ["STRIPE_API_KEY": stripe.apiKey, "STRIPE_WEBHOOK_SECRET": webhookSecret])
        defer { serve.terminate(); serve.waitUntilExit() }
        let event: [String: Any] = ["id": "evt_serve_1", "type": "billing.credit_grant.created", "data": ["object": [
            "id": "credgr_serve_1", "customer": "cus_ACME", "category": "paid", "amount": ["type": "monetary", "monetary": ["value": 700, "currency": "usd"]]]]]
        let delivery = StripeStandIn.signedDelivery(event: event, secrets: [webhookSecret], at: Int64(Date().timeIntervalSince1970))
        func post(_ header: String) async throws -> (Int, [String: Any]) {
            var request = HTTPClientRequest(url: "\(base)/webhooks/stripe")
            request.method = .POST
            request.headers.add(name: "Stripe-Signature", value: header)
            request.body = .bytes(Array(delivery.payload))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            return (Int(response.status.code), (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:])
        }
        let before = try XCTUnwrap(try cli(["credits", "balance", "--account", "acme", "--json"]).json as? [String: Any])
        let (status, credited) = try await post(delivery.header)
        XCTAssertEqual(status, 200, "\(credited)")
        XCTAssertEqual(credited["result"] as? String, "credited")
        let (again, duplicate) = try await post(delivery.header)
        XCTAssertEqual(again, 200, "a redelivery is acknowledged so Stripe stops retrying")
        XCTAssertEqual(duplicate["outcome"] as? String, "duplicate")
        let (forged, _) = try await post("t=\(Int(Date().timeIntervalSince1970)),v1=00")
        XCTAssertEqual(forged, 401)
        let after = try XCTUnwrap(try cli(["credits", "balance", "--account", "acme", "--json"]).json as? [String: Any])
        XCTAssertEqual((after["available_minor"] as? Int ?? 0) - (before["available_minor"] as? Int ?? 0), 700, "credited exactly once: \(after)")
    }

    func testYardRunOfAPipelineFileDeliversItsUsageBeforeExiting() throws {
        let file = dir.appendingPathComponent("one-step.json")
        try Data(#"{"pipeline":1,"id":"one","steps":{"say":{"capability":"debug.echo","engines":["echo"],"inputs":{"text":"${inputs.t}"}}},"inputs":{"t":{"type":"string","required":true}}}"#.utf8).write(to: file)
        let result = try cli(["run", file.path, "--input", "t=hello", "--json"])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertEqual(stripe.recordedEvents.map(\.value), [100], "sent by `yard run FILE` itself, not left for the next command")
        try assertBalancesToTheCent()
    }

    func testYardServeDeliversUsageThatWasLeftPending() async throws {
        stripe.configure { $0.serverErrorNext = 3 }
        XCTAssertEqual(try runEcho().status, 0)
        XCTAssertEqual(stripe.recordedEvents.count, 0, "Stripe answered 500 three times: left pending")
        let (serve, _) = try startYardServe(home: home, environment: ["STRIPE_API_KEY": stripe.apiKey, "STRIPE_WEBHOOK_SECRET": webhookSecret])
        defer { serve.terminate(); serve.waitUntilExit() }
        let deadline = Date().addingTimeInterval(10)
        while stripe.recordedEvents.isEmpty && Date() < deadline { try await Task.sleep(nanoseconds: 50_000_000) }
        XCTAssertEqual(stripe.recordedEvents.map(\.value), [100], "yard serve drains the outbox")
        try assertBalancesToTheCent()
    }

    func testTheWebhookCommandCreditsASignedTopUpOnce() async throws {
        let event: [String: Any] = ["id": "evt_cli_1", "type": "billing.credit_grant.created", "data": ["object": [
            "id": "credgr_cli_1", "customer": "cus_ACME", "category": "paid", "amount": ["type": "monetary", "monetary": ["value": 500, "currency": "usd"]]]]]
        let delivery = StripeStandIn.signedDelivery(event: event, secrets: [webhookSecret], at: Int64(Date().timeIntervalSince1970))
        let file = dir.appendingPathComponent("event.json")
        try delivery.payload.write(to: file)
        let credited = try cli(["credits", "webhook", "--payload", file.path, "--signature", delivery.header, "--json"])
        XCTAssertEqual(credited.status, 0, credited.stderr)
        XCTAssertEqual((credited.json as? [String: Any])?["result"] as? String, "credited")
        let replay = try cli(["credits", "webhook", "--payload", file.path, "--signature", delivery.header])
        XCTAssertEqual(replay.status, 1)
        XCTAssertTrue(replay.stderr.contains("WEBHOOK_REPLAYED"), replay.stderr)
        let forged = try cli(["credits", "webhook", "--payload", file.path, "--signature", "t=\(Int(Date().timeIntervalSince1970)),v1=00"])
        XCTAssertTrue(forged.stderr.contains("WEBHOOK_SIGNATURE_INVALID"), forged.stderr)
        XCTAssertEqual(try balance()["available_minor"] as? Int, 1_500)
        try assertBalancesToTheCent()
    }
}

/// Exit statuses of processes run in parallel.
final class StatusTally: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int32: Int] = [:]
    func add(_ status: Int32) { lock.withLock { values[status, default: 0] += 1 } }
    var counts: [Int32: Int] { lock.withLock { values } }
}
