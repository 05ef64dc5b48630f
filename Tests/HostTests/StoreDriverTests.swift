import Foundation
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost

/// The store's driver: one process at a time (driver.lock), it drives every
/// unfinished job and run until none is left, leaves alone what another
/// process has claimed, and picks up work submitted while it runs.
final class StoreDriverTests: TemporaryDirectoryTestCase {
    var engine: JobEngine!
    var home: URL { dir.appendingPathComponent("home") }

    override func setUpWithError() throws {
        try super.setUpWithError()
        let plugins = dir.appendingPathComponent("plugins")
        try copyPlugin("echo", to: plugins)
        engine = try makeTestEngine(home: home, plugins: plugins)
    }

    func echo(_ text: String, polls: Int = 2) -> JobSpec {
        JobSpec(pluginID: "echo", capability: "debug.echo", inputs: ["text": .string(text), "polls": .number(Double(polls))])
    }

    func driver() throws -> StoreDriver {
        let driver = try StoreDriver(engine: engine, configs: EngineConfigs(paths: engine.paths))
        driver.scanIntervalSeconds = 0.05
        return driver
    }

    func testTheDriverFinishesEveryUnfinishedJobAndThenReturns() async throws {
        let a = try await engine.start(echo("a"))
        let b = try await engine.start(echo("b", polls: 4))
        XCTAssertFalse(a.phase.isTerminal)
        let outcome = try await driver().driveUntilIdle()
        XCTAssertEqual(Set(outcome.jobs.map(\.id)), [a.id, b.id])
        for id in [a.id, b.id] { XCTAssertEqual(try engine.store.job(id: id)?.phase, .succeeded) }
        XCTAssertTrue(try engine.store.unfinishedJobs().isEmpty)
    }

    func testOneProcessAtATimeHoldsTheStore() throws {
        let paths = engine.paths
        let first = try XCTUnwrap(StoreDriver.lease(paths: paths))
        XCTAssertNil(StoreDriver.lease(paths: paths), "a second driver is refused while the first holds the lock")
        XCTAssertTrue(StoreDriver.isDriven(paths: paths))
        XCTAssertEqual(StoreDriver.driverPID(paths: paths), getpid())
        first.release()
        XCTAssertFalse(StoreDriver.isDriven(paths: paths))
        XCTAssertNotNil(StoreDriver.lease(paths: paths), "free again once released")
    }

    func testADriverThatDiesReleasesTheStore() throws {
        // The lock lives as long as the process: a killed driver never leaves a stale one.
        let child = try runProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", "exec 9>\"$0\"; flock -n 9 || exit 3; kill -9 $$", engine.paths.driverLockFile.path])
        XCTAssertNotEqual(child.status, 3)
        XCTAssertFalse(StoreDriver.isDriven(paths: engine.paths))
        XCTAssertNotNil(StoreDriver.lease(paths: engine.paths))
    }

    func testAJobClaimedByAnotherProcessIsLeftAlone() async throws {
        let (job, claim) = try await engine.startClaimed(echo("mine"))
        let claimHeld = try XCTUnwrap(claim)
        let idle = try await driver().driveUntilIdle()
        XCTAssertTrue(idle.jobs.isEmpty, "the attached run that claimed it follows it itself")
        XCTAssertFalse(try XCTUnwrap(try engine.store.job(id: job.id)).phase.isTerminal)
        claimHeld.release(removingFile: true)
        let outcome = try await driver().driveUntilIdle()
        XCTAssertEqual(outcome.jobs.map(\.id), [job.id], "once the claim is gone (the process ended), the driver takes it")
        XCTAssertEqual(try engine.store.job(id: job.id)?.phase, .succeeded)
    }

    func testAJobBeingSubmittedElsewhereIsWaitedForNotReconciled() async throws {
        // A row in `submitting` whose claim is held: its submitter is alive and will store the ref.
        let (job, claim) = try await engine.startClaimed(echo("racing"))
        try engine.store.updateJob(id: job.id) { $0.phase = .submitting }
        let engine = self.engine!, jobID = job.id
        let driving = Task { try await engine.drive(jobID) }
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertEqual(try engine.store.job(id: job.id)?.phase, .submitting, "not reconciled (nor parked) while the submitter holds its claim")
        try engine.store.updateJob(id: job.id) { $0.phase = .queued }
        claim?.release(removingFile: true)
        let finished = try await driving.value
        XCTAssertEqual(finished.phase, .succeeded)
        let events = try engine.store.events(jobID: job.id, afterID: 0).map(\.kind)
        XCTAssertFalse(events.contains("reconciled"), "\(events)")
    }

    func testWorkSubmittedWhileTheDriverRunsIsPickedUp() async throws {
        let first = try await engine.start(echo("first", polls: 30))
        let lease = try XCTUnwrap(StoreDriver.lease(paths: engine.paths))
        let driver = try driver()
        let session = Task { try await driver.driveWhileWorkRemains(lease: lease) }
        try await Task.sleep(nanoseconds: 100_000_000)
        let late = try await engine.start(echo("late"))
        let outcome = try await session.value
        XCTAssertEqual(Set(outcome.jobs.map(\.id)), [first.id, late.id])
        XCTAssertFalse(StoreDriver.isDriven(paths: engine.paths), "the lease is given up when nothing is left")
    }

    func testAJobThatCannotBeDrivenDoesNotKeepTheDriverAlive() async throws {
        let job = try await engine.start(echo("orphan"))
        try engine.store.updateJob(id: job.id) { $0.pluginID = "no-such-engine" }
        let lease = try XCTUnwrap(StoreDriver.lease(paths: engine.paths))
        let outcome = try await driver().driveWhileWorkRemains(lease: lease)
        XCTAssertNotNil(outcome.problems[job.id], "reported, not retried forever")
        XCTAssertTrue(outcome.jobs.isEmpty)
    }

    func testCancellingARunCancelsItsJobAndNoDriverContinuesIt() async throws {
        let definition = try PipelineDefinition.parse(try JSONValue(parsing: Data("""
            {"pipeline": 1, "id": "two-steps", "inputs": {"text": {"type": "string", "required": true}},
             "steps": {"slow": {"capability": "debug.echo", "engines": ["echo"], "inputs": {"text": "${inputs.text}", "polls": 50}},
                       "after": {"capability": "debug.echo", "engines": ["echo"], "inputs": {"text": "${steps.slow.outputs.text}"}}}}
            """.utf8)), source: "test")
        let runner = try PipelineRunner(engine: engine, configs: EngineConfigs(paths: engine.paths))
        let run = try runner.create(definition, source: "test", inputs: ["text": "x"], quality: nil, noCache: true)
        let executing = Task { try await runner.execute(run.id) }
        var jobID: String?
        for _ in 0..<100 where jobID == nil {
            try await Task.sleep(nanoseconds: 20_000_000)
            jobID = try runner.store.steps(runID: run.id).first { $0.name == "slow" }?.jobID
        }
        let (cancelled, jobs) = try await runner.cancel(run.id)
        XCTAssertEqual(cancelled.state, .cancelled)
        XCTAssertEqual(jobs.map(\.id), [try XCTUnwrap(jobID)])
        XCTAssertEqual(jobs.first?.phase, .cancelled)
        let ended = try await executing.value
        XCTAssertEqual(ended.state, .cancelled, "the runner does not overwrite the cancel")
        XCTAssertNil(try runner.store.steps(runID: run.id).first { $0.name == "after" }?.jobID, "no later step starts")
        let idle = try await driver().driveUntilIdle()
        XCTAssertTrue(idle.runs.isEmpty && idle.jobs.isEmpty)
    }
}
