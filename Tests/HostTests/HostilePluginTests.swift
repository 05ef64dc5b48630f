import Foundation
import XCTest
@testable import SwitchyardHost
import SwitchyardJSON

/// The containment suite: a plugin that aborts, segfaults, exits, hangs,
/// spins, answers garbage or tries to reach the network or the disk itself,
/// in its entry, submit, poll or webhook. Each case must end in a stable
/// code while the host (this test process) lives on and other jobs finish.
/// The plugin is Tests/Fixtures/plugins/hostile.c, run isolated.
final class HostilePluginTests: TemporaryDirectoryTestCase {
    override var needsStagedPlugins: Bool { false }

    /// Short deadlines, so hangs and busy loops cost a fraction of a second each.
    static let deadlines: [String: Int] = ["load": 2_000, "validate": 1_000, "submit": 600, "poll": 600, "cancel": 600,
                                           "health": 1_000, "webhook": 600, "reconcile": 600]
    static let crashes = ["abort", "segv", "exit"]
    static let stalls = ["hang", "busy", "forkbomb"]
    static let garbage = ["huge", "malformed"]

    @discardableResult
    func hostile(_ folder: String = "hostile", in root: URL? = nil, defines: [String: String] = [:],
                 edit: (inout [String: Any]) -> Void = { _ in }) throws -> URL {
        let root = root ?? dir.appendingPathComponent("plugins")
        var all = defines
        if all["HOSTILE_ID"] == nil { all["HOSTILE_ID"] = "\"\(folder)\"" }
        let capability = (defines["HOSTILE_CAPABILITY"] ?? "debug.hostile").trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
        return try fixturePlugin("hostile", in: root, folder: folder, defines: all) { manifest in
            manifest["id"] = folder
            manifest["capabilities"] = [["id": capability, "example_inputs": [String: Any]()]]
            manifest["call_timeouts_ms"] = Self.deadlines
            manifest["extensions"] = ["sy.webhook/1"]
            edit(&manifest)
        }
    }

    func engine() throws -> JobEngine {
        let engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: dir.appendingPathComponent("plugins"))
        engine.runner.baseBackoffMs = 5
        engine.runner.maxBackoffMs = 100
        XCTAssertEqual(engine.isolationPolicy.isolation(for: dir.appendingPathComponent("plugins/hostile/plugin.json"), id: "hostile"), .process,
                       "a plugin found on the plugin path is third-party: it runs isolated by default")
        return engine
    }

    func spec(_ inputs: [String: JSONValue], engine id: String = "hostile") -> JobSpec {
        JobSpec(pluginID: id, capability: "debug.hostile", inputs: inputs)
    }

    func errorCode(_ job: JobRecord) -> String? {
        job.errorJSON.flatMap { try? JSONValue(parsing: Data($0.utf8)) }?["code"]?.stringValue
    }

    // MARK: entry

    func testAPluginThatCrashesOrHangsInItsEntryIsRefusedWithAStableCode() throws {
        let expected = ["abort": "PLUGIN_CRASHED", "segv": "PLUGIN_CRASHED", "exit": "PLUGIN_CRASHED",
                        "hang": "PLUGIN_TIMEOUT", "busy": "PLUGIN_TIMEOUT"]
        for (fault, code) in expected.sorted(by: { $0.key < $1.key }) {
            let manifest = try hostile("entry-\(fault)", defines: ["HOSTILE_ENTRY": "\"\(fault)\""])
            let start = Date()
            XCTAssertRefusal(YardError.Code(rawValue: code)) {
                _ = try PluginLoader.load(manifestURL: manifest, services: fullServices(root: dir.appendingPathComponent("a")), isolation: .process)
            }
            XCTAssertLessThan(Date().timeIntervalSince(start), 6, "\(fault): the load deadline bounds it")
        }
    }

    func testAnEntryThatCrashesNamesTheSignalAndItsLastOutput() throws {
        let manifest = try hostile("entry-abort", defines: ["HOSTILE_ENTRY": "\"abort\""])
        do {
            _ = try PluginLoader.load(manifestURL: manifest, services: .none, isolation: .process)
            XCTFail("an entry that aborts must not load")
        } catch let error as YardError {
            XCTAssertEqual(error.code.rawValue, "PLUGIN_CRASHED")
            XCTAssertTrue(error.message.contains("signal 6"), error.message)
        }
    }

    // MARK: submit

    func testEachFaultInSubmitParksOnlyThatJobAndTheNextJobRuns() async throws {
        try hostile()
        let engine = try engine()
        for fault in Self.crashes + Self.stalls + Self.garbage {
            let bad = try await engine.start(spec(["fault_submit": .string(fault)]))
            XCTAssertEqual(bad.phase, .needsAttention, "\(fault): a submit that may have reached the provider is never repeated blindly")
            let code = errorCode(bad)
            let expected = Self.crashes.contains(fault) ? "PLUGIN_CRASHED" : Self.stalls.contains(fault) ? "PLUGIN_TIMEOUT" : "PLUGIN_OUTPUT_INVALID"
            XCTAssertEqual(code, expected, "\(fault): \(bad.errorJSON ?? "")")
            XCTAssertTrue(bad.message?.contains("not resubmitted") == true, "\(fault): \(bad.message ?? "")")
            let good = try await engine.drive(try await engine.start(spec([:])).id)
            XCTAssertEqual(good.phase, .succeeded, "after \(fault), the restarted plugin serves the next job")
        }
        XCTAssertGreaterThanOrEqual(try engine.plugin("hostile").restarts, Self.crashes.count + Self.stalls.count)
    }

    // MARK: poll

    func testEachFaultInPollQuarantinesOnlyThatJobWhileTheOthersFinish() async throws {
        try hostile()
        let engine = try engine()
        for fault in Self.crashes + Self.stalls + Self.garbage {
            let bad = try await engine.start(spec(["fault_poll": .string(fault)]))
            let innocent = [try await engine.start(spec([:])), try await engine.start(spec([:]))]
            let finished = try await withThrowingTaskGroup(of: JobRecord.self) { group in
                for job in [bad] + innocent { group.addTask { try await engine.drive(job.id) } }
                var all: [String: JobRecord] = [:]
                for try await job in group { all[job.id] = job }
                return all
            }
            let parked = try XCTUnwrap(finished[bad.id])
            XCTAssertEqual(parked.phase, .needsAttention, "\(fault): \(parked.errorJSON ?? "")")
            let expected = Self.crashes.contains(fault) ? "PLUGIN_CRASHED" : Self.stalls.contains(fault) ? "PLUGIN_TIMEOUT" : "PLUGIN_OUTPUT_INVALID"
            XCTAssertEqual(errorCode(parked), expected, fault)
            XCTAssertTrue(parked.message?.hasPrefix("Quarantined:") == true, parked.message ?? "")
            XCTAssertNotNil(parked.refJSON, "the ref is kept: the provider may still run the job")
            for job in innocent { XCTAssertEqual(finished[job.id]?.phase, .succeeded, "\(fault): an innocent job finishes") }
            let events = try engine.store.events(jobID: bad.id, afterID: 0).map(\.kind)
            XCTAssertGreaterThanOrEqual(events.filter { $0.hasPrefix("plugin_") }.count, JobEngine.quarantineAfterFailures)
            XCTAssertTrue(events.contains("quarantined"))
        }
    }

    func testAResumeOfManyJobsFinishesTheInnocentOnesWhenOnePollAlwaysAborts() async throws {
        try hostile()
        let engine = try engine()
        var ids: [String] = []
        ids.append(try await engine.start(spec(["fault_poll": "abort"])).id)
        for _ in 0..<4 { ids.append(try await engine.start(spec([:])).id) }
        let resumed = try await engine.resumeAll()
        let phases = Dictionary(uniqueKeysWithValues: resumed.map { ($0.id, $0.phase) })
        XCTAssertEqual(phases[ids[0]], .needsAttention)
        for id in ids.dropFirst() { XCTAssertEqual(phases[id], .succeeded) }
    }

    // MARK: validate and health

    func testAValidateThatCrashesRefusesThePreflightWithPluginCrashed() async throws {
        try hostile()
        let engine = try engine()
        let verdict = await engine.preflight(spec(["fault_validate": "segv"]))
        XCTAssertFalse(verdict.ok)
        XCTAssertEqual(verdict.firstError?.code, "PLUGIN_CRASHED")
        XCTAssertEqual(verdict.firstError?.step, "validate")
        let after = await engine.preflight(spec([:]))
        XCTAssertTrue(after.ok, "\(after.findings)")
    }

    func testAHealthCheckThatHangsReportsTheEngineOfflineWithPluginTimeout() async throws {
        try hostile(defines: ["HOSTILE_HEALTH": "\"hang\""])
        let engine = try engine()
        let health = await engine.health(of: try engine.plugin("hostile"), config: [:], maxAge: 0)
        XCTAssertEqual(health.status, "offline")
        XCTAssertEqual(health.code, "PLUGIN_TIMEOUT")
    }

    // MARK: webhooks

    func testAWebhookWhoseExtensionAbortsIsRefusedAndTheNextDeliveryIsStillServed() async throws {
        try hostile()
        let engine = try engine()
        for fault in ["abort", "segv", "hang", "malformed"] {
            do {
                _ = try await engine.receiveWebhook(pluginID: "hostile", headers: ["X-Fault": fault], body: Data("{}".utf8))
                XCTFail("\(fault): a crashing extension cannot accept a delivery")
            } catch let error as YardError {
                XCTAssertEqual(error.code.rawValue, fault == "hang" ? "PLUGIN_TIMEOUT" : fault == "malformed" ? "PLUGIN_OUTPUT_INVALID" : "PLUGIN_CRASHED", fault)
            }
            do {
                _ = try await engine.receiveWebhook(pluginID: "hostile", headers: [:], body: Data("{}".utf8))
                XCTFail("an unsigned delivery is refused")
            } catch let error as YardError {
                XCTAssertEqual(error.code.rawValue, "WEBHOOK_REJECTED", "after \(fault) the plugin answers again")
            }
        }
    }

    // MARK: the sandbox

    /// What a plugin tries on its own must fail inside the runner; where the
    /// kernel lacks a layer the probe report must say so, with its reason.
    func testDirectNetworkFilesAndProcessesAreRefusedInsideTheRunner() async throws {
        try hostile()
        let engine = try engine()
        let report = try XCTUnwrap(try engine.plugin("hostile").sandbox)
        let listener = try LoopbackListener()
        let canary = dir.appendingPathComponent("home/secrets-canary.json")
        try Data("sy-canary-secret".utf8).write(to: canary)
        func outcome(_ probe: String, _ extra: [String: JSONValue] = [:]) async throws -> String {
            let job = try await engine.start(spec(["probe": .string(probe)].merging(extra) { $1 }))
            XCTAssertEqual(job.phase, .succeeded, "\(probe): \(job.errorJSON ?? "")")
            return try XCTUnwrap(job.outputsJSON.flatMap { try? JSONValue(parsing: Data($0.utf8)) }?["outcome"]?.stringValue)
        }
        let network = report.layer("seccomp")?.state == "enforced" || report.layer("network-namespace")?.state == "enforced"
        XCTAssertTrue(network, "no network layer applied: \(report.layers)")
        let connect = try await outcome("connect", ["port": .number(Double(listener.port))])
        XCTAssertTrue(connect.hasPrefix("refused"), connect)
        XCTAssertEqual(listener.accepted, 0, "the plugin's own connection never reached the loopback listener")
        let lookup = try await outcome("getaddrinfo")
        XCTAssertTrue(lookup.hasPrefix("refused"), lookup)
        if report.layer("landlock")?.state == "enforced" {
            let file = try await outcome("fopen", ["path": .string(canary.path)])
            XCTAssertTrue(file.hasPrefix("refused"), file)
        } else {
            XCTAssertFalse(report.layer("landlock")?.detail.isEmpty ?? true, "a missing filesystem layer is reported with its reason")
        }
        if report.layer("seccomp")?.state == "enforced" {
            let fork = try await outcome("fork")
            XCTAssertTrue(fork.hasPrefix("refused"), fork)
        }
        let alloc = try await outcome("alloc")
        XCTAssertTrue(alloc.hasPrefix("refused"), "RLIMIT_AS bounds the runner: \(alloc)")
        let logs = try engine.store.events(jobID: try XCTUnwrap(try engine.store.jobs(limit: 50, phase: nil).first?.id), afterID: 0)
        XCTAssertFalse(logs.contains { $0.message.contains("sy-canary-secret") })
    }

    func testAnEntryThatTriesTheNetworkAndTheDiskLoadsButGetsNothing() async throws {
        let listener = try LoopbackListener()
        try hostile(defines: ["HOSTILE_ENTRY": "\"connect\"", "HOSTILE_PORT": "\(listener.port)"])
        let engine = try engine()
        let health = await engine.health(of: try engine.plugin("hostile"), config: [:], maxAge: 0)
        XCTAssertTrue(health.message?.contains("entry: refused") == true, health.message ?? "")
        XCTAssertEqual(listener.accepted, 0)
    }

    func testTheRunnerInheritsNoVariableFromTheHostEnvironment() async throws {
        // Provider keys are often exported for the host (EnvironmentSecrets
        // reads them): the runner's environment is built from scratch.
        setenv("YARD_TEST_RUNNER_CANARY", "sy-canary-env", 1)
        defer { unsetenv("YARD_TEST_RUNNER_CANARY") }
        try hostile()
        let engine = try engine()
        let job = try await engine.start(spec(["probe": "env"]))
        let names = try XCTUnwrap(job.outputsJSON.flatMap { try? JSONValue(parsing: Data($0.utf8)) }?["outcome"]?.stringValue)
        let seen = Set(names.split(separator: ",").map(String.init))
        XCTAssertFalse(seen.contains("YARD_TEST_RUNNER_CANARY"), names)
        XCTAssertTrue(seen.isSubset(of: ["SWIFT_BACKTRACE", "LANG", "PATH", "TMPDIR", "HOME", "LD_LIBRARY_PATH"]), names)
        XCTAssertTrue(seen.contains("TMPDIR"), "the scratch folder is the plugin's temporary folder: \(names)")
    }
}

/// A TCP listener on 127.0.0.1 that counts the connections it accepts.
final class LoopbackListener: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private let lock = NSLock()
    private var count = 0

    init() throws {
        let listening = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listening, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard listening >= 0, bound == 0, listen(listening, 8) == 0 else {
            throw YardError("TEST_SETUP", "cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))", remediation: "Check the loopback interface.")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listening, $0, &length) } }
        fd = listening
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [weak self] in
            while true {
                let client = accept(listening, nil, nil)
                if client < 0 { return }
                self?.lock.withLock { self?.count += 1 }
                close(client)
            }
        }
    }

    var accepted: Int { lock.withLock { count } }
    deinit { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}
