import Foundation
import XCTest
@testable import SwitchyardHost
import SwitchyardJSON

/// The containment suite through the built yard, as a user drives it: a
/// hostile plugin on the plugin path must leave every command standing, with
/// a stable code, and the other work must finish.
final class HostileCLITests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }
    var plugins: URL { dir.appendingPathComponent("plugins") }

    @discardableResult
    func hostile(_ folder: String, defines: [String: String] = [:], capability: String = "debug.hostile") throws -> URL {
        var all = defines
        all["HOSTILE_ID"] = "\"\(folder)\""
        all["HOSTILE_CAPABILITY"] = "\"\(capability)\""
        return try fixturePlugin("hostile", in: plugins, folder: folder, defines: all) { manifest in
            manifest["id"] = folder
            manifest["capabilities"] = [["id": capability, "example_inputs": [String: Any]()]]
            manifest["call_timeouts_ms"] = HostilePluginTests.deadlines
            manifest["extensions"] = ["sy.webhook/1"]
        }
    }

    func run(_ arguments: [String]) throws -> ProcessResult {
        try yard(arguments + ["--plugin-path", plugins.path], home: home)
    }

    func assertExitedNormally(_ result: ProcessResult, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        // 0 or 1 from yard itself; a signal would show as 128+N or a crash report.
        XCTAssertTrue([0, 1].contains(result.status), "\(what) ended with status \(result.status): \(result.stderr.suffix(600))", file: file, line: line)
        XCTAssertFalse(result.stderr.contains("Fatal error"), "\(what): \(result.stderr.suffix(600))", file: file, line: line)
    }

    func testYardRunReportsAPollThatAbortsAsQuarantinedAndExitsNormally() throws {
        try hostile("hostile")
        let result = try run(["run", "debug.hostile", "--engine", "hostile", "--input", "fault_poll=abort", "--json"])
        assertExitedNormally(result, "yard run")
        XCTAssertEqual(result.status, 1)
        let job = try XCTUnwrap(result.json as? [String: Any], result.stdout)
        XCTAssertEqual(job["state"] as? String, "needs_attention", result.stdout)
        XCTAssertEqual((job["error"] as? [String: Any])?["code"] as? String, "PLUGIN_CRASHED", result.stdout)
    }

    func testYardRunStopsASubmitThatNeverReturnsAtItsDeadline() throws {
        try hostile("hostile")
        let start = Date()
        let result = try run(["run", "debug.hostile", "--engine", "hostile", "--input", "fault_submit=hang", "--json"])
        assertExitedNormally(result, "yard run")
        XCTAssertLessThan(Date().timeIntervalSince(start), 20)
        let job = try XCTUnwrap(result.json as? [String: Any], result.stdout)
        XCTAssertEqual(job["state"] as? String, "needs_attention", "a submit past its deadline may have reached the provider: \(result.stdout)")
        XCTAssertEqual((job["error"] as? [String: Any])?["code"] as? String, "PLUGIN_TIMEOUT")
    }

    func testYardEnginesListsEveryEngineWhenOneCrashesInItsEntryAndAnotherHangsInHealth() throws {
        try hostile("entry-segv", defines: ["HOSTILE_ENTRY": "\"segv\""])
        try hostile("health-busy", defines: ["HOSTILE_HEALTH": "\"busy\""])
        try hostile("healthy")
        let result = try run(["engines", "--refresh", "--json"])
        assertExitedNormally(result, "yard engines")
        XCTAssertEqual(result.status, 0, result.stderr)
        let rows = try XCTUnwrap(result.json as? [[String: Any]], result.stdout)
        let byEngine = Dictionary(uniqueKeysWithValues: rows.compactMap { row in (row["engine"] as? String).map { ($0, row) } })
        XCTAssertEqual(byEngine["entry-segv"]?["status"] as? String, "unloadable")
        XCTAssertTrue((byEngine["entry-segv"]?["message"] as? String ?? "").contains("signal 11"), "\(byEngine["entry-segv"] ?? [:])")
        XCTAssertEqual(byEngine["health-busy"]?["status"] as? String, "offline")
        XCTAssertEqual(byEngine["healthy"]?["status"] as? String, "ok")
        XCTAssertEqual(byEngine["echo"]?["status"] as? String, "ok", "the bundled engines are listed too")
    }

    func testAPipelineFallsBackToTheNextEngineWhenTheFirstCrashes() throws {
        try hostile("crashes-at-load", defines: ["HOSTILE_ENTRY": "\"abort\""], capability: "debug.echo")
        try hostile("crashes-in-health", defines: ["HOSTILE_HEALTH": "\"segv\""], capability: "debug.echo")
        let file = dir.appendingPathComponent("fallback.yaml")
        try Data("""
            pipeline: 1
            id: fallback
            steps:
              only: {capability: debug.echo, engines: [crashes-at-load, crashes-in-health, echo], inputs: {text: survived, polls: 0}}
            outputs:
              text: ${steps.only.outputs.text}
            """.utf8).write(to: file)
        let result = try run(["run", file.path, "--json"])
        assertExitedNormally(result, "yard run PIPELINE")
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let text = result.stdout
        XCTAssertTrue(text.contains("\"survived\""), text)
        XCTAssertTrue(text.contains("PLUGIN_CRASHED"), "the failed engines' attempts are reported with their code: \(text)")
    }

    func testYardJobsResumeFinishesTheInnocentJobsWhenOnePollAlwaysSegfaults() throws {
        try hostile("hostile")
        var ids: [String] = []
        for fault in ["segv", "", ""] {
            var arguments = ["run", "debug.hostile", "--engine", "hostile", "--detach", "--json"]
            if !fault.isEmpty { arguments += ["--input", "fault_poll=\(fault)"] }
            let started = try run(arguments)
            XCTAssertEqual(started.status, 0, started.stderr)
            ids.append(try XCTUnwrap((started.json as? [String: Any])?["id"] as? String, started.stdout))
        }
        let resumed = try run(["jobs", "resume", "--json"])
        assertExitedNormally(resumed, "yard jobs resume")
        let store = try SQLiteJobStore(path: home.appendingPathComponent("yard.sqlite"))
        XCTAssertEqual(try store.job(id: ids[0])?.phase, .needsAttention)
        XCTAssertEqual(try store.job(id: ids[1])?.phase, .succeeded)
        XCTAssertEqual(try store.job(id: ids[2])?.phase, .succeeded)
        let again = try run(["jobs", "resume", "--json"])
        assertExitedNormally(again, "a second yard jobs resume")
        XCTAssertEqual(again.status, 0, "nothing is left to resume: the quarantined job is not retried \(again.stderr)")
    }

    func testYardServeAnswersAnAbortingWebhook503AndKeepsServing() throws {
        try hostile("hostile")
        let (serve, base) = try startYardServe(home: home, environment: ["YARD_PLUGIN_PATH": plugins.path])
        defer { serve.terminate(); serve.waitUntilExit() }
        let http = BlockingHTTPTransport(defaultTimeoutMs: 10_000)
        for fault in ["abort", "segv", "exit", "hang"] {
            let answer = try http.perform(HostHTTPRequest(method: "POST", url: "\(base)/webhooks/hostile", headers: ["X-Fault": fault], body: Data("{}".utf8)))
            XCTAssertEqual(answer.status, 503, "\(fault): \(String(decoding: answer.body, as: UTF8.self))")
            let code = ((try? JSONSerialization.jsonObject(with: answer.body)) as? [String: Any]).flatMap { ($0["error"] as? [String: Any])?["code"] as? String }
            XCTAssertEqual(code, fault == "hang" ? "PLUGIN_TIMEOUT" : "PLUGIN_CRASHED", fault)
            XCTAssertTrue(serve.isRunning, "\(fault): yard serve is still up")
        }
        let health = try http.perform(HostHTTPRequest(method: "GET", url: "\(base)/healthz"))
        XCTAssertEqual(String(decoding: health.body, as: UTF8.self), "ok\n")
        let unsigned = try http.perform(HostHTTPRequest(method: "POST", url: "\(base)/webhooks/hostile", body: Data("{}".utf8)))
        XCTAssertEqual(unsigned.status, 401, "the restarted plugin judges the next delivery")
    }

    func testPluginInfoAndDoctorShowTheIsolationInEffect() throws {
        try hostile("hostile")
        let info = try run(["plugin", "info", "hostile", "--json"])
        XCTAssertEqual(info.status, 0, info.stderr)
        let isolation = try XCTUnwrap((info.json as? [String: Any])?["isolation"] as? [String: Any], info.stdout)
        XCTAssertEqual(isolation["mode"] as? String, "process")
        XCTAssertEqual((isolation["deadlines_ms"] as? [String: Any])?["poll"] as? Int, 600, "the manifest's own deadline")
        let layers = ((isolation["sandbox"] as? [String: Any])?["layers"] as? [[String: Any]] ?? []).compactMap { $0["layer"] as? String }
        XCTAssertEqual(Set(layers), ["rlimits", "network-namespace", "capabilities", "landlock", "seccomp"], info.stdout)
        let echo = try run(["plugin", "info", "echo"])
        XCTAssertTrue(echo.stdout.contains("isolation:    in-process (bundled with yard (first-party))"), echo.stdout)
        let human = try run(["plugin", "info", "hostile"])
        XCTAssertTrue(human.stdout.contains("isolation:    process (third-party plugin (default))"), human.stdout)
        XCTAssertTrue(human.stdout.contains("  network:"), human.stdout)

        let doctor = try run(["doctor"])
        XCTAssertEqual(doctor.status, 0, doctor.stderr)
        let bundle = try XCTUnwrap(doctor.json as? [String: Any], doctor.stdout)
        let sandbox = try XCTUnwrap(bundle["isolation"] as? [String: Any])
        XCTAssertNotNil(sandbox["summary"], "\(sandbox)")
        XCTAssertEqual((sandbox["checks"] as? [String: Any])?["fork"].map { "\($0)".hasPrefix("refused") }, true, "\(sandbox)")
        let rows = try XCTUnwrap(bundle["plugins"] as? [[String: Any]])
        XCTAssertEqual(rows.first { $0["id"] as? String == "hostile" }?["isolation"] as? String, "process")
        XCTAssertEqual(rows.first { $0["id"] as? String == "echo" }?["isolation"] as? String, "in-process")
    }
}
