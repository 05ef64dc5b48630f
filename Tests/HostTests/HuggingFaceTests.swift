import Crypto
import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// The huggingface adapter through the real engine against the Hub stand-in,
/// and the stand-in itself checked with the official `huggingface_hub` client.
final class HuggingFaceTests: HubStandInTestCase {

    func makeEngine(token: String?) throws -> JobEngine {
        let plugins = dir.appendingPathComponent("plugins-\(UUID().uuidString.prefix(6))")
        try copyPlugin("huggingface", to: plugins)
        // Each engine its own store: engine health is cached there.
        let engine = try makeTestEngine(home: dir.appendingPathComponent("home-\(UUID().uuidString.prefix(6))"), plugins: plugins, secrets: token.map { ["HF_TOKEN": $0] } ?? [:])
        engine.policy.minPollMs = 1
        engine.policy.maxPollMs = 50
        return engine
    }

    var config: [String: JSONValue] { ["hub_url": .string(hub.baseURL), "router_url": .string(hub.baseURL)] }

    func run(_ engine: JobEngine, _ capability: String, _ inputs: [String: JSONValue]) async throws -> JobRecord {
        try await engine.drive(try await engine.start(JobSpec(pluginID: "huggingface", capability: capability, inputs: inputs, config: config)).id)
    }

    /// The stable code a job ended with, or the pre-flight's refusal.
    func errorCode(_ engine: JobEngine, _ capability: String, _ inputs: [String: JSONValue]) async throws -> String? {
        do { return try await run(engine, capability, inputs).errorCode } catch let refusal as JobEngine.Refusal {
            return refusal.verdict.firstError?.code
        }
    }

    func outputs(_ job: JobRecord) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(job.outputsJSON, job.errorJSON ?? "").utf8)) as? [String: Any])
    }

    // MARK: image.generate through the router

    func testTextToImageBytesLandInTheArtifactStore() async throws {
        let engine = try makeEngine(token: hub.token)
        let job = try await run(engine, "image.generate", ["prompt": "a lighthouse at dawn", "width": 512, "height": 768, "seed": 7])
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let out = try outputs(job)
        let image = try XCTUnwrap((out["images"] as? [[String: Any]])?.first)
        XCTAssertEqual(image["width"] as? Int, 512)
        XCTAssertEqual(image["height"] as? Int, 768)
        let file = try XCTUnwrap(image["file"] as? [String: Any])
        XCTAssertEqual(file["media_type"] as? String, "image/png")
        let handle = try XCTUnwrap(file["artifact"] as? String)
        let bytes = try XCTUnwrap(try engine.artifacts.read(sha256: String(handle.dropFirst("sha256:".count))))
        XCTAssertEqual(bytes.prefix(4), Data([0x89, 0x50, 0x4E, 0x47]))
        XCTAssertEqual(out["model"] as? String, "black-forest-labs/FLUX.1-schnell")
        let call = try XCTUnwrap(hub.requests.first { $0.path.hasPrefix("/hf-inference/models/") })
        XCTAssertEqual(call.path, "/hf-inference/models/black-forest-labs/FLUX.1-schnell")
        XCTAssertEqual(call.headers["authorization"], "Bearer \(hub.token)")
    }

    func testALoadingModelIsWaitedForThenAnswers() async throws {
        hub.configure { $0.loadingNext = 2; $0.estimatedTimeSeconds = 0.05 }
        let job = try await run(try makeEngine(token: hub.token), "image.generate", ["prompt": "fox", "model": "stabilityai/sdxl-turbo"])
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(hub.requests.filter { $0.path == "/hf-inference/models/stabilityai/sdxl-turbo" }.count, 3, "two 503 loading answers, then the image")
        XCTAssertGreaterThanOrEqual(job.pollCount, 2)
    }

    func testRouterRefusalsAreMapped() async throws {
        let bad = try await errorCode(try makeEngine(token: "hf_revoked"), "image.generate", ["prompt": "x"])
        XCTAssertEqual(bad, "AUTH_FAILED", "the health check (whoami) finds the revoked token")
        XCTAssertFalse(hub.requests.contains { $0.path.hasPrefix("/hf-inference/") }, "nothing is sent with a revoked token")

        let missing = try await run(try makeEngine(token: hub.token), "image.generate", ["prompt": "x", "model": "standin/missing-model"])
        XCTAssertEqual(missing.errorCode, "MODEL_NOT_FOUND")
        XCTAssertTrue(missing.errorJSON?.contains(#""field":"$.inputs.model""#) == true, missing.errorJSON ?? "")

        hub.configure { $0.routerRateLimitNext = 1; $0.retryAfterSeconds = 0 }
        let limited = try await run(try makeEngine(token: hub.token), "image.generate", ["prompt": "x"])
        XCTAssertEqual(limited.phase, .succeeded, "429 is retried after Retry-After: \(limited.errorJSON ?? "")")
        XCTAssertEqual(hub.faults.routerRateLimitNext, 0, "the router did answer 429 once")
    }

    func testSpentInferenceCreditsAreInsufficientFundsWithTheBillingLink() async throws {
        hub.configure { $0.creditsExhausted = true }
        let job = try await run(try makeEngine(token: hub.token), "image.generate", ["prompt": "x"])
        XCTAssertEqual(job.errorCode, "INSUFFICIENT_FUNDS")
        XCTAssertTrue(job.errorJSON?.contains("huggingface.co/settings/billing") == true, job.errorJSON ?? "")
        XCTAssertTrue(job.errorJSON?.contains(#""charged":"no""#) == true)
    }

    func testImageGenerationWithoutATokenIsRefusedWithTheFix() async throws {
        let job = try await run(try makeEngine(token: nil), "image.generate", ["prompt": "x"])
        XCTAssertEqual(job.errorCode, "AUTH_MISSING")
        XCTAssertTrue(job.errorJSON?.contains("yard secrets set HF_TOKEN") == true)
        XCTAssertFalse(hub.requests.contains { $0.path.hasPrefix("/hf-inference/") }, "no call without a token")
    }

    // MARK: model.download resolution through the engine

    func testModelDownloadThroughTheEngineLandsVerifiedFilesInTheCatalog() async throws {
        let engine = try makeEngine(token: hub.token)
        engine.downloader.allowPrivateRedirects = true // the stand-in's CDN is on loopback
        let job = try await run(engine, "model.download", ["repo": .string(tiny), "files": ["*.safetensors", "model_index.json"]])
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let out = try outputs(job)
        let repo = try XCTUnwrap(hub.repo(tiny))
        XCTAssertEqual(out["revision"] as? String, repo.commit)
        let path = try XCTUnwrap(out["path"] as? String)
        XCTAssertEqual(path, engine.paths.home.appendingPathComponent("models/huggingface/\(tiny)/\(repo.commit)").path)
        let files = try XCTUnwrap(out["files"] as? [[String: Any]])
        XCTAssertEqual(Set(files.compactMap { $0["path"] as? String }),
                       ["unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "model_index.json"])
        for file in files {
            let expected = try XCTUnwrap(repo.files.first { $0.path == file["path"] as? String })
            XCTAssertEqual(file["sha256"] as? String, expected.sha256)
            XCTAssertEqual(file["size"] as? Int, expected.data.count)
            XCTAssertNil(file["url"], "the stored result names files on this host, not URLs")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path).appendingPathComponent(expected.path)), expected.data)
        }
        let catalog = ModelCatalog(store: try XCTUnwrap(engine.store as? SQLiteJobStore), root: engine.paths.home.appendingPathComponent("models"))
        XCTAssertEqual(try catalog.records(id: "huggingface:\(tiny)").first?.status, .available)
        let cdn = hub.requests.filter { $0.path.hasPrefix("/cdn/") }
        XCTAssertEqual(cdn.count, 2)
        XCTAssertTrue(cdn.allSatisfy { $0.headers["authorization"] == nil }, "the token stays with the Hub")
        XCTAssertFalse(job.outputsJSON?.contains(hub.token) == true)
    }

    func testModelDownloadFollowsPagedListings() async throws {
        hub.configure { $0.treePageSize = 3 }
        let engine = try makeEngine(token: nil)
        engine.downloader.allowPrivateRedirects = true
        let job = try await run(engine, "model.download", ["repo": .string(tiny), "files": ["*.json"]])
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(Set((try outputs(job)["files"] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String }), ["model_index.json", "unet/config.json"])
    }

    func testAModelDownloadInterruptedByADroppedConnectionResumesAndSucceeds() async throws {
        hub.configure { $0.dropNextBodies = 1; $0.dropAfterBytes = 1 << 20 }
        let engine = try makeEngine(token: nil)
        engine.downloader.allowPrivateRedirects = true
        let job = try await run(engine, "model.download", ["repo": .string(tiny), "files": ["unet/*.safetensors"]])
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let weights = try XCTUnwrap(hub.repo(tiny)?.files.first { $0.path.hasPrefix("unet/diffusion") })
        XCTAssertNotNil(hub.requests.last { $0.path == "/cdn/\(weights.sha256)" }?.headers["range"])
    }

    func testAModelDownloadJobReportsByteProgressWhileTheHostDownloads() async throws {
        hub.configure { $0.throttleBytesPerSecond = 1 << 20 }
        let engine = try makeEngine(token: nil)
        engine.downloader.allowPrivateRedirects = true
        let started = try await engine.start(JobSpec(pluginID: "huggingface", capability: "model.download",
                                                     inputs: ["repo": .string(tiny), "files": ["unet/*.safetensors"]], config: config))
        let driving = Task { try await engine.drive(started.id) }
        var seen: [Double] = []
        while true {
            let row = try XCTUnwrap(try engine.store.job(id: started.id))
            if let progress = row.progress, row.message?.hasPrefix("downloading") == true || row.phase.isTerminal { seen.append(progress) }
            if row.phase.isTerminal { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let job = try await driving.value
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertTrue(seen.contains { $0 > 0 && $0 < 1 }, "progress between 0 and 1 while downloading: \(seen)")
        XCTAssertEqual(seen, seen.sorted(), "progress never goes back")
    }

    func testModelDownloadRefusesARedirectIntoAPrivateNetworkByDefault() async throws {
        let engine = try makeEngine(token: nil)
        engine.downloader.allowPrivateRedirects = false
        engine.policy.maxConsecutiveErrors = 0
        let job = try await run(engine, "model.download", ["repo": .string(tiny), "files": ["unet/*.safetensors"]])
        XCTAssertEqual(job.phase, .failed)
        XCTAssertTrue(job.errorJSON?.contains("NETWORK_DENIED") == true, job.errorJSON ?? "")
        XCTAssertFalse(hub.requests.contains { $0.path.hasPrefix("/cdn/") })
    }

    func testModelDownloadTellsGatedPrivateAndMissingApart() async throws {
        let engine = try makeEngine(token: hub.ungrantedToken)
        let gated = try await run(engine, "model.download", ["repo": "standin/gated-model"])
        XCTAssertEqual(gated.errorCode, "ACCESS_NOT_GRANTED")
        let missing = try await run(engine, "model.download", ["repo": "standin/private-model"])
        XCTAssertEqual(missing.errorCode, "MODEL_NOT_FOUND", "a private repo of someone else looks missing, as on the Hub")
        let anonymous = try await run(try makeEngine(token: nil), "model.download", ["repo": "standin/gated-model"])
        XCTAssertEqual(anonymous.errorCode, "AUTH_MISSING")
        let revision = try await run(engine, "model.download", ["repo": .string(tiny), "revision": "nope"])
        XCTAssertEqual(revision.errorCode, "REVISION_NOT_FOUND")
    }

    func testTheAdapterPassesTheConformanceKitAgainstTheStandIn() throws {
        hub.acceptAnyToken = true
        let configJSON = #"{"hub_url":"\#(hub.baseURL)","router_url":"\#(hub.baseURL)"}"#
        let result = try yard(["plugin", "test", "huggingface", "--json", "--isolation", "both", "--config", configJSON], home: dir.appendingPathComponent("h"))
        let report = try XCTUnwrap(result.json as? [String: Any], result.stdout + result.stderr)
        let failed = (report["checks"] as? [[String: Any]] ?? []).filter { $0["ok"] as? Bool != true }
        XCTAssertEqual(failed.count, 0, "\(failed)")
    }

    // MARK: the stand-in's protocol

    func request(_ method: String, _ path: String, headers: [String: String] = [:]) throws -> HostHTTPResponse {
        try BlockingHTTPTransport(defaultTimeoutMs: 5_000).perform(HostHTTPRequest(method: method, url: hub.baseURL + path, headers: headers))
    }

    func testResolveAnswersHeadWithTheHubsHeadersAndRedirectsLFSToTheCDN() throws {
        let repo = try XCTUnwrap(hub.repo(tiny))
        let weights = try XCTUnwrap(repo.files.first { $0.path == "unet/diffusion_pytorch_model.safetensors" })
        let head = try request("HEAD", "/\(tiny)/resolve/main/\(weights.path)")
        XCTAssertEqual(head.status, 302)
        XCTAssertEqual(head.headers["x-repo-commit"], repo.commit)
        XCTAssertEqual(head.headers["x-linked-etag"], "\"\(weights.sha256)\"")
        XCTAssertEqual(head.headers["x-linked-size"], String(weights.data.count))
        XCTAssertTrue(head.headers["location"]?.hasPrefix(hub.cdnBaseURL + "/cdn/") == true)

        let small = try XCTUnwrap(repo.files.first { $0.path == "model_index.json" })
        let plain = try request("HEAD", "/\(tiny)/resolve/main/model_index.json")
        XCTAssertEqual(plain.status, 200)
        XCTAssertEqual(plain.headers["etag"], "\"\(small.gitOID)\"")
        XCTAssertEqual(plain.headers["content-length"], String(small.data.count))
        XCTAssertTrue(plain.body.isEmpty)

        let ranged = try request("GET", "/\(tiny)/resolve/main/model_index.json", headers: ["range": "bytes=10-"])
        XCTAssertEqual(ranged.status, 206)
        XCTAssertEqual(ranged.body, small.data.dropFirst(10))
        XCTAssertEqual(ranged.headers["content-range"], "bytes 10-\(small.data.count - 1)/\(small.data.count)")
        XCTAssertEqual(try request("GET", "/\(tiny)/resolve/main/model_index.json", headers: ["range": "bytes=99999-"]).status, 416)

        let missing = try request("HEAD", "/\(tiny)/resolve/main/nope.bin")
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.headers["x-error-code"], "EntryNotFound")
        XCTAssertEqual(try request("HEAD", "/\(tiny)/resolve/nobranch/model_index.json").headers["x-error-code"], "RevisionNotFound")
        XCTAssertEqual(try request("GET", "/api/models/nobody/nothing").headers["x-error-code"], "RepoNotFound")
    }

    func testYardStandinHfServesTheSampleReposUntilStopped() throws {
        let process = Process()
        process.executableURL = Build.yard
        process.arguments = ["standin", "hf", "--port", "0"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() }; process.waitUntilExit() }
        let banner = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        let base = try XCTUnwrap(banner.split(separator: " ").first { $0.hasPrefix("http://127.0.0.1:") }.map(String.init), banner)
        let transport = BlockingHTTPTransport(defaultTimeoutMs: 5_000)
        let info = try transport.perform(HostHTTPRequest(method: "GET", url: "\(base)/api/models/\(tiny)"))
        XCTAssertEqual(info.status, 200)
        let whoami = try transport.perform(HostHTTPRequest(method: "GET", url: "\(base)/api/whoami-v2", headers: ["authorization": "Bearer \(hub.token)"]))
        XCTAssertEqual(whoami.status, 200, "the printed token is the one it accepts")
        process.terminate()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit, "SIGTERM stops it gracefully")
    }

    /// The official client, pointed at the stand-in with HF_ENDPOINT, downloads
    /// the whole repo; every file has the stand-in's bytes.
    func testTheOfficialHuggingFaceHubClientDownloadsFromTheStandIn() throws {
        let python = try pythonWithHub()
        let script = dir.appendingPathComponent("snapshot.py")
        try """
        import hashlib, json, os, sys
        from huggingface_hub import snapshot_download, hf_hub_download
        from huggingface_hub.utils import GatedRepoError
        path = snapshot_download(sys.argv[1], cache_dir=sys.argv[2])
        files = {}
        for root, _, names in os.walk(path):
            for name in names:
                full = os.path.join(root, name)
                files[os.path.relpath(full, path)] = hashlib.sha256(open(full, "rb").read()).hexdigest()
        one = hf_hub_download(sys.argv[1], "model_index.json", revision="v1.0", cache_dir=sys.argv[2] + "-2")
        try:
            hf_hub_download("standin/gated-model", "config.json", cache_dir=sys.argv[2] + "-3", token=False)
            gated = "downloaded"
        except GatedRepoError:
            gated = "GatedRepoError"
        print(json.dumps({"path": path, "files": files, "tag_file": open(one).read(), "gated": gated}))
        """.write(to: script, atomically: true, encoding: .utf8)
        hub.configure { $0.treePageSize = 4 } // the client must follow the Link header, as with the Hub's 1000-entry pages
        let cache = dir.appendingPathComponent("hf-cache")
        var env = ProcessInfo.processInfo.environment
        for key in env.keys where key.hasPrefix("HF_") || key.hasPrefix("HUGGING") { env.removeValue(forKey: key) }
        env["HF_ENDPOINT"] = hub.baseURL
        env["HF_HOME"] = dir.appendingPathComponent("hf-home").path
        env["HF_HUB_DISABLE_XET"] = "1"
        env["HF_HUB_DISABLE_TELEMETRY"] = "1"
        env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        let result = try runProcess(python, [script.path, tiny, cache.path], environment: env)
        XCTAssertEqual(result.status, 0, result.stderr)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((result.stdout.split(separator: "\n").last ?? "").utf8)) as? [String: Any], result.stdout + result.stderr)
        let repo = try XCTUnwrap(hub.repo(tiny))
        XCTAssertTrue((report["path"] as? String ?? "").hasSuffix("snapshots/\(repo.commit)"), "the client pinned the commit from X-Repo-Commit / sha")
        let files = try XCTUnwrap(report["files"] as? [String: String])
        XCTAssertEqual(files, Dictionary(uniqueKeysWithValues: repo.files.map { ($0.path, $0.sha256) }))
        XCTAssertEqual(report["tag_file"] as? String, String(decoding: try XCTUnwrap(repo.files.first { $0.path == "model_index.json" }).data, as: UTF8.self))
        XCTAssertEqual(report["gated"] as? String, "GatedRepoError", "the client recognises the stand-in's gated answer")
        XCTAssertTrue(hub.requests.contains { $0.method == "HEAD" && $0.path.contains("/resolve/") }, "the client used HEAD for metadata")
    }

    func pythonWithHub() throws -> URL {
        for candidate in ["/usr/bin/env"] {
            let check = try runProcess(URL(fileURLWithPath: candidate), ["python3", "-c", "import huggingface_hub"])
            if check.status == 0 { return URL(fileURLWithPath: try runProcess(URL(fileURLWithPath: candidate), ["python3", "-c", "import sys; print(sys.executable)"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if check.stderr.contains("No module named") {
                throw XCTSkip("python3 has no huggingface_hub: `pip install huggingface_hub` (.ci/run installs it).")
            }
        }
        throw XCTSkip("python3 is not installed (.ci/run installs it).")
    }
}
