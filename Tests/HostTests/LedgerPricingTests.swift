import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// Pricing as data: each unit's estimate and actual cost, and RunPod jobs
/// settled from the execution time the provider reported.
final class LedgerPricingTests: TemporaryDirectoryTestCase {
    func rule(_ json: String) throws -> PriceRule {
        try XCTUnwrap(PriceRule(try JSONValue(parsing: Data(json.utf8)), source: "test"))
    }

    func testImagesArePricedBySizeAndQuality() throws {
        let price = try rule(#"{"unit":"image","currency":"USD","table":{"1024x1024":{"standard":4,"hd":8},"1792x1024":{"standard":8,"hd":12}}}"#)
        XCTAssertEqual(price.estimate(inputs: ["size": "1024x1024", "quality": "hd", "num_images": 3], config: [:]).0, 24)
        XCTAssertEqual(price.estimate(inputs: ["width": 1792, "height": 1024], config: [:]).0, 8)
        XCTAssertEqual(price.estimate(inputs: ["size": "4096x4096"], config: [:]).0, 12, "an unlisted size reserves the dearest price")
        let produced: [String: JSONValue] = ["images": [["url": "a"], ["url": "b"]]]
        XCTAssertEqual(price.actual(inputs: ["size": "1024x1024", "num_images": 3], config: [:], outputs: produced)?.0, 8, "settled on the images produced")
    }

    func testVideoIsPricedPerSecond() throws {
        let price = try rule(#"{"unit":"video_second","amount_minor":7.5,"default_seconds":5}"#)
        XCTAssertEqual(price.estimate(inputs: ["duration": "10"], config: [:]).0, 75)
        XCTAssertEqual(price.estimate(inputs: [:], config: [:]).0, 37.5)
        XCTAssertEqual(price.actual(inputs: ["duration": 10], config: [:], outputs: ["duration_seconds": 6])?.0, 45)
        XCTAssertEqual(PriceQuote.minor(37.5, margin: 0), 38, "totals round up to whole minor units")
    }

    func testGPUSecondsComeFromTheReportedExecutionTime() throws {
        let price = try rule(#"{"unit":"gpu_second","amount_minor":0.076,"estimate_seconds":300}"#)
        XCTAssertEqual(price.estimate(inputs: [:], config: [:]).0, Decimal(string: "22.8"))
        XCTAssertEqual(price.actual(inputs: [:], config: [:], outputs: ["runpod_metrics": ["execution_time_ms": 4200]])?.0, Decimal(string: "0.3192"))
        XCTAssertNil(price.actual(inputs: [:], config: [:], outputs: [:]), "nothing measured: no actual")
        let configured = try rule(#"{"unit":"gpu_second"}"#)
        XCTAssertEqual(configured.estimate(inputs: [:], config: ["gpu_rate_minor_per_second": 2, "execution_timeout_ms": 60000]).0, 120)
    }

    func testAPricingFileOverridesTheManifest() throws {
        let pricing = dir.appendingPathComponent("pricing")
        try FileManager.default.createDirectory(at: pricing, withIntermediateDirectories: true)
        try Data(#"{"engine":"echo","capabilities":{"debug.echo":{"unit":"request","amount_minor":42}}}"#.utf8).write(to: pricing.appendingPathComponent("echo.json"))
        let plugins = try pricedEcho(in: dir, amountMinor: 5)
        let manifest = try PluginManifest.parse(Data(contentsOf: plugins.appendingPathComponent("echo/plugin.json")), source: "echo")
        XCTAssertEqual(PriceBook(directories: [pricing]).rule(for: manifest, capability: "debug.echo")?.amountMinor, 42)
        XCTAssertEqual(PriceBook(directories: []).rule(for: manifest, capability: "debug.echo")?.amountMinor, 5)
    }

    func testTheRepositoryPricingFilesParse() throws {
        let folder = Build.repository.appendingPathComponent("Registry/pricing")
        let files = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil).filter { $0.pathExtension == "json" }
        XCTAssertFalse(files.isEmpty)
        let schema = try JSONSchema(try JSONValue(parsing: Data(contentsOf: Build.repository.appendingPathComponent("Registry/schemas/pricing.schema.json"))))
        for file in files {
            let document = try JSONValue(parsing: Data(contentsOf: file))
            XCTAssertEqual(schema.validate(document).map(\.message), [], file.lastPathComponent)
            for (capability, value) in try XCTUnwrap(document["capabilities"]?.objectValue, file.lastPathComponent) {
                XCTAssertNotNil(PriceRule(value, source: file.lastPathComponent), "\(file.lastPathComponent) \(capability)")
            }
        }
    }

    // MARK: RunPod through the engine

    func runPod() async throws -> (RunPodStandIn, JobEngine, JobLedger) {
        let standIn = RunPodStandIn()
        try await standIn.start()
        let plugins = dir.appendingPathComponent("plugins-runpod")
        try copyPlugin("runpod", to: plugins)
        let (engine, ledger) = try makeLedgerEngine(home: dir.appendingPathComponent("home"), plugins: plugins, billing: platformBilling(),
                                                    secrets: ["RUNPOD_API_KEY": standIn.apiKey], http: BlockingHTTPTransport(defaultTimeoutMs: 3_000))
        try ledger.grant(account: "acme", amountMinor: 10_000)
        return (standIn, engine, ledger)
    }

    func runPodSpec(_ standIn: RunPodStandIn) -> JobSpec {
        JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "a lighthouse"],
                config: ["endpoint_id": .string(standIn.endpointID), "base_url": .string(standIn.baseURL), "execution_timeout_ms": 60_000])
    }

    func testARunPodJobIsSettledFromItsExecutionTime() async throws {
        let (standIn, engine, ledger) = try await runPod()
        defer { Task { await standIn.stop() } }
        let started = try await engine.start(runPodSpec(standIn))
        XCTAssertEqual(try ledger.charge(jobID: started.id)?.reservedMinor, 60, "60 s timeout × 1 minor/s reserved")
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.actualMinor, 5, "4.2 GPU-s × 1 minor/s, rounded up")
        XCTAssertEqual(charge.chargedMinor, 5)
        XCTAssertEqual(charge.state, "settled")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 9_995)
        XCTAssertLedgerBalances(ledger)
    }

    func testACancelWhileRunningIsSettledAsTheProviderReports() async throws {
        let (standIn, engine, ledger) = try await runPod()
        defer { Task { await standIn.stop() } }
        standIn.configure { $0.runningPolls = 1_000 }
        let started = try await engine.start(runPodSpec(standIn))
        // One poll moves the stand-in's job from IN_QUEUE to IN_PROGRESS.
        let polled = await engine.call(try engine.plugin("runpod"), .poll, engine.refRequest(started), jobID: started.id)
        XCTAssertTrue(polled.isOK)
        let job = try await engine.cancel(started.id)
        XCTAssertEqual(job.phase, .cancelled)
        XCTAssertTrue(job.cancelOutcomeJSON?.contains("cancelled_running") == true, job.cancelOutcomeJSON ?? "")
        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.providerCharged, "yes")
        XCTAssertEqual(charge.state, "settled")
        XCTAssertEqual(charge.chargedMinor, 60, "the provider bills GPU time used: the reservation is kept")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 9_940)
        XCTAssertLedgerBalances(ledger)
    }
}
