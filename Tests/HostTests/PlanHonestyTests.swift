import Foundation
import XCTest
@testable import SwitchyardHost
import SwitchyardJSON

/// `yard plan` never ticks what it did not check: for a step an earlier step
/// feeds, each engine's secrets, config and health are still checked, limits
/// that the producer's output schema decides are decided, and the rest is
/// said to be checked when the step runs.
final class PlanHonestyTests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }
    var plugins: URL { dir.appendingPathComponent("plugins") }

    override func setUpWithError() throws {
        try super.setUpWithError()
        try FileManager.default.createDirectory(at: plugins, withIntermediateDirectories: true)
        try copyPlugin("echo", to: plugins)
    }

    func plan(_ yaml: String) async throws -> PipelinePlan {
        let engine = try makeTestEngine(home: home, plugins: plugins)
        let definition = try PipelineDefinition.parse(yaml: yaml, source: "test.yaml")
        return await PipelinePlanner(engine: engine, configs: EngineConfigs(paths: engine.paths)).plan(definition, inputs: [:])
    }

    func testAnEngineOfALaterStepIsStillCheckedForItsSecretsWhenItsInputIsAStandIn() async throws {
        // The stand-in for steps.first.outputs.text is not "exact": its limits finding is set aside, and the check goes on to the secret.
        _ = try fixturePlugin("billed_failure_echo", in: plugins) { manifest in
            manifest["id"] = "billed-echo"
            manifest["capabilities"] = [["id": "debug.echo", "limits": ["type": "object", "properties": ["text": ["enum": ["exact"]]]]]]
            manifest["secrets"] = [["name": "KEYED_TOKEN", "required": true]]
        }
        let plan = try await plan("""
            id: later
            steps:
              first: {capability: debug.echo, engines: [echo], inputs: {text: hi, polls: 0}}
              second: {capability: debug.echo, engines: [billed-echo, echo], inputs: {text: "${steps.first.outputs.text}", polls: 0}}
            """)
        let second = try XCTUnwrap(plan.steps.first { $0.name == "second" })
        XCTAssertEqual(second.attempts.first?.engine, "billed-echo")
        XCTAssertEqual(second.attempts.first?.ok, false, "no ✓ for an engine whose secret is missing: \(second.attempts)")
        XCTAssertEqual(second.attempts.first?.code, "AUTH_MISSING")
        XCTAssertEqual(second.engine, "echo")
        XCTAssertTrue(plan.missingSecrets.contains(MissingSecret(engine: "billed-echo", secret: "KEYED_TOKEN", step: "second")))
    }

    func testWhatTheProducersOutputSchemaDecidesIsDecidedAndTheRestIsCheckedWhenTheStepRuns() async throws {
        let plan = try await plan("""
            id: derive
            steps:
              first: {capability: debug.echo, engines: [echo], inputs: {text: hi, polls: 0}}
              never:
                capability: debug.echo
                engines: [echo]
                inputs: {text: x, polls: "${steps.first.outputs.http_status}"}
              maybe:
                capability: debug.echo
                engines: [echo]
                inputs: {text: "${steps.first.outputs.text}", fail_with: "${steps.first.outputs.sha256}", polls: 0}
            """)
        let never = try XCTUnwrap(plan.steps.first { $0.name == "never" })
        XCTAssertEqual(never.attempts.first?.ok, false, "http_status is 100…599; echo's polls take at most 50: it can never fit")
        XCTAssertEqual(never.attempts.first?.code, "CONTRACT_MISMATCH")
        XCTAssertTrue(never.attempts.first?.message?.contains("polls") == true, "\(never.attempts)")
        XCTAssertFalse(plan.ready)

        let maybe = try XCTUnwrap(plan.steps.first { $0.name == "maybe" })
        XCTAssertEqual(maybe.engine, "echo")
        let notes = maybe.attempts.first?.checkedWhenRun ?? []
        XCTAssertTrue(notes.contains { $0.hasPrefix("text:") && $0.contains("checked when the step runs") }, "a string whose length echo bounds: \(notes)")
        XCTAssertFalse(notes.contains { $0.hasPrefix("fail_with:") }, "any string fits fail_with: nothing left to check: \(notes)")
    }

    func testThePlanSaysSoInItsText() async throws {
        let result = try yard(["plan", Build.repository.appendingPathComponent("Registry/presets/ugc-product-clip.yaml").path,
                               "--input", "product_image=@\(Build.repository.appendingPathComponent("Registry/samples/product.png").path)",
                               "--input", "script=Meet Tide."], home: home)
        XCTAssertTrue(result.stdout.contains("? duration_seconds:") && result.stdout.contains("checked when the step runs"), result.stdout)
        XCTAssertTrue(result.stdout.contains("✗ kling: AUTH_MISSING"), "kling, fed by the speech step, is checked for its keys: \(result.stdout)")
    }

    func testPreferPutsAnEngineFirstAndIsStoredWithTheRun() async throws {
        let definition = try PipelineDefinition.parse(yaml: """
            id: prefer
            steps:
              say: {capability: debug.echo, engines: [{engine: echo, inputs: {polls: 0}}, other], inputs: {text: hi}}
            """, source: "test.yaml")
        let preferred = try definition.preferring(["say": "other"])
        XCTAssertEqual(preferred.step("say")?.engines.map(\.engine), ["other", "echo"])
        XCTAssertEqual(preferred.step("say")?.engines.last?.inputs["polls"], 0, "an entry keeps its mapping when it moves")
        XCTAssertEqual(try definition.preferring(["say": "new-engine"]).step("say")?.engines.map(\.engine), ["new-engine", "echo", "other"])
        XCTAssertEqual(preferred.document["steps"]?["say"]?["engines"]?[0], "other", "a resumed run follows the stored document")
        XCTAssertThrowsError(try definition.preferring(["nope": "echo"])) { XCTAssertEqual(($0 as? YardError)?.code, .usage) }
        XCTAssertThrowsError(try PipelineDefinition.preferences(["say"])) { XCTAssertEqual(($0 as? YardError)?.field, "--prefer") }
    }

    func testNullInAnEngineEntryDropsTheInputForThatEngine() throws {
        let definition = try PipelineDefinition.parse(yaml: """
            id: drop
            steps:
              say:
                capability: debug.echo
                engines: [{engine: echo, inputs: {polls: null}}, other]
                inputs: {text: hi}
                quality: {low: {polls: 1}}
            """, source: "test.yaml")
        let step = try XCTUnwrap(definition.step("say"))
        XCTAssertNil(step.inputTemplate(quality: "low", engine: step.engines[0])["polls"])
        XCTAssertEqual(step.inputTemplate(quality: "low", engine: step.engines[1])["polls"], 1)
    }
}
