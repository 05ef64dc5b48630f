import AsyncHTTPClient
import NIOCore
import Foundation
import XCTest
@testable import SwitchyardHost

/// The `yard serve` and `yard tokens` commands of the built binary: the server
/// drives the store while it runs, and tokens are shown once.
final class ServeCommandTests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }

    func testTokensAreShownOnceListedWithoutTheTokenAndRevocable() throws {
        let created = try yard(["tokens", "create", "--account", "acme", "--scope", "run", "--name", "ci", "--json"], home: home)
        XCTAssertEqual(created.status, 0, created.stderr)
        let doc = try XCTUnwrap(created.json as? [String: Any], created.stdout)
        let token = try XCTUnwrap(doc["token"] as? String)
        let id = try XCTUnwrap(doc["id"] as? String)
        XCTAssertTrue(token.hasPrefix("yard_"))

        let listed = try yard(["tokens", "list", "--json"], home: home)
        XCTAssertFalse(listed.stdout.contains(String(token.dropFirst(5))), "the token itself is never shown again")
        let rows = try XCTUnwrap(listed.json as? [[String: Any]], listed.stdout)
        XCTAssertEqual(rows.first?["account"] as? String, "acme")
        XCTAssertEqual(rows.first?["scope"] as? String, "run")

        XCTAssertEqual(try yard(["tokens", "revoke", id], home: home).status, 0)
        let after = try yard(["tokens", "list", "--json"], home: home)
        XCTAssertNotNil((after.json as? [[String: Any]])?.first?["revoked_at"] as? String, after.stdout)
        let missing = try yard(["tokens", "revoke", "tok_nothing"], home: home)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("TOKEN_NOT_FOUND"), missing.stderr)
        let badScope = try yard(["tokens", "create", "--account", "acme", "--scope", "root"], home: home)
        XCTAssertEqual(badScope.status, 2, badScope.stderr)
    }

    func testServeDrivesWhatAnyoneSubmitsAndOthersOnlyRead() async throws {
        let token = try XCTUnwrap((try yard(["tokens", "create", "--account", "acme", "--scope", "run", "--json"], home: home).json as? [String: Any])?["token"] as? String)
        let (serve, base) = try startYardServe(home: home)
        defer { serve.terminate(); serve.waitUntilExit() }

        // A job submitted over the API and one detached from the CLI: serve drives both to the end.
        var request = HTTPClientRequest(url: "\(base)/api/v1/jobs")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(Array(#"{"engine":"echo","capability":"debug.echo","inputs":{"text":"served","polls":3}}"#.utf8))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
        XCTAssertEqual(response.status.code, 201)
        let body = try await response.body.collect(upTo: 1 << 20)
        let apiJob = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])?["id"] as? String)
        let detached = try yard(["run", "debug.echo", "--input", "text=detached", "--input", "polls=3", "--detach", "--json"], home: home)
        XCTAssertEqual(detached.status, 0, detached.stderr)
        let cliJob = try XCTUnwrap((detached.json as? [String: Any])?["id"] as? String, detached.stdout)
        XCTAssertEqual(StoreDriver.driverPID(paths: YardPaths(home: home)), serve.processIdentifier, "serve holds the driver lock; no background driver was started")

        for id in [apiJob, cliJob] {
            let logs = try yard(["jobs", "logs", id, "--follow"], home: home)
            XCTAssertEqual(logs.status, 0, logs.stderr)
            let shown = try yard(["jobs", "show", id, "--json"], home: home)
            XCTAssertEqual((shown.json as? [String: Any])?["state"] as? String, "succeeded", shown.stdout)
        }
        let resume = try yard(["jobs", "resume", "--json"], home: home)
        XCTAssertEqual((resume.json as? [String: Any])?["driven_by"] as? Int, Int(serve.processIdentifier), resume.stdout)
    }
}
