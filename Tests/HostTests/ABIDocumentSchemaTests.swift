import CPluginAPI
import Foundation
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost

/// PluginAPI/schemas/abi-v1.schema.json: every document compiles, accepts the
/// ABI's documents and refuses what the ABI forbids; the headers and
/// docs/abi.md name every property it defines, so the three cannot drift; and
/// the conformance kit holds a plugin's answers to it.
final class ABIDocumentSchemaTests: TemporaryDirectoryTestCase {
    static let documents = [
        "validate_request", "validate_answer", "submit_request", "submit_answer", "poll_request", "poll_answer",
        "cancel_request", "cancel_answer", "health_request", "health_answer", "error_answer",
        "estimate_request", "estimate_answer", "balance_request", "balance_answer", "webhook_request", "webhook_answer",
        "reconcile_request", "reconcile_answer", "usage",
    ]

    func testEveryABIDocumentHasACompiledSchema() {
        XCTAssertNotNil(ABIDocumentSchemas.document, "the embedded schema file parses")
        for name in Self.documents { XCTAssertNotNil(ABIDocumentSchemas.schema(name), "no compiled schema for \(name)") }
    }

    func testTheSchemasAcceptTheABIsDocumentsAndRefuseWhatItForbids() {
        func fits(_ json: String, _ name: String) -> Bool { ABIDocumentSchemas.violations(Data(json.utf8), as: name).isEmpty }
        XCTAssertTrue(fits(#"{"ref":{"id":"r1"},"next_poll_after_ms":500}"#, "submit_answer"))
        XCTAssertTrue(fits(#"{"result":{"state":"succeeded","progress":1,"outputs":{}}}"#, "submit_answer"))
        XCTAssertFalse(fits(#"{"ref":{"id":"r1"},"result":{"state":"succeeded"}}"#, "submit_answer"), "a ref and a result at once")
        XCTAssertFalse(fits(#"{"next_poll_after_ms":5}"#, "submit_answer"), "neither ref nor result")
        XCTAssertTrue(fits(#"{"state":"failed","error":{"code":"RATE_LIMITED","message":"slow down","remediation":"wait","retryable":true,"charged":"no","retry_after_ms":2000},"usage":{"execution_ms":5}}"#, "poll_answer"))
        XCTAssertFalse(fits(#"{"state":"succeeded","progress":1.5}"#, "poll_answer"), "progress beyond 1")
        XCTAssertFalse(fits(#"{"state":"done"}"#, "poll_answer"), "a state the ABI lacks")
        XCTAssertFalse(fits(#"{"state":"failed","error":{"code":"X","message":"m","remediation":"r","retryable":false}}"#, "poll_answer"), "an error without charged")
        XCTAssertFalse(fits(#"{"state":"failed","usage":{"execution_ms":-1}}"#, "poll_answer"), "negative usage")
        XCTAssertTrue(fits(#"{"outcome":"already_finished","charged":"no"}"#, "cancel_answer"))
        XCTAssertFalse(fits(#"{"outcome":"cancelled_running"}"#, "cancel_answer"), "cancel must say whether it charged")
        XCTAssertTrue(fits(#"{"diagnostics":[{"code":"CONTRACT_MISMATCH","message":"m","remediation":"r","field":"$.inputs.x","severity":"error"}]}"#, "validate_answer"))
        XCTAssertFalse(fits(#"{"diagnostics":[{"code":"CONTRACT_MISMATCH","message":"m","remediation":"r","severity":"fatal"}]}"#, "validate_answer"))
        XCTAssertTrue(fits(#"{"match":{"request_id":"abc"},"update":{"state":"succeeded"},"dedupe_key":"evt_1"}"#, "webhook_answer"))
        XCTAssertFalse(fits(#"{"match":{"request_id":"abc"},"update":{"state":"succeeded"},"dedupe_key":""}"#, "webhook_answer"), "an empty dedupe key")
        XCTAssertTrue(fits(#"{"amount_minor":0,"currency":"USD","basis":"resource pack","quantity":120,"unit":"units"}"#, "balance_answer"))
        XCTAssertFalse(fits(#"{"amount_minor":12.5,"currency":"USD","basis":"table"}"#, "estimate_answer"), "money is whole minor units")
        XCTAssertTrue(fits(#"{"ref":null}"#, "reconcile_answer"))
        XCTAssertFalse(fits(#"{}"#, "reconcile_answer"))
        XCTAssertTrue(fits(#"{"status":"degraded","message":"queue is long"}"#, "health_answer"))
        XCTAssertTrue(fits(#"{"capability":"image.generate","inputs":{},"config":{},"job":{"id":"j","idempotency_key":"k","attempt":1}}"#, "submit_request"))
    }

    /// Every property any schema defines, by the definition that defines it.
    static func properties(of value: JSONValue, in definition: String, into result: inout [String: Set<String>]) {
        switch value {
        case .object(let members):
            if case .object(let properties)? = members["properties"] {
                for name in properties.keys { result[name, default: []].insert(definition) }
            }
            for (key, member) in members where key != "$defs" { properties(of: member, in: definition, into: &result) }
        case .array(let items):
            for item in items { properties(of: item, in: definition, into: &result) }
        default: break
        }
    }

    func testHeadersAndDocsNameEveryPropertyOfEverySchema() throws {
        guard case .object(let root)? = ABIDocumentSchemas.document, case .object(let defs)? = root["$defs"] else {
            return XCTFail("abi-v1.schema.json has no $defs")
        }
        var properties: [String: Set<String>] = [:]
        for (name, definition) in defs { Self.properties(of: definition, in: name, into: &properties) }
        XCTAssertGreaterThan(properties.count, 40, "the schemas define the ABI's members")
        let include = Build.repository.appendingPathComponent("PluginAPI/include/switchyard")
        var headers = ""
        for folder in [include, include.appendingPathComponent("ext")] {
            for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) where file.hasSuffix(".h") {
                headers += try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            }
        }
        let docs = try String(contentsOf: Build.repository.appendingPathComponent("docs/abi.md"), encoding: .utf8)
        for (property, definitions) in properties.sorted(by: { $0.key < $1.key }) {
            XCTAssertTrue(headers.contains("\"\(property)\""), "no header names \"\(property)\" (\(definitions.sorted().joined(separator: ", ")))")
            XCTAssertTrue(docs.contains("\"\(property)\"") || docs.contains("`\(property)`"),
                          "docs/abi.md does not name \(property) (\(definitions.sorted().joined(separator: ", ")))")
        }
    }

    func testTheKitFailsAPluginWhoseAnswersLeaveTheSchema() throws {
        let manifest = try fixturePlugin("off_schema", in: dir)
        let check = ConformanceChild(manifestURL: manifest, config: [:]).run("documents.schema")
        XCTAssertFalse(check.ok, check.detail)
        XCTAssertTrue(check.detail.contains("poll debug.ping: $.progress"), check.detail)
        XCTAssertTrue(check.detail.contains("cancel debug.ping: $.outcome") && check.detail.contains("$.charged"), check.detail)
    }

    func testTheKitPassesAPluginWhoseAnswersFitTheSchema() throws {
        try requireStagedPlugins()
        for id in ["c-minimal", "echo"] {
            let manifest = try copyPlugin(id, to: dir)
            let check = ConformanceChild(manifestURL: manifest, config: [:]).run("documents.schema")
            XCTAssertTrue(check.ok, "\(id): \(check.detail)")
            XCTAssertTrue(check.detail.contains("answers fit abi-v1.schema.json"), check.detail)
        }
    }
}
