import Foundation
import XCTest
@testable import SwitchyardHost

/// sy.process/1's host side with real children: allow-list, PATH lookup and
/// DEPENDENCY_MISSING, artifacts in and out, ffmpeg progress, cancel of the
/// whole process group, idempotent keys, and a clean environment.
final class ProcessServiceTests: TemporaryDirectoryTestCase {
    override var needsStagedPlugins: Bool { false }
    var store: ArtifactDirectory!
    var service: HostProcessService!

    override func setUpWithError() throws {
        try super.setUpWithError()
        try Media.require("ffmpeg", "ffprobe")
        store = ArtifactDirectory(root: dir.appendingPathComponent("artifacts"))
        service = HostProcessService(artifacts: store, workRoot: dir.appendingPathComponent("process"))
    }

    let plugin = "test-plugin"

    func start(_ request: [String: Any], allowed: [String] = ["ffmpeg", "ffprobe", "sh", "env"]) throws -> String {
        try service.start(request, allowed: allowed, pluginID: plugin)
    }

    func failure(_ body: () throws -> Any) -> HostProcessService.Failure? {
        do { _ = try body() } catch let failure as HostProcessService.Failure { return failure } catch { XCTFail("unexpected \(error)") }
        return nil
    }

    func testAnInputArtifactGoesInAndTheOutputFileComesBackAsAnArtifact() throws {
        let clip = try Media.clip(seconds: 1)
        let digest = try store.put(clip, mediaType: "video/mp4")
        let handle = try start(["executable": "ffmpeg",
                                "args": ["-v", "error", "-i", "{input:src}", "-vf", "scale=160:120", "-c:v", "libx264", "-preset", "ultrafast", "{output:out}"],
                                "inputs": ["src": ["artifact": "sha256:\(digest)"]],
                                "outputs": ["out": ["extension": "mp4", "media_type": "video/mp4"]]])
        let status = try service.wait(handle, pluginID: plugin, timeoutMs: 30_000)
        XCTAssertEqual(status["state"] as? String, "exited", "\(status)")
        XCTAssertEqual(status["exit_code"] as? Int, 0)
        let output = try XCTUnwrap((status["outputs"] as? [String: Any])?["out"] as? [String: Any])
        let artifact = try XCTUnwrap(output["artifact"] as? String)
        XCTAssertEqual(output["media_type"] as? String, "video/mp4")
        let file = store.path(for: String(artifact.dropFirst(7)))
        XCTAssertEqual(output["size"] as? Int, try Data(contentsOf: file).count)
        let probe = try Media.probe(file)
        XCTAssertEqual(probe.width, 160)
        XCTAssertEqual(probe.height, 120)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("process/\(getpid())/\(handle)").path), "the scratch folder is removed")
    }

    func testFFmpegProgressIsReportedWhileItRuns() throws {
        // -re paces the lavfi source at real time: 3 seconds of output take about 3 seconds.
        let handle = try start(["executable": "ffmpeg",
                                "args": ["-nostdin", "-progress", "pipe:1", "-nostats", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=10:d=3",
                                         "-c:v", "libx264", "-preset", "ultrafast", "{output:out}"],
                                "outputs": ["out": ["extension": "mp4", "media_type": "video/mp4"]],
                                "progress": ["format": "ffmpeg", "duration_seconds": 3]])
        var seen: [Double] = []
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let status = try service.status(handle, pluginID: plugin)
            if status["state"] as? String != "running" { break }
            if let progress = status["progress"] as? Double { seen.append(progress) }
            usleep(200_000)
        }
        XCTAssertTrue(seen.contains { $0 > 0.05 && $0 < 0.95 }, "progress between the ends while running: \(seen)")
        XCTAssertEqual(seen, seen.sorted(), "progress never goes backwards")
        let final = try service.wait(handle, pluginID: plugin, timeoutMs: 10_000)
        XCTAssertEqual(final["progress"] as? Double, 1)
    }

    func testCancelKillsTheChildAndEveryProcessInItsGroup() throws {
        // sh starts a grandchild (sleep) in the same group: cancel must end both.
        let handle = try start(["executable": "sh", "args": ["-c", "sleep 60 & sleep 60; wait"]])
        let record = try service.record(handle, pluginID: plugin)
        let group = record.pid
        var members: [Int32] = []
        for _ in 0..<50 where members.count < 3 {
            members = Media.members(ofGroup: group)
            usleep(20_000)
        }
        XCTAssertGreaterThanOrEqual(members.count, 3, "sh and its two sleeps share the group")
        let outcome = try service.cancel(handle, pluginID: plugin)
        XCTAssertEqual(outcome["outcome"] as? String, "killed")
        XCTAssertEqual(try service.status(handle, pluginID: plugin)["state"] as? String, "killed")
        XCTAssertEqual(Media.members(ofGroup: group), [], "no process of the group survives")
        XCTAssertFalse(Media.isAlive(group))
        XCTAssertEqual(try service.cancel(handle, pluginID: plugin)["outcome"] as? String, "already_finished", "cancel is idempotent")
    }

    func testAMissingExecutableIsDependencyMissingWithTheInstallCommand() throws {
        service.searchPath = dir.appendingPathComponent("empty-bin").path
        let refused = failure { try self.start(["executable": "ffmpeg", "args": ["-version"]]) }
        XCTAssertEqual(refused?.code, "DEPENDENCY_MISSING")
        XCTAssertEqual(refused?.kind, .missing)
        XCTAssertTrue(refused?.remediation.contains("apt-get install -y ffmpeg") == true, refused?.remediation ?? "")
        let located = try service.locate("ffprobe", allowed: ["ffprobe"], pluginID: plugin)
        XCTAssertEqual(located["installed"] as? Bool, false)
        XCTAssertTrue((located["remediation"] as? String ?? "").contains("apt-get install -y ffmpeg"), "ffprobe comes with the ffmpeg package")
        service.searchPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
        XCTAssertEqual(try service.locate("ffmpeg", allowed: ["ffmpeg"], pluginID: plugin)["installed"] as? Bool, true)
    }

    func testOnlyAllowListedExecutablesRun() throws {
        let refused = failure { try self.start(["executable": "sh", "args": ["-c", "true"]], allowed: ["ffmpeg"]) }
        XCTAssertEqual(refused?.kind, .denied)
        XCTAssertEqual(refused?.code, "PROCESS_DENIED")
        XCTAssertEqual(failure { try self.start(["executable": "/bin/sh", "args": ["-c", "true"]], allowed: ["/bin/sh"]) }?.kind, .denied,
                       "names are looked up on PATH, never taken as paths")
    }

    func testTheSameKeyNamesTheSameChildAndStartsItOnce() throws {
        let request: [String: Any] = ["executable": "sh", "args": ["-c", "echo started; sleep 0.3"], "key": "job-1/main"]
        let first = try start(request)
        let second = try start(request)
        XCTAssertEqual(first, second)
        let status = try service.wait(first, pluginID: plugin, timeoutMs: 10_000)
        XCTAssertEqual(status["stdout"] as? String, "started\n", "started once")
        XCTAssertEqual(try start(request), first, "a finished key is not started again")
        XCTAssertNotEqual(try start(["executable": "sh", "args": ["-c", "true"], "key": "job-2/main"]), first)
        XCTAssertNil(try? service.status(first, pluginID: "another-plugin"), "a plugin cannot see another's children")
    }

    func testChildrenDoNotInheritTheHostsEnvironment() throws {
        setenv("SY_PROCESS_TEST_SECRET", "do-not-leak-4711", 1)
        defer { unsetenv("SY_PROCESS_TEST_SECRET") }
        let status = try service.wait(try start(["executable": "env", "args": []]), pluginID: plugin, timeoutMs: 10_000)
        let env = status["stdout"] as? String ?? ""
        XCTAssertTrue(env.contains("PATH="), env)
        XCTAssertFalse(env.contains("do-not-leak-4711"), "secrets exported to the host stay out of children")
    }

    func testAFailedChildReportsItsExitCodeAndStderrTailAndNoOutputs() throws {
        let status = try service.wait(try start(["executable": "ffmpeg", "args": ["-v", "error", "-i", "{input:src}", "{output:out}"],
                                                 "inputs": ["src": ["artifact": "sha256:\(try store.put(Data("not media".utf8), mediaType: "video/mp4"))"]],
                                                 "outputs": ["out": ["extension": "mp4", "media_type": "video/mp4"]]]),
                                      pluginID: plugin, timeoutMs: 20_000)
        XCTAssertEqual(status["state"] as? String, "exited")
        XCTAssertNotEqual(status["exit_code"] as? Int, 0)
        XCTAssertFalse((status["stderr_tail"] as? String ?? "").isEmpty)
        XCTAssertNil(status["outputs"])
    }

    func testUnknownArtifactsAndPlaceholdersAreRefusedBeforeAnythingRuns() throws {
        let unknown = failure { try self.start(["executable": "ffmpeg", "args": ["-i", "{input:src}"],
                                                "inputs": ["src": ["artifact": "sha256:" + String(repeating: "a", count: 64)]]]) }
        XCTAssertEqual(unknown?.code, "ARTIFACT_NOT_FOUND")
        let placeholder = failure { try self.start(["executable": "ffmpeg", "args": ["-i", "{input:nothing}"]]) }
        XCTAssertEqual(placeholder?.code, "INVALID_REQUEST")
        let traversal = failure { try self.start(["executable": "ffmpeg", "args": ["{output:x}"], "outputs": ["x": ["extension": "/../../etc"]]]) }
        XCTAssertEqual(traversal?.code, "INVALID_REQUEST")
        XCTAssertEqual(service.runningPIDs(), [])
    }

    func testTextFilesAndStdinReachTheChildAsData() throws {
        let status = try service.wait(try start(["executable": "sh", "args": ["-c", "cat \"$0\"; cat", "{file:note}"],
                                                 "files": ["note": ["text": "from a file; $(not run)\n", "extension": "txt"]],
                                                 "stdin": "from stdin `not run either`"]), pluginID: plugin, timeoutMs: 10_000)
        XCTAssertEqual(status["stdout"] as? String, "from a file; $(not run)\nfrom stdin `not run either`")
    }

    func testChildrenOfAHostThatDiedAreKilledAndTheirFoldersSweptOnTheNextStart() throws {
        let handle = try start(["executable": "sleep", "args": ["30"]], allowed: ["sleep"])
        let pid = try service.record(handle, pluginID: plugin).pid
        XCTAssertTrue(Media.isAlive(pid))
        // Pretend the folder belongs to a host process that no longer exists.
        let root = dir.appendingPathComponent("process")
        var dead: Int32 = 4_000_000
        while kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        try FileManager.default.moveItem(at: root.appendingPathComponent(String(getpid())), to: root.appendingPathComponent(String(dead)))
        _ = HostProcessService(artifacts: store, workRoot: root)
        for _ in 0..<100 where Media.isAlive(pid) { usleep(20_000) }
        XCTAssertFalse(Media.isAlive(pid), "the orphan is killed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent(String(dead)).path), "its folder is swept")
    }

    func testATimeLimitStopsTheChild() throws {
        let status = try service.wait(try start(["executable": "sh", "args": ["-c", "sleep 30"], "timeout_ms": 200]), pluginID: plugin, timeoutMs: 10_000)
        XCTAssertEqual(status["state"] as? String, "timed_out")
        XCTAssertLessThan(status["elapsed_ms"] as? Int ?? .max, 5_000)
    }
}
