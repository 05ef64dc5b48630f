import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// The credits ledger through the real job engine: reservation with the job
/// row, settlement with its end, refunds, budgets, payment modes.
final class LedgerTests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }

    func testABurstOf200JobsRunsExactlyTheHundredTheBalanceCovers() async throws {
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: try pricedEcho(in: dir, amountMinor: 100), billing: platformBilling())
        try ledger.grant(account: "acme", amountMinor: 10_000)
        let outcomes = await withTaskGroup(of: Result<String, Error>.self) { group in
            for i in 0..<200 {
                group.addTask {
                    do { return .success(try await engine.start(echoSpec("job \(i)", polls: 1)).id) } catch { return .failure(error) }
                }
            }
            var all: [Result<String, Error>] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        let started = outcomes.compactMap { try? $0.get() }
        let refusals = outcomes.compactMap { result -> String? in if case .failure(let e) = result { return refusalCode(e) ?? "\(e)" }; return nil }
        XCTAssertEqual(started.count, 100, "exactly the affordable jobs start")
        XCTAssertEqual(Set(refusals), ["INSUFFICIENT_FUNDS"])
        XCTAssertEqual(refusals.count, 100)
        let reserved = try ledger.balance(account: "acme")
        XCTAssertEqual(reserved.availableMinor, 0)
        XCTAssertEqual(reserved.heldMinor, 10_000)
        XCTAssertLedgerBalances(ledger)
        let finished = try await engine.resumeAll()
        XCTAssertEqual(finished.filter { $0.phase == .succeeded }.count, 100)
        let after = try ledger.balance(account: "acme")
        XCTAssertEqual(after.availableMinor, 0)
        XCTAssertEqual(after.heldMinor, 0)
        for id in started { XCTAssertEqual(try ledger.charge(jobID: id)?.chargedMinor, 100) }
        XCTAssertEqual(try engine.store.jobs(limit: 500, phase: nil).count, 100, "refused jobs leave no row behind")
        XCTAssertLedgerBalances(ledger)
    }

    func testABurstCannotPassABudgetEvenInBringYourOwnKeyMode() async throws {
        var billing = platformBilling()
        billing.defaultMode = .byok
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: try pricedEcho(in: dir, amountMinor: 100), billing: billing)
        try ledger.setAccountBudget(account: "acme", limitMinor: 1_000)
        let started = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<40 { group.addTask { (try? await engine.start(echoSpec("b\(i)"))) != nil } }
            var count = 0
            for await ok in group where ok { count += 1 }
            return count
        }
        XCTAssertEqual(started, 10)
        _ = try await engine.resumeAll()
        let status = try ledger.budget("budget_acme")
        XCTAssertEqual(status.usageMinor, 1_000, "usage at the provider's price, never past the limit")
        XCTAssertEqual(status.alertsFired, [50, 80, 95, 100])
        XCTAssertLedgerBalances(ledger)
    }

    func testRefusalSaysHowToTopUp() async throws {
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: try pricedEcho(in: dir, amountMinor: 250), billing: platformBilling())
        try ledger.grant(account: "acme", amountMinor: 100)
        let verdict = await engine.preflight(echoSpec())
        XCTAssertEqual(verdict.firstError?.code, "INSUFFICIENT_FUNDS")
        XCTAssertTrue(verdict.firstError?.remediation.contains("yard credits grant") == true)
        XCTAssertEqual(verdict.estimate?.amountMinor, 250, "the dry run shows the estimate")
        XCTAssertRefusal("INSUFFICIENT_FUNDS") {
            _ = try ledger.insertReserving(JobRecordFixture.make(id: "job_direct"), scope: nil,
                                           quote: PriceQuote(amountMinor: 250, currency: "USD", basis: "test", rule: nil, marginPercent: 0))
        }
        XCTAssertNil(try engine.store.job(id: "job_direct"), "the job row rolls back with the refused reservation")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 100)
    }

    func testAJobPricedInAnotherCurrencyIsRefused() async throws {
        let plugins = try pricedEcho(in: dir, amountMinor: 100)
        try editManifest(plugins.appendingPathComponent("echo/plugin.json")) { manifest in
            var capabilities = manifest["capabilities"] as? [[String: Any]] ?? []
            capabilities[0]["pricing"] = ["unit": "request", "amount_minor": 100, "currency": "EUR"]
            manifest["capabilities"] = capabilities
        }
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: plugins, billing: platformBilling())
        try ledger.grant(account: "acme", amountMinor: 1_000)
        do {
            _ = try await engine.start(echoSpec())
            XCTFail("a EUR price cannot draw on USD credits")
        } catch { XCTAssertEqual(refusalCode(error), "CURRENCY_MISMATCH", "\(error)") }
        XCTAssertEqual(try engine.store.jobs(limit: 10, phase: nil).count, 0)
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 1_000)
    }

    func testAFailedJobIsRefunded() async throws {
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: try pricedEcho(in: dir, amountMinor: 300), billing: platformBilling())
        try ledger.grant(account: "acme", amountMinor: 1_000)
        let job = try await engine.drive(try await engine.start(echoSpec(polls: 1, extra: ["fail_with": "ENGINE_ERROR"])).id)
        XCTAssertEqual(job.phase, .failed)
        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.state, "refunded")
        XCTAssertEqual(charge.chargedMinor, 0)
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 1_000)
        XCTAssertEqual(try ledger.history(account: "acme").first?.kind, "refund")
        XCTAssertLedgerBalances(ledger)
    }

    func testACancelledInQueueJobIsRefunded() async throws {
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: try pricedEcho(in: dir, amountMinor: 300), billing: platformBilling())
        try ledger.grant(account: "acme", amountMinor: 1_000)
        let started = try await engine.start(echoSpec(polls: 5))
        XCTAssertEqual(try ledger.balance(account: "acme").heldMinor, 300)
        let job = try await engine.cancel(started.id)
        XCTAssertEqual(job.phase, .cancelled)
        XCTAssertTrue(job.cancelOutcomeJSON?.contains("cancelled_in_queue") == true, job.cancelOutcomeJSON ?? "")
        XCTAssertEqual(try ledger.charge(jobID: job.id)?.state, "refunded")
        let balance = try ledger.balance(account: "acme")
        XCTAssertEqual(balance.availableMinor, 1_000)
        XCTAssertEqual(balance.heldMinor, 0)
        XCTAssertLedgerBalances(ledger)
    }

    func testAJobStoppedAtItsDeadlineIsSettledByWhatTheCancelSaid() async throws {
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: try pricedEcho(in: dir, amountMinor: 300), billing: platformBilling())
        engine.policy.jobTimeoutSeconds = 0.05
        try ledger.grant(account: "acme", amountMinor: 1_000)
        let job = try await engine.drive(try await engine.start(echoSpec(polls: 50)).id)
        XCTAssertEqual(job.errorCode, "ENGINE_TIMEOUT")
        XCTAssertNotNil(job.cancelOutcomeJSON, "the host cancelled it at the provider and kept the answer")
        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.providerCharged, "no", "echo's cancel said it charged nothing")
        XCTAssertEqual(charge.state, "refunded", "not held at the reservation on a guess")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 1_000)
        XCTAssertLedgerBalances(ledger)
    }

    func testAJobThatMayStillBeChargedAndMeasuredNothingIsHeldProvisionallyForReview() async throws {
        let plugins = dir.appendingPathComponent("plugins-billed")
        _ = try fixturePlugin("billed_failure_echo", in: plugins) { manifest in
            manifest["id"] = "billed-echo"
            manifest["capabilities"] = [["id": "debug.echo", "pricing": ["unit": "gpu_second", "amount_minor": 1, "estimate_seconds": 300]]]
        }
        var billing = platformBilling()
        billing.engines["billed-echo"] = BillingConfig.Engine(mode: .platform)
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: plugins, billing: billing)
        try ledger.grant(account: "acme", amountMinor: 1_000)
        let job = try await engine.drive(try await engine.start(JobSpec(pluginID: "billed-echo", capability: "debug.echo", inputs: ["text": "hi"])).id)
        XCTAssertEqual(job.phase, .failed)
        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.providerCharged, "unknown")
        XCTAssertEqual(charge.state, "provisional", "it may have billed GPU time and reported none: kept, and flagged")
        XCTAssertEqual(charge.chargedMinor, 300)
        let event = try XCTUnwrap(try engine.store.events(jobID: job.id, afterID: 0).last { $0.kind == "ledger" })
        XCTAssertTrue(event.message.contains("measured nothing") && event.message.contains("for review"), event.message)
        XCTAssertLedgerBalances(ledger)
    }

    func testBringYourOwnKeyChargesNothingAndRecordsUsage() async throws {
        var billing = platformBilling()
        billing.engines["echo"] = BillingConfig.Engine(mode: .byok)
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: try pricedEcho(in: dir, amountMinor: 700), billing: billing)
        let job = try await engine.drive(try await engine.start(echoSpec()).id)
        XCTAssertEqual(job.phase, .succeeded, "no credits are needed with the user's own key")
        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.mode, .byok)
        XCTAssertEqual(charge.actualMinor, 700, "usage is recorded at the provider's price")
        XCTAssertEqual(charge.chargedMinor, 0)
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 0)
        XCTAssertEqual(try ledger.history(account: "acme").count, 0, "nothing is posted")
        XCTAssertLedgerBalances(ledger)
    }

    func testMarginIsAddedAndRoundedUpInPlatformMode() async throws {
        var billing = platformBilling()
        billing.marginPercent = 15
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: try pricedEcho(in: dir, amountMinor: 101), billing: billing)
        try ledger.grant(account: "acme", amountMinor: 1_000)
        let job = try await engine.drive(try await engine.start(echoSpec()).id)
        // 101 × 1.15 = 116.15 → 117 minor units.
        XCTAssertEqual(try ledger.charge(jobID: job.id)?.chargedMinor, 117)
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 883)
        XCTAssertLedgerBalances(ledger)
    }

    func testBudgetAlertsFireOnceAndTheHardStopRefusesAt100Percent() async throws {
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: try pricedEcho(in: dir, amountMinor: 100), billing: platformBilling())
        try ledger.grant(account: "acme", amountMinor: 10_000)
        try ledger.setAccountBudget(account: "acme", limitMinor: 300)
        var ids: [String] = []
        for i in 0..<3 { ids.append(try await engine.drive(try await engine.start(echoSpec("b\(i)")).id).id) }
        do {
            _ = try await engine.start(echoSpec("over"))
            XCTFail("the fourth job passes the budget")
        } catch { XCTAssertEqual(refusalCode(error), "BUDGET_EXCEEDED") }
        let status = try ledger.budget("budget_acme")
        XCTAssertEqual(status.usageMinor, 300)
        XCTAssertTrue(status.exhausted)
        XCTAssertEqual(status.alertsFired, [50, 80, 95, 100])
        let alerts = try ledger.alerts(budget: "budget_acme")
        XCTAssertEqual(alerts.map(\.jobID), [ids[1], ids[2], ids[2], ids[2]], "each threshold fires once, on the job that crossed it")
        let events = try engine.store.events(jobID: ids[2], afterID: 0).filter { $0.kind == "budget_alert" }
        XCTAssertEqual(events.count, 3)
        XCTAssertTrue(events.last?.message.contains("100 %") == true)
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 9_700)
        XCTAssertLedgerBalances(ledger)
    }

    func testARunBudgetStopsTheRunsLaterSteps() async throws {
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: try pricedEcho(in: dir, amountMinor: 100), billing: platformBilling())
        try ledger.grant(account: "acme", amountMinor: 10_000)
        let run = try ledger.openRunBudget(limitMinor: 250, account: "acme", label: "trailer pipeline")
        let scope = BillingScope(account: "acme", budgets: [run])
        var steps: [String] = []
        for i in 0..<2 { steps.append(try await engine.drive(try await engine.start(echoSpec("step \(i)", billing: scope)).id).id) }
        let summary = try ledger.costs(jobIDs: steps)
        XCTAssertEqual(summary.steps.map(\.chargedMinor), [100, 100])
        XCTAssertEqual([summary.estimateMinor, summary.actualMinor, summary.chargedMinor], [200, 200, 200])
        do {
            _ = try await engine.start(echoSpec("step 3", billing: scope))
            XCTFail("the third step passes the run's budget")
        } catch { XCTAssertEqual(refusalCode(error), "BUDGET_EXCEEDED") }
        _ = try await engine.start(echoSpec("outside the run"))
        XCTAssertEqual(try ledger.budget(run).usageMinor, 200, "jobs outside the run do not count")
        XCTAssertEqual(try ledger.budget(run).alertsFired, [50, 80])
    }

    func testPromotionalCreditsAreSpentFirstAndExpiredOnesNot() async throws {
        let (engine, ledger) = try makeLedgerEngine(home: home, plugins: try pricedEcho(in: dir, amountMinor: 150), billing: platformBilling())
        try ledger.grant(account: "acme", amountMinor: 500, id: "paid")
        try ledger.grant(account: "acme", amountMinor: 100, category: .promotional, expiresAt: Date().addingTimeInterval(3600), id: "promo")
        try ledger.grant(account: "acme", amountMinor: 900, category: .promotional, expiresAt: Date().addingTimeInterval(-1), id: "old")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 600, "an expired grant is not available")
        _ = try await engine.drive(try await engine.start(echoSpec()).id)
        let grants = Dictionary(uniqueKeysWithValues: try ledger.balance(account: "acme").grants.map { ($0.id, $0.remainingMinor) })
        XCTAssertEqual(grants["promo"], 0)
        XCTAssertEqual(grants["paid"], 450)
        XCTAssertEqual(grants["old"], 0, "the reservation swept the expired rest out of the account")
        XCTAssertFalse(try ledger.grant(account: "acme", amountMinor: 500, id: "paid"), "a grant id posts once")
        XCTAssertLedgerBalances(ledger)
    }
}

enum JobRecordFixture {
    static func make(id: String) -> JobRecord {
        let now = Date()
        return JobRecord(id: id, idempotencyKey: "key-\(id)", pluginID: "echo", pluginVersion: "1.0.0", capability: "debug.echo", inputsJSON: "{}",
                         inputHash: "x", configJSON: "{}", phase: .submitting, refJSON: nil, attempt: 1, progress: 0, message: nil, outputsJSON: nil,
                         errorJSON: nil, createdAt: now, updatedAt: now, submittedAt: nil, finishedAt: nil, nextPollAt: nil, pollCount: 0,
                         consecutiveErrors: 0, cancelRequested: false, cancelOutcomeJSON: nil, deadlineAt: nil, estimateMinor: 250)
    }
}
