import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// Pricing as data: each unit's estimate and actual cost, and RunPod jobs
/// settled from the execution time the provider reported.
final class LedgerPricingTests: TemporaryDirectoryTestCase {
    func rule(_ json: String) throws -> PriceRule {
        try PriceRule(try JSONValue(parsing: Data(json.utf8)), source: "test")
    }

    func testImagesArePricedBySizeAndQuality() throws {
        let price = try rule(#"{"unit":"image","currency":"USD","table":{"1024x1024":{"standard":4,"hd":8},"1792x1024":{"standard":8,"hd":12}}}"#)
        XCTAssertEqual(price.estimate(inputs: ["size": "1024x1024", "quality": "hd", "num_images": 3], config: [:]).0, 24)
        XCTAssertEqual(price.estimate(inputs: ["width": 1792, "height": 1024], config: [:]).0, 8)
        XCTAssertEqual(price.estimate(inputs: ["size": "4096x4096"], config: [:]).0, 12, "an unlisted size reserves the dearest price")
        let produced: [String: JSONValue] = ["images": [["url": "a"], ["url": "b"]]]
        XCTAssertEqual(price.actual(phase: "succeeded", charged: "yes", inputs: ["size": "1024x1024", "num_images": 3], config: [:], outputs: produced, usage: [:])?.0, 8,
                       "settled on the images produced")
        XCTAssertEqual(price.actual(phase: "succeeded", charged: "yes", inputs: ["size": "1024x1024", "num_images": 3], config: [:], outputs: produced, usage: ["images": 1])?.0, 4,
                       "what the provider measured wins")
    }

    func testVideoIsPricedPerSecond() throws {
        let price = try rule(#"{"unit":"video_second","amount_minor":7.5,"default_seconds":5}"#)
        XCTAssertEqual(price.estimate(inputs: ["duration": "10"], config: [:]).0, 75)
        XCTAssertEqual(price.estimate(inputs: [:], config: [:]).0, 37.5)
        XCTAssertEqual(price.actual(phase: "succeeded", charged: "yes", inputs: ["duration": 10], config: [:], outputs: ["duration_seconds": 6], usage: [:])?.0, 45)
        XCTAssertEqual(price.actual(phase: "succeeded", charged: "yes", inputs: ["duration": 10], config: [:], outputs: [:], usage: ["video_seconds": 5])?.0, 37.5)
        XCTAssertEqual(price.actual(phase: "cancelled", charged: "yes", inputs: ["duration": 10], config: [:], outputs: [:], usage: [:])?.0, 75,
                       "a task that cannot be stopped bills the seconds asked for")
        XCTAssertNil(price.actual(phase: "failed", charged: "unknown", inputs: ["duration": 10], config: [:], outputs: [:], usage: [:]))
        XCTAssertEqual(PriceQuote.minor(37.5, margin: 0), 38, "totals round up to whole minor units")
    }

    func testGPUSecondsComeFromTheReportedExecutionTimeOnEveryTerminalState() throws {
        let price = try rule(#"{"unit":"gpu_second","amount_minor":0.076,"estimate_seconds":300}"#)
        XCTAssertEqual(price.estimate(inputs: [:], config: [:]).0, Decimal(string: "22.8"))
        for phase in ["succeeded", "failed", "cancelled"] {
            XCTAssertEqual(price.actual(phase: phase, charged: "yes", inputs: [:], config: [:], outputs: [:], usage: ["execution_ms": 4200])?.0, Decimal(string: "0.3192"), phase)
        }
        XCTAssertNil(price.actual(phase: "succeeded", charged: "yes", inputs: [:], config: [:], outputs: ["runpod_metrics": ["execution_time_ms": 4200]], usage: [:]),
                     "nothing measured in usage: a GPU second is never guessed")
        let configured = try rule(#"{"unit":"gpu_second"}"#)
        XCTAssertEqual(configured.estimate(inputs: [:], config: ["gpu_rate_minor_per_second": 2, "execution_timeout_ms": 60000]).0, 120)
    }

    func testKlingsEstimateFollowsDurationModeAndModel() throws {
        let file = try JSONValue(parsing: Data(contentsOf: Build.repository.appendingPathComponent("Registry/pricing/kling.json")))
        let price = try PriceRule(try XCTUnwrap(file["capabilities"]?["video.from_image"]), source: "kling.json")
        let fiveStd = price.estimate(inputs: ["duration_seconds": 5], config: [:], capability: "video.from_image").0
        let tenPro = price.estimate(inputs: ["duration_seconds": 10, "mode": "pro"], config: [:], capability: "video.from_image").0
        let master = price.estimate(inputs: ["duration_seconds": 5, "model": "kling-v2-1-master"], config: [:], capability: "video.from_image").0
        XCTAssertEqual(fiveStd, 28, "5 s × 5.6 ¢/s std")
        XCTAssertEqual(tenPro, 98, "10 s × 9.8 ¢/s pro: not the same flat price as 5 s std")
        XCTAssertEqual(master, 140)
        let text = try PriceRule(try XCTUnwrap(file["capabilities"]?["video.from_text"]), source: "kling.json")
        XCTAssertEqual(text.estimate(inputs: ["prompt": "x"], config: [:], capability: "video.from_text").0, 140,
                       "text2video's default model is a master model: priced as one")
    }

    func testModalsEstimateFollowsStepsSizeGPUAndModel() throws {
        let file = try JSONValue(parsing: Data(contentsOf: Build.repository.appendingPathComponent("Registry/pricing/modal.json")))
        let price = try PriceRule(try XCTUnwrap(file["capabilities"]?["image.generate"]), source: "modal.json")
        let schnell = price.estimate(inputs: ["prompt": "x"], config: ["model": "black-forest-labs/FLUX.1-schnell", "gpu": "L40S"], capability: "image.generate")
        XCTAssertEqual(PriceQuote.minor(schnell.0, margin: 0), 4, "(60 s + 4 steps × 1 s) × 0.0542 ¢/s on an L40S: \(schnell.1)")
        let big = price.estimate(inputs: ["prompt": "x", "steps": 28, "width": 2048, "height": 2048], config: ["gpu": "H100"], capability: "image.generate")
        XCTAssertEqual(PriceQuote.minor(big.0, margin: 0), 19, "(60 s + 28 steps × 1 s × 4 for 4 MP) × 0.1097 ¢/s on an H100: \(big.1)")
        XCTAssertLessThan(PriceQuote.minor(schnell.0, margin: 0), 600, "not 600 GPU-s at 1 ¢/s")
    }

    func testPricesRefuseNegativeNonFiniteAndAbsurdNumbers() throws {
        for bad in [#"{"unit":"request","amount_minor":-5}"#, #"{"unit":"request","amount_minor":1e308}"#, #"{"unit":"request","amount_minor":"NaN"}"#,
                    #"{"unit":"request","amount_minor":"1e308"}"#, #"{"unit":"image","table":{"1024x1024":-1}}"#, #"{"unit":"video","amount_minor":35}"#,
                    #"{"unit":"video_second","amount_minor":5,"variants":[{"when":{"inputs.mode":"pro"},"amount_minor":-1}]}"#] {
            XCTAssertThrowsError(try rule(bad), bad) { error in
                XCTAssertTrue(error is PriceRule.Invalid, "\(error)")
            }
        }
        XCTAssertNil(PriceQuote.minorChecked(Decimal(string: "1e30")!, margin: 0), "a total no ledger can hold")
    }

    func testAJobWhosePriceIsBrokenIsRefusedNotPricedAtZero() async throws {
        let pricing = dir.appendingPathComponent("pricing")
        try FileManager.default.createDirectory(at: pricing, withIntermediateDirectories: true)
        let plugins = try pricedEcho(in: dir, amountMinor: 5)
        for broken in [#"{"unit":"request","amount_minor":-5}"#, #"{"unit":"request","amount_minor":1e308}"#] {
            try Data(#"{"engine":"echo","capabilities":{"debug.echo":\#(broken)}}"#.utf8).write(to: pricing.appendingPathComponent("echo.json"))
            let (engine, ledger) = try makeLedgerEngine(home: dir.appendingPathComponent("home-\(UUID().uuidString.prefix(4))"), plugins: plugins, billing: platformBilling())
            let priced = JobLedger(store: ledger.store, config: ledger.config, prices: PriceBook(directories: [pricing]))
            engine.ledger = priced
            try priced.grant(account: "acme", amountMinor: 1_000)
            let verdict = await engine.preflight(echoSpec())
            XCTAssertEqual(verdict.firstError?.code, "PRICING_INVALID", broken)
            XCTAssertEqual(verdict.firstError?.step, "estimate")
            do {
                _ = try await engine.start(echoSpec())
                XCTFail("a broken price must refuse the job: \(broken)")
            } catch { XCTAssertEqual(refusalCode(error), "PRICING_INVALID") }
            XCTAssertEqual(try engine.store.jobs(limit: 10, phase: nil).count, 0, "nothing submitted")
            XCTAssertEqual(try priced.balance(account: "acme").availableMinor, 1_000)
            XCTAssertLedgerBalances(priced)
        }
    }

    func testAPricingFileOverridesTheManifest() throws {
        let pricing = dir.appendingPathComponent("pricing")
        try FileManager.default.createDirectory(at: pricing, withIntermediateDirectories: true)
        try Data(#"{"engine":"echo","capabilities":{"debug.echo":{"unit":"request","amount_minor":42}}}"#.utf8).write(to: pricing.appendingPathComponent("echo.json"))
        let plugins = try pricedEcho(in: dir, amountMinor: 5)
        let manifest = try PluginManifest.parse(Data(contentsOf: plugins.appendingPathComponent("echo/plugin.json")), source: "echo")
        XCTAssertEqual(try PriceBook(directories: [pricing]).rule(for: manifest, capability: "debug.echo")?.amountMinor, 42)
        XCTAssertEqual(try PriceBook(directories: []).rule(for: manifest, capability: "debug.echo")?.amountMinor, 5)
    }

    func testAChosenModelsPriceWinsOverTheCapabilitys() throws {
        let manifest = try PluginManifest.parse(Data(contentsOf: Build.plugins.appendingPathComponent("fal/plugin.json")), source: "fal")
        let book = PriceBook(directories: [Build.repository.appendingPathComponent("Registry/pricing")])
        XCTAssertEqual(try book.rule(for: manifest, capability: "image.generate", model: "fal-ai/flux/schnell")?.amountMinor, 1, "the model's price, from plugin.json")
        XCTAssertEqual(try book.rule(for: manifest, capability: "image.generate")?.amountMinor, 3, "no model: the capability's rule from Registry/pricing")
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
                XCTAssertNoThrow(try PriceRule(value, source: file.lastPathComponent), "\(file.lastPathComponent) \(capability)")
            }
        }
        // Every first-party manifest's prices are usable too.
        for id in ["comfyui", "echo", "fal", "huggingface", "kling", "local-media", "local-speech", "modal", "runpod", "stripe-billing"] {
            let manifest = try PluginManifest.parse(Data(contentsOf: Build.plugins.appendingPathComponent("\(id)/plugin.json")), source: id)
            for capability in manifest.capabilities {
                if let pricing = capability.pricing { XCTAssertNoThrow(try PriceRule(pricing, source: id), "\(id) \(capability.id)") }
                for model in capability.models ?? [] { if let pricing = model.pricing { XCTAssertNoThrow(try PriceRule(pricing, source: id), "\(id) \(model.id)") } }
            }
        }
    }

    // MARK: RunPod through the engine

    /// The rate every RunPod test below configures: 1 USD per GPU-second, so milliseconds show in cents.
    static let rate = 100

    func runPod(clock: any AdjustableClock = WallClock(), meter: Bool = false) async throws -> (RunPodStandIn, JobEngine, JobLedger) {
        let standIn = RunPodStandIn(clock: clock)
        try await standIn.start()
        let plugins = dir.appendingPathComponent("plugins-runpod-\(UUID().uuidString.prefix(4))")
        try copyPlugin("runpod", to: plugins)
        if meter { try copyPlugin("stripe-billing", to: plugins) }
        let (engine, ledger) = try makeLedgerEngine(home: dir.appendingPathComponent("home-\(UUID().uuidString.prefix(4))"), plugins: plugins,
                                                    billing: platformBilling(meter: meter),
                                                    secrets: ["RUNPOD_API_KEY": standIn.apiKey, "STRIPE_API_KEY": "sk_test_STANDIN_0000000000000000"],
                                                    http: BlockingHTTPTransport(defaultTimeoutMs: 3_000))
        try ledger.grant(account: "acme", amountMinor: 10_000)
        return (standIn, engine, ledger)
    }

    func runPodSpec(_ standIn: RunPodStandIn) -> JobSpec {
        JobSpec(pluginID: "runpod", capability: "image.generate", inputs: ["prompt": "a lighthouse"],
                config: ["endpoint_id": .string(standIn.endpointID), "base_url": .string(standIn.baseURL), "execution_timeout_ms": 60_000,
                         "gpu_rate_minor_per_second": .number(Double(Self.rate))])
    }

    /// Whole cents for `ms` of GPU time at `rate`, rounded up as the ledger rounds.
    func cents(_ ms: Int) -> Int { PriceQuote.minor(Decimal(ms) / 1000 * Decimal(Self.rate), margin: 0) }

    func testARunPodJobIsSettledFromItsExecutionTime() async throws {
        let (standIn, engine, ledger) = try await runPod()
        defer { Task { await standIn.stop() } }
        standIn.configure { $0.runMs = 42 }
        let started = try await engine.start(runPodSpec(standIn))
        XCTAssertEqual(try ledger.charge(jobID: started.id)?.reservedMinor, 6_000, "60 s timeout × 100 minor/s reserved")
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        XCTAssertEqual(standIn.executionTime(of: try XCTUnwrap(standIn.jobIDs.first)), 42)
        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.actualMinor, 5, "0.042 GPU-s × 100 minor/s, rounded up")
        XCTAssertEqual(charge.chargedMinor, 5)
        XCTAssertEqual(charge.state, "settled")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 9_995)
        XCTAssertLedgerBalances(ledger)
    }

    func testAFailedRunPodJobSettlesAtItsExecutionTimeTimesTheRateAndMetersThat() async throws {
        let stripe = StripeStandIn()
        try await stripe.start()
        let (standIn, engine, ledger) = try await runPod(meter: true)
        defer { Task { await standIn.stop(); await stripe.stop() } }
        try ledger.linkCustomer(account: "acme", customerID: "cus_ACME")
        standIn.configure { $0.runMs = 5; $0.failWith = "CUDA out of memory" }
        let job = try await engine.drive(try await engine.start(runPodSpec(standIn)).id)
        XCTAssertEqual(job.phase, .failed)
        XCTAssertTrue(job.errorJSON?.contains("CUDA out of memory") == true, "error_message from the worker SDK's JSON: \(job.errorJSON ?? "")")
        let measured = try XCTUnwrap(standIn.executionTime(of: try XCTUnwrap(standIn.jobIDs.first)))
        XCTAssertEqual(measured, 5)
        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.state, "settled")
        XCTAssertEqual(charge.chargedMinor, cents(measured), "executionTime × rate, not the 6 000 reserved")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 10_000 - cents(measured))
        let outbox = try XCTUnwrap(engine.billingOutbox(config: ["base_url": .string(stripe.baseURL)]))
        _ = await outbox.deliverPending()
        XCTAssertEqual(stripe.recordedEvents.map(\.value), [cents(measured)], "the meter event carries what was charged")
        XCTAssertLedgerBalances(ledger)
    }

    func testATimedOutRunPodJobSettlesAtTheTimeItRan() async throws {
        let clock = VirtualClock(startUnixMs: Int64(Date().timeIntervalSince1970 * 1000))
        let (standIn, engine, ledger) = try await runPod(clock: clock)
        defer { Task { await standIn.stop() } }
        standIn.configure { $0.queueMs = 0; $0.timeOut = true }
        var spec = runPodSpec(standIn)
        spec.config["execution_timeout_ms"] = 5_000
        spec.config["ttl_ms"] = 60_000
        let started = try await engine.start(spec)
        standIn.advance(ms: 6_000)
        let job = try await engine.drive(started.id)
        XCTAssertEqual(job.errorCode, "ENGINE_TIMEOUT")
        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.chargedMinor, cents(5_000), "stopped at its 5 s execution timeout: 5 GPU-s billed")
        XCTAssertLedgerBalances(ledger)
    }

    func testACancelWhileRunningIsSettledFromTheTimeItRan() async throws {
        let clock = VirtualClock(startUnixMs: Int64(Date().timeIntervalSince1970 * 1000))
        let (standIn, engine, ledger) = try await runPod(clock: clock)
        defer { Task { await standIn.stop() } }
        standIn.configure { $0.queueMs = 0; $0.runMs = 600_000 }
        let started = try await engine.start(runPodSpec(standIn))
        standIn.advance(ms: 2_000)
        XCTAssertEqual(standIn.status(of: try XCTUnwrap(standIn.jobIDs.first)), "IN_PROGRESS")
        let job = try await engine.cancel(started.id)
        XCTAssertEqual(job.phase, .cancelled)
        XCTAssertTrue(job.cancelOutcomeJSON?.contains("cancelled_running") == true, job.cancelOutcomeJSON ?? "")
        let charge = try XCTUnwrap(try ledger.charge(jobID: job.id))
        XCTAssertEqual(charge.providerCharged, "yes")
        XCTAssertEqual(charge.state, "settled")
        XCTAssertEqual(charge.chargedMinor, cents(2_000), "2 s on a worker × the rate, not the reservation")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 10_000 - cents(2_000))
        XCTAssertLedgerBalances(ledger)
    }

    func testCancellingAQueuedRunPodJobIsFreeHoweverOftenItWasPolled() async throws {
        let clock = VirtualClock(startUnixMs: Int64(Date().timeIntervalSince1970 * 1000))
        let (standIn, engine, ledger) = try await runPod(clock: clock)
        defer { Task { await standIn.stop() } }
        standIn.configure { $0.queueMs = 60_000 }
        let started = try await engine.start(runPodSpec(standIn))
        let plugin = try engine.plugin("runpod")
        for _ in 0..<5 {
            let polled = await engine.call(plugin, .poll, engine.refRequest(started), jobID: started.id)
            XCTAssertEqual(polled.json?["state"] as? String, "queued", "reading /status does not move a job")
        }
        let job = try await engine.cancel(started.id)
        XCTAssertTrue(job.cancelOutcomeJSON?.contains(#""charged":"no""#) == true, job.cancelOutcomeJSON ?? "")
        XCTAssertEqual(try ledger.charge(jobID: job.id)?.state, "refunded")
        XCTAssertEqual(try ledger.balance(account: "acme").availableMinor, 10_000)
        XCTAssertLedgerBalances(ledger)
    }
}
