import Foundation
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost

/// The engine waits on its injected clock (poll schedule, Retry-After,
/// backoff), so a test moves time instead of sleeping through it.
final class EngineClockTests: TemporaryDirectoryTestCase {
    func testARetryAfterOfAMinuteIsWaitedOnTheEnginesClockNotInRealTime() async throws {
        let plugins = dir.appendingPathComponent("plugins")
        try copyPlugin("echo", to: plugins)
        let paths = YardPaths(home: dir.appendingPathComponent("home"))
        let clock = ManualClock(startUnixMs: Int64(Date().timeIntervalSince1970 * 1000))
        let engine = JobEngine(store: try SQLiteJobStore(path: paths.jobStoreFile), paths: paths,
                               registry: PluginRegistry(paths: paths, extraPaths: [plugins.path], environment: [:], bundled: nil),
                               catalog: try CapabilityCatalog.load(directory: Build.repository.appendingPathComponent("Registry/capabilities")),
                               secrets: EnvironmentSecrets(environment: [:], values: [:]), clock: clock)
        // The first poll is rate-limited with Retry-After: 60 s; the job then finishes.
        let started = try await engine.start(JobSpec(pluginID: "echo", capability: "debug.echo",
                                                     inputs: ["text": "later", "polls": 0, "poll_faults": ["RATE_LIMITED:60000"]]))
        let finished = LockedFlag()
        let drive = Task { defer { finished.set() }; return try await engine.drive(started.id) }

        try await waitForSleeper(clock)
        clock.advance(ms: 10) // echo's first poll is due 10 ms after submit
        try await waitForSleeper(clock)
        let limited = try XCTUnwrap(engine.store.job(id: started.id))
        XCTAssertEqual(limited.consecutiveErrors, 1, "the rate-limited poll was recorded")
        XCTAssertEqual(try XCTUnwrap(limited.nextPollAt).timeIntervalSince(Date(timeIntervalSince1970: Double(clock.nowUnixMs()) / 1000)), 60, accuracy: 0.01,
                       "the next poll is due when the provider asked, on the engine's clock")

        clock.advance(ms: 59_000)
        XCTAssertEqual(clock.sleeping, 1, "a second before the provider's Retry-After, the engine still waits")
        XCTAssertFalse(try XCTUnwrap(engine.store.job(id: started.id)).phase.isTerminal)

        clock.advance(ms: 1_000)
        // Time moves on for as long as the engine waits, until drive returns:
        // after the last poll it may still wait on the clock (its backoff, a
        // settle retry), and a loop that stopped at the terminal row left it waiting forever.
        for _ in 0..<5_000 {
            if finished.isSet { break }
            if clock.sleeping > 0 { clock.advance(ms: 10) }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        guard finished.isSet else {
            drive.cancel()
            return XCTFail("the job did not finish: \(String(describing: try engine.store.job(id: started.id)?.phase))")
        }
        let job = try await drive.value
        XCTAssertEqual(job.phase, .succeeded)
        let events = try engine.store.events(jobID: job.id, afterID: 0)
        XCTAssertTrue(events.contains { $0.kind == "poll_error" && $0.message.hasPrefix("RATE_LIMITED") })
    }

    func testManualClockWakesASleeperOnlyOnceItsTimeHasPassed() async throws {
        let clock = ManualClock(startUnixMs: 0)
        let woke = Task { try await clock.sleep(ms: 500); return clock.nowUnixMs() }
        try await waitForSleeper(clock)
        clock.advance(ms: 499)
        XCTAssertEqual(clock.sleeping, 1)
        clock.advance(ms: 1)
        let at = try await woke.value
        XCTAssertEqual(at, 500)
        XCTAssertEqual(clock.sleeping, 0)
    }

    /// Until something waits on the clock (real time, bounded: the engine gets there in milliseconds).
    func waitForSleeper(_ clock: ManualClock, file: StaticString = #filePath, line: UInt = #line) async throws {
        for _ in 0..<5_000 {
            if clock.sleeping > 0 { return }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        XCTFail("nothing waited on the engine's clock", file: file, line: line)
    }
}

/// A flag one task sets and another reads.
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
