import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// Jobs parked in needs_attention because the host stopped while submitting:
/// their reservation stays held (never charged "provisionally"), and they
/// are settled by reconcile, by their window passing, or by hand with an
/// audit event — refunded when the provider never had them, settled from
/// usage when it did.
final class ParkedJobTests: TemporaryDirectoryTestCase {
    var runpod: RunPodStandIn!

    override func setUp() async throws {
        try await super.setUp()
        try prepareDirectory()
        runpod = try await started(RunPodStandIn())
    }

    func engine(_ plugin: String = "runpod", secrets: [String: String] = [:]) throws -> (JobEngine, JobLedger) {
        let plugins = dir.appendingPathComponent("plugins-\(UUID().uuidString.prefix(4))")
        try copyPlugin(plugin, to: plugins)
        let (engine, ledger) = try makeLedgerEngine(home: dir.appendingPathComponent("home-\(UUID().uuidString.prefix(4))"), plugins: plugins,
                                                    billing: platformBilling(), secrets: ["RUNPOD_API_KEY": runpod.apiKey].merging(secrets) { _, new in new },
                                                    http: BlockingHTTPTransport(defaultTimeoutMs: 3_000))
        try ledger.grant(account: "acme", amountMinor: 10_000)
        return (engine, ledger)
    }

    var runpodConfig: [String: JSONValue] {
        ["endpoint_id": .string(runpod.endpointID), "base_url": .string(runpod.baseURL), "execution_timeout_ms": 60_000, "gpu_rate_minor_per_second": 100]
    }

    /// A job whose row and reservation committed, then the host died inside
    /// submit: on resume RunPod (no way to look a job up by our key) cannot
    /// say whether it has it, so the job is parked.
    func parkedJob(_ engine: JobEngine, _ ledger: JobLedger, createdAt: Date = Date()) async throws -> JobRecord {
        let plugin = try engine.plugin("runpod")
        let spec = JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "a lighthouse"], config: runpodConfig)
        let id = "job_parked\(UUID().uuidString.prefix(8).lowercased())"
        let record = JobRecord(id: id, idempotencyKey: "key-\(id)", pluginID: "runpod", pluginVersion: plugin.manifest.version, capability: "image.generate",
                               inputsJSON: #"{"prompt":"a lighthouse"}"#, inputHash: "h", configJSON: String(decoding: JSONValue.object(runpodConfig).serialized(), as: UTF8.self),
                               phase: .submitting, refJSON: nil, attempt: 1, progress: nil, message: nil, outputsJSON: nil, errorJSON: nil,
                               createdAt: createdAt, updatedAt: createdAt, submittedAt: nil, finishedAt: nil, nextPollAt: nil, pollCount: 0,
                               consecutiveErrors: 0, cancelRequested: false, cancelOutcomeJSON: nil, deadlineAt: createdAt.addingTimeInterval(1800), estimateMinor: nil)
        _ = try ledger.insertReserving(record, spec: spec, manifest: plugin.manifest, estimate: nil)
        _ = try await engine.resumeAll()
        return try XCTUnwrap(try engine.store.job(id: id))
    }

    func testAParkedJobKeepsItsReservationHeldAndIsNotCharged() async throws {
        let (engine, ledger) = try engine()
        let job = try await parkedJob(engine, ledger)
        XCTAssertEqual(job.phase, .needsAttention)
        XCTAssertEqual(job.errorCode, "SUBMIT_UNCONFIRMED")
        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.state, "parked", "not 'provisional' at the reservation")
        XCTAssertNil(charge.chargedMinor)
        XCTAssertEqual(try ledger.balance(account: "acme").heldMinor, 6_000)
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 4_000)
        XCTAssertEqual(runpod.submissions, 0, "never resubmitted on a guess")
        XCTAssertLedgerBalances(ledger)
    }

    func testResolvingAParkedJobAsNotSubmittedRefundsItWithAnAuditEvent() async throws {
        let (engine, ledger) = try engine()
        let job = try await parkedJob(engine, ledger)
        let resolved = try engine.resolveParked(job.id, .notSubmitted, actor: "ops@example.com", note: "not in the RunPod console")
        XCTAssertEqual(resolved.phase, .failed)
        XCTAssertEqual(resolved.errorCode, "SUBMIT_NOT_RECEIVED")
        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.state, "refunded")
        XCTAssertEqual(charge.chargedMinor, 0)
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 10_000)
        let audit = try engine.store.events(jobID: job.id, afterID: 0).filter { $0.kind == "audit" }
        XCTAssertEqual(audit.count, 1)
        XCTAssertTrue(audit[0].message.contains("ops@example.com") && audit[0].message.contains("never received"), audit[0].message)
        XCTAssertThrowsError(try engine.resolveParked(job.id, .notSubmitted, actor: "again")) { error in
            XCTAssertEqual((error as? YardError)?.code.rawValue, "JOB_NOT_PARKED", "a job is settled once")
        }
        XCTAssertLedgerBalances(ledger)
    }

    func testResolvingAParkedJobAsSubmittedPollsItAndSettlesItFromUsage() async throws {
        let (engine, ledger) = try engine()
        runpod.configure { $0.runMs = 30 }
        let job = try await parkedJob(engine, ledger)
        // It did reach RunPod (seen in the console): the job runs there under its id.
        let providerJob = try await submitDirectly()
        let resolved = try engine.resolveParked(job.id, .submitted(ref: #"{"id":"\#(providerJob)"}"#), actor: "ops")
        XCTAssertEqual(resolved.phase, .queued)
        XCTAssertEqual(try ledger.charge(jobID: job.id)?.state, "held")
        let finished = try await engine.drive(job.id)
        XCTAssertEqual(finished.phase, .succeeded, finished.errorJSON ?? "")
        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.state, "settled")
        XCTAssertEqual(charge.chargedMinor, 3, "30 ms × 100 minor/s, from RunPod's executionTime")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 9_997)
        XCTAssertLedgerBalances(ledger)
    }

    func testAParkedJobWhoseWindowPassedIsRefundedOnResume() async throws {
        let (engine, ledger) = try engine()
        // Parked two hours ago: past its 30-minute deadline and RunPod's 30-minute retention.
        let job = try await parkedJob(engine, ledger, createdAt: Date().addingTimeInterval(-7_200))
        XCTAssertEqual(try ledger.charge(jobID: job.id)?.state, "refunded", "resume swept it at once")
        XCTAssertEqual(try engine.store.job(id: job.id)?.errorCode, "SUBMIT_NOT_RECEIVED")
        XCTAssertTrue(try engine.store.events(jobID: job.id, afterID: 0).contains { $0.kind == "audit" && $0.message.contains("window passed") })
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 10_000)
        XCTAssertLedgerBalances(ledger)
    }

    func testReconcileProvingTheProviderNeverReceivedAParkedJobRefundsIt() async throws {
        let kling = KlingStandIn()
        try await kling.start()
        defer { Task { await kling.stop() } }
        let (engine, ledger) = try engine("kling", secrets: ["KLING_ACCESS_KEY": kling.accessKey, "KLING_SECRET_KEY": kling.secretKey])
        let plugin = try engine.plugin("kling")
        let config: [String: JSONValue] = ["base_url": .string(kling.baseURL)]
        let spec = JobSpec(pluginID: "kling", capability: "video.from_text", inputs: ["prompt": "a fox", "duration_seconds": 5], config: config)
        let id = "job_kparked\(UUID().uuidString.prefix(6).lowercased())"
        let now = Date()
        let record = JobRecord(id: id, idempotencyKey: "key-\(id)", pluginID: "kling", pluginVersion: plugin.manifest.version, capability: "video.from_text",
                               inputsJSON: #"{"duration_seconds":5,"prompt":"a fox"}"#, inputHash: "h", configJSON: String(decoding: JSONValue.object(config).serialized(), as: UTF8.self),
                               phase: .submitting, refJSON: nil, attempt: 1, progress: nil, message: nil, outputsJSON: nil, errorJSON: nil,
                               createdAt: now, updatedAt: now, submittedAt: nil, finishedAt: nil, nextPollAt: nil, pollCount: 0,
                               consecutiveErrors: 0, cancelRequested: false, cancelOutcomeJSON: nil, deadlineAt: now.addingTimeInterval(3600), estimateMinor: nil)
        _ = try ledger.insertReserving(record, spec: spec, manifest: plugin.manifest, estimate: nil)
        // Kling is down when the host comes back: reconcile cannot tell, so the job is parked.
        kling.configure { $0.errorNext = [5000, 5000, 5000, 5000] }
        _ = try await engine.resumeAll()
        XCTAssertEqual(try engine.store.job(id: id)?.phase, .needsAttention)
        XCTAssertEqual(try ledger.charge(jobID: id)?.state, "parked")
        // Kling answers again and has no task with our external_task_id: proof it never arrived.
        kling.configure { $0.errorNext = [] }
        _ = try await engine.resumeAll()
        XCTAssertEqual(try ledger.charge(jobID: id)?.state, "refunded")
        XCTAssertEqual(kling.submissions, 0)
        XCTAssertTrue(try engine.store.events(jobID: id, afterID: 0).contains { $0.kind == "audit" && $0.message.contains("reconcile") })
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 10_000)
        XCTAssertLedgerBalances(ledger)
    }

    func testYardJobsResolveSettlesByHandFromTheCommandLine() async throws {
        let home = dir.appendingPathComponent("cli")
        let paths = YardPaths(home: home)
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: home.appendingPathComponent("config"), withIntermediateDirectories: true)
        try Data(#"{"default_mode":"platform","default_account":"acme"}"#.utf8).write(to: home.appendingPathComponent("config/billing.json"))
        let env = ["RUNPOD_API_KEY": runpod.apiKey]
        XCTAssertEqual(try yard(["credits", "grant", "--account", "acme", "--amount", "100.00"], home: home).status, 0)
        // The host dies right after RunPod accepted the job, before its id was stored.
        let configText = String(decoding: JSONValue.object(runpodConfig).serialized(), as: UTF8.self)
        let crashed = try yard(["run", "image.generate", "--engine", "runpod", "--config", configText, "--input", "prompt=a fox"],
                               home: home, extraEnvironment: env.merging(["YARD_FAULT": "after-submit"]) { _, new in new })
        XCTAssertNotEqual(crashed.status, 0)
        let resumed = try yard(["jobs", "resume", "--json"], home: home, extraEnvironment: env)
        let parked = try XCTUnwrap((resumed.json as? [[String: Any]])?.first, resumed.stdout + resumed.stderr)
        XCTAssertEqual(parked["state"] as? String, "needs_attention")
        let id = try XCTUnwrap(parked["id"] as? String)
        let shown = try yard(["jobs", "show", id], home: home, extraEnvironment: env)
        XCTAssertTrue(shown.stdout.contains("held until resolved"), shown.stdout)
        XCTAssertEqual(try yard(["jobs", "resolve", id], home: home).status, 2, "a usage error: it must say which, submitted or not")
        // It did reach RunPod: pass its id from the console.
        let providerJob = try XCTUnwrap(runpod.jobIDs.first)
        let resolved = try yard(["jobs", "resolve", id, "--submitted", providerJob, "--note", "found in console", "--json"], home: home, extraEnvironment: env)
        XCTAssertEqual(resolved.status, 0, resolved.stdout + resolved.stderr)
        let view = try XCTUnwrap(resolved.json as? [String: Any], resolved.stdout)
        XCTAssertEqual(view["state"] as? String, "succeeded")
        XCTAssertEqual((view["cost"] as? [String: Any])?["state"] as? String, "settled")
        XCTAssertEqual(runpod.submissions, 1, "paid once")
        let logs = try yard(["jobs", "logs", id], home: home)
        XCTAssertTrue(logs.stdout.contains("audit") && logs.stdout.contains("found in console"), logs.stdout)
        XCTAssertEqual(try JobLedger.standard(store: SQLiteJobStore(path: paths.jobStoreFile), paths: paths).audit(), [])
    }

    /// A RunPod job created outside the host (what the parked job really became).
    func submitDirectly() async throws -> String {
        let request = HostHTTPRequest(method: "POST", url: "\(runpod.baseURL)/\(runpod.endpointID)/run",
                                      headers: ["authorization": "Bearer \(runpod.apiKey)", "content-type": "application/json"],
                                      body: Data(#"{"input":{"prompt":"a lighthouse"}}"#.utf8))
        let response = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try BlockingHTTPTransport(defaultTimeoutMs: 3_000).perform(request) }) }
        }
        return try XCTUnwrap((try JSONSerialization.jsonObject(with: response.body) as? [String: Any])?["id"] as? String)
    }
}
