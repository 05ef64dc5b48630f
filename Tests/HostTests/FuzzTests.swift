import Foundation
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// The fuzz targets (Tests/Support/Fuzz) under a bounded, deterministic
/// budget: every seed, then mutations from a fixed PRNG seed, for
/// YARD_FUZZ_SECONDS per target (default 8; CI's budget for all four is
/// about half a minute). Each input runs on a 512 KiB stack, the size of a
/// worker thread, and must end within 2 s. A finding fails the test with the
/// input saved under .build/fuzz-findings/ to replay with scripts/fuzz.sh.
final class FuzzTests: TemporaryDirectoryTestCase {
    var secondsPerTarget: Double { Double(ProcessInfo.processInfo.environment["YARD_FUZZ_SECONDS"] ?? "") ?? 8 }
    var seed: UInt64 { UInt64(ProcessInfo.processInfo.environment["YARD_FUZZ_SEED"] ?? "") ?? 0x5EED_13B }

    func seeds(_ target: FuzzTargets.Target) throws -> [Data] {
        let repo = Build.repository
        func files(_ folder: String, _ suffixes: [String]) -> [Data] {
            let dir = repo.appendingPathComponent(folder)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return names.sorted().filter { name in suffixes.contains { name.hasSuffix($0) } }.compactMap { try? Data(contentsOf: dir.appendingPathComponent($0)) }
        }
        switch target {
        case .manifest:
            let manifests = ((try? FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("Plugins").path)) ?? []).sorted()
                .compactMap { try? Data(contentsOf: repo.appendingPathComponent("Plugins/\($0)/plugin.json")) }
            return manifests + [Data("{}".utf8)]
        case .pipeline:
            return files("Registry/presets", [".yaml", ".json"]) + [Data(#"{"id":"j","steps":{"a":{"capability":"debug.echo","engines":["echo"],"inputs":{"text":"hi"}}}}"#.utf8)]
        case .package:
            let staged = Build.plugins.appendingPathComponent("c-minimal")
            let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: staged.appendingPathComponent("plugin.json"))) as! [String: Any]
            let out = dir.appendingPathComponent("seed.yardpkg")
            try PluginPackage.pack(manifestURL: staged.appendingPathComponent("plugin.json"), library: staged.appendingPathComponent(manifest["library"] as! String),
                                   output: out, key: PublisherKeyFile.generate(publisher: "Fuzz"))
            return [try Data(contentsOf: out), Data("PK\u{3}\u{4}".utf8)]
        case .webhook:
            let grant = #"{"id":"evt_1","type":"billing.credit_grant.created","data":{"object":{"id":"credgr_1","customer":"cus_FUZZ","category":"paid","amount":{"type":"monetary","monetary":{"value":700,"currency":"usd"}}}}}"#
            let balance = #"{"id":"evt_2","type":"checkout.session.completed","data":{"object":{"id":"cs_1","customer":"cus_FUZZ","mode":"payment","payment_status":"paid","amount_subtotal":500,"currency":"usd"}}}"#
            return [Data(grant.utf8), Data(balance.utf8), Data("{}".utf8)]
        }
    }

    final class Outcome: @unchecked Sendable {
        var finding: Error?
        var elapsed: Double = 0
    }

    /// One input on a small stack, with a deadline.
    func runOne(_ target: FuzzTargets.Target, _ input: Data, scratch: FuzzTargets.Scratch) -> Outcome {
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let start = Date()
            do { try FuzzTargets.run(target, input, scratch: scratch) } catch { outcome.finding = error }
            outcome.elapsed = Date().timeIntervalSince(start)
            done.signal()
        }
        thread.stackSize = 512 << 10
        thread.start()
        if done.wait(timeout: .now() + 20) == .timedOut {
            outcome.finding = FuzzTargets.Finding(target: target.rawValue, message: "did not finish within 20 s")
        } else if outcome.elapsed > 2 {
            outcome.finding = FuzzTargets.Finding(target: target.rawValue, message: "took \(String(format: "%.1f", outcome.elapsed)) s")
        }
        return outcome
    }

    func save(_ input: Data, _ target: FuzzTargets.Target) -> String {
        let folder = Build.repository.appendingPathComponent(".build/fuzz-findings/\(target.rawValue)")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("finding-\(UUID().uuidString.prefix(8))")
        try? input.write(to: file)
        return file.path
    }

    func fuzz(_ target: FuzzTargets.Target) throws {
        let scratch = try FuzzTargets.Scratch(root: dir.appendingPathComponent("scratch-\(target.rawValue)"))
        let corpus = try seeds(target)
        XCTAssertFalse(corpus.isEmpty)
        var mutator = FuzzMutator(seed: seed &+ UInt64(FuzzTargets.Target.allCases.firstIndex(of: target) ?? 0))
        let deadline = Date().addingTimeInterval(secondsPerTarget)
        var runs = 0
        var pool = corpus
        while runs < corpus.count || Date() < deadline {
            let input = runs < corpus.count ? corpus[runs] : mutator.mutate(pool[mutator.below(pool.count)])
            runs += 1
            let outcome = runOne(target, input, scratch: scratch)
            if let finding = outcome.finding {
                XCTFail("\(finding) — input saved at \(save(input, target))")
                return
            }
            // Keep some mutants as parents, so mutations compound.
            if pool.count < 256, mutator.below(8) == 0 { pool.append(input) }
        }
        XCTAssertGreaterThan(runs, corpus.count, "the budget allowed no mutations")
        print("fuzz \(target.rawValue): \(runs) inputs in \(String(format: "%.1f", secondsPerTarget)) s, no findings")
    }

    func testManifestTarget() throws { try fuzz(.manifest) }
    func testPipelineTarget() throws { try fuzz(.pipeline) }
    func testPackageTarget() throws { try fuzz(.package) }
    func testWebhookTarget() throws { try fuzz(.webhook) }

    /// The inputs that crashed or hung the host before are refusals now.
    func testTheKnownCrashersAreRefusedInTime() throws {
        let scratch = try FuzzTargets.Scratch(root: dir.appendingPathComponent("scratch"))
        let deep = Data(("id: x\nsteps: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)).utf8)
        XCTAssertNil(runOne(.pipeline, deep, scratch: scratch).finding)
        var laughs = "a0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol,lol]\n"
        for i in 1...9 { laughs += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ",") + "]\n" }
        XCTAssertNil(runOne(.pipeline, Data(laughs.utf8), scratch: scratch).finding)
        let huge = #"{"id":"evt_x","type":"checkout.session.completed","data":{"object":{"id":"c","customer":"cus_FUZZ","mode":"payment","payment_status":"paid","amount_subtotal":9223372036854775807,"currency":"usd"}}}"#
        XCTAssertNil(runOne(.webhook, Data(huge.utf8), scratch: scratch).finding, "an amount past any real top-up is refused, not summed into an overflow")
    }
}
