import Foundation
import XCTest
@testable import SwitchyardHost
import SwitchyardJSON
#if canImport(Glibc)
import Glibc
#endif

/// `yard run FILE`, `yard plan`, `yard presets` and durable pipeline runs, as a
/// user drives them: the built yard in a child process with its own YARD_HOME.
final class PipelineCLITests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }

    func store() throws -> (SQLiteJobStore, PipelineRunStore) {
        let jobs = try SQLiteJobStore(path: home.appendingPathComponent("yard.sqlite"))
        return (jobs, PipelineRunStore(pool: jobs.pool))
    }

    /// Three echo steps in a chain; the middle one polls long enough to be killed in.
    func writeChain() throws -> URL {
        let file = dir.appendingPathComponent("chain.yaml")
        try Data("""
            pipeline: 1
            id: chain
            steps:
              first: {capability: debug.echo, engines: [echo], inputs: {text: one, polls: 1}}
              middle: {capability: debug.echo, engines: [echo], inputs: {text: "${steps.first.outputs.text} two", polls: 50}}
              last: {capability: debug.echo, engines: [echo], inputs: {text: "${steps.middle.outputs.text} three", polls: 1}}
            outputs:
              text: ${steps.last.outputs.text}
            """.utf8).write(to: file)
        return file
    }

    /// Starts `yard run FILE`, waits until the middle step's job is running, SIGKILLs it.
    func killMidPipeline(_ file: URL) throws -> String {
        let process = Process()
        process.executableURL = Build.yard
        process.arguments = ["run", file.path, "--json"]
        process.environment = yardEnvironment(home: home)
        let output = dir.appendingPathComponent("run-output.txt")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let sink = try FileHandle(forWritingTo: output)
        process.standardOutput = sink
        process.standardError = sink
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        var runID: String?
        // One store for the whole wait: opening it runs every migration check,
        // which on a loaded machine is slower than the step's polls.
        var opened: (SQLiteJobStore, PipelineRunStore)?
        while Date() < deadline && runID == nil && process.isRunning {
            if opened == nil { opened = try? store() }
            if let (jobs, runs) = opened, let run = try? runs.unfinishedRuns().first,
               let middle = try? runs.steps(runID: run.id).first(where: { $0.name == "middle" }), let jobID = middle.jobID,
               let job = try? jobs.job(id: jobID), job.phase == .running || job.phase == .queued {
                runID = run.id
            } else { usleep(20_000) }
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let said = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        XCTAssertEqual(process.terminationReason, .uncaughtSignal, said)
        return try XCTUnwrap(runID, "the middle step never reached running: \(said)")
    }

    func assertFinishedWithoutRepeats(_ runID: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (jobs, runs) = try store()
        let run = try XCTUnwrap(runs.run(id: runID))
        XCTAssertEqual(run.state, .succeeded, run.errorJSON ?? "", file: file, line: line)
        XCTAssertEqual(try JSONValue(parsing: Data(XCTUnwrap(run.outputsJSON).utf8))["text"], "one two three", file: file, line: line)
        let all = try jobs.jobs(limit: 50, phase: nil)
        XCTAssertEqual(all.count, 3, "one job per step: none repeated", file: file, line: line)
        for job in all {
            let outputs = try JSONValue(parsing: Data(XCTUnwrap(job.outputsJSON).utf8))
            XCTAssertEqual(outputs["submissions"], 1, "\(job.idempotencyKey) was submitted once", file: file, line: line)
        }
    }

    func testAKilledRunContinuesWithRunResume() throws {
        let runID = try killMidPipeline(try writeChain())
        let resumed = try yard(["run", "--resume", runID, "--json"], home: home)
        XCTAssertEqual(resumed.status, 0, resumed.stderr + resumed.stdout)
        let view = try XCTUnwrap(resumed.json as? [String: Any])["run"] as? [String: Any]
        XCTAssertEqual(view?["state"] as? String, "succeeded")
        try assertFinishedWithoutRepeats(runID)
    }

    func testAKilledRunContinuesWithJobsResume() throws {
        let runID = try killMidPipeline(try writeChain())
        let resumed = try yard(["jobs", "resume"], home: home)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("\(runID)  pipeline chain  succeeded"), resumed.stdout)
        try assertFinishedWithoutRepeats(runID)
    }

    func testRunPrintsASummaryTableAndCopiesOutputs() throws {
        let out = dir.appendingPathComponent("out")
        let result = try yard(["run", try writeChain().path, "--output-dir", out.path], home: home)
        XCTAssertEqual(result.status, 0, result.stderr + result.stdout)
        for column in ["STEP", "ENGINE", "STATE", "DURATION", "COST", "OUTPUTS"] { XCTAssertTrue(result.stdout.contains(column), result.stdout) }
        XCTAssertTrue(result.stdout.contains("middle"), result.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("text").path), "only files are copied")
    }

    func testPlanCatchesATypeMismatchAndSpendsNothing() throws {
        let file = dir.appendingPathComponent("bad.yaml")
        try Data("""
            id: bad
            steps:
              a: {capability: debug.echo, engines: [echo], inputs: {text: hi}}
              b: {capability: debug.echo, engines: [echo], inputs: {text: "${steps.a.outputs.file}"}}
            """.utf8).write(to: file)
        let plan = try yard(["plan", file.path, "--json"], home: home)
        XCTAssertEqual(plan.status, 1)
        let json = try XCTUnwrap(plan.json as? [String: Any], plan.stdout)
        XCTAssertEqual(json["valid"] as? Bool, false)
        let codes = (json["findings"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
        XCTAssertTrue(codes.contains("TYPE_MISMATCH"), "\(codes)")
        let run = try yard(["run", file.path], home: home)
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stdout.contains("TYPE_MISMATCH"), run.stdout)
        XCTAssertEqual(try store().0.jobs(limit: 10, phase: nil).count, 0, "a refused pipeline submits nothing")
    }

    func testACapabilityIsStillRunDirectly() throws {
        let result = try yard(["run", "debug.echo", "--engine", "echo", "--input", "text=direct", "--input", "polls=0", "--json"], home: home)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual((result.json as? [String: Any])?["capability"] as? String, "debug.echo")
    }

    func testPresetsListAndShow() throws {
        let list = try yard(["presets", "list", "--json"], home: home)
        XCTAssertEqual(list.status, 0, list.stderr)
        let ids = (list.json as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        XCTAssertEqual(ids.count, 12, "\(ids)")
        XCTAssertTrue(ids.contains("ugc-product-clip"))
        let show = try yard(["presets", "show", "talking-clip"], home: home)
        XCTAssertEqual(show.status, 0, show.stderr)
        XCTAssertTrue(show.stdout.contains("consent_given=true"), show.stdout)
        XCTAssertTrue(show.stdout.contains("Failure modes"), show.stdout)
        let missing = try yard(["presets", "show", "nope"], home: home)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("PRESET_NOT_FOUND"), missing.stderr)
    }
}

/// Every shipped preset is a well-formed pipeline whose steps fit together:
/// `yard plan` on its example inputs reports engines that are absent or
/// unconfigured, but finds nothing wrong with the file itself.
final class PresetTests: TemporaryDirectoryTestCase {
    func testEveryPresetPassesPlanStructurally() async throws {
        let library = PresetLibrary(directory: Build.repository.appendingPathComponent("Registry/presets"))
        let files = library.files()
        XCTAssertEqual(files.count, 12)
        let engine = try makeTestEngine(home: dir.appendingPathComponent("home"), plugins: Build.plugins)
        let planner = PipelinePlanner(engine: engine, configs: EngineConfigs(paths: engine.paths))
        for file in files {
            let preset = try PipelineDefinition.load(file)
            XCTAssertEqual(preset.id, file.deletingPathExtension().lastPathComponent)
            XCTAssertFalse(preset.safety.isEmpty, "\(preset.id) has safety notes")
            XCTAssertFalse(preset.failureModes.isEmpty, "\(preset.id) has failure modes")
            var inputs: [String: JSONValue] = [:]
            for (name, value) in preset.exampleInputs {
                if let path = library.resolveSample(value).stringValue, path.hasPrefix("@") {
                    let url = URL(fileURLWithPath: String(path.dropFirst()))
                    let type = ["png": "image/png", "mp4": "video/mp4"][url.pathExtension] ?? "application/octet-stream"
                    let digest = try engine.artifacts.put(Data(contentsOf: url), mediaType: type)
                    inputs[name] = ["artifact": .string("sha256:\(digest)"), "media_type": .string(type)]
                } else {
                    inputs[name] = value
                }
            }
            let plan = await planner.plan(preset, inputs: inputs)
            XCTAssertTrue(plan.valid, "\(preset.id): \(plan.findings.filter { $0.severity == .error })")
            XCTAssertEqual(plan.steps.count, preset.steps.count)
            for step in plan.steps where step.runs != .no {
                XCTAssertFalse(step.attempts.isEmpty && step.engine == nil && plan.findings.isEmpty, "\(preset.id).\(step.name) was judged")
            }
            if let identity = preset.identityInputs.first {
                var withoutConsent = inputs
                let face = try engine.artifacts.put(Data(contentsOf: library.samplesDirectory.appendingPathComponent("portrait.png")), mediaType: "image/png")
                withoutConsent[identity] = ["artifact": .string("sha256:\(face)"), "media_type": "image/png"]
                withoutConsent["consent_given"] = false
                let refused = await planner.plan(preset, inputs: withoutConsent)
                XCTAssertTrue(refused.findings.contains { $0.code == "CONSENT_MISSING" }, "\(preset.id) demands consent")
            }
        }
    }
}
