import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// Health and balance that tell the truth: each engine is checked with its
/// effective configuration and secrets, the cache is keyed by what was
/// checked, auth failures read as auth failures, `yard engines` shows a
/// balance, and `yard engines test` is the setup page's Test Connection.
final class EngineHealthTests: TemporaryDirectoryTestCase {
    var runpod: RunPodStandIn!

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        runpod = try await started(RunPodStandIn())
    }

    func engine(key: String? = nil, home: URL? = nil) throws -> JobEngine {
        let plugins = dir.appendingPathComponent("plugins-\(UUID().uuidString.prefix(4))")
        try copyPlugin("runpod", to: plugins)
        try copyPlugin("stripe-billing", to: plugins)
        return try makeTestEngine(home: home ?? dir.appendingPathComponent("home"), plugins: plugins,
                                  secrets: ["RUNPOD_API_KEY": key ?? runpod.apiKey, "STRIPE_API_KEY": "sk_test_STANDIN_0000000000000000"],
                                  http: BlockingHTTPTransport(defaultTimeoutMs: 2_000))
    }

    var good: [String: JSONValue] { ["endpoint_id": .string(runpod.endpointID), "base_url": .string(runpod.baseURL)] }
    /// A port nothing listens on.
    let dead: [String: JSONValue] = ["endpoint_id": "e", "base_url": "http://127.0.0.1:9/v2"]

    func spec(_ config: [String: JSONValue]) -> JobSpec {
        JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "x"], config: config)
    }

    func testTheCacheIsKeyedByConfigAndSecretsSoAnotherConfigIsCheckedAgain() async throws {
        let engine = try engine()
        let plugin = try engine.plugin("runpod")
        let ok = await engine.health(of: plugin, config: good, maxAge: 60)
        XCTAssertEqual(ok.status, "ok")
        let down = await engine.health(of: plugin, config: dead, maxAge: 60)
        XCTAssertEqual(down.status, "offline", "a dead --config is checked, not hidden behind a cached ok")
        let asked = runpod.requestsSeen.filter { $0.path.hasSuffix("/health") }.count
        let again = await engine.health(of: plugin, config: good, maxAge: 60)
        XCTAssertEqual(again.status, "ok")
        XCTAssertEqual(runpod.requestsSeen.filter { $0.path.hasSuffix("/health") }.count, asked, "the same config and secrets: the cached answer")
        XCTAssertNotEqual(engine.healthCacheKey(plugin, config: good).key, engine.healthCacheKey(plugin, config: dead).key)
        // Another key on the same store is another check.
        let rekeyed = try self.engine(key: "rpa_WRONG")
        let refused = await rekeyed.health(of: try rekeyed.plugin("runpod"), config: good, maxAge: 60)
        XCTAssertEqual(refused.code, "AUTH_FAILED")
        XCTAssertFalse(try XCTUnwrap(try SQLiteJobStore(path: dir.appendingPathComponent("home/yard.sqlite")).latestHealth(pluginID: "runpod")).cacheKey.contains(runpod.apiKey),
                       "the key is fingerprinted, never stored")
    }

    func testAnOfflineCheckWithAnotherConfigDoesNotRefuseTheNextRun() async throws {
        let engine = try engine()
        let refused = await engine.preflight(spec(dead))
        XCTAssertEqual(refused.firstError?.code, "ENGINE_OFFLINE")
        let verdict = await engine.preflight(spec(good))
        XCTAssertTrue(verdict.ok, "checked with its own config: \(verdict.findings)")
    }

    func testAnAuthFailureIsCodedAndWordedAsAuth() async throws {
        let engine = try engine(key: "rpa_WRONG")
        let verdict = await engine.preflight(spec(good))
        let finding = try XCTUnwrap(verdict.firstError)
        XCTAssertEqual(finding.code, "AUTH_FAILED")
        XCTAssertTrue(finding.message.contains("refused the credentials"), finding.message)
        XCTAssertFalse(finding.message.contains("offline"), finding.message)
        XCTAssertFalse(finding.remediation.contains("status page"), finding.remediation)
        XCTAssertTrue(finding.remediation.contains("RUNPOD_API_KEY") && finding.remediation.contains("yard engines test runpod"), finding.remediation)
    }

    func testStripeBillingHealthVerifiesTheKeyWithARead() async throws {
        let stripe = StripeStandIn()
        try await stripe.start()
        defer { Task { await stripe.stop() } }
        let config: [String: JSONValue] = ["base_url": .string(stripe.baseURL)]
        let engine = try engine()
        let ok = await engine.health(of: try engine.plugin("stripe-billing"), config: config, maxAge: 0)
        XCTAssertEqual(ok.status, "ok", ok.message ?? "")
        XCTAssertTrue(stripe.requestsSeen.contains { $0.method == "GET" && $0.path == "/v1/billing/meters" })
        let plugins = dir.appendingPathComponent("plugins-wrong")
        try copyPlugin("stripe-billing", to: plugins)
        let wrong = try makeTestEngine(home: dir.appendingPathComponent("home-wrong"), plugins: plugins, secrets: ["STRIPE_API_KEY": "sk_test_WRONG"])
        let refused = await wrong.health(of: try wrong.plugin("stripe-billing"), config: config, maxAge: 0)
        XCTAssertEqual(refused.status, "offline", "a key that exists but is wrong is not ok")
        XCTAssertEqual(refused.code, "AUTH_FAILED")
    }

    // MARK: yard engines

    /// A home whose engine config files point runpod and comfyui at stand-ins (comfyui not at its default :8188).
    func home(comfyUI: String) throws -> URL {
        let home = dir.appendingPathComponent("cli-\(UUID().uuidString.prefix(4))")
        let config = home.appendingPathComponent("config")
        try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
        try Data(#"{"endpoint_id":"\#(runpod.endpointID)","base_url":"\#(runpod.baseURL)","graphql_url":"\#(runpod.graphqlURL)"}"#.utf8)
            .write(to: config.appendingPathComponent("runpod.json"))
        try Data(#"{"base_url":"\#(comfyUI)"}"#.utf8).write(to: config.appendingPathComponent("comfyui.json"))
        return home
    }

    func rows(_ result: ProcessResult) throws -> [String: [String: Any]] {
        let list = try XCTUnwrap(result.json as? [[String: Any]], result.stdout + result.stderr)
        return Dictionary(uniqueKeysWithValues: list.map { ($0["engine"] as? String ?? "", $0) })
    }

    func testYardEnginesChecksEachEngineWithItsEffectiveConfigAndShowsBalances() async throws {
        let comfy = try ComfyUIStandIn()
        try await comfy.start()
        let kling = KlingStandIn()
        try await kling.start()
        defer { Task { await comfy.stop(); await kling.stop() } }
        let home = try home(comfyUI: comfy.baseURL)
        try Data(#"{"base_url":"\#(kling.baseURL)"}"#.utf8).write(to: home.appendingPathComponent("config/kling.json"))
        let env = ["RUNPOD_API_KEY": runpod.apiKey, "KLING_ACCESS_KEY": kling.accessKey, "KLING_SECRET_KEY": kling.secretKey]
        let result = try yard(["engines", "--engine", "runpod", "--engine", "comfyui", "--engine", "echo", "--engine", "kling", "--json"], home: home, extraEnvironment: env)
        XCTAssertEqual(result.status, 0, result.stderr)
        let byEngine = try rows(result)
        XCTAssertEqual(byEngine["runpod"]?["status"] as? String, "ok", "\(byEngine)")
        XCTAssertEqual(byEngine["runpod"]?["balance"] as? String, "USD 25.00", "RunPod's clientBalance, from the balance extension")
        XCTAssertEqual(byEngine["comfyui"]?["status"] as? String, "ok", "checked at its configured URL, not :8188: \(byEngine)")
        XCTAssertEqual(byEngine["echo"]?["balance"] as? String, "USD 0.00")
        XCTAssertEqual(byEngine["comfyui"]?["balance"] as? String, "n/a", "no balance extension")
        XCTAssertEqual(byEngine["kling"]?["status"] as? String, "ok", "checked at its configured host, not Kling's default: \(byEngine)")
        XCTAssertEqual(byEngine["kling"]?["balance"] as? String, "740.50 units", "the online resource packs' remaining units")
        XCTAssertTrue(runpod.requestsSeen.contains { $0.path.hasSuffix("/health") }, "the configured endpoint was asked")
        XCTAssertTrue(comfy.requestLog.contains("GET /system_stats"))
        let text = try yard(["engines", "--engine", "runpod"], home: home, extraEnvironment: env)
        XCTAssertTrue(text.stdout.contains("BALANCE") && text.stdout.contains("USD 25.00"), text.stdout)
    }

    func testADeadConfigIsShownOfflineAndRefreshChecksAgainWithTheGoodOne() async throws {
        let home = try home(comfyUI: "http://127.0.0.1:9")
        let env = ["RUNPOD_API_KEY": runpod.apiKey]
        let dead = try yard(["engines", "--engine", "runpod", "--config", #"{"endpoint_id":"e","base_url":"http://127.0.0.1:9/v2"}"#, "--json"], home: home, extraEnvironment: env)
        XCTAssertEqual(try rows(dead)["runpod"]?["status"] as? String, "offline")
        let fixText = try rows(dead)["runpod"]?["remediation"] as? String ?? ""
        XCTAssertTrue(fixText.contains("yard engines test runpod"), fixText)
        let healthy = try yard(["engines", "--engine", "runpod", "--json"], home: home, extraEnvironment: env)
        XCTAssertEqual(try rows(healthy)["runpod"]?["status"] as? String, "ok", "the config file's check is its own, not the cached offline one")
        let before = runpod.requestsSeen.filter { $0.path.hasSuffix("/health") }.count
        _ = try yard(["engines", "--engine", "runpod", "--json"], home: home, extraEnvironment: env)
        XCTAssertEqual(runpod.requestsSeen.filter { $0.path.hasSuffix("/health") }.count, before, "cached")
        _ = try yard(["engines", "--engine", "runpod", "--refresh", "--json"], home: home, extraEnvironment: env)
        XCTAssertEqual(runpod.requestsSeen.filter { $0.path.hasSuffix("/health") }.count, before + 1, "--refresh asks again")
        let run = try yard(["run", "image.generate", "--engine", "runpod", "--input", "prompt=x", "--dry-run", "--json"], home: home, extraEnvironment: env)
        XCTAssertEqual(run.status, 0, "the next run is not refused by the dead --config's check: \(run.stdout)")
    }

    func testYardEnginesTestIsTheTestConnectionButton() async throws {
        let home = try home(comfyUI: "http://127.0.0.1:9")
        let ok = try yard(["engines", "test", "runpod", "--json"], home: home, extraEnvironment: ["RUNPOD_API_KEY": runpod.apiKey])
        XCTAssertEqual(ok.status, 0, ok.stdout + ok.stderr)
        let report = try XCTUnwrap(ok.json as? [String: Any], ok.stdout)
        XCTAssertEqual(report["ok"] as? Bool, true)
        let checks = Dictionary(uniqueKeysWithValues: (report["checks"] as? [[String: Any]] ?? []).map { ($0["id"] as? String ?? "", $0["result"] as? String ?? "") })
        XCTAssertEqual(checks, ["secrets": "pass", "config": "pass", "reachable": "pass", "auth": "pass", "read": "pass", "balance": "pass"])
        let refused = try yard(["engines", "test", "runpod"], home: home, extraEnvironment: ["RUNPOD_API_KEY": "rpa_WRONG"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stdout.contains("fail  auth"), refused.stdout)
        XCTAssertTrue(refused.stdout.contains("RUNPOD_API_KEY"), refused.stdout)
        let missing = try yard(["engines", "test", "runpod", "--json"], home: home)
        XCTAssertEqual(((missing.json as? [String: Any])?["checks"] as? [[String: Any]])?.first?["result"] as? String, "fail", missing.stdout)
    }
}
