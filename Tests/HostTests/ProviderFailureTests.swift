import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// How the engine handles a provider in trouble: rate limits, transient
/// errors, malformed answers, results that must be downloaded or have expired.
final class ProviderFailureTests: TemporaryDirectoryTestCase {
    var pluginsRoot: URL { dir.appendingPathComponent("plugins") }

    func makeEngine() throws -> JobEngine {
        let engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: pluginsRoot)
        engine.policy.baseBackoffMs = 5
        return engine
    }

    func run(_ engine: JobEngine, _ inputs: [String: JSONValue]) async throws -> JobRecord {
        try await engine.drive(try await engine.start(JobSpec(pluginID: "echo", capability: "debug.echo", inputs: inputs)).id)
    }

    func outputs(_ job: JobRecord) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(job.outputsJSON, "\(job)").utf8)) as? [String: Any])
    }

    func testRateLimitIsHonouredForTheTimeTheProviderAsked() async throws {
        try copyPlugin("echo", to: pluginsRoot)
        let engine = try makeEngine()
        let job = try await run(engine, ["text": "x", "polls": 0, "poll_faults": ["RATE_LIMITED:400"]])
        XCTAssertEqual(job.phase, .succeeded)
        let events = try engine.store.events(jobID: job.id, afterID: 0)
        let limited = try XCTUnwrap(events.first { $0.kind == "poll_error" })
        XCTAssertTrue(limited.message.hasPrefix("RATE_LIMITED"), limited.message)
        let next = try XCTUnwrap(events.first { $0.kind == "state" && ($0.id ?? 0) > (limited.id ?? 0) })
        XCTAssertGreaterThanOrEqual(next.at.timeIntervalSince(limited.at), 0.38, "the next poll waited for Retry-After")
    }

    func testTransientErrorsAreRetriedAndTheJobStillSucceeds() async throws {
        try copyPlugin("echo", to: pluginsRoot)
        let engine = try makeEngine()
        let job = try await run(engine, ["text": "x", "polls": 1, "poll_faults": ["ENGINE_UNAVAILABLE", "ENGINE_UNAVAILABLE", "ENGINE_UNAVAILABLE"]])
        XCTAssertEqual(job.phase, .succeeded)
        XCTAssertEqual(try engine.store.events(jobID: job.id, afterID: 0).filter { $0.kind == "poll_error" }.count, 3)
        XCTAssertEqual(try outputs(job)["submissions"] as? Int, 1, "errors while polling never cause a resubmit")
    }

    func testPersistentErrorsFailTheJobWithTheLastCode() async throws {
        try copyPlugin("echo", to: pluginsRoot)
        let engine = try makeEngine()
        engine.policy.maxConsecutiveErrors = 2
        let job = try await run(engine, ["text": "x", "polls": 0, "poll_faults": ["ENGINE_UNAVAILABLE", "ENGINE_UNAVAILABLE", "RATE_LIMITED"]])
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "RATE_LIMITED")
    }

    func testMalformedPollAnswerIsRetriedThenReported() async throws {
        _ = try fixturePlugin("garbage_poll", in: pluginsRoot)
        let engine = try makeEngine()
        engine.policy.maxConsecutiveErrors = 2
        let job = try await engine.drive(try await engine.start(JobSpec(pluginID: "fixture", capability: "debug.ping", inputs: [:])).id)
        // Garbage from the plugin itself, every time: the job is quarantined
        // (the provider may still run it), with the host's own code for it.
        XCTAssertEqual(job.phase, .needsAttention)
        XCTAssertEqual(job.errorCode, "PLUGIN_OUTPUT_INVALID")
        let events = try engine.store.events(jobID: job.id, afterID: 0).map(\.kind)
        XCTAssertEqual(events.filter { $0 == "plugin_output" }.count, JobEngine.quarantineAfterFailures)
        XCTAssertEqual(events.filter { $0 == "poll_error" }.count, JobEngine.quarantineAfterFailures - 1, "retried before it was quarantined")
        XCTAssertTrue(events.contains("quarantined"))
    }

    func testURLOutputIsStreamedIntoTheStoreBeforeTheJobSucceeds() async throws {
        let size = 3 << 20
        let server = ScriptedHTTPServer { _ in .init(status: 200, headers: ["content-type": "video/mp4"], generatedBytes: size) }
        try await server.start()
        defer { Task { await server.stop() } }
        try copyPlugin("echo", to: pluginsRoot)
        let engine = try makeEngine()
        let job = try await run(engine, ["text": "x", "polls": 0, "output_url": .string("\(server.baseURL)/results/out.mp4")])
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let remote = try XCTUnwrap(try outputs(job)["remote"] as? [String: Any])
        XCTAssertNil(remote["url"], "the row names the artifact, not the provider's URL")
        XCTAssertEqual(remote["size"] as? Int, size)
        let handle = try XCTUnwrap(remote["artifact"] as? String)
        let file = engine.artifacts.path(for: String(handle.dropFirst(7)))
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int, size)
        XCTAssertEqual(try PluginLoader.sha256(of: file), String(handle.dropFirst(7)))
        XCTAssertEqual(server.requests.filter { $0.path == "/results/out.mp4" }.count, 1)
    }

    func testExpiredResultFailsTheJobAsResultExpired() async throws {
        let server = ScriptedHTTPServer { _ in .init(status: 404) }
        try await server.start()
        defer { Task { await server.stop() } }
        try copyPlugin("echo", to: pluginsRoot)
        let job = try await run(try makeEngine(), ["text": "x", "polls": 0, "output_url": .string("\(server.baseURL)/gone")])
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "RESULT_EXPIRED")
        XCTAssertTrue(job.errorJSON?.contains(#""charged":"yes""#) == true, "the provider billed a result we could not keep")
    }

    func testTransientDownloadErrorIsRetriedWhileTheResultIsKept() async throws {
        let attempts = Counter()
        let server = ScriptedHTTPServer { _ in attempts.increment() <= 2 ? .init(status: 503) : .init(status: 200, body: Data("payload".utf8)) }
        try await server.start()
        defer { Task { await server.stop() } }
        try copyPlugin("echo", to: pluginsRoot)
        let engine = try makeEngine()
        let job = try await run(engine, ["text": "x", "polls": 0, "output_url": .string("\(server.baseURL)/flaky")])
        XCTAssertEqual(job.phase, .succeeded)
        XCTAssertEqual(attempts.value, 3)
        XCTAssertEqual(try engine.store.events(jobID: job.id, afterID: 0).filter { $0.kind == "harvest_error" }.count, 2)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() -> Int { lock.withLock { count += 1; return count } }
    var value: Int { lock.withLock { count } }
}

final class ArtifactDownloaderTests: TemporaryDirectoryTestCase {
    override var needsStagedPlugins: Bool { false }

    func testRedirectIntoALoopbackAddressIsRefusedUnlessAllowed() async throws {
        let server = ScriptedHTTPServer { request in
            request.path == "/start" ? .init(status: 302, headers: ["location": "http://localhost:\(request.headers["host"]?.split(separator: ":").last ?? "0")/inside"])
                                     : .init(status: 200, body: Data("internal".utf8))
        }
        try await server.start()
        defer { Task { await server.stop() } }
        let downloader = ArtifactDownloader(directory: ArtifactDirectory(root: dir), allowPrivateRedirects: false)
        do {
            _ = try await downloader.download(url: "\(server.baseURL)/start", isAllowed: { _ in true })
            XCTFail("followed a redirect into loopback")
        } catch let error as YardError {
            XCTAssertEqual(error.code.rawValue, "NETWORK_DENIED")
        }
        downloader.allowPrivateRedirects = true
        let result = try await downloader.download(url: "\(server.baseURL)/start", isAllowed: { _ in true })
        XCTAssertEqual(result.size, 8)
    }

    func testEveryHopMustBeInTheAllowList() async throws {
        let server = ScriptedHTTPServer { _ in .init(status: 302, headers: ["location": "https://cdn.elsewhere.example/x"]) }
        try await server.start()
        defer { Task { await server.stop() } }
        let downloader = ArtifactDownloader(directory: ArtifactDirectory(root: dir))
        do {
            _ = try await downloader.download(url: "\(server.baseURL)/start", isAllowed: { $0.hasPrefix("http://127.0.0.1") })
            XCTFail("left the allow-list")
        } catch let error as YardError {
            XCTAssertEqual(error.code.rawValue, "NETWORK_DENIED")
        }
    }

    func testWrongChecksumOrSizeIsRefusedAndLeavesNothingBehind() async throws {
        let server = ScriptedHTTPServer { _ in .init(status: 200, body: Data("twelve bytes".utf8)) }
        try await server.start()
        defer { Task { await server.stop() } }
        let store = ArtifactDirectory(root: dir)
        let downloader = ArtifactDownloader(directory: store)
        for (sha, size) in [(String(repeating: "a", count: 64), nil as Int?), (nil as String?, 13)] {
            do {
                _ = try await downloader.download(url: "\(server.baseURL)/f", expectedSHA256: sha, expectedSize: size, isAllowed: { _ in true })
                XCTFail("accepted a mismatching download")
            } catch let error as YardError {
                XCTAssertEqual(error.code.rawValue, "CHECKSUM_MISMATCH")
            }
        }
        let leftovers = (FileManager.default.enumerator(atPath: dir.path)?.allObjects as? [String] ?? []).filter { !$0.hasSuffix("incoming") && $0.contains("/") }
        XCTAssertEqual(leftovers, [], "no partial or unverified file stays in the store")
    }

    func testPrivateAddressClassification() {
        for host in ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.5", "172.20.0.1", "169.254.1.1", "::1", "[::1]"] {
            XCTAssertTrue(ArtifactDownloader.resolvesToPrivateAddress(host), host)
        }
        for host in ["8.8.8.8", "203.0.113.7", "172.32.0.1"] {
            XCTAssertFalse(ArtifactDownloader.resolvesToPrivateAddress(host), host)
        }
    }
}
