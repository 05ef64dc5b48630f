import Foundation
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost

/// `yard jobs resume` finishes every job it can whatever one bad job does,
/// and extension calls (webhooks, estimates, reconcile) respect the
/// adapter's max_concurrency like the job model's calls do.
final class ResumeIsolationTests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }
    var plugins: URL { dir.appendingPathComponent("plugins") }

    override func setUpWithError() throws {
        try super.setUpWithError()
        try FileManager.default.createDirectory(at: plugins, withIntermediateDirectories: true)
        try copyPlugin("echo", to: plugins)
    }

    func testOneJobWhosePluginCannotLoadDoesNotStopTheOthersResuming() async throws {
        let engine = try makeTestEngine(home: home, plugins: plugins)
        engine.policy.minPollMs = 1
        let good = try await engine.start(JobSpec(pluginID: "echo", capability: "debug.echo", inputs: ["text": "keep going", "polls": 2]))
        XCTAssertFalse(good.phase.isTerminal)
        // A job left behind by an engine that is no longer installed.
        var orphan = good
        orphan.id = "job_orphan0000000000000"
        orphan.idempotencyKey = "orphan"
        orphan.pluginID = "removed-engine"
        _ = try engine.store.insertJob(orphan)

        let resumed = try await engine.resumeAll()
        let finished = try XCTUnwrap(resumed.first { $0.id == good.id })
        XCTAssertEqual(finished.phase, .succeeded, finished.errorJSON ?? "")
        XCTAssertTrue(resumed.contains { $0.id == orphan.id }, "the failed resume is reported, not dropped")
        let events = try engine.store.events(jobID: orphan.id, afterID: 0)
        XCTAssertTrue(events.contains { $0.kind == "resume_error" && $0.message.contains("PLUGIN_NOT_FOUND") }, "\(events.map(\.message))")
    }

    func testWebhookCallsRespectMaxConcurrency() async throws {
        _ = try fixturePlugin("concurrency_probe", in: plugins) { manifest in
            manifest["id"] = "concurrency-probe"
            manifest["capabilities"] = [["id": "debug.echo"]]
            manifest["max_concurrency"] = 2
            manifest["extensions"] = ["sy.webhook/1"]
        }
        // In process, where calls can overlap, so the gate is what holds them to 2
        // (a runner process takes its calls one at a time anyway).
        let engine = try makeTestEngine(home: home, plugins: plugins)
        engine.isolationPolicy.override = .inProcess
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                group.addTask { _ = try? await engine.receiveWebhook(pluginID: "concurrency-probe", headers: [:], body: Data("\(i)".utf8)) }
            }
        }
        let health = await engine.health(of: try engine.plugin("concurrency-probe"), config: [:], maxAge: 0)
        XCTAssertEqual(health.message, "highest=2", "8 deliveries at once, at most max_concurrency in the plugin")
    }
}
