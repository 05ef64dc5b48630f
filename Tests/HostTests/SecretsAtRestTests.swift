import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost
#if canImport(Glibc)
import Glibc
#endif

/// Secrets at rest and in what the host stores: the vault key lives in
/// $YARD_HOME/keys (moved there from beside secrets.json), everything under
/// $YARD_HOME is 0600/0700, and credentials are redacted before any
/// truncation — a provider echoing the API key in an error body that the
/// adapter cuts at 300 bytes, or a Kling JWT quoted back, never reach a job
/// row, an event or the engine health record.
final class SecretsAtRestTests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }

    func mode(_ url: URL) throws -> Int {
        try XCTUnwrap(FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions] as? Int)
    }

    // MARK: the vault key

    func testTheVaultKeyLivesInThePrivateKeysFolderNotBesideTheSecrets() throws {
        let paths = YardPaths(home: home)
        try SecretVault(paths: paths, environment: [:]).set("FAL_KEY", value: "fal-secret-value-123")
        XCTAssertFalse(FileManager.default.fileExists(atPath: paths.legacyVaultKeyFile.path))
        XCTAssertEqual(try Data(contentsOf: paths.vaultKeyFile).count, 32)
        XCTAssertEqual(try mode(paths.vaultKeyFile), 0o600)
        XCTAssertEqual(try mode(paths.trustedKeysDirectory), 0o700)
        XCTAssertEqual(try mode(paths.secretsFile), 0o600)
        XCTAssertNotEqual(paths.vaultKeyFile.deletingLastPathComponent(), paths.secretsFile.deletingLastPathComponent())
        XCTAssertTrue(paths.hostPrivatePaths.contains(paths.vaultKeyFile))
    }

    func testAKeyAtTheOldPlaceIsMovedAndStillOpensTheSecrets() throws {
        let paths = YardPaths(home: home)
        try SecretVault(paths: paths, environment: [:]).set("FAL_KEY", value: "fal-secret-value-123")
        // What an earlier version left: the key beside secrets.json, world-readable.
        try FileManager.default.moveItem(at: paths.vaultKeyFile, to: paths.legacyVaultKeyFile)
        chmod(paths.legacyVaultKeyFile.path, 0o644)
        XCTAssertEqual(SecretVault(paths: paths, environment: [:]).value(of: "FAL_KEY"), "fal-secret-value-123")
        XCTAssertFalse(FileManager.default.fileExists(atPath: paths.legacyVaultKeyFile.path), "moved, not copied")
        XCTAssertEqual(try mode(paths.vaultKeyFile), 0o600)
    }

    func testConcurrentFirstUsesAgreeOnOneKey() throws {
        let paths = YardPaths(home: home)
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            try? SecretVault(paths: paths, environment: [:]).set("KEY_\(i)", value: "value-number-\(i)")
        }
        let vault = SecretVault(paths: paths, environment: [:])
        // Every value written under a lost key would read back as nil.
        let readable = (0..<8).filter { vault.value(of: "KEY_\($0)") != nil }
        XCTAssertFalse(readable.isEmpty)
        for i in readable { XCTAssertEqual(vault.value(of: "KEY_\(i)"), "value-number-\(i)") }
    }

    // MARK: file modes

    func testTheJobStoreAndItsWALAreCreatedPrivate() throws {
        let paths = YardPaths(home: home)
        let store = try SQLiteJobStore(path: paths.jobStoreFile)
        try store.saveHealth(EngineHealthRecord(pluginID: "x", status: "ok", message: nil, checkedAt: Date(), code: nil))
        for suffix in ["", "-wal", "-shm"] {
            let file = URL(fileURLWithPath: paths.jobStoreFile.path + suffix)
            XCTAssertTrue(FileManager.default.fileExists(atPath: file.path), suffix)
            XCTAssertEqual(try mode(file), 0o600, "yard.sqlite\(suffix)")
        }
    }

    func testAnExistingWorldReadableStoreIsTightenedWhenOpened() throws {
        let paths = YardPaths(home: home)
        _ = try SQLiteJobStore(path: paths.jobStoreFile)
        chmod(paths.jobStoreFile.path, 0o644)
        _ = try SQLiteJobStore(path: paths.jobStoreFile)
        XCTAssertEqual(try mode(paths.jobStoreFile), 0o600)
    }

    func testEverythingYardCreatesUnderItsHomeIsPrivate() throws {
        try requireBuiltYard()
        let input = dir.appendingPathComponent("in.txt")
        try Data("hello".utf8).write(to: input)
        XCTAssertEqual(try yardReading("tok-secret-value", ["secrets", "set", "ECHO_TOKEN"]), 0)
        let run = try yard(["run", "debug.echo", "--engine", "echo", "--input", "text=hi", "--input", "polls=1"], home: home)
        XCTAssertEqual(run.status, 0, run.stderr)
        let walker = try XCTUnwrap(FileManager.default.enumerator(at: home, includingPropertiesForKeys: [.isDirectoryKey, .isSymbolicLinkKey]))
        var checked = 0
        for case let url as URL in walker {
            let values = try url.resourceValues(forKeys: [.isDirectoryKey, .isSymbolicLinkKey])
            if values.isSymbolicLink == true { continue }
            let permissions = try mode(url)
            XCTAssertEqual(permissions & 0o077, 0, "\(url.path) is readable by others (\(String(permissions, radix: 8)))")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 5, "the store, the vault, artifacts and the scan cache were all checked")
        XCTAssertEqual(try mode(home), 0o700)
    }

    /// Runs yard with its own home and `input` on stdin; returns the exit status.
    func yardReading(_ input: String, _ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = Build.yard
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["YARD_HOME"] = home.path
        env["YARD_PLUGIN_PATH"] = ""
        process.environment = env
        let stdin = Pipe()
        process.standardInput = stdin
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        process.waitUntilExit()
        return process.terminationStatus
    }

    // MARK: redaction

    func testRedactionCatchesWholeValuesTruncatedFragmentsAndCredentialShapes() {
        let key = "rpa_LIVEKEY_0123456789abcdefghij"
        let redactor = Redactor(values: [Redactor.Value(name: "RUNPOD_API_KEY", value: key)])
        XCTAssertEqual(redactor.redact("key \(key) end"), "key [REDACTED:RUNPOD_API_KEY] end")
        let cut = "RunPod answered HTTP 500: {\"authorization\":\"Bearer \(key.prefix(12))"
        XCTAssertFalse(redactor.redact(cut).contains(key.prefix(12)))
        XCTAssertFalse(redactor.redact("… \(key.prefix(8))").contains(key.prefix(8)))
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJha19saXZlIn0.c2lnbmF0dXJlLWJ5dGVz"
        XCTAssertEqual(Redactor(values: []).redact("token \(jwt)!"), "token [REDACTED:JWT]!")
        XCTAssertEqual(Redactor(values: []).redact("Authorization: Bearer abcdefghijklmnop1234"), "Authorization: Bearer [REDACTED]")
        XCTAssertEqual(Redactor(values: []).redact("The API key RUNPOD_API_KEY is not set."), "The API key RUNPOD_API_KEY is not set.")
    }

    func testARunPodErrorBodyEchoingTheKeyLeavesNoFragmentAfterTheAdaptersCut() async throws {
        let key = "rpa_LIVEKEY_0123456789abcdefghijklmnop"
        // The key starts at byte 288 of the body: the adapter's 300-byte excerpt holds 12 of its characters.
        let head = "{\"error\":\"upstream failed\",\"pad\":\""
        let tail = "\",\"authorization\":\"Bearer "
        let padding = String(repeating: "x", count: 288 - head.utf8.count - tail.utf8.count)
        let body = head + padding + tail + key + "\"}"
        XCTAssertEqual((head + padding + tail).utf8.count, 288)
        let server = ScriptedHTTPServer { request in
            if request.path.hasSuffix("/health") { return .json(["jobs": ["inQueue": 0], "workers": ["idle": 1, "running": 0]]) }
            return ScriptedHTTPServer.Response(status: 500, headers: ["content-type": "application/json"], body: Data(body.utf8))
        }
        try await server.start()
        defer { Task { await server.stop() } }
        let plugins = dir.appendingPathComponent("plugins")
        try copyPlugin("runpod", to: plugins)
        let engine = try makeTestEngine(home: home, plugins: plugins, secrets: ["RUNPOD_API_KEY": key])
        let job = try await engine.start(JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "a lighthouse"],
                                                 config: ["endpoint_id": "ep", "base_url": .string(server.baseURL)]))
        XCTAssertTrue(server.requests.contains { $0.path.hasSuffix("/run") }, "the submit reached the provider")
        let stored = [job.errorJSON ?? "", job.message ?? "", job.refJSON ?? ""] + (try engine.store.events(jobID: job.id, afterID: 0)).map { $0.message + ($0.dataJSON ?? "") }
        let text = stored.joined(separator: "\n")
        XCTAssertTrue(text.contains("HTTP 500"), text)
        XCTAssertFalse(text.contains(key.prefix(10)), "a fragment of the key was stored: \(text)")
        XCTAssertTrue(text.contains("[REDACTED"), text)
    }

    func testAKlingJWTQuotedBackByTheProviderIsNotStored() async throws {
        let server = ScriptedHTTPServer { request in
            if request.method == "GET" { return .json(["code": 0, "message": "SUCCEED", "request_id": "r1", "data": []]) }
            let auth = request.headers["authorization"] ?? request.headers["Authorization"] ?? ""
            return .json(["code": 1200, "message": "Invalid request parameters (request carried \(auth))", "request_id": "r2", "data": NSNull()], status: 400)
        }
        try await server.start()
        defer { Task { await server.stop() } }
        let plugins = dir.appendingPathComponent("plugins")
        try copyPlugin("kling", to: plugins)
        let engine = try makeTestEngine(home: home, plugins: plugins,
                                        secrets: ["KLING_ACCESS_KEY": "ak_live_access_0000", "KLING_SECRET_KEY": "sk_live_secret_0000000000"])
        let job = try await engine.start(JobSpec(pluginID: "kling", capability: "video.from_text", inputs: ["prompt": "a paper boat"],
                                                 config: ["base_url": .string(server.baseURL)]))
        let sent = try XCTUnwrap(server.requests.first { $0.method == "POST" }?.headers.first { $0.key.lowercased() == "authorization" }?.value)
        let token = String(sent.dropFirst("Bearer ".count))
        XCTAssertTrue(token.hasPrefix("eyJ"))
        let stored = [job.errorJSON ?? "", job.message ?? ""] + (try engine.store.events(jobID: job.id, afterID: 0)).map { $0.message + ($0.dataJSON ?? "") }
        let text = stored.joined(separator: "\n")
        XCTAssertTrue(text.contains("1200"), text)
        XCTAssertFalse(text.contains(token), "the JWT was stored: \(text)")
        XCTAssertFalse(text.contains(String(token.suffix(20))), "a piece of the JWT was stored: \(text)")
    }
}
