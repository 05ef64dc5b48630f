import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// Each remote stand-in against what its provider documents (PROVIDERS.md,
/// the providers' API references, official SDK sources), never against an
/// adapter: raw HTTP on loopback, checking shapes, codes and timing. Jobs
/// move with time, not with reads, and clocks follow wall time.
class StandInFidelityTestCase: XCTestCase {
    let http = BlockingHTTPTransport(defaultTimeoutMs: 3_000)

    func send(_ method: String, _ url: String, headers: [String: String] = [:], body: Data? = nil) throws -> HostHTTPResponse {
        try http.perform(HostHTTPRequest(method: method, url: url, headers: headers, body: body))
    }

    func object(_ response: HostHTTPResponse, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: response.body) as? [String: Any], String(decoding: response.body, as: UTF8.self), file: file, line: line)
    }

    /// The documented shapes for one provider (Tests/Fixtures/PROVIDER/documented_shapes.json):
    /// name → {"keys": [members every answer has], "optional": [members it may have]}.
    func shapes(_ provider: String) throws -> [String: [String: [String]]] {
        let url = Build.repository.appendingPathComponent("Tests/Fixtures/\(provider)/documented_shapes.json")
        let document = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        return (document["shapes"] as? [String: [String: [String]]]) ?? [:]
    }

    func assertShape(_ body: [String: Any], _ name: String, in shapes: [String: [String: [String]]], file: StaticString = #filePath, line: UInt = #line) {
        guard let shape = shapes[name] else { return XCTFail("no documented shape \(name)", file: file, line: line) }
        let required = Set(shape["keys"] ?? []), allowed = required.union(shape["optional"] ?? [])
        XCTAssertTrue(required.isSubset(of: Set(body.keys)), "\(name) lacks \(required.subtracting(body.keys).sorted()): \(body)", file: file, line: line)
        XCTAssertTrue(Set(body.keys).isSubset(of: allowed), "\(name) has undocumented \(Set(body.keys).subtracting(allowed).sorted())", file: file, line: line)
    }
}

final class RunPodStandInFidelityTests: StandInFidelityTestCase {
    var standIn: RunPodStandIn!
    let clock = VirtualClock(startUnixMs: 1_767_225_600_000)

    override func setUp() async throws {
        standIn = try await started(RunPodStandIn(clock: clock))
    }

    var auth: [String: String] { ["authorization": "Bearer \(standIn.apiKey)", "content-type": "application/json"] }
    func url(_ path: String) -> String { "\(standIn.baseURL)/\(standIn.endpointID)/\(path)" }

    func submitJob(_ body: String = #"{"input":{"prompt":"x"}}"#) throws -> String {
        let answer = try object(try send("POST", url("run"), headers: auth, body: Data(body.utf8)))
        XCTAssertEqual(answer["status"] as? String, "IN_QUEUE")
        return try XCTUnwrap(answer["id"] as? String)
    }

    func status(_ id: String) throws -> [String: Any] { try object(try send("GET", url("status/\(id)"), headers: auth)) }

    func testReadsHaveNoSideEffectsAndJobsAdvanceWithTime() throws {
        standIn.configure { $0.queueMs = 1_000; $0.runMs = 4_200 }
        let id = try submitJob()
        for _ in 0..<10 { XCTAssertEqual(try status(id)["status"] as? String, "IN_QUEUE", "reading /status never moves a job") }
        clock.advance(ms: 1_000)
        XCTAssertEqual(try status(id)["status"] as? String, "IN_PROGRESS")
        clock.advance(ms: 4_200)
        let done = try status(id)
        let shapes = try shapes("runpod")
        assertShape(done, "status.COMPLETED", in: shapes)
        XCTAssertEqual(done["executionTime"] as? Int, 4_200, "ms on the worker")
        XCTAssertEqual(done["delayTime"] as? Int, 1_000, "ms in the queue")
    }

    func testEveryTerminalStateCarriesExecutionTimeAndAFailedErrorIsTheWorkerSDKsJSON() throws {
        let shapes = try shapes("runpod")
        standIn.configure { $0.queueMs = 0; $0.runMs = 5; $0.failWith = "CUDA out of memory" }
        let failed = try submitJob()
        clock.advance(ms: 5)
        let answer = try status(failed)
        assertShape(answer, "status.FAILED", in: shapes)
        XCTAssertEqual(answer["executionTime"] as? Int, 5)
        let text = try XCTUnwrap(answer["error"] as? String, "a string, as the worker SDK sends it")
        let error = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "the string is JSON")
        assertShape(error, "worker_error", in: shapes)
        XCTAssertEqual(error["error_message"] as? String, "CUDA out of memory")

        standIn.configure { $0.failWith = nil; $0.timeOut = true }
        let timedOut = try submitJob(#"{"input":{},"policy":{"executionTimeout":5000}}"#)
        clock.advance(ms: 5_000)
        let stopped = try status(timedOut)
        assertShape(stopped, "status.TIMED_OUT", in: shapes)
        XCTAssertEqual(stopped["executionTime"] as? Int, 5_000)

        standIn.configure { $0.timeOut = false; $0.runMs = 60_000 }
        let running = try submitJob()
        clock.advance(ms: 2_000)
        XCTAssertEqual(try object(try send("POST", url("cancel/\(running)"), headers: auth))["status"] as? String, "CANCELLED")
        let cancelled = try status(running)
        assertShape(cancelled, "status.CANCELLED", in: shapes)
        XCTAssertEqual(cancelled["executionTime"] as? Int, 2_000, "a running job's cancel reports the time it ran")

        standIn.configure { $0.queueMs = 60_000 }
        let queued = try submitJob()
        _ = try send("POST", url("cancel/\(queued)"), headers: auth)
        XCTAssertNil(try status(queued)["executionTime"], "a job cancelled in the queue never ran")
    }

    func testHealthTtlRetentionAndAuthAnswerAsDocumented() throws {
        let shapes = try shapes("runpod")
        let health = try object(try send("GET", url("health"), headers: auth))
        assertShape(health, "health", in: shapes)
        assertShape(try XCTUnwrap(health["jobs"] as? [String: Any]), "health.jobs", in: shapes)
        assertShape(try XCTUnwrap(health["workers"] as? [String: Any]), "health.workers", in: shapes)
        let id = try submitJob(#"{"input":{},"policy":{"ttl":10000}}"#)
        clock.advance(ms: 10_001)
        XCTAssertEqual(try send("GET", url("status/\(id)"), headers: auth).status, 404, "deleted after its ttl")
        XCTAssertEqual(try send("GET", url("health"), headers: ["authorization": "Bearer rpa_WRONG"]).status, 401)
        let balance = try send("POST", standIn.graphqlURL, headers: auth, body: Data(#"{"query":"query { myself { clientBalance } }"}"#.utf8))
        XCTAssertEqual(((try object(balance)["data"] as? [String: Any])?["myself"] as? [String: Any])?["clientBalance"] as? Double, 25)
    }
}

final class FalStandInFidelityTests: StandInFidelityTestCase {
    var standIn: FalStandIn!
    let clock = VirtualClock(startUnixMs: 1_767_225_600_000)

    override func setUp() async throws {
        standIn = try await started(FalStandIn(clock: clock))
    }

    var auth: [String: String] { ["authorization": "Key \(standIn.key)", "content-type": "application/json"] }

    func testTheQueueLifecycleMovesWithTimeAndHasTheDocumentedShapes() throws {
        let shapes = try shapes("fal")
        standIn.configure { $0.queueMs = 100; $0.runMs = 400 }
        let submitted = try object(try send("POST", "\(standIn.baseURL)/fal-ai/flux/dev", headers: auth, body: Data(#"{"prompt":"x"}"#.utf8)))
        assertShape(submitted, "submit", in: shapes)
        let statusURL = try XCTUnwrap(submitted["status_url"] as? String)
        for _ in 0..<5 { XCTAssertEqual(try object(try send("GET", statusURL, headers: auth))["status"] as? String, "IN_QUEUE") }
        clock.advance(ms: 100)
        XCTAssertEqual(try object(try send("GET", statusURL, headers: auth))["status"] as? String, "IN_PROGRESS")
        clock.advance(ms: 400)
        let completed = try object(try send("GET", statusURL + "?logs=1", headers: auth))
        assertShape(completed, "status.COMPLETED", in: shapes)
        let result = try object(try send("GET", try XCTUnwrap(submitted["response_url"] as? String), headers: auth))
        let image = try XCTUnwrap((result["images"] as? [[String: Any]])?.first)
        assertShape(image, "image", in: shapes)
        let late = try send("PUT", try XCTUnwrap(submitted["cancel_url"] as? String), headers: auth)
        XCTAssertEqual(late.status, 400)
        XCTAssertEqual(try object(late)["status"] as? String, "ALREADY_COMPLETED")
    }

    func testErrorsHaveFalsDocumentedBodies() throws {
        let refused = try send("POST", "\(standIn.baseURL)/fal-ai/flux/dev", headers: auth, body: Data("{}".utf8))
        XCTAssertEqual(refused.status, 422)
        let detail = try XCTUnwrap((try object(refused)["detail"] as? [[String: Any]])?.first)
        assertShape(detail, "validation_detail", in: try shapes("fal"))
        standIn.configure { $0.exhaustedBalance = true }
        let locked = try send("POST", "\(standIn.baseURL)/fal-ai/flux/dev", headers: auth, body: Data(#"{"prompt":"x"}"#.utf8))
        XCTAssertEqual(locked.status, 403)
        XCTAssertTrue((try object(locked)["detail"] as? String ?? "").hasPrefix("User is locked. Reason: Exhausted balance"))
        XCTAssertEqual(try send("GET", "\(standIn.baseURL)/v1/account/billing?expand=credits", headers: ["authorization": "Key wrong"]).status, 401)
        let billing = try object(try send("GET", "\(standIn.baseURL)/v1/account/billing?expand=credits", headers: auth))
        XCTAssertEqual((billing["credits"] as? [String: Any])?["currency"] as? String, "USD", "fal's Platform API: credits.current_balance and currency")
    }
}

final class KlingStandInFidelityTests: StandInFidelityTestCase {
    var standIn: KlingStandIn!
    let clock = VirtualClock(startUnixMs: Int64(Date().timeIntervalSince1970 * 1000))

    override func setUp() async throws {
        standIn = try await started(KlingStandIn(clock: clock))
    }

    func token(_ access: String, _ secret: String, exp: Int = 1800) -> String {
        let now = Int(Date().timeIntervalSince1970)
        return JWT.hs256(payload: Data(#"{"exp":\#(now + exp),"iss":"\#(access)","nbf":\#(now - 5)}"#.utf8), secret: Data(secret.utf8))
    }

    func headers(_ token: String) -> [String: String] { ["authorization": "Bearer \(token)", "content-type": "application/json"] }

    func testTasksMoveWithTimeInsideKlingsEnvelope() throws {
        let shapes = try shapes("kling")
        standIn.configure { $0.queueMs = 1_000; $0.processingMs = 5_000 }
        let auth = headers(token(standIn.accessKey, standIn.secretKey))
        let created = try object(try send("POST", "\(standIn.baseURL)/v1/videos/text2video", headers: auth, body: Data(#"{"prompt":"a fox","duration":"10","mode":"pro"}"#.utf8)))
        assertShape(created, "envelope", in: shapes)
        let id = try XCTUnwrap((created["data"] as? [String: Any])?["task_id"] as? String)
        func state() throws -> [String: Any] { try XCTUnwrap(try object(try send("GET", "\(standIn.baseURL)/v1/videos/text2video/\(id)", headers: auth))["data"] as? [String: Any]) }
        for _ in 0..<5 { XCTAssertEqual(try state()["task_status"] as? String, "submitted") }
        clock.advance(ms: 1_000)
        XCTAssertEqual(try state()["task_status"] as? String, "processing")
        clock.advance(ms: 5_000)
        let done = try state()
        assertShape(done, "task.succeed", in: shapes)
        let video = try XCTUnwrap(((done["task_result"] as? [String: Any])?["videos"] as? [[String: Any]])?.first)
        XCTAssertEqual(video["duration"] as? String, "10", "duration is a string, as Kling sends it")
    }

    func testAuthCodesAndTheAcceptAnyKeyMode() throws {
        let unknown = try object(try send("GET", "\(standIn.baseURL)/v1/videos/text2video?pageNum=1&pageSize=1", headers: headers(token("ak_other", "sk_other"))))
        XCTAssertEqual(unknown["code"] as? Int, 1000)
        let expired = try object(try send("GET", "\(standIn.baseURL)/v1/videos/text2video?pageNum=1&pageSize=1", headers: headers(token(standIn.accessKey, standIn.secretKey, exp: -10))))
        XCTAssertEqual(expired["code"] as? Int, 1004)
        standIn.acceptAnyKey = true
        let any = try object(try send("GET", "\(standIn.baseURL)/v1/videos/text2video?pageNum=1&pageSize=1", headers: headers(token("sy-canary-ak", "sy-canary-sk"))))
        XCTAssertEqual(any["code"] as? Int, 0, "any well-formed, unexpired token: what the conformance kit needs")
        let stale = try object(try send("GET", "\(standIn.baseURL)/v1/videos/text2video?pageNum=1&pageSize=1", headers: headers(token("sy-canary-ak", "x", exp: -10))))
        XCTAssertEqual(stale["code"] as? Int, 1004, "times are still checked")
        let costs = try object(try send("GET", "\(standIn.baseURL)/account/costs?start_time=0&end_time=\(clock.nowUnixMs())", headers: headers(token("any", "any"))))
        let packs = try XCTUnwrap((costs["data"] as? [String: Any])?["resource_pack_subscribe_infos"] as? [[String: Any]])
        for pack in packs { assertShape(pack, "resource_pack", in: try shapes("kling")) }
    }
}

final class ModalStandInFidelityTests: StandInFidelityTestCase {
    var standIn: ModalStandIn!
    let clock = VirtualClock(startUnixMs: 1_767_225_600_000)

    override func setUp() async throws {
        standIn = try await started(ModalStandIn(clock: clock))
    }

    var auth: [String: String] { ["modal-key": standIn.key, "modal-secret": standIn.secret, "content-type": "application/json"] }

    func testProxyAuthPendingResultsAndUsageAnswerAsModalAndTheShippedAppDo() throws {
        let shapes = try shapes("modal")
        let missing = try send("GET", "\(standIn.baseURL)/health")
        XCTAssertEqual(missing.status, 401)
        XCTAssertEqual(String(decoding: missing.body, as: UTF8.self), "modal-http: missing credentials for proxy authorization")
        standIn.configure { $0.runMs = 3_000 }
        let spawned = try object(try send("POST", "\(standIn.baseURL)/spawn", headers: auth, body: Data(#"{"capability":"image.generate","inputs":{"prompt":"x"}}"#.utf8)))
        let id = try XCTUnwrap(spawned["call_id"] as? String)
        for _ in 0..<5 { XCTAssertEqual(try send("GET", "\(standIn.baseURL)/result/\(id)", headers: auth).status, 202) }
        clock.advance(ms: 3_000)
        let result = try object(try send("GET", "\(standIn.baseURL)/result/\(id)", headers: auth))
        assertShape(result, "result.SUCCESS", in: shapes)
        XCTAssertEqual((result["usage"] as? [String: Any])?["execution_ms"] as? Int, 3_000, "the GPU time the app measured")
        clock.advance(ms: 8 * 24 * 3600 * 1000)
        XCTAssertEqual(try send("GET", "\(standIn.baseURL)/result/\(id)", headers: auth).status, 410, "results are kept 7 days")
    }
}

final class StripeStandInFidelityTests: StandInFidelityTestCase {
    var standIn: StripeStandIn!

    override func setUp() async throws {
        standIn = try await started(StripeStandIn())
    }

    func post(_ path: String, _ form: String, key: String? = UUID().uuidString) throws -> HostHTTPResponse {
        var headers = ["authorization": "Bearer \(standIn.apiKey)", "content-type": "application/x-www-form-urlencoded"]
        headers["idempotency-key"] = key
        return try send("POST", standIn.baseURL + path, headers: headers, body: Data(form.utf8))
    }

    func testItsClockFollowsWallTime() throws {
        let before = standIn.clock.nowUnixMs()
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertGreaterThanOrEqual(standIn.clock.nowUnixMs() - before, 190, "not frozen at start: meter timestamps are checked against now")
        XCTAssertLessThan(abs(standIn.clock.nowUnixMs() - Int64(Date().timeIntervalSince1970 * 1000)), 1_000)
        let stamped = Int(Date().timeIntervalSince1970)
        let accepted = try post("/v1/billing/meter_events", "event_name=usage&payload%5Bstripe_customer_id%5D=cus_1&payload%5Bvalue%5D=3&timestamp=\(stamped)")
        XCTAssertEqual(accepted.status, 200, String(decoding: accepted.body, as: UTF8.self))
        let ahead = try post("/v1/billing/meter_events", "event_name=usage&payload%5Bstripe_customer_id%5D=cus_1&payload%5Bvalue%5D=3&timestamp=\(stamped + 600)")
        XCTAssertEqual(ahead.status, 400, "more than 5 minutes in the future")
    }

    func testErrorsListsMetersAndCheckoutHaveStripesShapes() throws {
        let shapes = try shapes("stripe")
        let unauthorized = try send("GET", standIn.baseURL + "/v1/billing/meters", headers: ["authorization": "Bearer sk_test_wrong"])
        XCTAssertEqual(unauthorized.status, 401)
        assertShape(try XCTUnwrap(try object(unauthorized)["error"] as? [String: Any]), "error", in: shapes)
        XCTAssertEqual(try post("/v1/billing/meters", "display_name=Usage&event_name=switchyard_usage_minor&default_aggregation%5Bformula%5D=sum").status, 200)
        let list = try object(try send("GET", standIn.baseURL + "/v1/billing/meters?limit=1", headers: ["authorization": "Bearer \(standIn.apiKey)"]))
        assertShape(list, "list", in: shapes)
        assertShape(try XCTUnwrap((list["data"] as? [[String: Any]])?.first), "billing.meter", in: shapes)
        let session = try object(try post("/v1/checkout/sessions", "mode=payment&success_url=https%3A%2F%2Fx&customer=cus_1&line_items%5B0%5D%5Bquantity%5D=1&line_items%5B0%5D%5Bprice_data%5D%5Bcurrency%5D=usd&line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=1000"))
        assertShape(session, "checkout.session", in: shapes)
        XCTAssertEqual(session["payment_status"] as? String, "unpaid", "open until the customer pays")
        standIn.payCheckout(try XCTUnwrap(session["id"] as? String))
        let event = try XCTUnwrap(standIn.sentEvents.last)
        assertShape(event, "event", in: shapes)
        let listed = Set(try String(contentsOf: Build.repository.appendingPathComponent("Tests/Fixtures/stripe/event_types.txt"), encoding: .utf8).split(separator: "\n").map(String.init))
        for sent in standIn.sentEvents { XCTAssertTrue(listed.contains(sent["type"] as? String ?? ""), "\(sent["type"] ?? "") is a Stripe event type") }
    }
}

/// `yard standin …` says where it listens at once, on stderr, without buffering:
/// a script reading a pipe sees the banner while the stand-in runs.
final class StandInBannerTests: TemporaryDirectoryTestCase {
    func testEveryStandInPrintsItsBannerOnStderrAtOnce() throws {
        for name in ["runpod", "fal", "stripe", "kling", "modal", "comfyui", "hf"] {
            let process = Process()
            process.executableURL = Build.yard
            process.arguments = ["standin", name, "--port", "0"]
            process.environment = yardEnvironment(home: dir.appendingPathComponent("h"))
            let err = Pipe(), out = Pipe()
            process.standardError = err
            process.standardOutput = out
            try process.run()
            defer { if process.isRunning { process.terminate() }; process.waitUntilExit() }
            let banner = String(decoding: err.fileHandleForReading.availableData, as: UTF8.self)
            XCTAssertTrue(banner.contains("stand-in on http://127.0.0.1:"), "\(name): \(banner)")
            process.terminate()
            process.waitUntilExit()
            XCTAssertEqual(out.fileHandleForReading.readDataToEndOfFile().count, 0, "\(name): stdout stays free for data")
        }
    }
}
