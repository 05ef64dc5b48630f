import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// Names that come from providers, plugins and files never become paths
/// outside `--output-dir` or $YARD_HOME: artifact handles are "sha256:" + 64
/// hex, output names and model file names are plain, Hub revisions are
/// commit ids, and symlinks on the way are not followed out.
final class HostilePathTests: HubStandInTestCase {
    var home: URL { dir.appendingPathComponent("home") }
    var plugins: URL { dir.appendingPathComponent("plugins") }
    /// Stands for /etc/passwd: a file outside everything the host may touch.
    var victim: URL { dir.appendingPathComponent("outside/victim.txt") }

    override func setUp() async throws {
        try await super.setUp()
        try FileManager.default.createDirectory(at: plugins, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: victim.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("do not touch".utf8).write(to: victim)
    }

    func hostileEngine() throws -> JobEngine {
        _ = try fixturePlugin("hostile_outputs", in: plugins) { manifest in
            manifest["id"] = "hostile-outputs"
            manifest["capabilities"] = [["id": "debug.echo"]]
        }
        return try makeTestEngine(home: home, plugins: plugins)
    }

    // MARK: artifact handles

    func testAProviderAnsweringATraversalHandleFailsTheJob() async throws {
        let engine = try hostileEngine()
        let depth = String(repeating: "../", count: 12)
        for handle in ["sha256:\(depth)\(victim.path.dropFirst())", "sha256:/etc/passwd", "sha256:" + String(repeating: "A", count: 64),
                       "sha256:" + String(repeating: "a", count: 63), victim.path] {
            let job = try await engine.start(JobSpec(pluginID: "hostile-outputs", capability: "debug.echo", inputs: ["text": .string(handle)]))
            XCTAssertEqual(job.phase, .failed, handle)
            let error = try JSONValue(parsing: Data(try XCTUnwrap(job.errorJSON).utf8))
            XCTAssertEqual(error["code"], "ARTIFACT_HANDLE_INVALID", handle)
            XCTAssertEqual(error["charged"], "unknown", "the provider did the work it claims")
            XCTAssertNil(job.outputsJSON, "a refused handle is never stored as an output")
        }
    }

    func testAWellFormedHandleThatNamesNothingInTheStoreIsRefusedToo() async throws {
        let engine = try hostileEngine()
        let job = try await engine.start(JobSpec(pluginID: "hostile-outputs", capability: "debug.echo",
                                                 inputs: ["text": .string("sha256:" + String(repeating: "0", count: 64))]))
        XCTAssertEqual(job.phase, .failed)
        XCTAssertTrue(job.errorJSON?.contains("not in this host's store") == true, job.errorJSON ?? "")
    }

    func testTheStoreNeverResolvesAHostileDigestOutsideItself() throws {
        let store = ArtifactDirectory(root: dir.appendingPathComponent("artifacts"))
        for digest in ["../../outside/victim.txt", "/etc/passwd", "..", ""] {
            XCTAssertTrue(store.path(for: digest).path.hasPrefix(store.root.path + "/sha256/"), digest)
            XCTAssertNil(try store.read(sha256: digest))
        }
        XCTAssertRefusal(.artifactHandleInvalid) { _ = try store.file(forHandle: "sha256:../../outside/victim.txt") }
        XCTAssertRefusal(.artifactHandleInvalid) { _ = try store.file(forHandle: String(repeating: "a", count: 64)) }
    }

    func testAPipelineInputNamingATraversalHandleIsRefusedInPreflight() async throws {
        try copyPlugin("local-media", to: plugins)
        let engine = try makeTestEngine(home: home, plugins: plugins)
        let verdict = await engine.preflight(JobSpec(pluginID: "local-media", capability: "video.grade",
                                                     inputs: ["video": ["artifact": "sha256:../../../../etc/passwd", "media_type": "video/mp4"]]))
        XCTAssertFalse(verdict.ok)
        XCTAssertTrue(verdict.findings.contains { $0.code == "ARTIFACT_HANDLE_INVALID" || $0.code == "CONTRACT_MISMATCH" }, "\(verdict.findings)")
    }

    // MARK: output names and --output-dir

    func testAPipelineOutputNamedLikeAPathIsRefusedWhenTheFileIsRead() {
        for name in ["../../victim", "/etc/passwd", "a/b", "..", ".hidden", "tab\there"] {
            let yaml = """
                id: outputs
                steps:
                  a: {capability: debug.echo, engines: [echo], inputs: {text: hi}}
                outputs:
                  "\(name)": ${steps.a.outputs.file}
                """
            do {
                _ = try PipelineDefinition.parse(yaml: yaml, source: "test.yaml")
                XCTFail("\(name) was accepted")
            } catch let error as YardError {
                XCTAssertEqual(error.code.rawValue, "PIPELINE_INVALID", name)
                XCTAssertTrue(error.field?.hasPrefix("$.outputs.") == true, "\(String(describing: error.field))")
            } catch { XCTFail("\(error)") }
        }
    }

    func run(outputs: [String: JSONValue]) -> PipelineRunRecord {
        PipelineRunRecord(id: "run_x", pipelineID: "p", source: "p.yaml", definitionJSON: "{}", inputsJSON: "{}", quality: "standard", noCache: false,
                          state: .succeeded, outputsJSON: String(decoding: JSONValue.object(outputs).serialized(), as: UTF8.self),
                          errorJSON: nil, createdAt: Date(), updatedAt: Date(), finishedAt: Date())
    }

    func testCopyingOutputsRefusesHostileNamesAndHandlesBeforeWritingAnything() throws {
        let store = ArtifactDirectory(root: home.appendingPathComponent("artifacts"))
        let digest = try store.put(Data("clip".utf8), mediaType: "text/plain")
        let good: JSONValue = ["artifact": .string("sha256:\(digest)"), "media_type": "text/plain"]
        let out = dir.appendingPathComponent("out")
        let traversal = String(repeating: "../", count: 3) + "outside/victim"
        XCTAssertRefusal(.nameInvalid) { _ = try OutputFiles.copy(self.run(outputs: ["a": good, traversal: good]).outputsJSON, to: out, artifacts: store) }
        XCTAssertRefusal(.nameInvalid) { _ = try OutputFiles.copy(self.run(outputs: ["a": good, "/abs/olute": good]).outputsJSON, to: out, artifacts: store) }
        XCTAssertRefusal(.artifactHandleInvalid) {
            _ = try OutputFiles.copy(self.run(outputs: ["a": good, "b": ["artifact": .string("sha256:../../../outside/victim.txt")]]).outputsJSON, to: out, artifacts: store)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("a.txt").path), "nothing is copied when one output is refused")
        XCTAssertEqual(try String(contentsOf: victim, encoding: .utf8), "do not touch")
    }

    func testASymlinkInTheOutputFolderIsReplacedNotWrittenThrough() throws {
        let store = ArtifactDirectory(root: home.appendingPathComponent("artifacts"))
        let digest = try store.put(Data("the real clip".utf8), mediaType: "text/plain")
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: out.appendingPathComponent("clip.txt"), withDestinationURL: victim)
        let copied = try OutputFiles.copy(run(outputs: ["clip": ["artifact": .string("sha256:\(digest)"), "media_type": "text/plain"]]).outputsJSON, to: out, artifacts: store)
        XCTAssertEqual(copied["clip"], out.appendingPathComponent("clip.txt").path)
        XCTAssertEqual(try String(contentsOf: victim, encoding: .utf8), "do not touch")
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("clip.txt"), encoding: .utf8), "the real clip")
        XCTAssertNil(try? FileManager.default.destinationOfSymbolicLink(atPath: out.appendingPathComponent("clip.txt").path))
    }

    // MARK: models

    func testAHubCommitThatIsNotACommitIdIsRefused() async throws {
        let repoID = "acme/escape"
        hub.add(HubStandIn.Repo(id: repoID, files: [HubStandIn.File(path: "model.bin", data: Data("w".utf8), lfs: false)],
                                commit: "../../../../outside"))
        let resolver = ModelSourceResolver(hubEndpoint: hub.baseURL, civitaiEndpoint: hub.baseURL, hfToken: nil, civitaiToken: nil)
        do {
            _ = try await resolver.resolveHub(try ModelReference.parse(repoID))
            XCTFail("a traversal commit was accepted")
        } catch let error as YardError {
            XCTAssertEqual(error.code, .nameInvalid, "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("outside/model.bin").path))
    }

    func downloader() throws -> ModelDownloader {
        let catalog = ModelCatalog(store: try SQLiteJobStore(path: YardPaths(home: home).jobStoreFile), root: home.appendingPathComponent("models"))
        return ModelDownloader(catalog: catalog, allowPrivateRedirects: true)
    }

    func plan(revision: String = String(repeating: "a", count: 40), repo: String = "acme/model", vendor: String = "huggingface", path: String = "model.bin") -> ModelPlan {
        ModelPlan(vendor: vendor, repo: repo, revision: revision, type: "checkpoint", license: nil,
                  files: [ModelPlan.File(path: path, size: 1, sha256: nil, gitOID: nil, url: "\(hub.baseURL)/nowhere")], authorization: nil)
    }

    func testAPlanFromAPluginCannotNameAFolderOrFileOutsideTheModelRoot() async throws {
        let downloader = try downloader()
        let hostile = [plan(revision: "../../../outside"), plan(revision: "/etc"), plan(repo: "../../outside"), plan(repo: "a/b/c/d"),
                       plan(vendor: ".."), plan(path: "../../../../outside/victim.txt"), plan(path: "/etc/passwd"), plan(path: "a//b")]
        for plan in hostile {
            do {
                _ = try await downloader.pull(plan)
                XCTFail("\(plan.vendor)/\(plan.repo)/\(plan.revision)/\(plan.files[0].path) was accepted")
            } catch let error as YardError {
                XCTAssertEqual(error.code, .nameInvalid, "\(error)")
            }
        }
        XCTAssertEqual(try String(contentsOf: victim, encoding: .utf8), "do not touch")
    }

    func testASymlinkInsideTheModelRootThatPointsOutIsNotFollowed() async throws {
        let root = home.appendingPathComponent("models/huggingface/acme")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: root.appendingPathComponent("model"), withDestinationURL: victim.deletingLastPathComponent())
        do {
            _ = try await downloader().pull(plan())
            XCTFail("the download followed a symlink out of the model root")
        } catch let error as YardError {
            XCTAssertEqual(error.code, .pathOutsideRoot, "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: victim.deletingLastPathComponent().path), ["victim.txt"])
    }

    func testSafePathAcceptsOrdinaryNames() throws {
        XCTAssertEqual(try SafePath.components(of: "unet/diffusion_pytorch_model.safetensors", field: nil).count, 2)
        XCTAssertNoThrow(try SafePath.fileName("video.mp4", field: nil))
        XCTAssertNoThrow(try SafePath.contained("a/b.bin", in: dir, field: nil))
    }
}
