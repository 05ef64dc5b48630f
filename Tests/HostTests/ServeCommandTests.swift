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

    /// A newcomer's first `yard serve` prints a link that opens the page
    /// signed in (an admin token in the fragment), once: a later start, or a
    /// store that already has a token, prints none.
    func testFirstServePrintsASetupLinkWithAnAdminTokenOnce() async throws {
        func serve(_ flags: [String], expectLink: Bool = false) throws -> (Process, base: String, stderr: String) {
            let serve = Process()
            serve.executableURL = Build.yard
            serve.arguments = ["serve", "--port", "0"] + flags
            serve.environment = yardEnvironment(home: home)
            let out = Pipe(), err = Pipe()
            serve.standardOutput = out
            serve.standardError = err
            try serve.run()
            let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
            guard let base = line.split(separator: " ").last.map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) }), base.hasPrefix("http://") else {
                serve.terminate()
                throw YardError("SERVE_FAILED", "yard serve did not start: \(line)", remediation: "Run it by hand to see why.")
            }
            // What serve writes on stderr (the link follows the listening line at once), read as it arrives.
            let collected = LockedText()
            err.fileHandleForReading.readabilityHandler = { handle in collected.append(handle.availableData) }
            let deadline = Date().addingTimeInterval(expectLink ? 10 : 0.5)
            while !(expectLink && collected.text.contains("\n\n")) && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            let text = collected.text
            return (serve, base, text)
        }

        // Not on a terminal and not asked: no token is made.
        let quiet = try serve([])
        quiet.0.terminate(); quiet.0.waitUntilExit()
        XCTAssertEqual((try yard(["tokens", "list", "--json"], home: home).json as? [Any])?.count, 0)

        let first = try serve(["--setup-link"], expectLink: true)
        defer { first.0.terminate(); first.0.waitUntilExit() }
        let link = try XCTUnwrap(first.stderr.split(separator: " ").first { $0.contains("/#token=") }, first.stderr)
        XCTAssertTrue(link.hasPrefix("\(first.base)/#token=yard_"), String(link))
        let token = String(link.split(separator: "=", maxSplits: 1)[1])
        var request = HTTPClientRequest(url: "\(first.base)/api/v1/engines")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
        XCTAssertEqual(response.status.code, 200, "the link's token is an admin token")
        let page = try await HTTPClient.shared.execute(HTTPClientRequest(url: "\(first.base)/"), timeout: .seconds(20))
        let html = String(buffer: try await page.body.collect(upTo: 4 << 20))
        XCTAssertTrue(html.contains("#token="), "the page takes the token from the link's fragment")
        first.0.terminate(); first.0.waitUntilExit()

        let rows = try XCTUnwrap(try yard(["tokens", "list", "--json"], home: home).json as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["scope"] as? String }, ["admin"])
        XCTAssertEqual(rows.first?["account"] as? String, "default")
        let again = try serve(["--setup-link"])
        again.0.terminate(); again.0.waitUntilExit()
        XCTAssertFalse(again.stderr.contains("#token="), "a store with a live token gets no new one")
        XCTAssertEqual((try yard(["tokens", "list", "--json"], home: home).json as? [Any])?.count, 1)
    }
}

/// Text a pipe's reader appends to from its own thread.
final class LockedText: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ more: Data) { lock.withLock { data.append(more) } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}
