import Foundation
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// `yard` as scripts and people use it: results on stdout and progress on
/// stderr, ISO timestamps, one JSON document from doctor, documented exit
/// statuses, "did you mean", output files a person can find, `yard runs`,
/// `yard config`, a 100-column `yard engines`, clean error texts, and
/// `--detach` followed by `jobs logs --follow` that ends.
final class YardConventionsTests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }
    static let iso = #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"#

    func json(_ result: ProcessResult, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(result.json as? [String: Any], result.stdout + result.stderr, file: file, line: line)
    }

    // MARK: output for scripts

    func testResultsGoToStdoutAndProgressToStderrOnlyWhenAsked() throws {
        let quiet = try yard(["run", "debug.echo", "--input", "text=hi", "--input", "polls=3"], home: home)
        XCTAssertEqual(quiet.status, 0, quiet.stderr)
        XCTAssertTrue(quiet.stdout.contains("state     succeeded"), quiet.stdout)
        XCTAssertEqual(quiet.stderr, "", "no live lines when stderr is not a terminal")
        let jobID = try XCTUnwrap(quiet.stdout.split(separator: "\n").first?.split(separator: " ").last.map(String.init))
        XCTAssertFalse(quiet.stdout.contains("\(jobID)  echo  running"), "progress never lands on stdout")

        let shown = try yard(["run", "debug.echo", "--input", "text=hi", "--input", "polls=3", "--progress"], home: home)
        XCTAssertEqual(shown.status, 0, shown.stderr)
        XCTAssertTrue(shown.stderr.contains("  echo  running"), "plain progress lines with --progress: \(shown.stderr)")
        XCTAssertFalse(shown.stderr.contains("\u{1B}["), "no terminal escapes off a terminal")
        XCTAssertFalse(shown.stdout.contains("  echo  running"), shown.stdout)
    }

    func testJSONTimestampsAreISO8601InUTC() throws {
        let run = try json(try yard(["run", "debug.echo", "--input", "text=hi", "--json"], home: home))
        for key in ["created_at", "finished_at"] {
            let value = try XCTUnwrap(run[key] as? String, "\(key) is a string, not seconds since 2001: \(run)")
            XCTAssertNotNil(value.range(of: Self.iso, options: .regularExpression), value)
        }
        let listed = try XCTUnwrap(try yard(["jobs", "list", "--json"], home: home).json as? [[String: Any]])
        XCTAssertNotNil((listed.first?["created_at"] as? String)?.range(of: Self.iso, options: .regularExpression))
        let logs = try yard(["jobs", "logs", try XCTUnwrap(run["id"] as? String), "--json"], home: home)
        for line in logs.stdout.split(separator: "\n") {
            let event = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertNotNil((event["at"] as? String)?.range(of: Self.iso, options: .regularExpression), "\(event)")
            if let data = event["data"] { XCTAssertFalse(data is String, "event data is JSON, not JSON in a string: \(event)") }
        }
    }

    func testDoctorIsOneJSONDocumentWithConfigsRedacted() throws {
        let config = home.appendingPathComponent("config")
        try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
        try Data(#"{"base_url":"http://127.0.0.1:9","api_key":"canary-config-key-123"}"#.utf8).write(to: config.appendingPathComponent("comfyui.json"))
        _ = try yard(["run", "debug.echo", "--input", "text=x", "--input", "fail_with=ENGINE_ERROR"], home: home)
        let doctor = try yard(["doctor"], home: home)
        XCTAssertEqual(doctor.status, 0, doctor.stderr)
        let bundle = try json(doctor)
        XCTAssertFalse(doctor.stdout.contains("canary-config-key-123"))
        let comfy = try XCTUnwrap((bundle["configs"] as? [String: Any])?["comfyui"] as? [String: Any], "\(bundle)")
        XCTAssertEqual(comfy["api_key"] as? String, "[REDACTED]")
        XCTAssertEqual(comfy["base_url"] as? String, "http://127.0.0.1:9")
        let failure = try XCTUnwrap((bundle["recent_failures"] as? [[String: Any]])?.first, "\(bundle)")
        XCTAssertEqual((failure["error"] as? [String: Any])?["code"] as? String, "ENGINE_ERROR", "the error is an object, not JSON inside a string")
    }

    func testExitStatusesAreTheDocumentedOnes() throws {
        XCTAssertEqual(try yard(["run", "debug.echo", "--input", "text=hi"], home: home).status, 0)
        XCTAssertEqual(try yard(["run", "debug.echo", "--input", "text=x", "--input", "fail_with=ENGINE_ERROR"], home: home).status, 1, "a failed job")
        XCTAssertEqual(try yard(["run", "debug.echo", "--input", "colour=red"], home: home).status, 1, "a refusal")
        XCTAssertEqual(try yard(["run", "debug.echo", "--no-such-flag"], home: home).status, 2, "an unknown option")
        XCTAssertEqual(try yard(["run", "debug.echo", "--input", "novalue"], home: home).status, 2, "a malformed --input")
        XCTAssertEqual(try yard(["jbos"], home: home).status, 2, "an unknown command")
        let help = try yard(["--help"], home: home)
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("130 interrupted"), help.stdout)
    }

    func testABadHomeIsAClearRefusalNotAnInternalError() throws {
        let file = dir.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: file)
        for bad in [file.path, file.appendingPathComponent("below").path] {
            let result = try yard(["jobs", "list", "--home", bad], home: home)
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains("error[IO_FAILED]"), result.stderr)
            XCTAssertTrue(result.stderr.contains("--home"), result.stderr)
            XCTAssertFalse(result.stderr.contains("INTERNAL") || result.stderr.contains("Error Domain"), result.stderr)
        }
    }

    func testCreditsBalanceOfAnAccountThatDoesNotExistFails() throws {
        XCTAssertEqual(try yard(["credits", "grant", "--account", "acme", "--amount", "5.00"], home: home).status, 0)
        XCTAssertEqual(try yard(["credits", "balance", "--account", "acme"], home: home).status, 0)
        let missing = try yard(["credits", "balance", "--account", "acmee"], home: home)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("ACCOUNT_NOT_FOUND") && missing.stderr.contains("Did you mean acme?"), missing.stderr)
    }

    // MARK: habits from gh, comfy-cli and cog

    func testMistypedNamesAreAnsweredWithTheClosestOnes() throws {
        let command = try yard(["jbos", "list"], home: home)
        XCTAssertTrue(command.stderr.contains("unknown command 'jbos' for 'yard'. Did you mean 'jobs'?"), command.stderr)
        let sub = try yard(["jobs", "shwo", "x"], home: home)
        XCTAssertTrue(sub.stderr.contains("Did you mean 'show'?"), sub.stderr)
        let preset = try yard(["run", "ugc-product-clp", "--input", "script=hi"], home: home)
        XCTAssertEqual(preset.status, 1)
        XCTAssertTrue(preset.stderr.contains("error[PRESET_NOT_FOUND]") && preset.stderr.contains("Did you mean ugc-product-clip?"), preset.stderr)
        let capability = try yard(["run", "image.generat", "--input", "prompt=x"], home: home)
        XCTAssertTrue(capability.stderr.contains("Did you mean image.generate?"), capability.stderr)
        let engine = try yard(["run", "debug.echo", "--engine", "ecko", "--input", "text=x", "--dry-run"], home: home)
        XCTAssertTrue(engine.stdout.contains("PLUGIN_NOT_FOUND") && engine.stdout.contains("Did you mean echo?"), engine.stdout)
        let input = try yard(["run", "audio.speech", "--engine", "local-speech", "--input", "txt=hello", "--dry-run"], home: home)
        XCTAssertTrue(input.stdout.contains("Did you mean text?"), input.stdout)
        let presetInput = try yard(["plan", "ugc-product-clip", "--input", "scrpt=hi"], home: home)
        XCTAssertTrue(presetInput.stdout.contains("Did you mean script?"), presetInput.stdout)
    }

    func testRunsHaveTheirOwnNoun() throws {
        let pipeline = dir.appendingPathComponent("two.yaml")
        try Data("""
            pipeline: 1
            id: two
            inputs: {text: {type: string, required: true}}
            steps:
              first: {capability: debug.echo, engines: [echo], inputs: {text: "${inputs.text}"}}
              second: {capability: debug.echo, engines: [echo], inputs: {text: "${steps.first.outputs.text}"}}
            outputs: {text: "${steps.second.outputs.text}"}
            """.utf8).write(to: pipeline)
        let run = try json(try yard(["run", pipeline.path, "--input", "text=hi", "--json"], home: home))
        let runID = try XCTUnwrap((run["run"] as? [String: Any])?["id"] as? String)
        let listed = try yard(["runs", "list"], home: home)
        XCTAssertTrue(listed.stdout.contains(runID) && listed.stdout.contains("2/2"), listed.stdout)
        let shown = try yard(["runs", "show", runID], home: home)
        XCTAssertEqual(shown.status, 0, shown.stderr)
        XCTAssertTrue(shown.stdout.contains("first") && shown.stdout.contains("succeeded"), shown.stdout)
        let asJob = try yard(["jobs", "show", runID], home: home)
        XCTAssertTrue(asJob.stderr.contains("is a pipeline run") && asJob.stderr.contains("yard runs show \(runID)"), asJob.stderr)
        let cancel = try yard(["runs", "cancel", runID], home: home)
        XCTAssertEqual(cancel.status, 0, cancel.stderr)
        XCTAssertTrue(cancel.stdout.contains("already succeeded"), cancel.stdout)
    }

    func testConfigIsSetAndCheckedAgainstTheEnginesSchema() throws {
        let set = try yard(["config", "set", "comfyui", "base_url=http://127.0.0.1:8188", "object_info_ttl_ms=30000"], home: home)
        XCTAssertEqual(set.status, 0, set.stderr)
        let file = home.appendingPathComponent("config/comfyui.json")
        let written = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        XCTAssertEqual(written["base_url"] as? String, "http://127.0.0.1:8188")
        XCTAssertEqual(written["object_info_ttl_ms"] as? Int, 30000, "numbers stay numbers")
        let wrongType = try yard(["config", "set", "comfyui", "object_info_ttl_ms=soon"], home: home)
        XCTAssertEqual(wrongType.status, 1)
        XCTAssertTrue(wrongType.stderr.contains("CONFIG_INVALID"), wrongType.stderr)
        let unchanged = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        XCTAssertEqual(unchanged["object_info_ttl_ms"] as? Int, 30000, "a refused change writes nothing")
        let show = try yard(["config", "show", "comfyui"], home: home)
        XCTAssertTrue(show.stdout.contains("base_url = \"http://127.0.0.1:8188\""), show.stdout)
        XCTAssertEqual(try yard(["config", "path", "comfyui"], home: home).stdout.trimmingCharacters(in: .whitespacesAndNewlines), file.path)
        let unset = try yard(["config", "unset", "comfyui", "object_info_ttl_ms"], home: home)
        XCTAssertEqual(unset.status, 0, unset.stderr)
        XCTAssertNil(try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])["object_info_ttl_ms"])
        let unknownEngine = try yard(["config", "show", "comfyiu"], home: home)
        XCTAssertTrue(unknownEngine.stderr.contains("Did you mean comfyui?"), unknownEngine.stderr)
    }

    func testEnginesFitsAHundredColumnsWithCleanMessagesAndWideShowsEverything() throws {
        // A ComfyUI that is not running: the message says so in words, not in NIO's.
        XCTAssertEqual(try yard(["config", "set", "comfyui", "base_url=http://127.0.0.1:9"], home: home).status, 0)
        let narrow = try yard(["engines"], home: home)
        XCTAssertEqual(narrow.status, 0, narrow.stderr)
        for line in narrow.stdout.split(separator: "\n") { XCTAssertLessThanOrEqual(line.count, 100, "too wide: \(line)") }
        let comfy = try XCTUnwrap(narrow.stdout.split(separator: "\n").first { $0.hasPrefix("comfyui") }, narrow.stdout)
        XCTAssertTrue(comfy.contains("offline"), String(comfy))
        let joined = narrow.stdout.replacingOccurrences(of: #"\n\s+"#, with: " ", options: .regularExpression)
        XCTAssertTrue(joined.contains("Could not connect to http://127.0.0.1:9: connection refused"), "wrapped, not cut: \(narrow.stdout)")
        for noise in ["errno", "error set", "NIOConnectionError", "SingleConnectionFailure"] { XCTAssertFalse(narrow.stdout.contains(noise), narrow.stdout) }
        let wide = try yard(["engines", "--wide"], home: home)
        XCTAssertTrue(wide.stdout.split(separator: "\n").contains { $0.count > 100 }, "--wide keeps whole messages: \(wide.stdout)")
    }

    func testAnOfflineEngineIsProbedOncePerPlanNotOncePerStep() throws {
        // Accepts and hangs up on every connection, counting them: an unusable ComfyUI.
        let listener = try HangUpListener()
        defer { listener.close() }
        XCTAssertEqual(try yard(["config", "set", "comfyui", "base_url=http://127.0.0.1:\(listener.port)"], home: home).status, 0)
        let plan = try yard(["plan", "storyboard-builder", "--input", "shot_1=a", "--input", "shot_2=b", "--input", "shot_3=c", "--json"], home: home)
        let steps = try XCTUnwrap(try json(plan)["steps"] as? [[String: Any]])
        let probedSteps = steps.filter { (($0["attempts"] as? [[String: Any]]) ?? []).contains { $0["engine"] as? String == "comfyui" } }
        XCTAssertEqual(probedSteps.count, 3, "every panel step lists ComfyUI as passed over: \(plan.stdout)")
        let onePlanOfOneStep = listener.connections
        XCTAssertGreaterThan(onePlanOfOneStep, 0, "ComfyUI was probed")
        XCTAssertLessThanOrEqual(onePlanOfOneStep, 3, "probed for the first step only, not for each of the three")
    }

    // MARK: outputs a user can find

    func testASingleJobsFilesGoToOutputDirAndTheirPathsArePrinted() throws {
        try Media.require("espeak-ng")
        let out = dir.appendingPathComponent("out")
        let run = try yard(["run", "audio.speech", "--engine", "local-speech", "--input", "text=Fresh roast.", "--output-dir", out.path], home: home)
        XCTAssertEqual(run.status, 0, run.stderr)
        let wav = out.appendingPathComponent("audio.wav")
        XCTAssertTrue(FileManager.default.fileExists(atPath: wav.path), "named after the output, extension from the media type")
        XCTAssertTrue(run.stdout.contains("audio: \(wav.path) (audio/wav"), run.stdout)
        let jobID = try XCTUnwrap(run.stdout.split(separator: "\n").first?.split(separator: " ").last.map(String.init))
        let stored = try yard(["artifacts", "path", jobID], home: home)
        XCTAssertEqual(stored.status, 0, stored.stderr)
        let storedPath = stored.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(storedPath.hasPrefix(home.appendingPathComponent("artifacts").path), storedPath)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: storedPath)), try Data(contentsOf: wav))
        let show = try yard(["jobs", "show", jobID], home: home)
        XCTAssertTrue(show.stdout.contains("output    audio: \(storedPath)"), show.stdout)
        let copies = dir.appendingPathComponent("copies")
        let got = try yard(["artifacts", "get", jobID, "--out", copies.path + "/"], home: home)
        XCTAssertEqual(got.status, 0, got.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: copies.appendingPathComponent("audio.wav").path), got.stdout)
        let handle = "sha256:" + URL(fileURLWithPath: storedPath).lastPathComponent
        XCTAssertEqual(try yard(["artifacts", "path", String(handle.prefix(19))], home: home).stdout.trimmingCharacters(in: .whitespacesAndNewlines), storedPath,
                       "a unique prefix of the handle is enough")
        let put = try yard(["artifacts", "put", wav.path], home: home)
        XCTAssertEqual(put.stdout.trimmingCharacters(in: .whitespacesAndNewlines), handle, "the same bytes, the same handle")
    }

    func testFinishedJobsKeepNoProgressMessage() async throws {
        let standIn = try ComfyUIStandIn(withModels: true)
        try await standIn.start()
        defer { Task { await standIn.stop() } }
        XCTAssertEqual(try yard(["config", "set", "comfyui", "base_url=\(standIn.baseURL)"], home: home).status, 0)
        let run = try json(try yard(["run", "image.generate", "--engine", "comfyui", "--input", "prompt=a fox", "--json"], home: home))
        XCTAssertEqual(run["state"] as? String, "succeeded", "\(run)")
        XCTAssertNil(run["message"], "no \"running on ComfyUI\" on a finished job: \(run)")
    }

    // MARK: Ctrl-C

    func testCtrlCStopsLocalProcessesWithTheirGroupAndExits130() throws {
        try Media.require("ffmpeg")
        let image = dir.appendingPathComponent("still.png")
        try Media.still(size: "640x480").write(to: image)
        let host = Process()
        host.executableURL = Build.yard
        host.arguments = ["run", "video.from_image", "--engine", "local-media", "--input", "image=@\(image.path)", "--input", "duration_seconds=60"]
        host.environment = ProcessInfo.processInfo.environment.merging(["YARD_HOME": home.path, "YARD_PLUGIN_PATH": ""]) { $1 }
        let err = Pipe()
        host.standardOutput = FileHandle.nullDevice
        host.standardError = err
        try host.run()
        var ffmpeg: Int32?
        let deadline = Date().addingTimeInterval(30)
        while ffmpeg == nil && Date() < deadline && host.isRunning {
            ffmpeg = Media.children(of: host.processIdentifier, named: "ffmpeg").first
            usleep(20_000)
        }
        let child = try XCTUnwrap(ffmpeg, "the host started ffmpeg")
        kill(host.processIdentifier, SIGINT)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        host.waitUntilExit()
        XCTAssertEqual(host.terminationStatus, 130, stderr)
        XCTAssertTrue(stderr.contains("Interrupted. Stopped 1 local process"), stderr)
        XCTAssertFalse(Media.isAlive(child), "ffmpeg died with its process group instead of living on under pid 1")
    }

    func testCtrlCNamesTheRemoteJobThatKeepsBillingAndCancelsItWhenAsked() async throws {
        let standIn = RunPodStandIn()
        standIn.configure { $0.stuckInQueue = true }
        try await standIn.start()
        defer { Task { await standIn.stop() } }
        XCTAssertEqual(try yard(["config", "set", "runpod", "endpoint_id=\(standIn.endpointID)", "base_url=\(standIn.baseURL)"], home: home).status, 0)
        // On a terminal (script(1) gives yard one), the first Ctrl-C offers to cancel.
        let terminal = Process()
        terminal.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        terminal.arguments = ["-qfec", "\(Build.yard.path) run image.generate --engine runpod --input prompt=lighthouse", "/dev/null"]
        terminal.environment = ProcessInfo.processInfo.environment.merging(["YARD_HOME": home.path, "YARD_PLUGIN_PATH": "", "RUNPOD_API_KEY": standIn.apiKey]) { $1 }
        let input = Pipe(), output = Pipe()
        terminal.standardInput = input
        terminal.standardOutput = output
        terminal.standardError = output
        let seen = ProcessOutput(output.fileHandleForReading)
        try terminal.run()
        let store = try SQLiteJobStore(path: YardPaths(home: home).jobStoreFile)
        var job: JobRecord?
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            job = try store.jobs(limit: 1, phase: .queued).first
            if job != nil { break }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        let queued = try XCTUnwrap(job, "the job reached RunPod's queue: \(seen.text)")
        input.fileHandleForWriting.write(Data([0x03]))
        let prompted = await seen.wait(for: "now? [y/N]")
        XCTAssertTrue(prompted, seen.text)
        XCTAssertTrue(seen.text.contains(queued.id) && seen.text.contains("may keep billing"), seen.text)
        input.fileHandleForWriting.write(Data("y\n".utf8))
        terminal.waitUntilExit()
        XCTAssertEqual(terminal.terminationStatus, 130, seen.text)
        XCTAssertEqual(try store.job(id: queued.id)?.phase, .cancelled, seen.text)
        XCTAssertTrue(standIn.requestsSeen.contains { $0.method == "POST" && $0.path.contains("/cancel/") }, "cancelled at RunPod")
        XCTAssertFalse(seen.text.contains(standIn.apiKey))
    }

    func testCtrlCOffATerminalSaysHowToCancelAndExits() async throws {
        let standIn = RunPodStandIn()
        standIn.configure { $0.stuckInQueue = true }
        try await standIn.start()
        defer { Task { await standIn.stop() } }
        XCTAssertEqual(try yard(["config", "set", "runpod", "endpoint_id=\(standIn.endpointID)", "base_url=\(standIn.baseURL)"], home: home).status, 0)
        let host = Process()
        host.executableURL = Build.yard
        host.arguments = ["run", "image.generate", "--engine", "runpod", "--input", "prompt=lighthouse"]
        host.environment = ProcessInfo.processInfo.environment.merging(["YARD_HOME": home.path, "YARD_PLUGIN_PATH": "", "RUNPOD_API_KEY": standIn.apiKey]) { $1 }
        let err = Pipe()
        host.standardOutput = FileHandle.nullDevice
        host.standardError = err
        try host.run()
        let store = try SQLiteJobStore(path: YardPaths(home: home).jobStoreFile)
        let deadline = Date().addingTimeInterval(30)
        var queued: JobRecord?
        while queued == nil && Date() < deadline {
            queued = try store.jobs(limit: 1, phase: .queued).first
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        let job = try XCTUnwrap(queued)
        kill(host.processIdentifier, SIGINT)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        host.waitUntilExit()
        XCTAssertEqual(host.terminationStatus, 130)
        XCTAssertTrue(stderr.contains("Still running at the provider") && stderr.contains("`yard jobs cancel \(job.id)`"), stderr)
        XCTAssertEqual(try store.job(id: job.id)?.phase, .queued, "left for `yard jobs resume`, not cancelled without asking")
    }

    // MARK: detach

    func testADetachedRunIsDrivenInTheBackgroundAndLogsFollowEnds() async throws {
        let standIn = RunPodStandIn()
        standIn.configure { $0.queueMs = 1_000 }
        try await standIn.start()
        defer { Task { await standIn.stop() } }
        XCTAssertEqual(try yard(["config", "set", "runpod", "endpoint_id=\(standIn.endpointID)", "base_url=\(standIn.baseURL)"], home: home).status, 0)
        let environment = ["RUNPOD_API_KEY": standIn.apiKey]
        let detached = try yard(["run", "image.generate", "--engine", "runpod", "--input", "prompt=a lighthouse", "--detach", "--json"], home: home,
                                extraEnvironment: environment)
        XCTAssertEqual(detached.status, 0, detached.stderr)
        let jobID = try XCTUnwrap(try json(detached)["id"] as? String)
        XCTAssertNotEqual(try json(detached)["state"] as? String, "succeeded", "it returned before the job finished")
        // `time` reports the follower's own CPU: waiting must not spin.
        let follow = try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", "TIMEFORMAT='cpu %U %S'; time \"$0\" jobs logs \"$1\" --follow", Build.yard.path, jobID],
                                    environment: ProcessInfo.processInfo.environment.merging(["YARD_HOME": home.path, "YARD_PLUGIN_PATH": ""] .merging(environment) { $1 }) { $1 })
        XCTAssertEqual(follow.status, 0, follow.stderr)
        XCTAssertTrue(follow.stdout.contains("end        succeeded"), follow.stdout)
        let cpu = try XCTUnwrap(follow.stderr.split(separator: "\n").last { $0.hasPrefix("cpu ") }).split(separator: " ").dropFirst().compactMap { Double($0) }.reduce(0, +)
        XCTAssertLessThan(cpu, 1.5, "following for seconds costs a fraction of a second of CPU: \(follow.stderr)")
        let shown = try json(try yard(["jobs", "show", jobID, "--json"], home: home))
        XCTAssertEqual(shown["state"] as? String, "succeeded")
        let deadline = Date().addingTimeInterval(20)
        while StoreDriver.isDriven(paths: YardPaths(home: home)) && Date() < deadline { try await Task.sleep(nanoseconds: 100_000_000) }
        XCTAssertFalse(StoreDriver.isDriven(paths: YardPaths(home: home)), "the background driver exits when nothing is left")
        let log = try String(contentsOf: YardPaths(home: home).driverLogFile, encoding: .utf8)
        XCTAssertTrue(log.contains("\(jobID) runpod succeeded") && log.contains("done"), log)
        XCTAssertFalse(log.contains(standIn.apiKey), "no secret in the driver's log")
        XCTAssertEqual(standIn.submissions, 1)
    }
}

/// A TCP listener on loopback that accepts every connection and closes it at
/// once, counting them: an engine that is there but never answers.
final class HangUpListener: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private let lock = NSLock()
    private var count = 0
    private var open = true

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 16) == 0 else { throw YardError(.ioFailed, "cannot listen on loopback (errno \(errno))", remediation: "none") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in
            while lock.withLock({ open }) {
                let client = accept(fd, nil, nil)
                if client < 0 { break }
                lock.withLock { count += 1 }
                Glibc.close(client)
            }
        }
    }

    var connections: Int { lock.withLock { count } }

    func close() {
        lock.withLock { open = false }
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }
}

/// Collects what a process writes, for a test that waits for a prompt.
final class ProcessOutput: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()

    init(_ handle: FileHandle) {
        handle.readabilityHandler = { [weak self] handle in
            let chunk = handle.availableData
            guard let self, !chunk.isEmpty else {
                handle.readabilityHandler = nil
                return
            }
            self.lock.withLock { self.data.append(chunk) }
        }
    }

    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }

    func wait(for needle: String, seconds: Double = 20) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if text.contains(needle) { return true }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
        return false
    }
}
