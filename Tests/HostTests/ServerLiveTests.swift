import AsyncHTTPClient
import Crypto
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost
@testable import SwitchyardServer

final class RunIDBox: @unchecked Sendable {
    private let lock = NSLock()
    private var id = ""
    func set(_ value: String) { lock.withLock { id = value } }
    var value: String { lock.withLock { id } }
}

/// Runs billed to their account, budgets, run and account streams from the
/// one shared poller, and signed outbound webhooks — over loopback.
final class ServerLiveTests: ServerTestCase {
    /// A preset of two priced echo steps in a chain, and a server whose ledger bills them.
    func billedServer(priceMinor: Int) throws -> JobLedger {
        let plugins = try pricedEcho(in: dir, amountMinor: priceMinor)
        engine = try makeServerEngine(plugins: plugins)
        let ledger = JobLedger(store: try XCTUnwrap(engine.store as? SQLiteJobStore), config: platformBilling(account: "house"), prices: PriceBook(directories: []))
        engine.ledger = ledger
        let presets = dir.appendingPathComponent("presets")
        try FileManager.default.createDirectory(at: presets, withIntermediateDirectories: true)
        try Data("""
            pipeline: 1
            id: echo-chain
            title: Two echoes
            description: One echo, then another of what the first said.
            inputs:
              text: {type: string, required: true}
            steps:
              first: {capability: debug.echo, engines: [echo], inputs: {text: "${inputs.text}", polls: 1}}
              second: {capability: debug.echo, engines: [echo], inputs: {text: "${steps.first.outputs.text} again", polls: 1}}
            outputs:
              text: ${steps.second.outputs.text}
            """.utf8).write(to: presets.appendingPathComponent("echo-chain.yaml"))
        server = try YardServer(engine: engine, options: options, presets: PresetLibrary(directory: presets))
        return ledger
    }

    func testAPresetRunIsBilledToTheTokensAccount() async throws {
        let ledger = try billedServer(priceMinor: 125)
        _ = try ledger.grant(account: "acme", amountMinor: 1_000, currency: "USD")
        _ = try ledger.grant(account: "beta", amountMinor: 700, currency: "USD")
        let acme = try token("acme", .run)
        let started = RunIDBox()
        try await withServer { api in
            let answer = try await api.call(.post, "/api/v1/presets/echo-chain/runs", token: acme, json: ["inputs": ["text": "paid"]])
            XCTAssertEqual(answer.status, 201, answer.text)
            let runID = try XCTUnwrap(answer.json?["run"]?["id"]?.stringValue)
            started.set(runID)
            let run = try await api.waitRunFinished(runID, token: acme)
            XCTAssertEqual(run["state"]?.stringValue, "succeeded", "\(run)")
            XCTAssertEqual(run["outputs"]?["text"]?.stringValue, "paid again")
            let credits = try await api.call(.get, "/api/v1/credits", token: acme).json
            XCTAssertEqual(credits?["available_minor"]?.intValue, 1_000 - 2 * 125, "\(credits ?? .null)")
            XCTAssertEqual(credits?["held_minor"]?.intValue, 0, "every reservation settled")
        }
        let runID = started.value
        let steps = try PipelineRunStore(jobStore: engine.store).steps(runID: runID)
        XCTAssertEqual(steps.count, 2)
        for step in steps {
            let charge = try XCTUnwrap(try ledger.charge(jobID: XCTUnwrap(step.jobID)), step.name)
            XCTAssertEqual(charge.accountID, "acme", "\(step.name) is acme's to pay")
            XCTAssertEqual(charge.chargedMinor, 125)
            XCTAssertEqual(charge.state, "settled")
        }
        XCTAssertEqual(try ledger.balance(account: "beta").availableMinor, 700, "beta pays nothing for acme's run")
        XCTAssertEqual(try ledger.balance(account: "house").availableMinor, 0, "nor does the default account")
        XCTAssertEqual(try PipelineRunStore(jobStore: engine.store).run(id: runID)?.billingAccount, "acme", "kept with the run for whoever drives it")
        XCTAssertLedgerBalances(ledger)
    }

    func testARunsSpendingCapStopsItWithoutChargingPastIt() async throws {
        let ledger = try billedServer(priceMinor: 125)
        _ = try ledger.grant(account: "acme", amountMinor: 1_000, currency: "USD")
        let acme = try token("acme", .run)
        try await withServer { api in
            let started = try await api.call(.post, "/api/v1/presets/echo-chain/runs", token: acme, json: ["inputs": ["text": "capped"], "max_spend_minor": 200])
            XCTAssertEqual(started.status, 201, started.text)
            let id = try XCTUnwrap(started.json?["run"]?["id"]?.stringValue)
            let run = try await api.waitRunFinished(id, token: acme)
            XCTAssertNotEqual(run["state"]?.stringValue, "succeeded", "the second step would pass the cap: \(run)")
            let answer = try await api.call(.get, "/api/v1/credits", token: acme).json?["available_minor"]?.intValue
            XCTAssertEqual(answer, 1_000 - 125, "only the step within the cap is paid")
        }
        XCTAssertLedgerBalances(ledger)
    }

    func testBudgetsAreTheTokensAccountsAndOnlyAnAdminSetsThem() async throws {
        let ledger = JobLedger(store: try XCTUnwrap(engine.store as? SQLiteJobStore), config: platformBilling(account: "house"), prices: PriceBook(directories: []))
        engine.ledger = ledger
        try ledger.setAccountBudget(account: "beta", limitMinor: 9_999)
        let run = try token("acme", .run), admin = try token("acme", .admin)
        try await withServer(drive: false) { api in
            let none = try await api.call(.get, "/api/v1/credits/budgets", token: run)
            XCTAssertEqual(none.status, 200, none.text)
            XCTAssertEqual(none.json?["budgets"]?.arrayValue?.count, 0, "beta's budget is not acme's to see")
            let refused = try await api.call(.put, "/api/v1/credits/budgets", token: run, json: ["limit_minor": 5_000])
            XCTAssertEqual(refused.errorCode, "SCOPE_INSUFFICIENT")
            let set = try await api.call(.put, "/api/v1/credits/budgets", token: admin, json: ["limit_minor": 5_000, "thresholds": [50, 90], "period": "month"])
            XCTAssertEqual(set.status, 200, set.text)
            XCTAssertEqual(set.json?["id"]?.stringValue, "budget_acme")
            XCTAssertEqual(set.json?["account"]?.stringValue, "acme")
            XCTAssertEqual(set.json?["limit_minor"]?.intValue, 5_000)
            XCTAssertEqual(set.json?["thresholds"], [50, 90])
            let listed = try await api.call(.get, "/api/v1/credits/budgets", token: run).json?["budgets"]?.arrayValue?.compactMap { $0["id"]?.stringValue }
            XCTAssertEqual(listed, ["budget_acme"])
            for bad: JSONValue in [["limit_minor": -1], ["limit_minor": 1, "period": "week"], ["limit_minor": 1, "thresholds": [0]], [:]] {
                let answer = try await api.call(.put, "/api/v1/credits/budgets", token: admin, json: bad)
                XCTAssertEqual(answer.status, 400, "\(bad): \(answer.text)")
            }
        }
        XCTAssertEqual(try ledger.budget("budget_beta").limitMinor, 9_999, "beta's budget is untouched")
        XCTAssertEqual(try ledger.budget("budget_acme").limitMinor, 5_000)
    }

    // MARK: streams

    func testARunsStreamCarriesItsStepsAndEndsWithTheRun() async throws {
        _ = try billedServer(priceMinor: 0)
        let acme = try token("acme", .run), beta = try token("beta", .run)
        try await withServer { api in
            let started = try await api.call(.post, "/api/v1/presets/echo-chain/runs", token: acme, json: ["inputs": ["text": "live"]])
            let id = try XCTUnwrap(started.json?["run"]?["id"]?.stringValue, started.text)
            let frames = try await api.readStream("/api/v1/runs/\(id)/events", token: acme)
            XCTAssertEqual(frames.last?.event, "run", "the stream ends with the finished run")
            XCTAssertEqual(frames.last?.data?["state"]?.stringValue, "succeeded")
            XCTAssertEqual(frames.last?.data?["steps"]?.arrayValue?.count, 2)
            let progress = frames.filter { $0.event == "progress" }
            XCTAssertEqual(Set(progress.compactMap { $0.data?["run_id"]?.stringValue }), [id])
            let stepJobs = Set(frames.last?.data?["steps"]?.arrayValue?.compactMap { $0["job_id"]?.stringValue } ?? [])
            XCTAssertEqual(Set(progress.compactMap { $0.data?["job_id"]?.stringValue }), stepJobs, "both steps' events")
            let ids = progress.compactMap(\.id)
            XCTAssertEqual(ids, ids.sorted())

            // Resumed from the middle: exactly what came after, then the run again.
            let middle = ids[ids.count / 2]
            let rest = try await api.readStream("/api/v1/runs/\(id)/events", token: acme, lastEventID: middle)
            XCTAssertEqual(rest.filter { $0.event == "progress" }.compactMap(\.id), ids.filter { $0 > middle })
            XCTAssertEqual(rest.last?.event, "run")

            let theirs = try await api.call(.get, "/api/v1/runs/\(id)/events", token: beta)
            XCTAssertEqual(theirs.status, 404)
            XCTAssertEqual(theirs.errorCode, "RUN_NOT_FOUND")
        }
    }

    func testTheAccountStreamResumesAndCarriesRunsAndJobsOfTheAccountOnly() async throws {
        _ = try billedServer(priceMinor: 0)
        let acme = try token("acme", .run), beta = try token("beta", .run)
        let store = server.store
        try await withServer { api in
            let answer = try await api.submitEcho("acme's job", token: acme, polls: 1).json?["id"]?.stringValue
            let job = try XCTUnwrap(answer)
            let other = try await api.submitEcho("beta's job", token: beta, polls: 1).json?["id"]?.stringValue
            let started = try await api.call(.post, "/api/v1/presets/echo-chain/runs", token: acme, json: ["inputs": ["text": "acct"]])
            let run = try XCTUnwrap(started.json?["run"]?["id"]?.stringValue)
            _ = try await api.waitFinished(job, token: acme)
            _ = try await api.waitFinished(try XCTUnwrap(other), token: beta)
            _ = try await api.waitRunFinished(run, token: acme)

            // Everything acme has, from the start of the log, then a `run` frame once the run changes again (it will not): stop at the run's step events.
            let logged = try store.events(account: "acme", jobID: nil, afterID: 0).compactMap(\.id)
            XCTAssertGreaterThan(logged.count, 4)
            let frames = try await api.readStream("/api/v1/events", token: acme) { frames in
                frames.filter { $0.event == "progress" }.count >= logged.count
            }
            let progress = frames.filter { $0.event == "progress" }
            XCTAssertEqual(progress.compactMap(\.id), logged, "every event of acme's, in order, nothing of beta's")
            XCTAssertFalse(progress.contains { $0.data?["job_id"]?.stringValue == other })
            XCTAssertTrue(progress.contains { $0.data?["run_id"]?.stringValue == run }, "a run's step events say whose run")

            let middle = logged[logged.count / 2]
            let resumed = try await api.readStream("/api/v1/events", token: acme, lastEventID: middle) { frames in
                frames.filter { $0.event == "progress" }.count >= logged.filter { $0 > middle }.count
            }
            XCTAssertEqual(resumed.filter { $0.event == "progress" }.compactMap(\.id), logged.filter { $0 > middle })

            // Live: a stream opened now hears of a job submitted after it opened, and of a run's changes.
            async let live = api.readStream("/api/v1/events", token: acme, lastEventID: logged.last) { frames in
                frames.contains { $0.event == "progress" && $0.data?["message"]?.stringValue == "succeeded" }
                    && frames.contains { $0.event == "run" && $0.data?["state"]?.stringValue == "succeeded" }
            }
            try await Task.sleep(nanoseconds: 200_000_000)
            _ = try await api.submitEcho("later", token: acme)
            _ = try await api.call(.post, "/api/v1/presets/echo-chain/runs", token: acme, json: ["inputs": ["text": "later"]])
            let heard = try await live
            XCTAssertTrue(heard.allSatisfy { $0.event != "progress" || ($0.id ?? 0) > (logged.last ?? 0) }, "nothing replayed twice")
        }
    }

    func testOnePollerFeedsEveryStreamAndASlowSubscriberIsCutLooseNotWaitedFor() async throws {
        let pool = server.store.pool
        let broadcaster = EventBroadcaster(pool: pool, pollSeconds: 0.01, heartbeatSeconds: 60, bufferBatches: 2)
        let job = try await engine.start(JobSpec(pluginID: "echo", capability: "debug.echo", inputs: ["text": "x"], idempotencyKey: "api/acme/k1"))
        let fast = (0..<20).map { _ in broadcaster.subscribe(StreamFilter(account: "acme")) }
        let slow = broadcaster.subscribe(StreamFilter(account: "acme"))
        XCTAssertEqual(broadcaster.subscriberCount, 21)
        // Each event in its own poll, so the slow subscriber's two-batch buffer fills.
        var appended: [Int64] = []
        let readers = fast.map { subscription in
            Task { () -> [Int64] in
                var ids: [Int64] = []
                for await batch in subscription.batches {
                    ids += batch.compactMap(\.id)
                    if ids.count >= 6 { break }
                }
                return ids
            }
        }
        let pollsBefore = broadcaster.polls
        for i in 0..<6 {
            try engine.store.appendEvent(jobID: job.id, kind: "progress", message: "step \(i)", data: nil)
            let last = try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM job_event") }
            appended.append(try XCTUnwrap(last))
            try await Task.sleep(nanoseconds: 40_000_000)
        }
        for reader in readers {
            let ids = await reader.value
            XCTAssertEqual(ids, appended, "every fast subscriber got every event, in order")
        }
        let polls = broadcaster.polls - pollsBefore
        XCTAssertLessThan(polls, 60, "one read per interval for all 21 subscribers, not one per subscriber")
        var slowSaw = 0
        for await batch in slow.batches { slowSaw += batch.count }
        XCTAssertTrue(slow.overflowed, "the slow subscriber was cut loose")
        XCTAssertEqual(slowSaw, 2, "with what its buffer held; it resumes from the log by id")
        // What the slow one missed is in the log, read by the same filter.
        let caughtUp = try await pool.read { db in try EventBroadcaster.read(db, after: 0, filter: StreamFilter(account: "acme"), limit: 100) }.compactMap(\.id)
        XCTAssertTrue(Set(appended).isSubset(of: Set(caughtUp)))
        for subscription in fast { subscription.end() }
        broadcaster.shutdown()
        XCTAssertEqual(broadcaster.subscriberCount, 0)
    }

    // MARK: outbound webhooks

    /// A loopback receiver that checks each delivery's signature and fails the first `failures` deliveries.
    final class Receiver: @unchecked Sendable {
        struct Received { var delivery: String; var signature: String; var body: Data; var valid: Bool; var timestamp: Int }
        let lock = NSLock()
        var failures: Int
        var secret = ""
        var received: [Received] = []
        init(failures: Int) { self.failures = failures }

        func take(_ request: Request) async throws -> Response {
            let body = Data(try await request.body.collect(upTo: 1 << 20).readableBytesView)
            let delivery = request.headers[HTTPField.Name("Switchyard-Delivery")!] ?? ""
            let signature = request.headers[HTTPField.Name("Switchyard-Signature")!] ?? ""
            return lock.withLock {
                // t=…,v1=…: recompute over the timestamp and the exact body received.
                var parts: [String: String] = [:]
                for item in signature.split(separator: ",") {
                    let pair = item.split(separator: "=", maxSplits: 1)
                    if pair.count == 2 { parts[String(pair[0])] = String(pair[1]) }
                }
                let timestamp = Int(parts["t"] ?? "") ?? 0
                var signed = Data("\(timestamp).".utf8)
                signed.append(body)
                let expected = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Data(secret.utf8))).map { String(format: "%02x", $0) }.joined()
                received.append(Received(delivery: delivery, signature: signature, body: body, valid: parts["v1"] == expected, timestamp: timestamp))
                if failures > 0 {
                    failures -= 1
                    return Response(status: .internalServerError)
                }
                return Response(status: .ok)
            }
        }
    }

    func testWebhooksAreSignedRetriedWithBackoffAndDeliveredOncePerEvent() async throws {
        let acme = try token("acme", .run), beta = try token("beta", .run)
        let receiver = Receiver(failures: 2)
        let server = self.server!
        let hooks = Router()
        hooks.post("hook") { request, _ in try await receiver.take(request) }
        let receiverApp = Application(router: hooks, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await withServer { api in
            try await receiverApp.test(.live) { hookClient in
                let hookURL = "http://127.0.0.1:\(hookClient.port ?? 0)/hook"
                let created = try await api.call(.post, "/api/v1/webhook-endpoints", token: acme, json: ["url": .string(hookURL), "events": ["job.*"]])
                XCTAssertEqual(created.status, 201, created.text)
                let endpoint = try XCTUnwrap(created.json?["id"]?.stringValue)
                let secret = try XCTUnwrap(created.json?["secret"]?.stringValue)
                XCTAssertTrue(secret.hasPrefix("whsec_"))
                receiver.lock.withLock { receiver.secret = secret }
                let listed = try await api.call(.get, "/api/v1/webhook-endpoints", token: acme)
                XCTAssertEqual(listed.json?["endpoints"]?.arrayValue?.count, 1)
                XCTAssertFalse(listed.text.contains(secret), "the secret is answered once")
                let answer1 = try await api.call(.get, "/api/v1/webhook-endpoints", token: beta).json?["endpoints"]?.arrayValue?.count
                XCTAssertEqual(answer1, 0)
                let answer2 = try await api.call(.get, "/api/v1/webhook-endpoints/\(endpoint)/deliveries", token: beta).status
                XCTAssertEqual(answer2, 404)
                let bad = try await api.call(.post, "/api/v1/webhook-endpoints", token: acme, json: ["url": "file:///etc/passwd"])
                XCTAssertEqual(bad.errorCode, "WEBHOOK_URL_INVALID")
                // Tests run under the network guard: an outside host is refused when registered, never looked up.
                let outside = try await api.call(.post, "/api/v1/webhook-endpoints", token: acme, json: ["url": "https://hooks.example.com/x"])
                XCTAssertEqual(outside.errorCode, "WEBHOOK_URL_INVALID")
                XCTAssertTrue(NetworkGuard.violations.isEmpty, "\(NetworkGuard.violations)")
                let badEvent = try await api.call(.post, "/api/v1/webhook-endpoints", token: acme, json: ["url": .string(hookURL), "events": ["job.exploded"]])
                XCTAssertEqual(badEvent.errorCode, "WEBHOOK_EVENT_UNKNOWN")

                let mineAnswer = try await api.submitEcho("hooked", token: acme).json?["id"]?.stringValue
                let theirsAnswer = try await api.submitEcho("not hooked", token: beta).json?["id"]?.stringValue
                let mine = try XCTUnwrap(mineAnswer), theirs = try XCTUnwrap(theirsAnswer)
                _ = try await api.waitFinished(mine, token: acme)
                _ = try await api.waitFinished(theirs, token: beta)

                // The server's own sender is not running (withServer runs only the daemon): this test moves the clock.
                var clock = Date(timeIntervalSince1970: 1_900_000_000)
                let views = APIRoutes(server: server)
                func outbox() throws -> WebhookOutbox {
                    // A fresh outbox each time: what is pending lives in the database, not in memory (a restart loses nothing).
                    let outbox = try WebhookOutbox(pool: server.store.pool)
                    let now = clock
                    outbox.now = { now }
                    outbox.baseDelaySeconds = 10
                    outbox.maxDelaySeconds = 15
                    return outbox
                }
                let added = try outbox().enqueue(jobView: { views.jobView($0, account: $1) }, runView: { _ in nil })
                XCTAssertEqual(added, 1, "acme's job, once; beta's job is not acme's endpoint's")
                let again = try outbox().enqueue(jobView: { views.jobView($0, account: $1) }, runView: { _ in nil })
                XCTAssertEqual(again, 0, "a scan again adds nothing")

                let tried1 = try await outbox().deliverDue()
                XCTAssertEqual(tried1, 1)
                let tried1b = try await outbox().deliverDue()
                XCTAssertEqual(tried1b, 0, "not due again before the backoff")
                clock += 9
                let tried1c = try await outbox().deliverDue()
                XCTAssertEqual(tried1c, 0, "the first retry waits 10 s")
                clock += 1
                let tried2 = try await outbox().deliverDue()
                XCTAssertEqual(tried2, 1)
                clock += 14
                let tried2b = try await outbox().deliverDue()
                XCTAssertEqual(tried2b, 0, "the second waits 20 s, capped at 15")
                clock += 1
                let tried3 = try await outbox().deliverDue()
                XCTAssertEqual(tried3, 1)
                clock += 3600
                let tried4 = try await outbox().deliverDue()
                XCTAssertEqual(tried4, 0, "delivered: never sent again")

                let received = receiver.lock.withLock { receiver.received }
                XCTAssertEqual(received.count, 3, "two failures, then the delivery")
                XCTAssertEqual(Set(received.map(\.delivery)).count, 1, "one delivery id across its retries")
                XCTAssertTrue(received.allSatisfy(\.valid), "every attempt signed with the endpoint's secret over t.body")
                XCTAssertEqual(received.map(\.timestamp), [1_900_000_000, 1_900_000_010, 1_900_000_025], "signed at each attempt's time")
                let event = try JSONValue(parsing: try XCTUnwrap(received.last?.body))
                XCTAssertEqual(event["type"]?.stringValue, "job.succeeded")
                XCTAssertEqual(event["account"]?.stringValue, "acme")
                XCTAssertEqual(event["data"]?["job"]?["id"]?.stringValue, mine)
                XCTAssertTrue(event["id"]?.stringValue?.hasPrefix("evt_") == true)

                let log = try await api.call(.get, "/api/v1/webhook-endpoints/\(endpoint)/deliveries", token: acme)
                XCTAssertEqual(log.status, 200, log.text)
                let delivery = try XCTUnwrap(log.json?["deliveries"]?.arrayValue?.first)
                XCTAssertEqual(log.json?["deliveries"]?.arrayValue?.count, 1)
                XCTAssertEqual(delivery["id"]?.stringValue, received.first?.delivery)
                XCTAssertEqual(delivery["state"]?.stringValue, "delivered")
                XCTAssertEqual(delivery["attempts"]?.intValue, 3)
                XCTAssertEqual(delivery["log"]?.arrayValue?.map { $0["status"]?.intValue ?? 0 }, [500, 500, 200])
                XCTAssertFalse(log.text.contains(secret))

                let removed = try await api.call(.delete, "/api/v1/webhook-endpoints/\(endpoint)", token: acme)
                XCTAssertEqual(removed.json?["deleted"]?.boolValue, true, removed.text)
                let gone = try await api.call(.delete, "/api/v1/webhook-endpoints/\(endpoint)", token: acme).status
                XCTAssertEqual(gone, 404)
            }
        }
    }

    func testAWebhookThatNeverAnswersGivesUpAfterItsAttemptsWithTheBackoffCapped() async throws {
        let outbox = try WebhookOutbox(pool: server.store.pool)
        outbox.baseDelaySeconds = 10
        outbox.maxDelaySeconds = 300
        outbox.maxAttempts = 3
        outbox.timeoutSeconds = 1
        XCTAssertEqual((1...8).map { outbox.delay(afterAttempt: $0) }, [10, 20, 40, 80, 160, 300, 300, 300])
        XCTAssertEqual(WebhookOutbox.signature(secret: "whsec_test", timestamp: 1_700_000_000, body: Data(#"{"a":1}"#.utf8)),
                       "t=1700000000,v1=" + HMAC<SHA256>.authenticationCode(for: Data(#"1700000000.{"a":1}"#.utf8), using: SymmetricKey(data: Data("whsec_test".utf8)))
                        .map { String(format: "%02x", $0) }.joined())

        // Port 9 on loopback: nothing listens, every attempt is refused.
        let (endpoint, _) = try outbox.register(account: "acme", url: "http://127.0.0.1:9/never", events: ["job.failed"])
        let job = try await engine.start(JobSpec(pluginID: "echo", capability: "debug.echo", inputs: ["text": "x"], idempotencyKey: "api/acme/doomed"))
        _ = try engine.store.updateJob(id: job.id) { $0.phase = .failed }
        var clock = Date(timeIntervalSince1970: 1_900_000_000)
        outbox.now = { [clock] in clock }
        XCTAssertEqual(try outbox.enqueue(jobView: { job, _ in .object(["id": .string(job.id)]) }, runView: { _ in nil }), 1)
        for _ in 0..<3 {
            let tried = try await outbox.deliverDue()
            XCTAssertEqual(tried, 1)
            clock += 400
            outbox.now = { [clock] in clock }
        }
        let tried = try await outbox.deliverDue()
        XCTAssertEqual(tried, 0, "given up after its attempts")
        let delivery = try XCTUnwrap(try outbox.deliveries(endpoint: endpoint.id).first)
        XCTAssertEqual(delivery.state, "failed")
        XCTAssertEqual(delivery.attempts, 3)
        XCTAssertEqual(delivery.log.count, 3)
        XCTAssertTrue(delivery.log.allSatisfy { $0.status == nil && $0.error != nil }, "\(delivery.log)")
    }
}

extension APIClient {
    func waitRunFinished(_ id: String, token: String) async throws -> JSONValue {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let run = try await call(.get, "/api/v1/runs/\(id)", token: token).json
            if let state = run?["state"]?.stringValue, state != "running", let run { return run }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        XCTFail("\(id) did not finish within 20 s")
        return .null
    }

    /// Reads an SSE stream over a plain loopback connection until `done` says so (or the server ends it).
    func readStream(_ path: String, token: String, lastEventID: Int64? = nil,
                    until done: @escaping ([ServerContractTests.Frame]) -> Bool = { _ in false }) async throws -> [ServerContractTests.Frame] {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(self.port)\(path)")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let lastEventID { request.headers.add(name: "Last-Event-ID", value: "\(lastEventID)") }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
        XCTAssertEqual(response.status.code, 200)
        XCTAssertEqual(response.headers.first(name: "content-type"), "text/event-stream")
        var text = ""
        for try await chunk in response.body {
            text += String(buffer: chunk)
            if done(ServerContractTests.frames(text)) { break }
        }
        return ServerContractTests.frames(text)
    }
}
