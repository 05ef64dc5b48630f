import Foundation
import XCTest
@testable import SwitchyardJSON

final class JSONSchemaDefaultsTests: XCTestCase {
    private func filled(_ instance: JSONValue, _ schema: JSONValue, file: StaticString = #filePath, line: UInt = #line) throws -> JSONValue {
        try compiledSchema(schema, file: file, line: line).applyingDefaults(to: instance)
    }

    func testDefaultsFillMissingTopLevelProperties() throws {
        let schema: JSONValue = ["type": "object", "properties": ["steps": ["default": 30], "prompt": ["type": "string"]]]
        XCTAssertEqual(try filled(["prompt": "cat"], schema), ["prompt": "cat", "steps": 30])
    }

    func testDefaultsDoNotOverrideExistingValuesIncludingNull() throws {
        let schema: JSONValue = ["properties": ["steps": ["default": 30], "seed": ["default": 1]]]
        XCTAssertEqual(try filled(["steps": 5, "seed": nil], schema), ["steps": 5, "seed": nil])
    }

    func testDefaultsFillNestedObjects() throws {
        let schema: JSONValue = ["properties": ["inputs": ["properties": ["fps": ["default": 24], "loop": ["default": false]]]]]
        XCTAssertEqual(try filled(["inputs": ["fps": 30]], schema), ["inputs": ["fps": 30, "loop": false]])
    }

    func testInsertedObjectDefaultIsFilledInTurn() throws {
        let schema: JSONValue = ["properties": ["options": ["default": [:], "properties": ["quality": ["default": "high"]]]]]
        XCTAssertEqual(try filled([:], schema), ["options": ["quality": "high"]])
    }

    func testDefaultsFillEveryArrayElement() throws {
        let schema: JSONValue = ["properties": ["images": ["items": ["properties": ["weight": ["default": 1]]]]]]
        XCTAssertEqual(
            try filled(["images": [["url": "a"], ["url": "b", "weight": 0.5]]], schema),
            ["images": [["url": "a", "weight": 1], ["url": "b", "weight": 0.5]]])
    }

    func testDefaultsFillAdditionalPropertiesValues() throws {
        let schema: JSONValue = ["additionalProperties": ["properties": ["enabled": ["default": true]]]]
        XCTAssertEqual(try filled(["a": [:], "b": ["enabled": false]], schema), ["a": ["enabled": true], "b": ["enabled": false]])
    }

    func testDefaultsFollowRef() throws {
        let schema: JSONValue = [
            "$defs": ["inputs": ["properties": ["steps": ["default": 30]]]],
            "properties": ["inputs": ["$ref": "#/$defs/inputs"]],
        ]
        XCTAssertEqual(try filled(["inputs": [:]], schema), ["inputs": ["steps": 30]])
    }

    func testPropertyDefaultIsFoundThroughItsRef() throws {
        let schema: JSONValue = ["$defs": ["steps": ["type": "integer", "default": 30]], "properties": ["steps": ["$ref": "#/$defs/steps"]]]
        XCTAssertEqual(try filled([:], schema), ["steps": 30])
    }

    func testOwnDefaultWinsOverReferencedOne() throws {
        let schema: JSONValue = [
            "$defs": ["base": ["properties": ["steps": ["default": 10], "cfg": ["default": 7]]]],
            "$ref": "#/$defs/base",
            "properties": ["steps": ["default": 50]],
        ]
        XCTAssertEqual(try filled([:], schema), ["steps": 50, "cfg": 7])
    }

    func testDefaultsApplyThroughAllOf() throws {
        let schema: JSONValue = ["allOf": [["properties": ["a": ["default": 1]]], ["properties": ["b": ["default": 2]]]]]
        XCTAssertEqual(try filled([:], schema), ["a": 1, "b": 2])
    }

    func testDefaultsAreNotTakenFromAnyOfOneOfOrConditionals() throws {
        let schema: JSONValue = [
            "anyOf": [["properties": ["a": ["default": 1]]]],
            "oneOf": [["properties": ["b": ["default": 2]]]],
            "if": true, "then": ["properties": ["c": ["default": 3]]], "else": ["properties": ["d": ["default": 4]]],
            "not": ["properties": ["e": ["default": 5]], "required": ["e"]],
        ]
        XCTAssertEqual(try filled([:], schema), [:])
    }

    func testDefaultsLeaveNonObjectInstancesAlone() throws {
        let schema: JSONValue = ["properties": ["a": ["default": 1]]]
        XCTAssertEqual(try filled(nil, schema), nil)
        XCTAssertEqual(try filled([1, 2], schema), [1, 2])
        XCTAssertEqual(try filled(["a": "x"], ["properties": ["a": ["properties": ["b": ["default": 1]]]]]), ["a": "x"])
    }

    func testDefaultsIgnoreTheRootSchemaDefault() throws {
        XCTAssertEqual(try filled(nil, ["default": ["a": 1]]), nil)
    }

    func testDefaultsAreNotValidated() throws {
        let schema: JSONValue = ["properties": ["steps": ["type": "integer", "default": "many"]]]
        XCTAssertEqual(try filled([:], schema), ["steps": "many"])
    }

    func testRecursiveSchemaDefaultsTerminate() throws {
        let schema: JSONValue = [
            "type": "object",
            "properties": ["level": ["default": 0], "child": ["$ref": "#"]],
        ]
        XCTAssertEqual(try filled(["child": ["child": [:]]], schema), ["level": 0, "child": ["level": 0, "child": ["level": 0]]])
    }

    func testFilledInstanceThenValidates() throws {
        let schema = try compiledSchema(["required": ["steps"], "properties": ["steps": ["type": "integer", "default": 30]]])
        XCTAssertFalse(schema.isValid([:]))
        XCTAssertTrue(schema.isValid(schema.applyingDefaults(to: [:])))
    }
}
