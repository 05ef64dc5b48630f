import Foundation
import SwitchyardPluginSDK
import XCTest

/// The SDK's HTTP helpers every adapter reads provider answers with.
final class HTTPHelperTests: XCTestCase {
    /// RFC 9110's own example instant: Sun, 06 Nov 1994 08:49:37 GMT.
    let example = Date(timeIntervalSince1970: 784_111_777)

    func response(_ status: Int, retryAfter: String? = nil) -> HTTPResponse {
        let headers = retryAfter.map { ["retry-after": $0] } ?? [:]
        let json = try! JSONSerialization.data(withJSONObject: ["status": status, "headers": headers, "body_base64": ""])
        return try! JSONDecoder().decode(HTTPResponse.self, from: json)
    }

    func testOnly2xxIsASuccess() {
        XCTAssertTrue(response(200).isSuccess)
        XCTAssertTrue(response(204).isSuccess)
        XCTAssertTrue(response(299).isSuccess)
        XCTAssertFalse(response(199).isSuccess)
        XCTAssertFalse(response(300).isSuccess)
        XCTAssertFalse(response(404).isSuccess)
    }

    func testRetryAfterInDeltaSeconds() {
        XCTAssertEqual(RetryAfter.milliseconds("120", now: example), 120_000)
        XCTAssertEqual(RetryAfter.milliseconds("0", now: example), 0)
        XCTAssertEqual(RetryAfter.milliseconds(" 3 ", now: example), 3_000)
        XCTAssertEqual(RetryAfter.milliseconds("1.5", now: example), 1_500, "some providers send fractional seconds")
        XCTAssertNil(RetryAfter.milliseconds("-5", now: example))
        XCTAssertNil(RetryAfter.milliseconds("soon", now: example))
        XCTAssertNil(RetryAfter.milliseconds("", now: example))
    }

    func testRetryAfterAsAnHTTPDateInEachOfTheThreeForms() {
        // IMF-fixdate, the form senders must use; 90 s after `now`.
        XCTAssertEqual(RetryAfter.milliseconds("Sun, 06 Nov 1994 08:51:07 GMT", now: example), 90_000)
        // Obsolete RFC 850 and asctime forms, which recipients must still accept.
        XCTAssertEqual(RetryAfter.milliseconds("Sunday, 06-Nov-94 08:50:37 GMT", now: example), 60_000)
        XCTAssertEqual(RetryAfter.milliseconds("Sun Nov  6 08:50:07 1994", now: example), 30_000)
    }

    func testAnHTTPDateAlreadyPastAsksForNoWait() {
        XCTAssertEqual(RetryAfter.milliseconds("Sun, 06 Nov 1994 08:00:00 GMT", now: example), 0)
    }

    func testResponseReadsItsRetryAfterHeader() {
        XCTAssertEqual(response(429, retryAfter: "7").retryAfterMs(now: example), 7_000)
        XCTAssertEqual(response(503, retryAfter: "Sun, 06 Nov 1994 08:49:47 GMT").retryAfterMs(now: example), 10_000)
        XCTAssertNil(response(429).retryAfterMs(now: example))
        XCTAssertNil(response(429, retryAfter: "Tuesday").retryAfterMs(now: example))
    }

    func testDefaultStatusMapping() {
        let rateLimited = PluginError.forHTTPStatus(429, provider: "Acme", detail: "slow down", retryAfterMs: 4_000)
        XCTAssertEqual(rateLimited.code, "RATE_LIMITED")
        XCTAssertTrue(rateLimited.retryable)
        XCTAssertEqual(rateLimited.charged, .no)
        XCTAssertEqual(rateLimited.retryAfterMs, 4_000)
        XCTAssertEqual(PluginError.forHTTPStatus(429, provider: "Acme", detail: "").retryAfterMs, 1_000, "without Retry-After, the default wait")

        XCTAssertEqual(PluginError.forHTTPStatus(401, provider: "Acme", detail: "").code, "AUTH_FAILED")
        XCTAssertEqual(PluginError.forHTTPStatus(403, provider: "Acme", detail: "").code, "AUTH_FAILED")
        XCTAssertEqual(PluginError.forHTTPStatus(402, provider: "Acme", detail: "").code, "INSUFFICIENT_FUNDS")
        let invalid = PluginError.forHTTPStatus(422, provider: "Acme", detail: "prompt is required")
        XCTAssertEqual(invalid.code, "CONTRACT_MISMATCH")
        XCTAssertFalse(invalid.retryable)
        XCTAssertTrue(invalid.message.contains("prompt is required"))
        XCTAssertEqual(PluginError.forHTTPStatus(404, provider: "Acme", detail: "").code, "RESULT_EXPIRED")
        XCTAssertEqual(PluginError.forHTTPStatus(418, provider: "Acme", detail: "").code, "ENGINE_ERROR")

        let polling = PluginError.forHTTPStatus(502, provider: "Acme", detail: "")
        XCTAssertEqual(polling.code, "ENGINE_UNAVAILABLE")
        XCTAssertTrue(polling.retryable)
        XCTAssertEqual(polling.charged, .no)
        XCTAssertEqual(PluginError.forHTTPStatus(502, provider: "Acme", detail: "", submitting: true).charged, .unknown,
                       "a 5xx answer to a submit leaves open whether the job was created")
        XCTAssertEqual(PluginError.forHTTPStatus(503, provider: "Acme", detail: "", retryAfterMs: 9_000).retryAfterMs, 9_000)
    }
}
