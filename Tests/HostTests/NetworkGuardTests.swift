import Foundation
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost

/// No test, conformance run or suite command contacts a host that is not
/// loopback: the guard refuses the request before a name is looked up or a
/// socket opened, and records it so the run fails.
final class NetworkGuardTests: TemporaryDirectoryTestCase {
    override func tearDown() {
        // These tests make refusals on purpose; they are checked here, not failed in the base class.
        NetworkGuard.resetViolations()
        super.tearDown()
    }

    func testOnlyLoopbackNamesPass() throws {
        for host in ["127.0.0.1", "127.8.9.10", "localhost", "api.localhost", "::1", "[::1]"] { XCTAssertTrue(NetworkGuard.isLoopback(host), host) }
        for host in ["api.runpod.ai", "10.0.0.1", "0.0.0.0", "localhost.example.com", "128.0.0.1", "::2"] { XCTAssertFalse(NetworkGuard.isLoopback(host), host) }
        XCTAssertNoThrow(try NetworkGuard.check(url: "http://127.0.0.1:8080/v2"))
        XCTAssertThrowsError(try NetworkGuard.check(url: "https://api.runpod.ai/v2/e/run"))
        XCTAssertEqual(NetworkGuard.violations.first?.hasPrefix("api.runpod.ai"), true)
    }

    func testTheHostsTransportRefusesARealProviderAtOnceWithoutLookingItUp() throws {
        let started = Date()
        XCTAssertThrowsError(try BlockingHTTPTransport(defaultTimeoutMs: 30_000).perform(HostHTTPRequest(method: "GET", url: "https://rest.runpod.io/v1/endpoints"))) { error in
            guard case HostHTTPError.notSent = error else { return XCTFail("refused before anything was sent: \(error)") }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.5, "no DNS query, no connect timeout")
        XCTAssertEqual(NetworkGuard.violations.map { $0.prefix(14) }, ["rest.runpod.io"])
    }

    func testAnEngineCheckedWithADefaultProviderURLIsCaught() async throws {
        // RunPod's health without an endpoint asks its REST API, by default rest.runpod.io: a test that forgot to override it is caught.
        let plugins = dir.appendingPathComponent("plugins")
        try copyPlugin("runpod", to: plugins)
        let engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: plugins, secrets: ["RUNPOD_API_KEY": "k"])
        let health = await engine.health(of: try engine.plugin("runpod"), config: [:], maxAge: 0)
        XCTAssertEqual(health.status, "offline")
        XCTAssertTrue(NetworkGuard.violations.contains { $0.hasPrefix("rest.runpod.io") }, "\(NetworkGuard.violations)")
    }

    func testAConformanceCheckThatReachesARealHostFails() throws {
        let result = try yard(["plugin", "test", "runpod", "--standin", "--json", "--config", #"{"base_url":"https://api.runpod.ai/v2"}"#],
                              home: dir.appendingPathComponent("h"), expectRefusals: true)
        XCTAssertEqual(result.status, 1)
        let checks = try XCTUnwrap((result.json as? [String: Any])?["checks"] as? [[String: Any]], result.stdout + result.stderr)
        let lifecycle = try XCTUnwrap(checks.first { $0["id"] as? String == "lifecycle.submit_poll" })
        XCTAssertEqual(lifecycle["ok"] as? Bool, false)
        XCTAssertTrue((lifecycle["detail"] as? String ?? "").contains("contacted hosts outside loopback: api.runpod.ai"), "\(lifecycle)")
    }
}
