import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

final class RecordReplayTests: TemporaryDirectoryTestCase {
    /// Each engine gets its own copy of echo: a library is loaded once per
    /// process, with the services of its first load.
    func engine(http: any HTTPTransport, home: String) throws -> JobEngine {
        let plugins = dir.appendingPathComponent("plugins-\(home)")
        try copyPlugin("echo", to: plugins)
        return try makeTestEngine(home: dir.appendingPathComponent(home), plugins: plugins, secrets: ["ECHO_TOKEN": "tok-secret-9876"],
                                  catalog: CapabilityCatalog(), http: http)
    }

    func testARecordedSessionReplaysWithoutTheServer() async throws {
        let server = ScriptedHTTPServer { request in .init(status: 202, body: Data("seen tok-secret-9876 at \(request.path)".utf8)) }
        try await server.start()
        let recording = dir.appendingPathComponent("session.jsonl")
        let recorder = RecordingTransport(wrapping: BlockingHTTPTransport(defaultTimeoutMs: 2_000), to: recording,
                                          redact: { $0.replacingOccurrences(of: "tok-secret-9876", with: "[REDACTED:ECHO_TOKEN]") })
        let live = try engine(http: recorder, home: "live")
        let url = "\(server.baseURL)/probe"
        let first = try await live.drive(try await live.start(JobSpec(pluginID: "echo", capability: "debug.echo", inputs: ["text": "x", "polls": 0, "url": .string(url)])).id)
        await server.stop()
        XCTAssertEqual(first.phase, .succeeded)
        let exchanges = try String(contentsOf: recording, encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(RecordedExchange.self, from: Data($0.utf8)) }
        XCTAssertEqual(exchanges.count, 1)
        let body = String(decoding: Data(base64Encoded: exchanges[0].bodyBase64) ?? Data(), as: UTF8.self)
        XCTAssertEqual(body, "seen [REDACTED:ECHO_TOKEN] at /probe", "secrets are redacted from the recording")

        let replay = try ReplayTransport(file: recording)
        let offline = try engine(http: replay, home: "replay")
        let second = try await offline.drive(try await offline.start(JobSpec(pluginID: "echo", capability: "debug.echo", inputs: ["text": "x", "polls": 0, "url": .string(url)])).id)
        XCTAssertEqual(second.phase, .succeeded)
        XCTAssertEqual(replay.unused, 0)
        let status = (try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(second.outputsJSON).utf8)) as? [String: Any])?["http_status"] as? Int
        XCTAssertEqual(status, 202)
    }

    func testReplayRefusesARequestTheRecordingLacks() throws {
        let file = dir.appendingPathComponent("empty.jsonl")
        try Data().write(to: file)
        XCTAssertThrowsError(try ReplayTransport(file: file).perform(HostHTTPRequest(method: "GET", url: "http://127.0.0.1/none")))
    }
}
