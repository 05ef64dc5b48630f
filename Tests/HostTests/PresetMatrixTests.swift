import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// Every preset, every step, every engine in that step's list — as a user
/// runs them with keys for every remote engine (against the stand-ins):
/// the plan must choose the engine at every quality level (`--prefer
/// STEP=ENGINE`), and `yard run` must finish with the preset's final outputs valid
/// (MP4s read by ffprobe, images decoded by ffmpeg). The cells are the table
/// in docs/preset-matrix.md, which this test keeps true.
final class PresetMatrixTests: TemporaryDirectoryTestCase {
    struct Cell: Hashable, Comparable {
        var preset, step, engine: String
        static func < (a: Cell, b: Cell) -> Bool { (a.preset, a.step, a.engine) < (b.preset, b.step, b.engine) }
    }

    /// One `yard run`: a preset with inputs, each step's engine forced first.
    struct Run: Sendable {
        var preset: String
        var inputs: [String]
        var prefer: [String: String]
        var label: String
        /// The lowest quality level at which every forced step runs (image-to-video steadies only above low).
        var quality = "low"
    }

    struct Outcome: Sendable {
        var run: Run
        var ran: [Cell]
        var problems: [String]
        var seconds: Double
        /// What was checked of the final outputs, e.g. "video: H.264 MP4".
        var checked: [String] = []
    }

    struct Environment: Sendable {
        var configs: [String: [String: JSONValue]]
        var secrets: [String: String]
    }

    static let matrixFile = Build.repository.appendingPathComponent("docs/preset-matrix.md")

    func testEveryPresetRunsOnEveryEngineItLists() async throws {
        for tool in ["ffmpeg", "ffprobe", "espeak-ng"] {
            XCTAssertEqual(try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["which", tool]).status, 0, "\(tool) is needed (.ci/run installs it)")
        }
        let started = Date()
        let fal = FalStandIn()
        let runpod = RunPodStandIn()
        runpod.worker = .sdxl
        runpod.addEndpoint("standin-upscaler", worker: .imageURL)
        runpod.addEndpoint("standin-video", worker: .videoURL)
        let kling = KlingStandIn()
        let comfy = try ComfyUIStandIn(withModels: true)
        let hub = HubStandIn()
        try await fal.start()
        try await runpod.start()
        try await kling.start()
        try await comfy.start()
        try await hub.start()
        let environment = Environment(
            configs: [
                "fal": ["queue_url": .string(fal.baseURL), "rest_url": .string(fal.baseURL)],
                "runpod": ["endpoint_id": .string(runpod.endpointID), "base_url": .string(runpod.baseURL),
                           "endpoints": ["image.upscale": "standin-upscaler", "video.from_image": "standin-video", "video.upscale": "standin-video"]],
                "kling": ["base_url": .string(kling.baseURL)],
                "comfyui": ["base_url": .string(comfy.baseURL), "lost_grace_ms": 0],
                "huggingface": ["hub_url": .string(hub.baseURL), "router_url": .string(hub.baseURL)],
            ],
            secrets: ["FAL_KEY": fal.key, "RUNPOD_API_KEY": runpod.apiKey, "KLING_ACCESS_KEY": kling.accessKey, "KLING_SECRET_KEY": kling.secretKey,
                      "HF_TOKEN": hub.token, "YARD_MAX_POLL_MS": "20"])

        let library = try XCTUnwrap(PresetLibrary.standard() ?? PresetLibrary(directory: Build.repository.appendingPathComponent("Registry/presets")))
        // YARD_MATRIX_PRESETS=a,b runs only those presets (while working on them; the docs table is then not checked).
        let only = ProcessInfo.processInfo.environment["YARD_MATRIX_PRESETS"].map { Set($0.split(separator: ",").map(String.init)) }
        let presets = try library.files().map { try PipelineDefinition.load($0) }.filter { only?.contains($0.id) ?? true }
        if only == nil { XCTAssertEqual(presets.count, 12) }
        var expected: [Cell] = []
        var runs: [Run] = []
        for preset in presets {
            for step in preset.steps {
                for choice in step.engines { expected.append(Cell(preset: preset.id, step: step.name, engine: choice.engine)) }
            }
            runs += Self.runs(for: preset, library: library)
        }

        // Every run planned at every quality level, in process (what `yard plan` runs): the preset's knobs,
        // mapped per engine, must let the forced engine be chosen at each.
        let planHome = dir.appendingPathComponent("plans")
        try Self.writeConfigs(environment, home: planHome)
        // Fresh copies of the plugins: a library another test loaded in this process keeps that test's host services.
        let plugins = dir.appendingPathComponent("plugins")
        for id in try FileManager.default.contentsOfDirectory(atPath: Build.plugins.path) where !id.hasPrefix(".") { try copyPlugin(id, to: plugins) }
        let planEngine = try makeTestEngine(home: planHome, plugins: plugins, secrets: environment.secrets, http: BlockingHTTPTransport(defaultTimeoutMs: 5_000))
        let planner = PipelinePlanner(engine: planEngine, configs: EngineConfigs(paths: planEngine.paths))
        var planProblems: [String: [String]] = [:]
        for (i, run) in runs.enumerated() {
            let definition = try XCTUnwrap(presets.first { $0.id == run.preset }).preferring(run.prefer)
            let inputs = try Self.inputs(run.inputs, artifacts: planEngine.artifacts)
            var runnable: [String] = []
            for quality in PipelineDefinition.qualityLevels {
                let plan = await planner.plan(definition, inputs: inputs, quality: quality)
                planProblems[run.label, default: []] += Self.planProblems(plan, prefer: run.prefer, label: "plan (\(quality))")
                if !plan.steps.contains(where: { run.prefer[$0.name] != nil && $0.runs == .no }) { runnable.append(quality) }
            }
            runs[i].quality = runnable.first ?? "low"
        }
        let outcomes = await Self.execute(runs, environment: environment, root: dir, concurrency: 2)
        await fal.stop(); await runpod.stop(); await kling.stop(); await comfy.stop(); await hub.stop()

        for (label, problems) in planProblems where !problems.isEmpty { XCTFail("\(label): " + problems.joined(separator: "\n  ")) }
        for outcome in outcomes {
            print("matrix run \(outcome.run.label): \(String(format: "%.1f", outcome.seconds)) s")
            if !outcome.problems.isEmpty { XCTFail("\(outcome.run.label): " + outcome.problems.joined(separator: "\n  ")) }
        }
        let covered = Set(outcomes.filter { $0.problems.isEmpty && planProblems[$0.run.label, default: []].isEmpty }.flatMap(\.ran))
        let missing = expected.filter { !covered.contains($0) }
        XCTAssertEqual(missing, [], "cells no run covered")

        guard only == nil else { return }
        // The table in docs/ is the matrix this test ran: it cannot drift from the presets.
        let table = Self.table(expected.sorted(), outcomes: outcomes.filter { $0.problems.isEmpty })
        let text = (try? String(contentsOf: Self.matrixFile, encoding: .utf8)) ?? ""
        if ProcessInfo.processInfo.environment["YARD_UPDATE_MATRIX"] == "1", let updated = Self.replacingTable(in: text, with: table) {
            try updated.write(to: Self.matrixFile, atomically: true, encoding: .utf8)
        }
        let current = (try? String(contentsOf: Self.matrixFile, encoding: .utf8)) ?? ""
        XCTAssertTrue(current.contains(table), "docs/preset-matrix.md is out of date; run this test with YARD_UPDATE_MATRIX=1. Expected:\n\(table)")
        let seconds = Date().timeIntervalSince(started)
        print("preset matrix: \(expected.count) cells in \(runs.count) runs, \(String(format: "%.1f", seconds)) s")
    }

    // MARK: runs

    /// Runs that force each engine of each step at least once: run k prefers
    /// engine k (or the first one) of every step. The UGC clip's lip-sync runs
    /// only with a presenter photo, so it gets runs of its own; the storyboard's
    /// fourth panel only with a fourth shot.
    static func runs(for preset: PipelineDefinition, library: PresetLibrary) -> [Run] {
        // The preset's own example inputs, as --input arguments ("@samples/x" is a file in Registry/samples).
        let inputs = preset.exampleInputs.sorted { $0.key < $1.key }.map { key, value -> String in
            let resolved = library.resolveSample(value)
            if let text = resolved.stringValue { return "\(key)=\(text)" }
            return "\(key)=\(String(decoding: resolved.serialized(), as: UTF8.self))"
        }
        var variants: [(label: String, inputs: [String], steps: [PipelineStep])] = []
        if preset.id == "storyboard-builder" {
            // The fourth panel is drawn only when a fourth shot is given.
            variants.append(("", inputs + ["shot_4=wide: the beam sweeps the sea"], preset.steps))
        } else if preset.id == "ugc-product-clip" {
            variants.append(("", inputs, preset.steps.filter { $0.name != "lipsync" }))
            let presenter = ["presenter=@\(Build.repository.path)/Registry/samples/portrait.png", "consent_given=true"]
            // The speech cells are the other runs': this one forces the lip-sync only.
            variants.append((" with a presenter", inputs + presenter, preset.steps.filter { !["motion", "speech"].contains($0.name) }))
        } else {
            variants.append(("", inputs, preset.steps))
        }
        var runs: [Run] = []
        for variant in variants {
            let width = variant.steps.map(\.engines.count).max() ?? 1
            for k in 0..<width {
                // Engine k of each step that has one, else its first (the remote engines, whose answers are short clips).
                var prefer: [String: String] = [:]
                for step in variant.steps { prefer[step.name] = step.engines[k < step.engines.count ? k : 0].engine }
                let label = "\(preset.id)\(variant.label) [" + variant.steps.map { "\($0.name)=\(prefer[$0.name] ?? "?")" }.joined(separator: " ") + "]"
                runs.append(Run(preset: preset.id, inputs: variant.inputs, prefer: prefer, label: label))
            }
        }
        return runs
    }

    /// Runs on dispatch threads, `concurrency` at a time: the stand-ins answer
    /// on Swift concurrency meanwhile, so this must not block its threads.
    static func execute(_ runs: [Run], environment: Environment, root: URL, concurrency: Int) async -> [Outcome] {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let outcomes = Outcomes()
                let slots = DispatchSemaphore(value: concurrency)
                let group = DispatchGroup()
                for (i, run) in runs.enumerated() {
                    slots.wait()
                    group.enter()
                    DispatchQueue.global().async {
                        var outcome = Self.perform(run, index: i, environment: environment, root: root)
                        // An engine passed over because it did not answer in time (this machine is shared by
                        // parallel builds) is tried once more; any other problem stands.
                        if !outcome.problems.isEmpty, outcome.problems.allSatisfy({ p in ["ENGINE_OFFLINE", "ENGINE_TIMEOUT", "ENGINE_UNREACHABLE"].contains { p.contains($0) } }) {
                            print("matrix run \(run.label) retried after: \(outcome.problems.joined(separator: "; "))")
                            outcome = Self.perform(run, index: i + 10_000, environment: environment, root: root)
                        }
                        outcomes.set(i, outcome)
                        slots.signal()
                        group.leave()
                    }
                }
                group.wait()
                continuation.resume(returning: outcomes.ordered)
            }
        }
    }

    final class Outcomes: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [Int: Outcome] = [:]
        func set(_ index: Int, _ outcome: Outcome) { lock.withLock { items[index] = outcome } }
        var ordered: [Outcome] { lock.withLock { items.sorted { $0.key < $1.key }.map(\.value) } }
    }

    static func writeConfigs(_ environment: Environment, home: URL) throws {
        let folder = home.appendingPathComponent("config")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (engine, config) in environment.configs {
            try JSONValue.object(config).serialized().write(to: folder.appendingPathComponent("\(engine).json"))
        }
    }

    /// `--input` arguments as pipeline inputs: files into the store, true/false as booleans.
    static func inputs(_ arguments: [String], artifacts: ArtifactDirectory) throws -> [String: JSONValue] {
        var inputs: [String: JSONValue] = [:]
        for argument in arguments {
            let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            if parts[1].hasPrefix("@") {
                let url = URL(fileURLWithPath: String(parts[1].dropFirst()))
                let type = ["png": "image/png", "mp4": "video/mp4", "jpg": "image/jpeg"][url.pathExtension] ?? "application/octet-stream"
                let digest = try artifacts.put(Data(contentsOf: url), mediaType: type)
                inputs[parts[0]] = ["artifact": .string("sha256:\(digest)"), "media_type": .string(type)]
            } else if parts[1] == "true" || parts[1] == "false" {
                inputs[parts[0]] = .bool(parts[1] == "true")
            } else {
                inputs[parts[0]] = .string(parts[1])
            }
        }
        return inputs
    }

    /// A plan that is not ready, or chose another engine than the run forced.
    static func planProblems(_ plan: PipelinePlan, prefer: [String: String], label: String) -> [String] {
        var problems: [String] = []
        if !plan.ready { problems.append("\(label) is not ready: \(plan.findings.filter { $0.severity == .error }.map { "\($0.code): \($0.message)" })") }
        for step in plan.steps where step.runs != .no {
            guard let wanted = prefer[step.name], step.engine != wanted else { continue }
            problems.append("\(label) chose \(step.engine ?? "no engine") for \(step.name), not \(wanted): "
                            + step.attempts.map { "\($0.engine) \($0.ok ? "ok" : "\($0.code ?? "?"): \($0.message ?? "")")" }.joined(separator: "; "))
        }
        return problems
    }

    /// One run in a home of its own, as a user types it: the configs and keys a
    /// user sets, `yard run --prefer …` (which plans first), then the final outputs.
    static func perform(_ run: Run, index: Int, environment: Environment, root: URL) -> Outcome {
        let started = Date()
        var problems: [String] = []
        var ran: [Cell] = []
        var checked: [String] = []
        func finish() -> Outcome { Outcome(run: run, ran: ran, problems: problems, seconds: Date().timeIntervalSince(started), checked: checked) }
        let home = root.appendingPathComponent("run-\(index)")
        do {
            try writeConfigs(environment, home: home)
            let prefer = run.prefer.sorted { $0.key < $1.key }.flatMap { ["--prefer", "\($0.key)=\($0.value)"] }
            let inputs = run.inputs.flatMap { ["--input", $0] }
            let out = home.appendingPathComponent("out")
            let result = try yard(["run", run.preset] + inputs + prefer + ["--quality", run.quality, "--output-dir", out.path, "--json"], home: home,
                                  extraEnvironment: environment.secrets)
            guard let document = result.json as? [String: Any], let view = document["run"] as? [String: Any] else {
                problems.append("run printed no result: \(result.stdout.prefix(600)) \(result.stderr.prefix(600))")
                return finish()
            }
            // The plan `yard run` made before running: it chose the forced engines.
            for step in (document["plan"] as? [String: Any])?["steps"] as? [[String: Any]] ?? [] where step["runs"] as? String != "no" {
                guard let name = step["name"] as? String, let wanted = run.prefer[name], step["engine"] as? String != wanted else { continue }
                let attempts = (step["attempts"] as? [[String: Any]] ?? []).map { "\($0["engine"] ?? "?"): \($0["code"] ?? "ok") \($0["message"] ?? "")" }
                problems.append("yard run's plan chose \(step["engine"] as? String ?? "no engine") for \(name), not \(wanted): \(attempts)")
            }
            guard view["state"] as? String == "succeeded", result.status == 0 else {
                problems.append("run \(view["state"] ?? "?"): \(view["error"] ?? "") steps: \((view["steps"] as? [[String: Any]] ?? []).map { "\($0["name"] ?? "?")=\($0["engine"] ?? "-"):\($0["state"] ?? "?") \($0["error"] ?? "")" })")
                return finish()
            }
            for step in view["steps"] as? [[String: Any]] ?? [] {
                guard let name = step["name"] as? String, step["state"] as? String == "succeeded", let engine = step["engine"] as? String else { continue }
                if let wanted = run.prefer[name], wanted != engine { problems.append("\(name) ran on \(engine), not \(wanted)") }
                ran.append(Cell(preset: run.preset, step: name, engine: engine))
            }
            let outputs = view["outputs"] as? [String: Any] ?? [:]
            let files = view["files"] as? [String: String] ?? [:]
            if files.isEmpty { problems.append("the run named no output files: \(outputs)") }
            for (name, path) in files.sorted(by: { $0.key < $1.key }) {
                let type = (outputs[name] as? [String: Any])?["media_type"] as? String ?? ""
                let found = checkFile(path, mediaType: type, name: name)
                problems += found
                if found.isEmpty {
                    checked.append(type == "video/mp4" ? "\(name): H.264 MP4" : type.hasPrefix("image/") ? "\(name): \(type.dropFirst(6).uppercased()) decoded" : "\(name): \(type)")
                }
            }
        } catch {
            problems.append("\(error)")
        }
        return finish()
    }

    /// A final output as a user opens it: MP4 by ffprobe (H.264, a length, a picture), an image decoded by ffmpeg, audio with a length.
    static func checkFile(_ path: String, mediaType: String, name: String) -> [String] {
        guard let probe = try? runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                          ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", path]),
              probe.status == 0, let info = probe.json as? [String: Any], let streams = info["streams"] as? [[String: Any]] else {
            return ["\(name) (\(mediaType)) at \(path) is not a media file ffprobe reads"]
        }
        let picture = streams.first { $0["codec_type"] as? String == "video" }
        switch mediaType {
        case "video/mp4":
            var problems: [String] = []
            if picture?["codec_name"] as? String != "h264" { problems.append("\(name) is not H.264: \(picture?["codec_name"] ?? "no picture")") }
            let seconds = Double((info["format"] as? [String: Any])?["duration"] as? String ?? "") ?? 0
            if seconds <= 0 { problems.append("\(name) has no length") }
            if (picture?["width"] as? Int ?? 0) <= 0 { problems.append("\(name) has no picture size") }
            return problems
        case let type where type.hasPrefix("image/"):
            let decoded = try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"])
            if decoded?.status != 0 || !(decoded?.stderr.isEmpty ?? false) { return ["\(name) does not decode: \(decoded?.stderr.prefix(300) ?? "")"] }
            return (picture?["width"] as? Int ?? 0) > 0 ? [] : ["\(name) has no size"]
        case let type where type.hasPrefix("audio/"):
            return Double((info["format"] as? [String: Any])?["duration"] as? String ?? "") ?? 0 > 0 ? [] : ["\(name) has no length"]
        default:
            return ["\(name) has media type \(mediaType), which no preset output should have"]
        }
    }

    // MARK: the table in docs/

    /// One row per cell; the run column says how the first run covering it ended and what of its outputs was checked.
    static func table(_ cells: [Cell], outcomes: [Outcome]) -> String {
        var lines = ["<!-- matrix:begin (written by PresetMatrixTests; YARD_UPDATE_MATRIX=1 rewrites it) -->",
                     "| preset | step | engine | plan | run |", "| --- | --- | --- | --- | --- |"]
        for cell in cells {
            let run = outcomes.first { $0.ran.contains(cell) }
            let result = run.map { "✓ succeeded at \($0.run.quality); \($0.checked.joined(separator: ", "))" } ?? "✗ not run"
            lines.append("| \(cell.preset) | \(cell.step) | \(cell.engine) | ✓ chosen at low, standard, pro | \(result) |")
        }
        lines.append("<!-- matrix:end -->")
        return lines.joined(separator: "\n")
    }

    static func replacingTable(in text: String, with table: String) -> String? {
        guard let begin = text.range(of: "<!-- matrix:begin"), let end = text.range(of: "<!-- matrix:end -->") else { return nil }
        return text.replacingCharacters(in: begin.lowerBound..<end.upperBound, with: table)
    }
}
