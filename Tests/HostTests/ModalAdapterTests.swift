import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// The Modal adapter through the real engine against the stand-in for the
/// deployed Switchyard app (Registry/modal/switchyard_app.py) over real HTTP
/// on loopback: proxy auth, spawn, 202 while pending, the 303 of requests past
/// 150 s, every call status, 7-day expiry, cancel, and a crash after spawn.
final class ModalAdapterTests: TemporaryDirectoryTestCase {
    var standIn: ModalStandIn!

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        standIn = try await started(ModalStandIn())
    }

    func makeEngine(secrets: [String: String]? = nil) throws -> JobEngine {
        let plugins = dir.appendingPathComponent("plugins-\(UUID().uuidString.prefix(6))")
        try copyPlugin("modal", to: plugins)
        let engine = try makeTestEngine(home: dir.appendingPathComponent("home-\(UUID().uuidString.prefix(6))"), plugins: plugins,
                                        secrets: secrets ?? ["MODAL_KEY": standIn.key, "MODAL_SECRET": standIn.secret],
                                        http: BlockingHTTPTransport(defaultTimeoutMs: 3_000))
        engine.policy.minPollMs = 1
        engine.policy.maxPollMs = 5
        return engine
    }

    var config: [String: JSONValue] { ["app_url": .string(standIn.baseURL)] }

    func generate(_ extra: [String: JSONValue] = [:]) -> JobSpec {
        JobSpec(pluginID: "modal", capability: "image.generate", inputs: ["prompt": "a lighthouse at dawn", "width": 256, "height": 128],
                config: config.merging(extra) { _, new in new })
    }

    func run(_ engine: JobEngine, _ spec: JobSpec) async throws -> JobRecord {
        try await engine.drive(try await engine.start(spec).id)
    }

    func error(_ job: JobRecord) -> [String: Any] {
        (job.errorJSON.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any]) ?? [:]
    }

    func warm(_ engine: JobEngine) async throws {
        let health = await engine.health(of: try engine.plugin("modal"), config: config, maxAge: 0)
        XCTAssertEqual(health.status, "ok", health.message ?? "")
    }

    func testAnImageIsSpawnedPolledAndStored() async throws {
        let engine = try makeEngine()
        let job = try await run(engine, generate())
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let outputs = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(job.outputsJSON).utf8)) as? [String: Any])
        let first = try XCTUnwrap((outputs["images"] as? [[String: Any]])?.first, "the catalog's images: \(outputs)")
        XCTAssertEqual(first["width"] as? Int, 256)
        XCTAssertEqual(first["height"] as? Int, 128)
        let image = try XCTUnwrap(first["file"] as? [String: Any])
        let handle = try XCTUnwrap(image["artifact"] as? String)
        XCTAssertEqual(image["media_type"] as? String, "image/png")
        let stored = try XCTUnwrap(engine.artifacts.read(sha256: String(handle.dropFirst(7))))
        XCTAssertEqual(stored.prefix(4), Data([0x89, 0x50, 0x4E, 0x47]), "the data: URI was decoded into the store")
        XCTAssertEqual(outputs["seed"] as? Int, 42)
        XCTAssertEqual(outputs["model"] as? String, standIn.model)
        XCTAssertEqual(standIn.spawns, 1)
        XCTAssertEqual(standIn.status(of: try XCTUnwrap(standIn.callIDs.first)), "SUCCESS")
        XCTAssertTrue(job.refJSON?.contains("fc-") == true)
    }

    func testPendingCallsAreAnswered202UntilTheyFinish() async throws {
        standIn.configure { $0.runMs = 150 }
        let job = try await run(try makeEngine(), generate())
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertGreaterThanOrEqual(job.pollCount, 3, "polled while Modal answered 202")
    }

    func testARequestPast150SecondsIsFollowedThroughThe303WithoutASecondSpawn() async throws {
        let engine = try makeEngine()
        try await warm(engine)
        standIn.scaleToZero()
        standIn.configure { $0.coldStartMs = 200_000 }
        let job = try await run(engine, generate())
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(standIn.redirectsIssued, 1, "the cold spawn outlived 150 s and was answered 303")
        XCTAssertEqual(standIn.spawns, 1, "following the 303 waits for the same call; it does not spawn again")
    }

    func testMissingProxyAuthIsAuthFailedWithTheExactRemediation() async throws {
        let engine = try makeEngine(secrets: [:])
        let verdict = await engine.preflight(generate())
        XCTAssertEqual(verdict.firstError?.code, "AUTH_FAILED")
        XCTAssertTrue(verdict.firstError?.message.contains("modal-http: missing credentials for proxy authorization") == true, verdict.firstError?.message ?? "")
        // Past a stale health check, the submit itself fails the same way, with the remediation.
        try cacheHealthy(engine, "modal", config: generate().config)
        let job = try await run(engine, generate())
        XCTAssertEqual(job.errorCode, "AUTH_FAILED")
        let remediation = error(job)["remediation"] as? String ?? ""
        XCTAssertTrue(remediation.contains("Settings → Proxy Auth Tokens"), remediation)
        XCTAssertTrue(remediation.contains("yard secrets set MODAL_KEY") && remediation.contains("yard secrets set MODAL_SECRET"), remediation)
        XCTAssertEqual(standIn.spawns, 0)
    }

    func testWrongProxyCredentialsAreAuthFailedAndNeverEchoed() async throws {
        let engine = try makeEngine(secrets: ["MODAL_KEY": "wk-wrong", "MODAL_SECRET": "ws-wrong-secret-value"])
        let verdict = await engine.preflight(generate())
        XCTAssertEqual(verdict.firstError?.code, "AUTH_FAILED")
        XCTAssertTrue(verdict.firstError?.message.contains("invalid credentials") == true)
        XCTAssertFalse(verdict.firstError?.message.contains("ws-wrong-secret-value") == true)
        XCTAssertEqual(standIn.spawns, 0)
    }

    func testEveryFailedCallStatusMapsToItsHostCode() async throws {
        let expected = [("FAILURE", "ENGINE_ERROR", "yes"), ("INIT_FAILURE", "ENGINE_UNAVAILABLE", "unknown"),
                        ("TERMINATED", "ENGINE_ERROR", "yes"), ("TIMEOUT", "ENGINE_TIMEOUT", "yes")]
        let engine = try makeEngine()
        for (status, code, charged) in expected {
            standIn.configure { $0.endWith = (status, "\(status.lowercased()) in the container") }
            let job = try await run(engine, generate())
            XCTAssertEqual(job.phase, .failed, status)
            XCTAssertEqual(job.errorCode, code, status)
            XCTAssertEqual(error(job)["charged"] as? String, charged, status)
        }
        XCTAssertEqual(standIn.spawns, 4)
    }

    func testATerminatedContainerSaysSo() async throws {
        standIn.configure { $0.endWith = ("TERMINATED", "container preempted") }
        let job = try await run(try makeEngine(), generate())
        XCTAssertTrue((error(job)["message"] as? String ?? "").contains("terminated the container"), job.errorJSON ?? "")
        XCTAssertTrue(job.errorJSON?.contains("container preempted") == true)
    }

    func testAResultPastSevenDaysIsResultExpired() async throws {
        let engine = try makeEngine()
        let started = try await engine.start(generate())
        standIn.advance(ms: 1_000)
        XCTAssertEqual(standIn.status(of: standIn.callIDs[0]), "SUCCESS")
        standIn.advance(ms: 8 * 24 * 3600 * 1000)
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.phase, .failed)
        XCTAssertEqual(job.errorCode, "RESULT_EXPIRED")
    }

    func testCancellingAPendingCallTerminatesIt() async throws {
        standIn.configure { $0.stuckPending = true }
        let engine = try makeEngine()
        let started = try await engine.start(generate())
        let cancelled = try await engine.cancel(started.id)
        XCTAssertEqual(cancelled.phase, .cancelled)
        XCTAssertTrue(cancelled.cancelOutcomeJSON?.contains(#""outcome":"cancelled_running""#) == true, cancelled.cancelOutcomeJSON ?? "")
        XCTAssertEqual(standIn.status(of: standIn.callIDs[0]), "TERMINATED")
    }

    func testACallStuckPendingIsCancelledAtItsDeadline() async throws {
        standIn.configure { $0.stuckPending = true }
        let engine = try makeEngine()
        engine.policy.jobTimeoutSeconds = 0.3
        let job = try await run(engine, generate())
        XCTAssertEqual(job.errorCode, "ENGINE_TIMEOUT")
        XCTAssertEqual(standIn.status(of: standIn.callIDs[0]), "TERMINATED", "the host cancelled it at Modal")
    }

    func testEdgeErrorsOnSpawnAreRetriedWithoutASecondCall() async throws {
        let engine = try makeEngine()
        try await warm(engine)
        standIn.configure { $0.serverErrorNext = 2 }
        let job = try await run(engine, generate())
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(standIn.spawns, 1)
    }

    func testAModelTheAppDoesNotServeIsRefusedBeforeSpawning() async throws {
        let verdict = await (try makeEngine()).preflight(generate(["model": "stabilityai/sdxl-turbo"]))
        XCTAssertEqual(verdict.firstError?.code, "CONFIG_INVALID", "\(verdict.findings)")
        XCTAssertEqual(standIn.spawns, 0)
    }

    func testAMissingAppURLIsConfigInvalid() async throws {
        let verdict = await (try makeEngine()).preflight(JobSpec(pluginID: "modal", capability: "image.generate", inputs: ["prompt": "x"]))
        XCTAssertEqual(verdict.firstError?.code, "CONFIG_INVALID")
    }

    func testACrashBetweenSpawnAndStoringTheRefIsReconciledByIdempotencyKey() throws {
        let home = dir.appendingPathComponent("crash-home")
        let env = ["MODAL_KEY": standIn.key, "MODAL_SECRET": standIn.secret, "SWIFT_BACKTRACE": "enable=no"]
        let configJSON = #"{"app_url":"\#(standIn.baseURL)"}"#
        let crashed = try yard(["run", "image.generate", "--engine", "modal", "--input", "prompt=a kite", "--config", configJSON],
                               home: home, extraEnvironment: env.merging(["YARD_FAULT": "after-submit"]) { _, new in new })
        XCTAssertNotEqual(crashed.status, 0)
        XCTAssertEqual(standIn.spawns, 1)
        let resumed = try yard(["jobs", "resume", "--json"], home: home, extraEnvironment: env)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let jobs = try XCTUnwrap(resumed.json as? [[String: Any]], resumed.stdout)
        XCTAssertEqual(jobs.first?["state"] as? String, "succeeded", "\(jobs)")
        XCTAssertEqual(standIn.spawns, 1, "found again by its idempotency key, never spawned twice")
    }

    // MARK: modal.deploy

    /// A stand-in for the `modal` CLI: records what it was given, prints what `modal deploy` prints.
    func fakeModalCLI() throws -> (bin: URL, record: URL) {
        let bin = dir.appendingPathComponent("fake-bin"), record = dir.appendingPathComponent("modal-deploy.txt")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let script = """
            #!/bin/sh
            { echo "args=$1"; echo "token=$MODAL_TOKEN_ID"; echo "model=$SWITCHYARD_MODEL"; echo "gpu=$SWITCHYARD_GPU"; grep -c "requires_proxy_auth=True" "$2"; } > \(record.path)
            [ -n "$MODAL_TOKEN_SECRET" ] || { echo "Token missing. Run modal token new" >&2; exit 1; }
            echo "✓ Created objects."
            echo "├── 🔨 Created web function web => https://acme--switchyard-web.modal.run"
            echo "✓ App deployed in 3.104s! 🎉"
            """
        let cli = bin.appendingPathComponent("modal")
        try script.write(to: cli, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: cli.path)
        return (bin, record)
    }

    var shippedApp: String { Build.repository.appendingPathComponent("Registry/modal/switchyard_app.py").path }

    func testDeployRunsModalDeployOnTheShippedAppWithTheTokenModelAndGPU() throws {
        let (bin, record) = try fakeModalCLI()
        let home = dir.appendingPathComponent("deploy-home")
        let tokenSecret = "as-canary-\(UUID().uuidString.prefix(8))"
        let result = try yard(["run", "modal.deploy", "--engine", "modal", "--input", "app=@\(shippedApp)", "--input", "gpu=H100",
                               "--input", "model=stabilityai/sdxl-turbo", "--json"], home: home,
                              extraEnvironment: ["PATH": "\(bin.path):/usr/bin:/bin", "MODAL_TOKEN_ID": "ak-test", "MODAL_TOKEN_SECRET": tokenSecret])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("https://acme--switchyard-web.modal.run"), result.stdout)
        let seen = try String(contentsOf: record, encoding: .utf8)
        XCTAssertTrue(seen.contains("args=deploy"), seen)
        XCTAssertTrue(seen.contains("token=ak-test"), "the token reaches the CLI through its environment")
        XCTAssertTrue(seen.contains("model=stabilityai/sdxl-turbo") && seen.contains("gpu=H100"), seen)
        XCTAssertTrue(seen.hasSuffix("1\n"), "the file deployed is the shipped app: \(seen)")
        XCTAssertFalse(result.stdout.contains(tokenSecret))
        let store = try SQLiteJobStore(path: home.appendingPathComponent("yard.sqlite"))
        let job = try XCTUnwrap(try store.jobs(limit: 1, phase: nil).first)
        for column in [job.refJSON, job.outputsJSON, job.errorJSON, job.message] { XCTAssertFalse((column ?? "").contains(tokenSecret)) }
    }

    func testDeployWithoutTheModalCLIIsDependencyMissingSayingHowToInstallIt() throws {
        let result = try yard(["run", "modal.deploy", "--engine", "modal", "--input", "app=@\(shippedApp)", "--json"],
                              home: dir.appendingPathComponent("no-cli-home"),
                              extraEnvironment: ["PATH": "/usr/bin:/bin", "MODAL_TOKEN_ID": "ak-test", "MODAL_TOKEN_SECRET": "as-test"])
        XCTAssertNotEqual(result.status, 0)
        let text = result.stdout + result.stderr
        XCTAssertTrue(text.contains("DEPENDENCY_MISSING"), text)
        XCTAssertTrue(text.contains("pip install modal") && text.contains("modal token new"), text)
    }

    func testADryRunChecksTheAppAndShowsTheCommandWithoutTheCLI() throws {
        let result = try yard(["run", "modal.deploy", "--engine", "modal", "--input", "app=@\(shippedApp)", "--input", "dry_run=true",
                               "--input", "gpu=A10", "--json"], home: dir.appendingPathComponent("dry-home"), extraEnvironment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("SWITCHYARD_GPU='A10'") && result.stdout.contains("modal deploy app.py"), result.stdout)
        XCTAssertTrue(result.stdout.contains(#""modal_cli_installed":false"#) || result.stdout.contains(#""modal_cli_installed" : false"#), result.stdout)
    }

    func testDeployWithoutAModalTokenIsAuthMissing() throws {
        let (bin, _) = try fakeModalCLI()
        let result = try yard(["run", "modal.deploy", "--engine", "modal", "--input", "app=@\(shippedApp)", "--json"],
                              home: dir.appendingPathComponent("no-token-home"), extraEnvironment: ["PATH": "\(bin.path):/usr/bin:/bin"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue((result.stdout + result.stderr).contains("AUTH_MISSING"), result.stdout + result.stderr)
    }

    /// The whole conformance kit against the built-in stand-in, as a plugin author runs it with no account.
    func testTheAdapterPassesTheConformanceKitAgainstItsStandIn() throws {
        // modal.deploy's example is a dry run: the kit needs no Modal CLI (none on this PATH) and deploys nothing.
        try assertConformantAgainstItsStandIn("modal", home: dir.appendingPathComponent("h"), extraEnvironment: ["PATH": "/usr/bin:/bin"])
    }
}
