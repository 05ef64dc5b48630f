import Crypto
import Foundation
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost
#if canImport(Glibc)
import Glibc
#endif

/// `yard models` and the host's model downloader against the Hub stand-in on
/// loopback: resolution, verified multi-file pulls, Range resume after a
/// SIGKILL and after a dropped connection, verify and repair, the Hub's
/// refusals told apart, Retry-After, Civitai.
final class ModelCatalogTests: HubStandInTestCase {
    override var needsStagedPlugins: Bool { false }

    var home: URL { dir.appendingPathComponent("home") }

    func environment(token: String?) -> [String: String] {
        // No YARD_ALLOW_PRIVATE_REDIRECTS: an endpoint on loopback may redirect to its CDN on loopback.
        ["HF_ENDPOINT": hub.baseURL, "CIVITAI_ENDPOINT": hub.baseURL,
         "HF_TOKEN": token ?? "", "CIVITAI_TOKEN": token ?? ""]
    }

    func pull(_ arguments: [String], token: String? = nil) throws -> ProcessResult {
        try requireYard()
        return try yard(["models", "pull"] + arguments + ["--json"], home: home, extraEnvironment: environment(token: token))
    }

    func requireYard() throws {
        try requireBuiltYard()
    }

    func sha256(_ url: URL) throws -> String {
        SHA256.hash(data: try Data(contentsOf: url)).map { String(format: "%02x", $0) }.joined()
    }

    /// Every file of the repo is on disk under models/huggingface/<repo>/<commit>/ with the Hub's bytes.
    func assertRepoOnDisk(_ repoID: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let repo = try XCTUnwrap(hub.repo(repoID))
        let directory = home.appendingPathComponent("models/huggingface/\(repoID)/\(repo.commit)")
        for expected in repo.files {
            let url = directory.appendingPathComponent(expected.path)
            XCTAssertEqual(try sha256(url), expected.sha256, expected.path, file: file, line: line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: url.path + ".part"), "no .part left for \(expected.path)", file: file, line: line)
        }
    }

    func catalog() throws -> ModelCatalog {
        ModelCatalog(store: try SQLiteJobStore(path: YardPaths(home: home).jobStoreFile), root: home.appendingPathComponent("models"))
    }

    func resolver(token: String?) -> ModelSourceResolver {
        let resolver = ModelSourceResolver(hubEndpoint: hub.baseURL, civitaiEndpoint: hub.baseURL, hfToken: token, civitaiToken: token)
        return resolver
    }

    func downloader() throws -> ModelDownloader {
        let downloader = ModelDownloader(catalog: try catalog(), allowPrivateRedirects: true)
        downloader.baseBackoffSeconds = 0.01
        return downloader
    }

    // MARK: pull

    func testPullFetchesAMultiFileRepoAtItsCommitWithVerifiedChecksums() throws {
        let result = try pull([tiny, "--progress"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let record = try XCTUnwrap(result.json as? [String: Any], result.stdout)
        let repo = try XCTUnwrap(hub.repo(tiny))
        XCTAssertEqual(record["status"] as? String, "available")
        XCTAssertEqual(record["revision"] as? String, repo.commit, "the branch is pinned to the commit it resolved to")
        XCTAssertEqual(record["type"] as? String, "checkpoint")
        XCTAssertEqual(record["license"] as? String, "apache-2.0")
        let files = try XCTUnwrap(record["files"] as? [[String: Any]])
        XCTAssertEqual(Set(files.compactMap { $0["path"] as? String }), Set(repo.files.map(\.path)))
        for file in files {
            let expected = try XCTUnwrap(repo.files.first { $0.path == file["path"] as? String })
            XCTAssertEqual(file["sha256"] as? String, expected.sha256)
            XCTAssertEqual(file["size"] as? Int, expected.data.count)
        }
        try assertRepoOnDisk(tiny)
        XCTAssertTrue(result.stderr.contains("diffusion_pytorch_model.safetensors"), "progress goes to stderr (off a terminal: with --progress): \(result.stderr)")
        // LFS files came from the CDN host, after the Hub's redirect; the token never went there.
        let cdn = hub.requests.filter { $0.path.hasPrefix("/cdn/") }
        XCTAssertEqual(cdn.count, 2)
        XCTAssertTrue(cdn.allSatisfy { $0.headers["authorization"] == nil && $0.headers["host"]?.hasPrefix("localhost") == true })

        let list = try yard(["models", "list", "--json"], home: home)
        let listed = try XCTUnwrap(list.json as? [[String: Any]])
        XCTAssertEqual(listed.map { $0["id"] as? String }, ["huggingface:\(tiny)"])
    }

    func testPagedTreeListingsAreFollowedToTheEnd() async throws {
        hub.configure { $0.treePageSize = 2 }
        let plan = try await resolver(token: nil).resolveHub(try ModelReference.parse(tiny))
        XCTAssertEqual(Set(plan.files.map(\.path)), Set(try XCTUnwrap(hub.repo(tiny)).files.map(\.path)))
        XCTAssertGreaterThan(hub.requests.filter { $0.path.contains("/tree/") }.count, 3, "several pages were fetched")
    }

    func testIncludeGlobsAndATagRevisionNarrowThePull() throws {
        let result = try pull([tiny + "@v1.0", "--include", "*.json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let files = try XCTUnwrap((result.json as? [String: Any])?["files"] as? [[String: Any]])
        XCTAssertEqual(Set(files.compactMap { $0["path"] as? String }), ["model_index.json", "unet/config.json"])
        XCTAssertTrue(hub.requests.contains { $0.path == "/api/models/\(tiny)/revision/v1.0" })
    }

    func testAPullKilledMidFileResumesWithARangeRequestAndEndsVerified() throws {
        try requireYard()
        let repo = try XCTUnwrap(hub.repo(tiny))
        let weights = try XCTUnwrap(repo.files.first { $0.path == "unet/diffusion_pytorch_model.safetensors" })
        hub.configure { $0.throttleBytesPerSecond = 512 << 10 }
        let process = Process()
        process.executableURL = Build.yard
        process.arguments = ["models", "pull", tiny]
        var env = ProcessInfo.processInfo.environment
        env["YARD_HOME"] = home.path
        for (k, v) in environment(token: nil) { env[k] = v }
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let part = home.appendingPathComponent("models/huggingface/\(tiny)/\(repo.commit)/\(weights.path).part")
        let deadline = Date().addingTimeInterval(30)
        var partial: Int64 = 0
        while Date() < deadline {
            partial = ModelDownloader.size(of: part) ?? 0
            if partial > 300 << 10 { break }
            usleep(20_000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)
        let kept = try XCTUnwrap(ModelDownloader.size(of: part), "the partial file survives the kill")
        XCTAssertGreaterThan(kept, 0)
        XCTAssertLessThan(kept, Int64(weights.data.count))
        XCTAssertEqual(try catalog().records(id: "huggingface:\(tiny)").first?.status, .downloading)

        hub.configure { $0.throttleBytesPerSecond = nil }
        let result = try pull([tiny, "--progress"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let ranges = hub.requests.filter { $0.path == "/cdn/\(weights.sha256)" }.compactMap { $0.headers["range"] }
        XCTAssertEqual(ranges.count, 1, "the second pull asked only for the rest: \(ranges)")
        let start = try XCTUnwrap(ranges.first.flatMap { Int64($0.dropFirst("bytes=".count).dropLast()) })
        XCTAssertGreaterThanOrEqual(start, kept, "resumed from the .part's length")
        XCTAssertTrue(result.stderr.contains("resumed at"), result.stderr)
        try assertRepoOnDisk(tiny)
        XCTAssertEqual(try catalog().records(id: "huggingface:\(tiny)").first?.status, .available)
    }

    func testADroppedConnectionIsResumedFromWhereItStopped() async throws {
        hub.configure { $0.dropNextBodies = 1; $0.dropAfterBytes = 1 << 20 }
        let plan = try await resolver(token: nil).resolveHub(try ModelReference.parse(tiny))
        let record = try await downloader().pull(plan)
        XCTAssertEqual(record.status, .available)
        let weights = try XCTUnwrap(hub.repo(tiny)?.files.first { $0.path.hasPrefix("unet/diffusion") })
        let fetches = hub.requests.filter { $0.path == "/cdn/\(weights.sha256)" }
        XCTAssertEqual(fetches.count, 2)
        let resumedAt = try XCTUnwrap(fetches.last?.headers["range"].flatMap { Int($0.dropFirst("bytes=".count).dropLast()) })
        XCTAssertTrue((1...(1 << 20)).contains(resumedAt), "resumed inside the file, at what had arrived: \(resumedAt)")
        try assertRepoOnDisk(tiny)
    }

    func testACancelledPullKeepsItsPartialFileAndIsMarkedResumable() async throws {
        hub.configure { $0.throttleBytesPerSecond = 256 << 10 }
        let plan = try await resolver(token: nil).resolveHub(try ModelReference.parse(tiny))
        let downloader = try downloader()
        let task = Task { try await downloader.pull(plan) }
        let part = home.appendingPathComponent("models/huggingface/\(tiny)/\(plan.revision)/unet/diffusion_pytorch_model.safetensors.part")
        for _ in 0..<1000 where (ModelDownloader.size(of: part) ?? 0) < 64 << 10 { try await Task.sleep(nanoseconds: 10_000_000) }
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("a cancelled pull must not report success")
        } catch let error as YardError {
            XCTAssertEqual(error.code.rawValue, "CANCELLED")
        }
        XCTAssertGreaterThan(ModelDownloader.size(of: part) ?? 0, 0)
        let record = try XCTUnwrap(try catalog().records(id: plan.id).first)
        XCTAssertEqual(record.status, .failed)
        XCTAssertTrue(record.reason?.hasPrefix("CANCELLED") == true, record.reason ?? "")
    }

    // MARK: verify

    func testACorruptedFileFailsVerifyAndAPullRepairsIt() throws {
        XCTAssertEqual(try pull([tiny]).status, 0)
        XCTAssertEqual(try yard(["models", "verify", tiny], home: home).status, 0)
        let repo = try XCTUnwrap(hub.repo(tiny))
        let weights = home.appendingPathComponent("models/huggingface/\(tiny)/\(repo.commit)/text_encoder/model.safetensors")
        let handle = try FileHandle(forWritingTo: weights)
        try handle.seek(toOffset: 1000)
        try handle.write(contentsOf: Data([0xDE, 0xAD, 0xBE, 0xEF]))
        try handle.close()

        let verify = try yard(["models", "verify", tiny, "--json"], home: home)
        XCTAssertEqual(verify.status, 1)
        let report = try XCTUnwrap((verify.json as? [[String: Any]])?.first)
        XCTAssertEqual(report["ok"] as? Bool, false)
        let bad = (report["files"] as? [[String: Any]] ?? []).filter { $0["ok"] as? Bool == false }
        XCTAssertEqual(bad.map { $0["path"] as? String }, ["text_encoder/model.safetensors"])
        let listed = try XCTUnwrap((try yard(["models", "list", "--json"], home: home).json as? [[String: Any]])?.first)
        XCTAssertEqual(listed["status"] as? String, "failed")
        XCTAssertTrue((listed["reason"] as? String ?? "").hasPrefix("CHECKSUM_MISMATCH"))

        let before = hub.requests.count
        XCTAssertEqual(try pull([tiny]).status, 0)
        let refetched = hub.requests.dropFirst(before).filter { $0.path.hasPrefix("/cdn/") }
        XCTAssertEqual(refetched.count, 1, "only the corrupted file is fetched again")
        XCTAssertEqual(try yard(["models", "verify", tiny], home: home).status, 0)
        try assertRepoOnDisk(tiny)
    }

    func testRemoveDeletesTheFilesAndTheEntry() throws {
        XCTAssertEqual(try pull([tiny]).status, 0)
        let removed = try yard(["models", "remove", tiny, "--json"], home: home)
        XCTAssertEqual(removed.status, 0, removed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: home.appendingPathComponent("models/huggingface/\(tiny)").appendingPathComponent(hub.repo(tiny)!.commit).path))
        XCTAssertEqual((try yard(["models", "list", "--json"], home: home).json as? [Any])?.count, 0)
        let again = try yard(["models", "remove", tiny, "--json"], home: home)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stdout.contains("MODEL_NOT_FOUND"))
    }

    // MARK: refusals

    func errorCode(_ result: ProcessResult) -> (code: String?, remediation: String?) {
        let error = (result.json as? [String: Any])?["error"] as? [String: Any]
        return (error?["code"] as? String, error?["remediation"] as? String)
    }

    func testGatedPrivateAndMissingReposAreToldApart() throws {
        let gatedNoLogin = try pull(["standin/gated-model"])
        XCTAssertEqual(errorCode(gatedNoLogin).code, "AUTH_MISSING")
        XCTAssertTrue(errorCode(gatedNoLogin).remediation?.contains("yard secrets set HF_TOKEN") == true)

        let gatedNotGranted = try pull(["standin/gated-model"], token: hub.ungrantedToken)
        XCTAssertEqual(errorCode(gatedNotGranted).code, "ACCESS_NOT_GRANTED")
        XCTAssertTrue(errorCode(gatedNotGranted).remediation?.contains("standin/gated-model") == true, "points at the model page to accept the licence")

        let privateNoLogin = try pull(["standin/private-model"])
        XCTAssertEqual(errorCode(privateNoLogin).code, "AUTH_MISSING")

        let missing = try pull(["standin/no-such-model"], token: hub.ungrantedToken)
        XCTAssertEqual(errorCode(missing).code, "MODEL_NOT_FOUND")
        XCTAssertTrue(errorCode(missing).remediation?.contains("repo id") == true)

        let badRevision = try pull([tiny + "@no-such-branch"])
        XCTAssertEqual(errorCode(badRevision).code, "REVISION_NOT_FOUND")

        let badToken = try pull([tiny], token: "hf_revoked")
        XCTAssertEqual(errorCode(badToken).code, "AUTH_FAILED", "the token is checked with whoami first")
        XCTAssertTrue(hub.requests.contains { $0.path == "/api/whoami-v2" })

        let granted = try pull(["standin/gated-model"], token: hub.token)
        XCTAssertEqual(granted.status, 0, granted.stderr)
        try assertRepoOnDisk("standin/gated-model")
        XCTAssertFalse((granted.stdout + granted.stderr).contains(hub.token), "the token never appears in output")
    }

    func testAFailedPullIsCataloguedWithItsReason() async throws {
        let plan = try await resolver(token: nil).resolveHub(try ModelReference.parse(tiny))
        var broken = plan
        broken.files[4].sha256 = String(repeating: "0", count: 64)
        do {
            _ = try await downloader().pull(broken)
            XCTFail("a digest mismatch must fail the pull")
        } catch let error as YardError {
            XCTAssertEqual(error.code.rawValue, "CHECKSUM_MISMATCH")
        }
        let record = try XCTUnwrap(try catalog().records(id: plan.id).first)
        XCTAssertEqual(record.status, .failed)
        XCTAssertTrue(record.reason?.contains("CHECKSUM_MISMATCH") == true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: URL(fileURLWithPath: record.path).appendingPathComponent(plan.files[4].path).path),
                       "an unverified file never takes its final name")
    }

    func testVerifyingEveryModelReportsAnUnfinishedPullWithoutFailing() async throws {
        try requireYard()
        XCTAssertEqual(try pull(["civitai:128713"]).status, 0)
        let plan = try await resolver(token: nil).resolveHub(try ModelReference.parse(tiny))
        var broken = plan
        broken.files[4].sha256 = String(repeating: "0", count: 64)
        _ = try? await downloader().pull(broken)
        let all = try yard(["models", "verify"], home: home)
        XCTAssertEqual(all.status, 0, "nothing that was pulled is corrupted: \(all.stdout)")
        XCTAssertTrue(all.stdout.contains("ok   civitai:"), all.stdout)
        XCTAssertTrue(all.stdout.contains("skip huggingface:\(tiny)") && all.stdout.contains("yard models pull"), all.stdout)
        XCTAssertEqual(try yard(["models", "verify", tiny], home: home).status, 1, "naming the unfinished model fails: it is not verified")
    }

    func testRateLimitsAreWaitedOutForTheirRetryAfter() async throws {
        hub.configure { $0.rateLimitNext = 2; $0.retryAfterSeconds = 1 }
        let started = Date()
        let plan = try await resolver(token: nil).resolveHub(try ModelReference.parse(tiny))
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 1.9, "two 429s with Retry-After: 1 cost two seconds")
        XCTAssertEqual(hub.requests.filter { $0.path.hasPrefix("/api/models/") }.count, 4)
        XCTAssertEqual(plan.revision, hub.repo(tiny)?.commit)

        hub.configure { $0.rateLimitNext = 100; $0.retryAfterSeconds = 3600 }
        do {
            _ = try await resolver(token: nil).resolveHub(try ModelReference.parse(tiny))
            XCTFail("an hour's Retry-After is not waited out")
        } catch let error as YardError {
            XCTAssertEqual(error.code.rawValue, "RATE_LIMITED")
            XCTAssertTrue(error.message.contains("3600"))
        }
    }

    func testCutOffJSONFromTheHubIsAClearErrorAndNothingIsCatalogued() async throws {
        hub.configure { $0.malformedNext = 1 }
        do {
            _ = try await resolver(token: nil).resolveHub(try ModelReference.parse(tiny))
            XCTFail("a cut-off answer must not resolve")
        } catch let error as YardError {
            XCTAssertEqual(error.code.rawValue, "ENGINE_ERROR")
            XCTAssertTrue(error.remediation.contains("HF_ENDPOINT"))
        }
        XCTAssertTrue(try catalog().all().isEmpty)
        let plan = try await resolver(token: nil).resolveHub(try ModelReference.parse(tiny))
        XCTAssertEqual(plan.revision, hub.repo(tiny)?.commit, "the next answer is whole again")
    }

    // MARK: Civitai

    func testCivitaiVersionsPullThroughTheSameVerifiedPath() throws {
        let result = try pull(["civitai:128713"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let record = try XCTUnwrap(result.json as? [String: Any])
        XCTAssertEqual(record["id"] as? String, "civitai:4384/128713")
        XCTAssertEqual(record["type"] as? String, "lora")
        let files = try XCTUnwrap(record["files"] as? [[String: Any]])
        XCTAssertEqual(files.map { $0["path"] as? String }, ["detail_tweaker.safetensors"], "the primary file only, unless one is named")
        let bytes = try Data(contentsOf: home.appendingPathComponent("models/civitai/4384/128713/128713/detail_tweaker.safetensors"))
        XCTAssertEqual(bytes.count, 256 << 10)

        let named = try pull(["civitai:128713:detail_tweaker_example.png"])
        XCTAssertEqual(named.status, 0, named.stderr)
        XCTAssertEqual(((named.json as? [String: Any])?["files"] as? [[String: Any]])?.map { $0["path"] as? String }, ["detail_tweaker_example.png"])
    }

    func testCivitaiLoginIsRequiredWhereTheCreatorAsksAndTheTokenGoesAsBearer() throws {
        var version = HubStandIn.CivitaiVersion(id: 5000, modelID: 77, name: "v2", type: "Checkpoint", baseModel: "Flux.1 D",
                                                files: [HubStandIn.File(path: "model.safetensors", data: HubStandIn.bytes(4096, seed: 9), lfs: true)])
        version.requiresLogin = true
        hub.add(version)
        let refused = try pull(["civitai:5000"])
        XCTAssertEqual(errorCode(refused).code, "AUTH_MISSING")
        XCTAssertTrue(errorCode(refused).remediation?.contains("CIVITAI_TOKEN") == true)
        let allowed = try pull(["civitai:5000"], token: hub.token)
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
        XCTAssertEqual((allowed.json as? [String: Any])?["type"] as? String, "checkpoint")
        XCTAssertTrue(hub.requests.contains { $0.path == "/api/download/models/5000" && $0.headers["authorization"] == "Bearer \(hub.token)" })
        XCTAssertEqual(errorCode(try pull(["civitai:999999"])).code, "MODEL_NOT_FOUND")
    }

    func testLocalWeightsAreCataloguedVerifiedAndKeptOnRemove() throws {
        let folder = home.appendingPathComponent("models/local/studio/house-style")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("vae"), withIntermediateDirectories: true)
        try HubStandIn.bytes(5000, seed: 3).write(to: folder.appendingPathComponent("model.safetensors"))
        try Data("{}".utf8).write(to: folder.appendingPathComponent("vae/config.json"))
        let registered = try pull(["local:studio/house-style", "--type", "lora"])
        XCTAssertEqual(registered.status, 0, registered.stderr)
        let record = try XCTUnwrap(registered.json as? [String: Any])
        XCTAssertEqual(record["status"] as? String, "available")
        XCTAssertEqual(record["type"] as? String, "lora")
        XCTAssertEqual((record["files"] as? [[String: Any]])?.compactMap { $0["path"] as? String }, ["model.safetensors", "vae/config.json"])
        XCTAssertEqual(try yard(["models", "verify", "local:studio/house-style"], home: home).status, 0)
        try Data("{\"changed\":1}".utf8).write(to: folder.appendingPathComponent("vae/config.json"))
        XCTAssertEqual(try yard(["models", "verify", "local:studio/house-style"], home: home).status, 1)
        XCTAssertEqual(try yard(["models", "remove", "local:studio/house-style"], home: home).status, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("model.safetensors").path), "a person's own files are not deleted")
        XCTAssertEqual(errorCode(try pull(["local:studio/empty"])).code, "FILE_NOT_FOUND")
        XCTAssertTrue(hub.requests.isEmpty, "local models need no network")
    }

    func testBadReferencesAreRefusedBeforeAnyRequest() throws {
        for bad in ["justaname", "../etc/passwd", "civitai:abc", "owner/name@../x"] {
            let result = try pull([bad])
            XCTAssertEqual(result.status, 2, "a usage error: \(bad)")
            XCTAssertEqual(errorCode(result).code, "USAGE", bad)
        }
        XCTAssertTrue(hub.requests.isEmpty)
    }

    func testGlobsMatchWithinAndAcrossFolders() {
        XCTAssertTrue(ModelSourceResolver.glob("*.json", matches: "unet/config.json"))
        XCTAssertTrue(ModelSourceResolver.glob("unet/*", matches: "unet/config.json"))
        XCTAssertFalse(ModelSourceResolver.glob("unet/*.json", matches: "text_encoder/config.json"))
        XCTAssertTrue(ModelSourceResolver.glob("**/model.safetensors", matches: "a/b/model.safetensors"))
        XCTAssertFalse(ModelSourceResolver.isSafeRelativePath("../escape"))
        XCTAssertFalse(ModelSourceResolver.isSafeRelativePath("/abs"))
    }
}

/// A test with the Hub stand-in running on loopback, seeded with the sample repos.
class HubStandInTestCase: TemporaryDirectoryTestCase {
    var hub: HubStandIn!
    let tiny = "hf-internal-testing/tiny-stable-diffusion-pipe"

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        let hub = HubStandIn()
        hub.addSampleRepos()
        self.hub = try await started(hub)
    }
}
