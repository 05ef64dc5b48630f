import Foundation
import XCTest
@testable import SwitchyardHost
#if canImport(Glibc)
import Glibc
#endif

/// Kill the host with SIGKILL at every point of a job's life, restart it, and
/// check that every job reaches its terminal state with exactly one submission
/// (echo counts submissions per idempotency key in the host's durable kv).
final class CrashRecoveryTests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }

    func store() throws -> SQLiteJobStore { try SQLiteJobStore(path: home.appendingPathComponent("yard.sqlite")) }

    func run(_ arguments: [String], fault: String) throws -> ProcessResult {
        try yard(arguments, home: home, extraEnvironment: ["YARD_FAULT": fault, "SWIFT_BACKTRACE": "enable=no"])
    }

    func resume() throws -> [[String: Any]] {
        let result = try yard(["jobs", "resume", "--json"], home: home)
        XCTAssertEqual(result.status, 0, result.stderr)
        return try XCTUnwrap(result.json as? [[String: Any]], result.stdout)
    }

    func assertFinishedOnce(_ job: [String: Any], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(job["state"] as? String, "succeeded", "\(job)", file: file, line: line)
        XCTAssertEqual((job["outputs"] as? [String: Any])?["submissions"] as? Int, 1, "exactly one submission", file: file, line: line)
    }

    func testKilledAfterTheProviderAcceptedButBeforeTheRefWasStored() throws {
        let crashed = try run(["run", "debug.echo", "--engine", "echo", "--input", "text=x", "--input", "polls=1"], fault: "after-submit")
        XCTAssertNotEqual(crashed.status, 0)
        XCTAssertEqual(try store().unfinishedJobs().map(\.phase), [.submitting])
        let jobs = try resume()
        XCTAssertEqual(jobs.count, 1)
        assertFinishedOnce(jobs[0])
    }

    func testKilledWhileQueued() throws {
        _ = try run(["run", "debug.echo", "--engine", "echo", "--input", "text=x", "--input", "polls=2"], fault: "after-ref-stored")
        XCTAssertEqual(try store().unfinishedJobs().map(\.phase), [.queued])
        assertFinishedOnce(try XCTUnwrap(resume().first))
    }

    func testKilledWhileRunning() throws {
        let process = try startYard(["run", "debug.echo", "--engine", "echo", "--input", "text=x", "--input", "polls=50", "--json"], home: home)
        // Wait until the job is running at the provider, then kill without warning.
        // One store for the whole wait: opening it runs every migration check, which
        // on a loaded machine is slower than the job's polls.
        let deadline = Date().addingTimeInterval(30)
        var running = false
        var watcher: SQLiteJobStore?
        while Date() < deadline && !running {
            if watcher == nil { watcher = try? store() }
            running = (try? watcher?.unfinishedJobs().contains { $0.phase == .running && $0.pollCount >= 3 }) ?? false
            if !running { usleep(20_000) }
        }
        XCTAssertTrue(running, "the job never reached running")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)
        assertFinishedOnce(try XCTUnwrap(resume().first))
    }

    func testKilledAfterTheProviderFinishedButBeforeTheHostRecordedIt() throws {
        _ = try run(["run", "debug.echo", "--engine", "echo", "--input", "text=x", "--input", "polls=1"], fault: "before-final-store")
        XCTAssertEqual(try store().unfinishedJobs().map(\.phase), [.running])
        assertFinishedOnce(try XCTUnwrap(resume().first))
    }

    func testSeveralJobsKilledAtOnceAllFinishWithOneSubmissionEach() throws {
        // Three hosts killed with their jobs queued at the provider (a detached job
        // would be finished by the background driver, so each one crashes instead).
        for i in 0..<3 {
            _ = try run(["run", "debug.echo", "--engine", "echo", "--input", "text=job\(i)", "--input", "polls=3"], fault: "after-ref-stored")
        }
        _ = try run(["run", "debug.echo", "--engine", "echo", "--input", "text=late", "--input", "polls=3"], fault: "after-submit")
        XCTAssertEqual(try store().unfinishedJobs().count, 4)
        let jobs = try resume()
        XCTAssertEqual(jobs.count, 4)
        for job in jobs { assertFinishedOnce(job) }
        XCTAssertEqual(try store().unfinishedJobs().count, 0)
    }

    func testAnEngineThatCannotReconcileParksTheJobInsteadOfResubmitting() throws {
        // c-minimal has no sy.reconcile/1: after a crash in submit the host cannot
        // know whether the provider has the job, so it must not submit again.
        _ = try run(["run", "debug.ping", "--engine", "c-minimal"], fault: "after-submit")
        let jobs = try resume()
        XCTAssertEqual(jobs.first?["state"] as? String, "needs_attention")
        XCTAssertEqual((jobs.first?["error"] as? [String: Any])?["code"] as? String, "SUBMIT_UNCONFIRMED")
    }

    func testSecretCanaryNeverReachesTheDatabaseOrLogs() throws {
        let canary = "sy-canary-\(UUID().uuidString)"
        let result = try yard(["run", "debug.echo", "--engine", "echo", "--input", "text=x", "--input", "polls=0", "--input", "fail_with=\(canary)"],
                              home: home, extraEnvironment: ["ECHO_TOKEN": canary])
        XCTAssertEqual(result.status, 1)
        XCTAssertFalse(result.stdout.contains(canary), result.stdout)
        XCTAssertTrue(result.stdout.contains("[REDACTED:ECHO_TOKEN]"), result.stdout)
        let logs = try yard(["jobs", "logs", try XCTUnwrap(store().jobs(limit: 1, phase: nil).first?.id)], home: home)
        XCTAssertFalse(logs.stdout.contains(canary), logs.stdout)
        // The user's own input holds the canary here; every other column must not.
        let job = try XCTUnwrap(store().jobs(limit: 1, phase: nil).first)
        for column in [job.errorJSON, job.outputsJSON, job.refJSON, job.message] {
            XCTAssertFalse((column ?? "").contains(canary), column ?? "")
        }
    }

    func testASecretOnlyTheEngineSeesIsNowhereInTheDatabaseFiles() throws {
        let canary = "sy-canary-\(UUID().uuidString)"
        let result = try yard(["run", "debug.echo", "--engine", "echo", "--input", "text=x", "--input", "polls=1"], home: home, extraEnvironment: ["ECHO_TOKEN": canary])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("authenticated: true"), "the engine did receive the secret")
        let files = try FileManager.default.contentsOfDirectory(atPath: home.path).filter { $0.hasPrefix("yard.sqlite") }
        XCTAssertFalse(files.isEmpty)
        for file in files {
            let bytes = try Data(contentsOf: home.appendingPathComponent(file))
            XCTAssertNil(bytes.range(of: Data(canary.utf8)), "\(file) holds the secret")
        }
    }
}

final class DoctorTests: XCTestCase {
    func testDoctorNamesSecretsButNeverPrintsThem() throws {
        try requireStagedPlugins()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let home = dir.appendingPathComponent("home")
        let canary = "sy-canary-\(UUID().uuidString)"
        let set = Process()
        set.executableURL = Build.yard
        set.arguments = ["secrets", "set", "FAL_KEY"]
        set.environment = ["YARD_HOME": home.path]
        let input = Pipe()
        set.standardInput = input
        set.standardOutput = FileHandle.nullDevice
        try set.run()
        input.fileHandleForWriting.write(Data(canary.utf8))
        try input.fileHandleForWriting.close()
        set.waitUntilExit()
        XCTAssertEqual(set.terminationStatus, 0)
        // Make the stored secret appear in a failed job's error, to prove the final sweep.
        _ = try yard(["run", "debug.echo", "--engine", "echo", "--input", "text=x", "--input", "polls=0", "--input", "fail_with=\(canary)"],
                     home: home, extraEnvironment: ["ECHO_TOKEN": canary])
        let doctor = try yard(["doctor"], home: home, extraEnvironment: ["ECHO_TOKEN": canary])
        XCTAssertEqual(doctor.status, 0, doctor.stderr)
        XCTAssertFalse(doctor.stdout.contains(canary), doctor.stdout)
        XCTAssertTrue(doctor.stdout.contains("FAL_KEY"))
        XCTAssertTrue(doctor.stdout.contains("set (vault)"))
        XCTAssertTrue(doctor.stdout.contains("ECHO_TOKEN"))
    }
}
