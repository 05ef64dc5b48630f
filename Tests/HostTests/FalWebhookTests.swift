import AsyncHTTPClient
import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// fal's signed webhooks: the stand-in signs and delivers them as fal does
/// (Ed25519 over request_id\nuser_id\ntimestamp\nsha256(body), keys in a
/// JWKS, retries and duplicates); the fal plugin verifies; the engine applies
/// each delivery once and never lets one regress a finished job.
final class FalWebhookTests: TemporaryDirectoryTestCase {
    var standIn: FalStandIn!
    var receiver: ScriptedHTTPServer!
    /// Answers the receiver gives, in order; then 200.
    let receiverScript = ResponseScript()

    final class ResponseScript: @unchecked Sendable {
        let lock = NSLock()
        var statuses: [Int] = []
        func next() -> Int { lock.withLock { statuses.isEmpty ? 200 : statuses.removeFirst() } }
    }

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        // fal's clock follows wall time (the default): the plugin checks timestamps against the host's.
        standIn = try await started(FalStandIn())
        let script = receiverScript
        receiver = ScriptedHTTPServer { _ in .init(status: script.next()) }
        try await receiver.start()
    }

    func makeEngine() throws -> JobEngine {
        let plugins = dir.appendingPathComponent("plugins-\(UUID().uuidString.prefix(6))")
        try copyPlugin("fal", to: plugins)
        let engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: plugins, secrets: ["FAL_KEY": standIn.key])
        engine.policy.minPollMs = 1
        engine.policy.maxPollMs = 5
        return engine
    }

    var config: [String: JSONValue] {
        ["queue_url": .string(standIn.baseURL), "rest_url": .string(standIn.baseURL),
         "webhook_url": .string("\(receiver.baseURL)/webhooks/fal"), "webhook_jwks_url": .string("\(standIn.baseURL)/.well-known/jwks.json")]
    }

    func submit(_ engine: JobEngine, prompt: String = "a lighthouse") async throws -> JobRecord {
        try await engine.start(JobSpec(pluginID: "fal", capability: "image.generate", inputs: ["prompt": .string(prompt)], config: config))
    }

    func receive(_ engine: JobEngine, _ headers: [String: String], _ body: Data) async throws -> WebhookOutcome {
        try await engine.receiveWebhook(pluginID: "fal", headers: headers, body: body, config: config)
    }

    func requestID(_ job: JobRecord) throws -> String {
        let ref = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(job.refJSON).utf8)) as? [String: Any])
        return try XCTUnwrap(ref["request_id"] as? String)
    }

    func assertRejected(_ engine: JobEngine, _ headers: [String: String], _ body: Data, file: StaticString = #filePath, line: UInt = #line) async {
        do {
            let outcome = try await receive(engine, headers, body)
            XCTFail("accepted: \(outcome.kind)", file: file, line: line)
        } catch let error as YardError {
            XCTAssertEqual(error.code.rawValue, "WEBHOOK_REJECTED", "\(error)", file: file, line: line)
        } catch { XCTFail("\(error)", file: file, line: line) }
    }

    func testARetriedAndDuplicatedDeliveryFinishesTheJobOnce() async throws {
        let engine = try makeEngine()
        let job = try await submit(engine)
        XCTAssertFalse(job.phase.isTerminal)
        XCTAssertTrue(standIn.requestsSeen.contains { $0.query.contains("fal_webhook=") }, "the webhook URL goes to fal on submit")
        receiverScript.lock.withLock { receiverScript.statuses = [500] }
        standIn.configure { $0.duplicateWebhooks = 2 }
        let deliveries = await standIn.finishAndDeliver()
        XCTAssertEqual(deliveries.count, 1)
        XCTAssertEqual(deliveries[0].attempts, [500, 200, 200, 200], "retried after a 5xx, then duplicated")
        let posts = receiver.requests.filter { $0.method == "POST" }
        XCTAssertEqual(posts.count, 4)

        var outcomes: [WebhookOutcome.Kind] = []
        for post in posts { outcomes.append(try await receive(engine, post.headers, post.body).kind) }
        XCTAssertEqual(outcomes, [.applied, .duplicate, .duplicate, .duplicate])
        let done = try XCTUnwrap(try engine.store.job(id: job.id))
        XCTAssertEqual(done.phase, .succeeded, done.errorJSON ?? "")
        XCTAssertTrue(done.outputsJSON?.contains("sha256:") == true, "the image was harvested into the store: \(done.outputsJSON ?? "")")
        XCTAssertEqual(standIn.jwksRequests, 1, "the JWKS is fetched once and cached")
        let webhookEvents = try engine.store.events(jobID: job.id, afterID: 0).filter { $0.kind == "webhook" }
        XCTAssertEqual(webhookEvents.count, 1)
    }

    func testATamperedForgedOrStaleDeliveryIsRefusedAndChangesNothing() async throws {
        let engine = try makeEngine()
        let job = try await submit(engine)
        let id = try requestID(job)
        let body = Data(#"{"gateway_request_id":"\#(id)","payload":{"images":[],"seed":1},"request_id":"\#(id)","status":"OK"}"#.utf8)
        let good = standIn.signedDelivery(requestID: id, body: body)

        var tampered = good.body
        tampered[tampered.count - 3] = UInt8(ascii: "X")
        await assertRejected(engine, good.headers, tampered)
        let forged = standIn.signedDelivery(requestID: id, body: body, key: FalStandIn.WebhookKey(kid: "attacker"))
        await assertRejected(engine, forged.headers, forged.body)
        let stale = standIn.signedDelivery(requestID: id, body: body, timestampOffset: -330)
        await assertRejected(engine, stale.headers, stale.body)
        let future = standIn.signedDelivery(requestID: id, body: body, timestampOffset: 330)
        await assertRejected(engine, future.headers, future.body)
        var unsigned = good.headers
        unsigned["x-fal-webhook-signature"] = nil
        await assertRejected(engine, unsigned, good.body)
        var otherRequest = good.headers
        otherRequest["x-fal-webhook-request-id"] = "someone-else"
        await assertRejected(engine, otherRequest, good.body)

        XCTAssertEqual(try engine.store.job(id: job.id)?.phase, job.phase, "no refused delivery touched the job")
        let inTolerance = standIn.signedDelivery(requestID: id, body: body, timestampOffset: -270)
        let outcome = try await receive(engine, inTolerance.headers, inTolerance.body)
        XCTAssertEqual(outcome.kind, .applied)
        XCTAssertEqual(outcome.jobID, job.id)
    }

    func testRotatedKeysAreFetchedAgain() async throws {
        let engine = try makeEngine()
        let first = try await submit(engine, prompt: "one")
        let second = try await submit(engine, prompt: "two")
        let one = await standIn.finishAndDeliver(try requestID(first))
        let outcome1 = try await receive(engine, one[0].headers, one[0].body)

        XCTAssertEqual(outcome1.kind, .applied)
        standIn.rotateWebhookKey()
        let two = await standIn.finishAndDeliver(try requestID(second))
        let outcome2 = try await receive(engine, two[0].headers, two[0].body)

        XCTAssertEqual(outcome2.kind, .applied)
        XCTAssertEqual(standIn.jwksRequests, 2, "a signature no cached key verifies makes the plugin refetch the JWKS once")
    }

    func testAnErrorDeliveryFailsTheJobNamingTheField() async throws {
        let engine = try makeEngine()
        let job = try await submit(engine)
        standIn.configure { $0.webhookInputError = "prompt" }
        let delivery = await standIn.finishAndDeliver()
        let outcome3 = try await receive(engine, delivery[0].headers, delivery[0].body)

        XCTAssertEqual(outcome3.kind, .applied)
        let failed = try XCTUnwrap(try engine.store.job(id: job.id))
        XCTAssertEqual(failed.phase, .failed)
        XCTAssertEqual(failed.errorCode, "CONTRACT_MISMATCH")
        XCTAssertTrue(failed.errorJSON?.contains(#""field":"$.inputs.prompt""#) == true, failed.errorJSON ?? "")
    }

    func testADeliveryAfterPollingFinishedTheJobIsStaleAndAnUnknownOneUnmatched() async throws {
        let engine = try makeEngine()
        let job = try await submit(engine)
        let polled = try await engine.drive(job.id)
        XCTAssertEqual(polled.phase, .succeeded)
        let id = try requestID(job)
        let failure = Data(#"{"error":"boom","payload":null,"request_id":"\#(id)","status":"ERROR"}"#.utf8)
        let late = standIn.signedDelivery(requestID: id, body: failure)
        let outcome = try await receive(engine, late.headers, late.body)
        XCTAssertEqual(outcome.kind, .stale)
        XCTAssertEqual(try engine.store.job(id: job.id)?.phase, .succeeded, "a late ERROR never regresses a finished job")

        let stray = Data(#"{"payload":{},"request_id":"not-ours","status":"OK"}"#.utf8)
        let unknown = standIn.signedDelivery(requestID: "not-ours", body: stray)
        let outcome4 = try await receive(engine, unknown.headers, unknown.body)

        XCTAssertEqual(outcome4.kind, .unmatched)
    }

    /// `yard serve` is the endpoint fal calls: a detached job finishes by webhook alone.
    func testYardServeTakesDeliveriesOverHTTP() async throws {
        let home = dir.appendingPathComponent("served")
        try FileManager.default.createDirectory(at: home.appendingPathComponent("config"), withIntermediateDirectories: true)
        let (serve, base) = try startYardServe(home: home, environment: ["FAL_KEY": standIn.key])
        defer { serve.terminate(); serve.waitUntilExit() }
        XCTAssertTrue(base.hasPrefix("http://127.0.0.1:"), base)

        let config: [String: String] = ["queue_url": standIn.baseURL, "rest_url": standIn.baseURL, "webhook_url": "\(base)/webhooks/fal",
                                        "webhook_jwks_url": "\(standIn.baseURL)/.well-known/jwks.json"]
        try JSONSerialization.data(withJSONObject: config).write(to: home.appendingPathComponent("config/fal.json"))
        let run = try yard(["run", "image.generate", "--engine", "fal", "--input", "prompt=a fox", "--detach", "--json"], home: home,
                           extraEnvironment: ["FAL_KEY": standIn.key])
        XCTAssertEqual(run.status, 0, run.stderr)
        let jobID = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])?["id"] as? String, run.stdout)

        let deliveries = await standIn.finishAndDeliver()
        XCTAssertEqual(deliveries.first?.attempts, [200])
        let shown = try yard(["jobs", "show", jobID, "--json"], home: home)
        let view = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any], shown.stdout)
        XCTAssertEqual(view["state"] as? String, "succeeded", shown.stdout)

        // A forged delivery is answered 401 and never reaches a job.
        var request = HTTPClientRequest(url: "\(base)/webhooks/fal")
        request.method = .POST
        request.headers.add(name: "x-fal-webhook-request-id", value: "x")
        request.body = .bytes(Array("{}".utf8))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        XCTAssertEqual(response.status.code, 401)
    }
}
