import AsyncHTTPClient
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

/// The HTTP API of `yard serve`, in process over loopback (HummingbirdTesting's
/// live server), with the store's daemon driving the echo engine's jobs.
class ServerTestCase: TemporaryDirectoryTestCase {
    var engine: JobEngine!
    var server: YardServer!
    var home: URL { dir.appendingPathComponent("home") }
    var options: YardServer.Options {
        var options = YardServer.Options()
        options.port = 0
        options.rateLimitPerSecond = 0
        options.streamPollSeconds = 0.02
        options.outboxIntervalSeconds = 0
        options.maxBodyBytes = 1 << 16
        return options
    }

    override func setUpWithError() throws {
        try super.setUpWithError()
        let plugins = dir.appendingPathComponent("plugins")
        try copyPlugin("echo", to: plugins)
        engine = try makeServerEngine(plugins: plugins)
        server = try YardServer(engine: engine, options: options, presets: PresetLibrary(directory: Build.repository.appendingPathComponent("Registry/presets")))
    }

    /// An engine whose secrets are the store's vault (so connecting an engine takes effect), with no environment.
    func makeServerEngine(plugins: URL) throws -> JobEngine {
        let paths = YardPaths(home: home)
        let engine = JobEngine(store: try SQLiteJobStore(path: paths.jobStoreFile), paths: paths,
                               registry: PluginRegistry(paths: paths, extraPaths: [plugins.path], environment: [:], bundled: nil),
                               catalog: try CapabilityCatalog.load(directory: Build.repository.appendingPathComponent("Registry/capabilities")),
                               secrets: SecretVault(paths: paths, environment: [:]), http: BlockingHTTPTransport(defaultTimeoutMs: 2_000))
        engine.policy.baseBackoffMs = 2
        engine.runner.idleTimeoutSeconds = 10
        return engine
    }

    func token(_ account: String, _ scope: TokenScope) throws -> String {
        try server.store.createToken(account: account, scope: scope).token
    }

    /// Runs `body` against the live server with the daemon driving the store.
    func withServer(drive: Bool = true, _ body: @escaping @Sendable (APIClient) async throws -> Void) async throws {
        let daemon = drive ? server.daemon : nil
        daemon?.scanIntervalSeconds = 0.02
        let driving = Task { await daemon?.run() }
        defer { driving.cancel() }
        try await server.application().test(.live) { client in
            try await body(APIClient(client: client))
        }
        driving.cancel()
        await driving.value
    }
}

/// Requests as a client sends them, answers as JSON values.
struct APIClient: Sendable {
    let client: any TestClientProtocol
    var port: Int { client.port ?? 0 }

    struct Answer {
        var status: Int
        var headers: HTTPFields
        var body: ByteBuffer
        var json: JSONValue? { try? JSONValue(parsing: Data(body.readableBytesView)) }
        var text: String { String(buffer: body) }
        var errorCode: String? { json?["error"]?["code"]?.stringValue }
    }

    @discardableResult
    func call(_ method: HTTPRequest.Method, _ uri: String, token: String? = nil, json: JSONValue? = nil, body: ByteBuffer? = nil,
              headers extra: HTTPFields = [:]) async throws -> Answer {
        var headers = extra
        if let token { headers[.authorization] = "Bearer \(token)" }
        var payload = body
        if let json {
            headers[.contentType] = "application/json"
            payload = ByteBuffer(bytes: json.serialized())
        }
        let response = try await client.executeRequest(uri: uri, method: method, headers: headers, body: payload)
        return Answer(status: Int(response.status.code), headers: response.headers, body: response.body)
    }

    func submitEcho(_ text: String, token: String, polls: Int = 0, key: String? = nil) async throws -> Answer {
        var headers: HTTPFields = [:]
        if let key { headers[HTTPField.Name("Idempotency-Key")!] = key }
        return try await call(.post, "/api/v1/jobs", token: token,
                              json: ["engine": "echo", "capability": "debug.echo", "inputs": ["text": .string(text), "polls": .number(Double(polls))]],
                              headers: headers)
    }

    /// Reads the job until it is finished (the daemon drives it), at most 20 s.
    func waitFinished(_ id: String, token: String, file: StaticString = #filePath, line: UInt = #line) async throws -> JSONValue {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let answer = try await call(.get, "/api/v1/jobs/\(id)", token: token)
            if let state = answer.json?["state"]?.stringValue, JobPhase(rawValue: state)?.isTerminal == true, let job = answer.json { return job }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        XCTFail("\(id) did not finish within 20 s", file: file, line: line)
        return .null
    }
}

final class ServerAPITests: ServerTestCase {
    func testTokensAreStoredAsDigestsScopedAndRevocable() async throws {
        let (secret, record) = try server.store.createToken(account: "acme", scope: .read, name: "dashboard")
        XCTAssertTrue(secret.hasPrefix("yard_"))
        let stored = try server.store.pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM api_token") }
        XCTAssertEqual(stored.count, 1)
        XCTAssertFalse(stored.description.contains(String(secret.dropFirst(5))), "only the digest is kept")
        XCTAssertEqual(stored.first?["token_sha256"] as String?, APIStore.digest(secret))
        XCTAssertThrowsError(try server.store.createToken(account: "Acme/../x", scope: .read))

        let store = server.store
        try await withServer(drive: false) { api in
            let anonymous = try await api.call(.get, "/api/v1/jobs")
            XCTAssertEqual(anonymous.status, 401)
            XCTAssertEqual(anonymous.errorCode, "AUTH_REQUIRED")
            XCTAssertEqual(Set(anonymous.json?["error"]?.objectValue?.keys.map { $0 } ?? []), ["code", "message", "remediation", "field"])

            let forged = try await api.call(.get, "/api/v1/jobs", token: "yard_" + String(repeating: "0", count: 64))
            XCTAssertEqual(forged.status, 401)
            XCTAssertEqual(forged.errorCode, "TOKEN_INVALID")
            XCTAssertEqual(forged.headers[.wwwAuthenticate], "Bearer")

            let answer1 = try await api.call(.get, "/api/v1/jobs", token: secret).status
            XCTAssertEqual(answer1, 200)
            let submit = try await api.submitEcho("no", token: secret)
            XCTAssertEqual(submit.status, 403)
            XCTAssertEqual(submit.errorCode, "SCOPE_INSUFFICIENT")
            let answer2 = try await api.call(.get, "/api/v1/engines", token: secret).errorCode
            XCTAssertEqual(answer2, "SCOPE_INSUFFICIENT", "engines are admin's")
            let answer3 = try await api.call(.get, "/metrics", token: secret).status
            XCTAssertEqual(answer3, 403)

            try store.revoke(record.id)
            let answer4 = try await api.call(.get, "/api/v1/jobs", token: secret).errorCode
            XCTAssertEqual(answer4, "TOKEN_INVALID", "a revoked token is refused at once")
        }
        XCTAssertNotNil(try server.store.tokens().first?.lastUsedAt)
    }

    func testAJobSubmittedOverTheAPIIsDrivenToTheEndOnceperIdempotencyKey() async throws {
        let run = try token("acme", .run)
        try await withServer { api in
            let first = try await api.submitEcho("hello", token: run, polls: 2, key: "order-17")
            XCTAssertEqual(first.status, 201, first.text)
            let id = try XCTUnwrap(first.json?["id"]?.stringValue)
            XCTAssertEqual(first.headers[.location], "/api/v1/jobs/\(id)")
            XCTAssertEqual(first.json?["idempotency_key"]?.stringValue, "order-17", "the key as the client sent it")

            let again = try await api.submitEcho("hello", token: run, polls: 2, key: "order-17")
            XCTAssertEqual(again.status, 200)
            XCTAssertEqual(again.json?["id"]?.stringValue, id, "the same key is the same job")
            let other = try await api.submitEcho("other text", token: run, polls: 2, key: "order-17")
            XCTAssertEqual(other.status, 409)
            XCTAssertEqual(other.errorCode, "IDEMPOTENCY_CONFLICT")

            let finished = try await api.waitFinished(id, token: run)
            XCTAssertEqual(finished["state"]?.stringValue, "succeeded", "\(finished)")
            XCTAssertEqual(finished["outputs"]?["text"]?.stringValue, "hello")
            let events = try await api.call(.get, "/api/v1/jobs/\(id)/events", token: run)
            XCTAssertGreaterThan(events.json?["events"]?.arrayValue?.count ?? 0, 0, events.text)
            let answer5 = try await api.call(.post, "/api/v1/jobs/\(id)/resume", token: run).errorCode
            XCTAssertEqual(answer5, "JOB_FINISHED")
        }
        XCTAssertEqual(try engine.store.jobs(limit: 10, phase: nil).count, 1, "one job for the three submits")
    }

    func testOneAccountNeverSeesAnothersJobsArtifactsOrCredits() async throws {
        let ledger = JobLedger(store: try XCTUnwrap(engine.store as? SQLiteJobStore), config: platformBilling(account: "house"), prices: PriceBook(directories: []))
        engine.ledger = ledger
        _ = try ledger.grant(account: "acme", amountMinor: 500, currency: "USD")
        let acme = try token("acme", .run), beta = try token("beta", .admin)
        try await withServer { api in
            let submitted = try await api.submitEcho("acme's secret plan", token: acme)
            let id = try XCTUnwrap(submitted.json?["id"]?.stringValue, submitted.text)
            let job = try await api.waitFinished(id, token: acme)
            let handle = try XCTUnwrap(job["outputs"]?["file"]?["artifact"]?.stringValue, "\(job)")
            let digest = String(handle.dropFirst("sha256:".count))

            // beta, even as admin, meets acme's work as if it did not exist.
            let seen = try await api.call(.get, "/api/v1/jobs/\(id)", token: beta)
            XCTAssertEqual(seen.status, 404)
            XCTAssertEqual(seen.errorCode, "JOB_NOT_FOUND")
            let answer6 = try await api.call(.get, "/api/v1/jobs", token: beta).json?["jobs"]?.arrayValue?.count
            XCTAssertEqual(answer6, 0)
            let answer7 = try await api.call(.post, "/api/v1/jobs/\(id)/cancel", token: beta).status
            XCTAssertEqual(answer7, 404)
            let answer8 = try await api.call(.get, "/api/v1/jobs/\(id)/events", token: beta).status
            XCTAssertEqual(answer8, 404)
            let answer9 = try await api.call(.get, "/api/v1/artifacts/\(digest)", token: beta).errorCode
            XCTAssertEqual(answer9, "ARTIFACT_NOT_FOUND")
            let betaStream = try await api.call(.get, "/api/v1/jobs/\(id)/stream", token: beta)
            XCTAssertEqual(betaStream.status, 404)
            // Nor can beta feed acme's artifact into a job of its own.
            let borrowed = try await api.call(.post, "/api/v1/jobs", token: beta, json: [
                "engine": "echo", "capability": "debug.echo", "inputs": ["text": "x", "polls": 0, "file": ["artifact": .string(handle)]]])
            XCTAssertEqual(borrowed.errorCode, "ARTIFACT_NOT_FOUND")

            let answer10 = try await api.call(.get, "/api/v1/jobs", token: acme).json?["jobs"]?.arrayValue?.count
            XCTAssertEqual(answer10, 1)
            let file = try await api.call(.get, "/api/v1/artifacts/\(digest)", token: acme)
            XCTAssertEqual(file.status, 200)
            XCTAssertEqual(file.text, "acme's secret plan")
            XCTAssertEqual(file.headers[.contentType], "text/plain")
            let part = try await api.call(.get, "/api/v1/artifacts/\(digest)", token: acme, headers: [.range: "bytes=7-12"])
            XCTAssertEqual(part.status, 206)
            XCTAssertEqual(part.text, "secret")
            XCTAssertEqual(part.headers[.contentRange], "bytes 7-12/18")
            let beyond = try await api.call(.get, "/api/v1/artifacts/\(digest)", token: acme, headers: [.range: "bytes=99-"])
            XCTAssertEqual(beyond.status, 416)
            XCTAssertEqual(beyond.headers[.contentRange], "bytes */18")

            let acmeCredits = try await api.call(.get, "/api/v1/credits", token: acme)
            XCTAssertEqual(acmeCredits.json?["account"]?.stringValue, "acme")
            XCTAssertEqual(acmeCredits.json?["available_minor"]?.intValue, 500)
            let betaCredits = try await api.call(.get, "/api/v1/credits", token: beta)
            XCTAssertEqual(betaCredits.json?["account"]?.stringValue, "beta")
            XCTAssertEqual(betaCredits.json?["available_minor"]?.intValue, 0)
            let history = try await api.call(.get, "/api/v1/credits/history", token: beta)
            XCTAssertEqual(history.json?["postings"]?.arrayValue?.count, 0, history.text)
            let answer11 = try await api.call(.get, "/api/v1/credits/history", token: acme).json?["postings"]?.arrayValue?.count ?? 0
            XCTAssertGreaterThan(answer11, 0)
        }
        XCTAssertLedgerBalances(ledger)
    }

    func testUploadsBelongToTheirAccount() async throws {
        let acme = try token("acme", .run), beta = try token("beta", .run)
        try await withServer(drive: false) { api in
            let upload = try await api.call(.post, "/api/v1/artifacts", token: acme, body: ByteBuffer(string: "PNG-ish bytes"), headers: [.contentType: "image/png"])
            XCTAssertEqual(upload.status, 201, upload.text)
            let handle = try XCTUnwrap(upload.json?["artifact"]?.stringValue)
            let digest = String(handle.dropFirst(7))
            let mine = try await api.call(.get, "/api/v1/artifacts/\(digest)", token: acme)
            XCTAssertEqual(mine.headers[.contentType], "image/png", "served with the media type it was uploaded with")
            XCTAssertEqual(mine.text, "PNG-ish bytes")
            let answer12 = try await api.call(.get, "/api/v1/artifacts/\(digest)", token: beta).status
            XCTAssertEqual(answer12, 404)
            let answer13 = try await api.call(.get, "/api/v1/artifacts/..%2F..%2Fetc%2Fpasswd", token: acme).status
            XCTAssertEqual(answer13, 404)
            let bad = try await api.call(.post, "/api/v1/artifacts", token: acme, body: ByteBuffer(string: "x"), headers: [.contentType: "not a type"])
            XCTAssertEqual(bad.errorCode, "BODY_INVALID")
        }
    }

    func testJobListsPageWithACursorAndFilter() async throws {
        let acme = try token("acme", .run)
        try await withServer { api in
            var ids: [String] = []
            for i in 0..<5 {
                let submitted = try await api.submitEcho("job \(i)", token: acme).json?["id"]?.stringValue
                ids.append(try XCTUnwrap(submitted))
            }
            for id in ids { _ = try await api.waitFinished(id, token: acme) }
            var seen: [String] = [], createdAt: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let query = "/api/v1/jobs?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await api.call(.get, query, token: acme)
                XCTAssertEqual(page.status, 200, page.text)
                seen += page.json?["jobs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                createdAt += page.json?["jobs"]?.arrayValue?.compactMap { $0["created_at"]?.stringValue } ?? []
                cursor = page.json?["next_cursor"]?.stringValue
                pages += 1
            } while cursor != nil && pages < 10
            XCTAssertEqual(pages, 3)
            XCTAssertEqual(seen.count, 5)
            XCTAssertEqual(Set(seen), Set(ids), "each job once")
            XCTAssertEqual(createdAt, createdAt.sorted(by: >), "newest first")
            let answer15 = try await api.call(.get, "/api/v1/jobs?state=failed", token: acme).json?["jobs"]?.arrayValue?.count
            XCTAssertEqual(answer15, 0)
            let answer16 = try await api.call(.get, "/api/v1/jobs?state=succeeded&engine=echo", token: acme).json?["jobs"]?.arrayValue?.count
            XCTAssertEqual(answer16, 5)
            let answer17 = try await api.call(.get, "/api/v1/jobs?state=done", token: acme).errorCode
            XCTAssertEqual(answer17, "USAGE")
            let answer18 = try await api.call(.get, "/api/v1/jobs?cursor=%%%", token: acme).errorCode
            XCTAssertEqual(answer18, "CURSOR_INVALID")
            let answer19 = try await api.call(.get, "/api/v1/jobs?limit=0", token: acme).status
            XCTAssertEqual(answer19, 400)
        }
    }

    func testRefusalsCarryTheCLIsCodesAndTheTablesStatus() async throws {
        let acme = try token("acme", .run)
        // The pre-flight's own verdict on the same job, straight from the engine.
        let spec = JobSpec(pluginID: "echo", capability: "debug.echo", inputs: ["text": "x", "colour": "red"])
        let verdict = await engine.preflight(spec)
        let expected = try XCTUnwrap(verdict.firstError?.code)
        try await withServer(drive: false) { api in
            let refused = try await api.call(.post, "/api/v1/jobs", token: acme, json: ["engine": "echo", "capability": "debug.echo", "inputs": ["text": "x", "colour": "red"]])
            XCTAssertEqual(refused.errorCode, expected)
            XCTAssertEqual(refused.status, APIErrorStatus.status(for: expected))
            XCTAssertNotNil(refused.json?["error"]?["field"]?.stringValue, "the offending field is named")

            let unknownEngine = try await api.call(.post, "/api/v1/jobs", token: acme, json: ["engine": "nope", "capability": "debug.echo", "inputs": [:]])
            XCTAssertEqual(unknownEngine.status, 404, unknownEngine.text)
            let answer20 = try await api.call(.post, "/api/v1/jobs", token: acme, body: ByteBuffer(string: "{not json")).errorCode
            XCTAssertEqual(answer20, "BODY_INVALID")
            let answer21 = try await api.call(.get, "/api/v1/no/such/route", token: acme).errorCode
            XCTAssertEqual(answer21, "ROUTE_NOT_FOUND")
            let answer22 = try await api.call(.get, "/api/v1/jobs/job_doesnotexist", token: acme).status
            XCTAssertEqual(answer22, 404)
            let badKey = try await api.call(.post, "/api/v1/jobs", token: acme, json: ["engine": "echo", "capability": "debug.echo", "inputs": ["text": "x"]],
                                            headers: [HTTPField.Name("Idempotency-Key")!: "has space"])
            XCTAssertEqual(badKey.errorCode, "IDEMPOTENCY_KEY_INVALID")
            let answer23 = try await api.call(.get, "/api/v1/presets/..%2F..%2Fetc%2Fpasswd", token: acme).errorCode
            XCTAssertEqual(answer23, "PRESET_NOT_FOUND", "a preset is a name, never a path")
            // Last: a refused body closes the connection.
            let large = try await api.call(.post, "/api/v1/artifacts", token: acme, body: ByteBuffer(repeating: 0x41, count: 1 << 17), headers: [.contentType: "text/plain"])
            XCTAssertEqual(large.status, 413)
            XCTAssertEqual(large.errorCode, "REQUEST_TOO_LARGE")
        }
        XCTAssertEqual(APIErrorStatus.status(for: "SOMETHING_NOT_FOUND"), 404)
        XCTAssertEqual(APIErrorStatus.status(for: "WIDGET_INVALID"), 400)
        XCTAssertEqual(APIErrorStatus.status(for: "INSUFFICIENT_FUNDS"), 402)
        for (code, status) in APIErrorStatus.table { XCTAssertTrue((400...599).contains(status), "\(code) → \(status)") }
    }

    func testEachTokenHasItsOwnRateLimit() async throws {
        var limited = options
        limited.rateLimitPerSecond = 1
        limited.rateLimitBurst = 2
        server = try YardServer(engine: engine, options: limited, presets: nil)
        let busy = try token("acme", .read), calm = try token("beta", .read)
        try await withServer(drive: false) { api in
            let answer24 = try await api.call(.get, "/api/v1/jobs", token: busy).status
            XCTAssertEqual(answer24, 200)
            let answer25 = try await api.call(.get, "/api/v1/jobs", token: busy).status
            XCTAssertEqual(answer25, 200)
            let third = try await api.call(.get, "/api/v1/jobs", token: busy)
            XCTAssertEqual(third.status, 429)
            XCTAssertEqual(third.errorCode, "RATE_LIMITED")
            XCTAssertEqual(third.headers[.retryAfter], "1")
            let answer26 = try await api.call(.get, "/api/v1/jobs", token: calm).status
            XCTAssertEqual(answer26, 200, "another token has its own bucket")
        }
    }

    func testConnectStoresTheSecretTestsItAndNeverAnswersItBack() async throws {
        let admin = try token("acme", .admin), run = try token("acme", .run)
        let value = "echo-key-\(UUID().uuidString)"
        try await withServer(drive: false) { api in
            let answer27 = try await api.call(.post, "/api/v1/engines/echo/connect", token: run, json: ["secrets": ["ECHO_TOKEN": .string(value)]]).status
            XCTAssertEqual(answer27, 403)
            let connected = try await api.call(.post, "/api/v1/engines/echo/connect", token: admin, json: ["secrets": ["ECHO_TOKEN": .string(value)]])
            XCTAssertEqual(connected.status, 200, connected.text)
            XCTAssertEqual(connected.json?["ok"]?.boolValue, true, connected.text)
            XCTAssertEqual(connected.json?["stored_secrets"], ["ECHO_TOKEN"])
            XCTAssertFalse(connected.text.contains(value), "the value never comes back")
            let undeclared = try await api.call(.post, "/api/v1/engines/echo/connect", token: admin, json: ["secrets": ["AWS_SECRET": "x"]])
            XCTAssertEqual(undeclared.status, 400)
            XCTAssertEqual(undeclared.errorCode, "SECRET_NOT_DECLARED")

            let matrix = try await api.call(.get, "/api/v1/engines", token: admin)
            let echo = try XCTUnwrap(matrix.json?["engines"]?.arrayValue?.first { $0["engine"]?.stringValue == "echo" }, matrix.text)
            XCTAssertEqual(echo["status"]?.stringValue, "ok")
            XCTAssertEqual(echo["secrets"]?.arrayValue?.first?["set"]?.boolValue, true)
            XCTAssertNotNil(echo["balance"]?.objectValue, "echo reports a balance")
            let names = try await api.call(.get, "/api/v1/secrets", token: admin)
            XCTAssertEqual(names.json?["secrets"]?.arrayValue?.compactMap { $0["name"]?.stringValue }, ["ECHO_TOKEN"])
            XCTAssertFalse(matrix.text.contains(value) || names.text.contains(value))
            let answer28 = try await api.call(.get, "/api/v1/plugins/echo", token: admin).json?["id"]?.stringValue
            XCTAssertEqual(answer28, "echo")
        }
        XCTAssertEqual(SecretVault(paths: engine.paths, environment: [:]).value(of: "ECHO_TOKEN"), value, "stored in the vault")
        let file = try String(contentsOf: engine.paths.secretsFile, encoding: .utf8)
        XCTAssertFalse(file.contains(value), "encrypted at rest")
    }

    func testMetricsArePrometheusText() async throws {
        let admin = try token("acme", .admin)
        try await withServer { api in
            let answer29 = try await api.submitEcho("count me", token: admin).json?["id"]?.stringValue
            let id = try XCTUnwrap(answer29)
            _ = try await api.waitFinished(id, token: admin)
            let metrics = try await api.call(.get, "/metrics", token: admin)
            XCTAssertEqual(metrics.status, 200)
            XCTAssertTrue(metrics.headers[.contentType]?.hasPrefix("text/plain") == true)
            XCTAssertTrue(metrics.text.contains(#"yard_jobs{engine="echo",state="succeeded"} 1"#), metrics.text)
            XCTAssertTrue(metrics.text.contains(#"yard_plugin_call_duration_seconds_count{engine="echo",operation="submit"} 1"#), metrics.text)
            XCTAssertTrue(metrics.text.contains("# TYPE yard_plugin_call_duration_seconds histogram"), metrics.text)
            XCTAssertTrue(metrics.text.contains("yard_driving 1"), metrics.text)
        }
    }

    func testThePageIsOneSelfContainedFile() async throws {
        try await withServer(drive: false) { api in
            let page = try await api.call(.get, "/")
            XCTAssertEqual(page.status, 200)
            XCTAssertEqual(page.headers[.contentType], "text/html; charset=utf-8")
            XCTAssertTrue(page.headers[HTTPField.Name("Content-Security-Policy")!]?.contains("default-src 'self'") == true)
            for section in ["Setup Hub", "Presets", "Jobs and runs", "Gallery", "Credits", "/api/v1/engines", "/api/v1/events/stream", "/api/v1/diagnostics", "/thumbnail", "sessionStorage"] {
                XCTAssertTrue(page.text.contains(section), section)
            }
            XCTAssertNil(page.text.range(of: "https?://", options: .regularExpression), "no CDN, no external asset")
        }
    }
}
