import CPluginAPI
import CRunnerProtocol
import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost
#if canImport(Glibc)
import Glibc
#endif

/// Who runs isolated, the deadlines, the wire protocol's checks, and an
/// isolated plugin meeting exactly the host-service checks an in-process one does.
final class IsolationTests: TemporaryDirectoryTestCase {
    var paths: YardPaths { YardPaths(home: dir.appendingPathComponent("home")) }

    // MARK: who runs isolated

    func testBundledPluginsRunInProcessAndEveryOtherPluginInARunner() throws {
        let bundled = dir.appendingPathComponent("bundled"), explicit = dir.appendingPathComponent("extra")
        try copyPlugin("echo", to: bundled)
        try copyPlugin("echo", to: explicit, as: "echo-copy")
        let registry = PluginRegistry(paths: paths, extraPaths: [explicit.path], environment: [:], bundled: bundled)
        let policy = PluginIsolationPolicy(paths: paths, registry: registry, environment: [:])
        XCTAssertEqual(policy.isolation(for: bundled.appendingPathComponent("echo/plugin.json"), id: "echo"), .inProcess)
        XCTAssertEqual(policy.isolation(for: explicit.appendingPathComponent("echo-copy/plugin.json"), id: "echo"), .process,
                       "a copy of a first-party plugin elsewhere is not first-party")
        XCTAssertEqual(policy.reason(for: bundled.appendingPathComponent("echo/plugin.json"), id: "echo"), "bundled with yard (first-party)")
    }

    func testAnInstalledPluginRunsAsTheLockFileRecordsAndIsolatedWhenItSaysNothing() throws {
        try copyPlugin("c-minimal", to: paths.pluginsDirectory)
        let manifest = paths.pluginsDirectory.appendingPathComponent("c-minimal/plugin.json")
        let registry = PluginRegistry(paths: paths, environment: [:], bundled: nil)
        XCTAssertEqual(PluginIsolationPolicy(paths: paths, registry: registry, environment: [:]).isolation(for: manifest, id: "c-minimal"), .process)
        var lock = PluginLockFile()
        lock.plugins["c-minimal"] = PluginLockFile.Entry(version: "1.0.0", abi: "1.0", platform: "", librarySHA256: "", manifestSHA256: "", packageSHA256: "",
                                                         signer: nil, unsigned: true, source: "test", installedAt: "now", isolation: .inProcess)
        try lock.save(paths.lockFile)
        let policy = PluginIsolationPolicy(paths: paths, registry: registry, environment: [:])
        XCTAssertEqual(policy.isolation(for: manifest, id: "c-minimal"), .inProcess)
        XCTAssertEqual(policy.reason(for: manifest, id: "c-minimal"), "recorded in plugins.lock.json")
        XCTAssertEqual(PluginIsolationPolicy(paths: paths, registry: registry, environment: ["YARD_ISOLATION": "process"]).isolation(for: manifest, id: "c-minimal"),
                       .process, "YARD_ISOLATION overrides the lock file for one invocation")
    }

    func testALockFileFromBeforeIsolationStillLoads() throws {
        try Data(#"{"lock_version":1,"plugins":{"x":{"version":"1.0.0","abi":"1.0","platform":"","library_sha256":"","manifest_sha256":"","package_sha256":"","unsigned":true,"source":"s","installed_at":"t"}}}"#.utf8)
            .write(to: { try? FileManager.default.createDirectory(at: paths.home, withIntermediateDirectories: true); return paths.lockFile }())
        let entry = try XCTUnwrap(PluginLockFile.load(paths.lockFile).plugins["x"])
        XCTAssertNil(entry.isolation)
    }

    func testPluginInstallRecordsTheIsolationChosen() throws {
        let staged = Build.plugins.appendingPathComponent("c-minimal")
        let package = dir.appendingPathComponent("c-minimal.yardpkg")
        _ = try PluginPackage.pack(manifestURL: staged.appendingPathComponent("plugin.json"), library: staged.appendingPathComponent("libSyCMinimal.so"), output: package, key: nil)
        let installer = PluginInstaller(paths: paths, registryDirectory: nil)
        XCTAssertEqual(try installer.install(package: package, allowUnsigned: true).isolation, .process)
        XCTAssertEqual(PluginLockFile.load(paths.lockFile).plugins["c-minimal"]?.isolation, .process)
        XCTAssertEqual(try installer.install(package: package, allowUnsigned: true, isolation: .inProcess).isolation, .inProcess)
        XCTAssertEqual(PluginLockFile.load(paths.lockFile).plugins["c-minimal"]?.isolation, .inProcess)
    }

    // MARK: deadlines

    func testDeadlinesComeFromTheManifestWithinTheHostsBounds() throws {
        let manifest = try PluginManifest.parse(Data("""
            {"schema_version":1,"id":"x","version":"1.0.0","abi":"1.0","library":"libx.so","capabilities":[{"id":"debug.ping"}],
             "call_timeouts_ms":{"poll":5000,"submit":99999999,"validate":1}}
            """.utf8), source: "test")
        let deadlines = PluginDeadlines(manifest: manifest)
        XCTAssertEqual(deadlines.ms(for: .operation(.poll)), 5000)
        XCTAssertEqual(deadlines.ms(for: .operation(.submit)), PluginDeadlines.maximumMs)
        XCTAssertEqual(deadlines.ms(for: .operation(.validate)), PluginDeadlines.minimumMs)
        XCTAssertEqual(deadlines.ms(for: .operation(.health)), PluginDeadlines.defaults["health"])
        XCTAssertEqual(deadlines.ms(for: .extension(SY_EXTENSION_WEBHOOK)), PluginDeadlines.defaults["webhook"])
        XCTAssertEqual(deadlines.ms(for: .extension(SY_EXTENSION_RECONCILE)), PluginDeadlines.defaults["reconcile"])
    }

    func testAManifestNamingACallTheHostDoesNotBoundIsRefused() {
        XCTAssertRefusal(.manifestInvalid) {
            _ = try PluginManifest.parse(Data("""
                {"schema_version":1,"id":"x","version":"1.0.0","abi":"1.0","library":"libx.so","capabilities":[{"id":"debug.ping"}],
                 "call_timeouts_ms":{"forever":1}}
                """.utf8), source: "test")
        }
    }

    func testAnInProcessCallPastItsDeadlineIsAnsweredWithPluginTimeout() async throws {
        let executor = PluginCallExecutor()
        let start = DispatchTime.now()
        let answer = await executor.run(timeoutMs: 100, onTimeout: "timed out") { () -> String in
            Thread.sleep(forTimeInterval: 2)
            return "finished"
        }
        XCTAssertEqual(answer, "timed out")
        XCTAssertLessThan(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9, 1.5)
        let quick = await executor.run(timeoutMs: 1_000, onTimeout: "timed out") { "finished" }
        XCTAssertEqual(quick, "finished")
    }

    // MARK: the wire

    func testTheFrameReaderRefusesFramesLargerThanItsLimitOrCutShort() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        defer { close(fds[0]) }
        let reader = RunnerFrameReader(fd: fds[0], maxFrameBytes: 1024)
        func send(_ bytes: [UInt8]) { bytes.withUnsafeBytes { _ = write(fds[1], $0.baseAddress, $0.count) } }
        var frame = RunnerFrame.Writer(kind: SYR_FRAME_RESULT, id: 7)
        frame.i32(0)
        frame.u32(0)
        frame.string("{}")
        send(Array(frame.finish()))
        let read = try reader.next()
        XCTAssertEqual(read.kind, UInt8(SYR_FRAME_RESULT))
        XCTAssertEqual(read.id, 7)
        var payload = RunnerFrame.Reader(read.payload)
        XCTAssertEqual(payload.i32(), 0)
        XCTAssertEqual(payload.u32(), 0)
        XCTAssertEqual(payload.bytes(), Data("{}".utf8))
        XCTAssertTrue(payload.ok)
        _ = payload.bytes()
        XCTAssertFalse(payload.ok, "reading past the payload marks it malformed instead of crashing")

        send([0x00, 0x10, 0x00, 0x00]) // 4096 bytes announced, over the limit
        XCTAssertThrowsError(try reader.next()) { error in
            guard case RunnerFrameReader.Failure.malformed = error else { return XCTFail("\(error)") }
        }
        send([0x20, 0x00, 0x00, 0x00, 1, 2, 3])
        close(fds[1])
        XCTAssertThrowsError(try reader.next()) { error in
            guard case RunnerFrameReader.Failure.closed = error else { return XCTFail("\(error)") }
        }
    }

    // MARK: host services across the process boundary

    func testAnIsolatedPluginMeetsTheSameAllowListAndSecretChecks() throws {
        let manifest = try copyPlugin("echo", to: dir)
        let plugin = try PluginLoader.load(manifestURL: manifest, services: fullServices(root: dir, secrets: ["ECHO_TOKEN": "tok-1234-secret"]), isolation: .process)
        XCTAssertEqual(plugin.isolation, .process)
        XCTAssertEqual(plugin.sandbox?.layer("seccomp")?.state, "enforced", "\(plugin.sandbox?.layers ?? [])")
        let submitted = plugin.call(.submit, request: requestData(["capability": "debug.echo", "inputs": ["text": "x", "polls": 0, "url": "http://203.0.113.9/steal"]]))
        let ref = try XCTUnwrap(submitted.json?["ref"], String(decoding: submitted.document, as: UTF8.self))
        _ = plugin.call(.poll, request: requestData(["ref": ref]))
        let final = plugin.call(.poll, request: requestData(["ref": ref]))
        XCTAssertEqual(final.status, SY_E_FAILED)
        XCTAssertEqual((final.json?["error"] as? [String: Any])?["code"] as? String, "NETWORK_DENIED")
        XCTAssertEqual(plugin.context.deniedRequests, ["http://203.0.113.9/steal"], "the host, not the runner, enforced the allow-list")
        let answer = String(decoding: plugin.call(.poll, request: requestData(["ref": ref])).document, as: UTF8.self)
        XCTAssertFalse(answer.contains("tok-1234-secret"))
        XCTAssertTrue(plugin.hasExtension(SY_EXTENSION_ESTIMATE))
        XCTAssertFalse(plugin.hasExtension("sy.unknown/1"))
        XCTAssertNil(plugin.callExtension("sy.unknown/1", request: Data("{}".utf8)), "an absent extension reads as absent, as in process")
    }

    func testAnIsolatedAdapterRunsAJobAgainstItsStandInThroughTheEngine() async throws {
        let standIn = RunPodStandIn()
        try await standIn.start()
        defer { Task { await standIn.stop() } }
        let plugins = dir.appendingPathComponent("plugins")
        try copyPlugin("runpod", to: plugins)
        let engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: plugins, secrets: ["RUNPOD_API_KEY": standIn.apiKey])
        engine.policy.minPollMs = 1
        engine.policy.maxPollMs = 5
        let job = try await engine.drive(try await engine.start(JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "a lighthouse"],
                                                                       config: ["endpoint_id": .string(standIn.endpointID), "base_url": .string(standIn.baseURL)])).id)
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(try engine.plugin("runpod").isolation, .process)
        XCTAssertEqual(standIn.submissions, 1)
        let events = try engine.store.events(jobID: job.id, afterID: 0)
        XCTAssertFalse(events.contains { $0.message.contains(standIn.apiKey) }, "the key crossed to the runner only as sy.secrets/1's answer")
    }

    func testARunnerLeftIdleIsStoppedAndTheNextCallStartsAnother() async throws {
        let manifest = try copyPlugin("c-minimal", to: dir)
        var runner = RunnerConfiguration(scratchRoot: dir.appendingPathComponent("runners"))
        runner.idleTimeoutSeconds = 0.3
        let plugin = try PluginLoader.load(manifestURL: manifest, services: .none, isolation: .process, runner: runner)
        let request = requestData(["capability": "debug.ping", "inputs": [String: Any](), "config": [String: Any]()])
        let first = await plugin.perform(.operation(.validate), request: request, jobID: nil)
        XCTAssertTrue(first.isOK)
        try await Task.sleep(nanoseconds: 1_500_000_000)
        let scratch = (try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("runners").path)) ?? []
        XCTAssertTrue(scratch.isEmpty, "an idle runner is gone, its scratch folder with it: \(scratch)")
        let second = await plugin.perform(.operation(.validate), request: request, jobID: nil)
        XCTAssertTrue(second.isOK, String(decoding: second.document, as: UTF8.self))
        XCTAssertEqual(plugin.restarts, 0, "stopping an idle runner is not a crash")
    }

    func testTheReferencePluginsPassTheConformanceKitInBothModes() throws {
        for id in ["echo", "c-minimal"] {
            let result = try yard(["plugin", "test", id, "--json", "--isolation", "both"], home: dir.appendingPathComponent("h"))
            let report = try XCTUnwrap(result.json as? [String: Any], result.stdout + result.stderr)
            let failed = (report["checks"] as? [[String: Any]] ?? []).filter { $0["ok"] as? Bool != true }
            XCTAssertEqual(failed.count, 0, "\(id): \(failed)")
            XCTAssertEqual(report["isolation"] as? String, "both")
            XCTAssertEqual(report["passed"] as? Int, 3 + 2 * ConformanceSuite.childChecks.count, id)
            let ids = Set((report["checks"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String })
            XCTAssertTrue(ids.contains("lifecycle.submit_poll@process") && ids.contains("lifecycle.submit_poll@in-process"), "\(ids)")
            XCTAssertEqual(result.status, 0)
        }
    }

    func testTheConformanceKitReportsACrashInAnIsolatedPluginAsAFailedCheck() throws {
        let manifest = try fixturePlugin("crash_in_entry", in: dir)
        let result = try yard(["plugin", "test", manifest.path, "--json", "--isolation", "process"], home: dir.appendingPathComponent("h"))
        XCTAssertEqual(result.status, 1)
        let checks = try XCTUnwrap((result.json as? [String: Any])?["checks"] as? [[String: Any]], result.stdout)
        let descriptor = try XCTUnwrap(checks.first { $0["id"] as? String == "entry.descriptor" })
        XCTAssertEqual(descriptor["ok"] as? Bool, false)
        XCTAssertTrue((descriptor["detail"] as? String ?? "").contains("PLUGIN_CRASHED"), "\(descriptor)")
    }

    /// A kernel without Landlock and without namespaces for this user, made by
    /// refusing those system calls before the runner starts: each missing layer
    /// is reported with the kernel's reason, the others still hold, and the
    /// plugin still runs.
    func testAKernelThatRefusesSomeLayersDegradesLayerByLayerWithTheReason() throws {
        let runner = try XCTUnwrap(RunnerConfiguration.locateExecutable())
        let tool = dir.appendingPathComponent("without_syscalls")
        let built = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), [
            "cc", "-std=c99", "-DTARGET=\"\(runner.path)\"", "-DENOSYS_CALLS=SYS_landlock_create_ruleset", "-DEPERM_CALLS=SYS_unshare",
            "-o", tool.path, Build.repository.appendingPathComponent("Tests/Fixtures/tools/without_syscalls.c").path])
        XCTAssertEqual(built.status, 0, built.stderr)
        let configuration = RunnerConfiguration(executable: tool, scratchRoot: dir.appendingPathComponent("runners"))
        let report = try SandboxProbe.run(configuration)
        XCTAssertEqual(report.layer("network-namespace")?.state, "unavailable")
        XCTAssertTrue(report.layer("network-namespace")?.detail.contains("Operation not permitted") == true, "\(report.layers)")
        XCTAssertEqual(report.layer("landlock")?.state, "unavailable")
        XCTAssertTrue(report.layer("landlock")?.detail.contains("Function not implemented") == true, "\(report.layers)")
        XCTAssertEqual(report.layer("seccomp")?.state, "enforced", "seccomp does not depend on the missing layers")
        XCTAssertEqual(report.checks?["read_outside"], "allowed", "without Landlock the filesystem is not confined, and the report says so")
        XCTAssertTrue(report.checks?["socket"]?.hasPrefix("refused") == true, "seccomp still refuses sockets: \(report.checks ?? [:])")
        XCTAssertTrue(report.summary["filesystem"]?.hasPrefix("unrestricted") == true, "\(report.summary)")
        XCTAssertEqual(Set(report.degraded.map(\.layer)), ["network-namespace", "landlock"])

        let plugin = try PluginLoader.load(manifestURL: try copyPlugin("c-minimal", to: dir), services: .none, isolation: .process, runner: configuration)
        XCTAssertEqual(plugin.sandbox?.layer("landlock")?.state, "unavailable")
        let answer = plugin.call(.validate, request: requestData(["capability": "debug.ping", "inputs": [String: Any](), "config": [String: Any]()]))
        XCTAssertTrue(answer.isOK, "a degraded runner still runs the plugin")
    }

    func testScratchFoldersOfAKilledHostAreRemovedByTheNextOne() throws {
        let root = dir.appendingPathComponent("runners")
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let stale = root.appendingPathComponent("c-minimal-\(dead.processIdentifier)-deadbeef")
        let live = root.appendingPathComponent("c-minimal-1-cafef00d") // pid 1 is alive
        for folder in [stale, live] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        let plugin = try PluginLoader.load(manifestURL: try copyPlugin("c-minimal", to: dir), services: .none, isolation: .process,
                                           runner: RunnerConfiguration(scratchRoot: root))
        XCTAssertEqual(plugin.isolation, .process)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale.path), "the folder of a runner whose host is gone is removed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: live.path), "a live host's runner keeps its folder")
    }

    func testTheSandboxProbeReportsEveryLayerWithItsState() throws {
        let report = try SandboxProbe.run(RunnerConfiguration(scratchRoot: dir.appendingPathComponent("runners")))
        XCTAssertEqual(report.layers.map(\.layer), ["rlimits", "network-namespace", "capabilities", "landlock", "seccomp"])
        for layer in report.layers {
            XCTAssertTrue(["enforced", "partial", "unavailable"].contains(layer.state), "\(layer)")
            XCTAssertFalse(layer.detail.isEmpty, "every layer says what it enforces, or why it could not: \(layer)")
        }
        let checks = try XCTUnwrap(report.checks)
        if report.layer("seccomp")?.state == "enforced" {
            XCTAssertTrue(checks["socket"]?.hasPrefix("refused") == true, "\(checks)")
            XCTAssertTrue(checks["fork"]?.hasPrefix("refused") == true, "\(checks)")
        }
        if report.layer("landlock")?.state == "enforced" {
            XCTAssertTrue(checks["read_outside"]?.hasPrefix("refused") == true, "\(checks)")
        }
    }
}
