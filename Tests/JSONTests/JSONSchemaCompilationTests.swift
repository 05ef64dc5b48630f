import Foundation
import XCTest
@testable import SwitchyardJSON

/// Shared by the schema test classes.
extension XCTestCase {
    func compiledSchema(_ document: JSONValue, file: StaticString = #filePath, line: UInt = #line) throws -> JSONSchema {
        do {
            return try JSONSchema(document)
        } catch {
            XCTFail("schema did not compile: \(error)", file: file, line: line)
            throw error
        }
    }

    func violations(of instance: JSONValue, against document: JSONValue, file: StaticString = #filePath, line: UInt = #line) throws -> [SchemaViolation] {
        let schema = try compiledSchema(document, file: file, line: line)
        let violations = schema.validate(instance)
        XCTAssertEqual(schema.isValid(instance), violations.isEmpty, "isValid disagrees with validate", file: file, line: line)
        return violations
    }

    func schemaError(_ document: JSONValue, file: StaticString = #filePath, line: UInt = #line) -> JSONSchemaError? {
        do {
            _ = try JSONSchema(document)
            XCTFail("schema compiled but should have been rejected", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }
}

final class JSONSchemaCompilationTests: XCTestCase {
    // MARK: Keywords

    func testUnknownKeywordIsRejectedWithItsPath() {
        let error = schemaError(["type": "object", "properties": ["a": ["type": "string", "colour": "red"]]])
        XCTAssertEqual(error?.kind, .unknownKeyword)
        XCTAssertEqual(error?.path, "#/properties/a/colour")
        XCTAssertEqual(error?.message.contains("'colour'"), true)
    }

    func testMisspelledKeywordSuggestsTheIntendedOne() {
        let error = schemaError(["type": "object", "requird": ["a"]])
        XCTAssertEqual(error?.kind, .unknownKeyword)
        XCTAssertEqual(error?.path, "#/requird")
        XCTAssertEqual(error?.message, "unknown keyword 'requird' (did you mean 'required'?)")
    }

    func testUnknownKeywordMessageMentionsExtensionPrefixWhenNothingIsClose() {
        XCTAssertEqual(schemaError(["mediaKinds": ["image"]])?.message.contains("'x-'"), true)
    }

    func testUnsupportedStandardKeywordIsRejectedAsUnsupported() {
        let error = schemaError(["type": "object", "patternProperties": ["^a": true]])
        XCTAssertEqual(error?.kind, .unknownKeyword)
        XCTAssertEqual(error?.path, "#/patternProperties")
        XCTAssertEqual(error?.message.contains("not supported"), true)
    }

    func testProjectExtensionKeywordsAreAccepted() throws {
        _ = try compiledSchema([
            "type": "string",
            "x-media-types": ["image/png", "image/jpeg"],
            "x-max-bytes": 1_048_576,
            "x-identity": true,
            "x-file": ["role": "input"],
            "x-anything-else": nil,
        ])
    }

    func testExtensionKeywordsAreNotEnforced() throws {
        let result = try violations(
            of: "a fairly long string value",
            against: ["type": "string", "x-max-bytes": 1, "x-media-types": ["image/png"], "x-file": false])
        XCTAssertEqual(result, [])
    }

    func testAnnotationKeywordsAreAcceptedAndIgnored() throws {
        let result = try violations(of: 5, against: [
            "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "urn:switchyard:test",
            "$comment": "c", "title": "T", "description": "D", "examples": ["x"], "default": "not even a number",
            "type": "integer",
        ])
        XCTAssertEqual(result, [])
    }

    func testUnusedDefinitionsAreStillChecked() {
        let error = schemaError(["$defs": ["unused": ["tpye": "string"]], "type": "string"])
        XCTAssertEqual(error?.path, "#/$defs/unused/tpye")
        XCTAssertEqual(error?.message.contains("did you mean 'type'"), true)
    }

    func testErrorsInsideApplicatorsReportTheFullPath() {
        let error = schemaError(["anyOf": [["type": "string"], ["properties": ["x": ["minimum": "3"]]]]])
        XCTAssertEqual(error?.kind, .invalidKeywordValue)
        XCTAssertEqual(error?.path, "#/anyOf/1/properties/x/minimum")
    }

    func testPointerTokensInErrorPathsAreEscaped() {
        XCTAssertEqual(schemaError(["properties": ["a/b~c": ["bogus": 1]]])?.path, "#/properties/a~1b~0c/bogus")
    }

    func testErrorDescriptionNamesPathAndProblem() {
        XCTAssertEqual(
            schemaError(["type": "strnig"])?.description,
            "invalid schema at #/type: unknown type 'strnig' (did you mean 'string'?)")
    }

    // MARK: Keyword values

    func testMisspelledTypeNameIsRejected() {
        let error = schemaError(["type": "strnig"])
        XCTAssertEqual(error?.kind, .invalidKeywordValue)
        XCTAssertEqual(error?.path, "#/type")
    }

    func testTypeArrayWithUnknownNameReportsItsIndex() {
        XCTAssertEqual(schemaError(["type": ["string", "nul"]])?.path, "#/type/1")
    }

    func testEmptyOrNonStringTypeIsRejected() {
        XCTAssertEqual(schemaError(["type": []])?.kind, .invalidKeywordValue)
        XCTAssertEqual(schemaError(["type": 3])?.kind, .invalidKeywordValue)
        XCTAssertEqual(schemaError(["type": ["string", 3]])?.path, "#/type/1")
    }

    func testDuplicateTypeIsRejected() {
        XCTAssertEqual(schemaError(["type": ["string", "string"]])?.path, "#/type/1")
    }

    func testRequiredMustBeAnArray() {
        let error = schemaError(["required": "prompt"])
        XCTAssertEqual(error?.kind, .invalidKeywordValue)
        XCTAssertEqual(error?.path, "#/required")
    }

    func testRequiredMustContainOnlyStrings() {
        XCTAssertEqual(schemaError(["required": ["prompt", 2]])?.path, "#/required/1")
    }

    func testRequiredWithDuplicateNamesIsRejected() {
        XCTAssertEqual(schemaError(["required": ["a", "b", "a"]])?.path, "#/required/2")
    }

    func testInvalidRegexIsRejected() {
        let error = schemaError(["properties": ["name": ["pattern": "([a-z]+"]]])
        XCTAssertEqual(error?.kind, .invalidPattern)
        XCTAssertEqual(error?.path, "#/properties/name/pattern")
    }

    func testPatternMustBeAString() {
        XCTAssertEqual(schemaError(["pattern": 5])?.kind, .invalidKeywordValue)
    }

    func testLengthAndCountKeywordsRequireNonNegativeIntegers() {
        XCTAssertEqual(schemaError(["minLength": -1])?.path, "#/minLength")
        XCTAssertEqual(schemaError(["maxLength": 1.5])?.path, "#/maxLength")
        XCTAssertEqual(schemaError(["minItems": "2"])?.path, "#/minItems")
        XCTAssertEqual(schemaError(["maxItems": nil])?.path, "#/maxItems")
    }

    func testNumericBoundsRequireNumbers() {
        XCTAssertEqual(schemaError(["minimum": "3"])?.path, "#/minimum")
        XCTAssertEqual(schemaError(["maximum": true])?.path, "#/maximum")
    }

    func testDraft4BooleanExclusiveBoundsAreRejected() {
        XCTAssertEqual(schemaError(["minimum": 0, "exclusiveMinimum": true])?.path, "#/exclusiveMinimum")
        XCTAssertEqual(schemaError(["maximum": 0, "exclusiveMaximum": false])?.path, "#/exclusiveMaximum")
    }

    func testMultipleOfMustBePositive() {
        XCTAssertEqual(schemaError(["multipleOf": 0])?.path, "#/multipleOf")
        XCTAssertEqual(schemaError(["multipleOf": -2])?.path, "#/multipleOf")
    }

    func testUniqueItemsMustBeBoolean() {
        XCTAssertEqual(schemaError(["uniqueItems": 1])?.path, "#/uniqueItems")
    }

    func testEnumMustBeAnArray() {
        XCTAssertEqual(schemaError(["enum": "a"])?.path, "#/enum")
    }

    func testTupleFormOfItemsIsRejected() {
        XCTAssertEqual(schemaError(["items": [["type": "string"]]])?.path, "#/items")
    }

    func testApplicatorArraysMustBeNonEmptyArraysOfSchemas() {
        XCTAssertEqual(schemaError(["allOf": []])?.path, "#/allOf")
        XCTAssertEqual(schemaError(["anyOf": ["type": "string"]])?.path, "#/anyOf")
        XCTAssertEqual(schemaError(["oneOf": [true, 3]])?.path, "#/oneOf/1")
    }

    func testPropertiesMustBeAnObjectOfSchemas() {
        XCTAssertEqual(schemaError(["properties": ["a", "b"]])?.path, "#/properties")
        let error = schemaError(["properties": ["a": 5]])
        XCTAssertEqual(error?.kind, .notASchema)
        XCTAssertEqual(error?.path, "#/properties/a")
    }

    func testFormatMustBeAString() {
        XCTAssertEqual(schemaError(["format": 1])?.path, "#/format")
    }

    func testUnknownFormatIsAccepted() throws {
        XCTAssertEqual(try violations(of: "anything", against: ["format": "hostname"]), [])
    }

    func testRootMustBeObjectOrBoolean() {
        XCTAssertEqual(schemaError("string")?.kind, .notASchema)
        XCTAssertEqual(schemaError([["type": "string"]])?.path, "#")
    }

    func testBooleanSchemasCompile() throws {
        XCTAssertTrue(try compiledSchema(true).isValid(["anything": 1]))
        XCTAssertFalse(try compiledSchema(false).isValid(nil))
    }

    // MARK: References

    func testDanglingRefIsRejected() {
        let error = schemaError(["properties": ["a": ["$ref": "#/$defs/missing"]], "$defs": ["present": true]])
        XCTAssertEqual(error?.kind, .unresolvedReference)
        XCTAssertEqual(error?.path, "#/properties/a/$ref")
        XCTAssertEqual(error?.message.contains("#/$defs/missing"), true)
    }

    func testRefIntoAnArrayOutOfBoundsIsRejected() {
        XCTAssertEqual(schemaError(["anyOf": [true], "not": ["$ref": "#/anyOf/1"]])?.kind, .unresolvedReference)
        XCTAssertEqual(schemaError(["anyOf": [true], "not": ["$ref": "#/anyOf/01"]])?.kind, .unresolvedReference)
    }

    func testRefToSomethingThatIsNotASchemaIsRejected() {
        let error = schemaError(["$defs": ["a": ["type": "string"]], "$ref": "#/$defs/a/type"])
        XCTAssertEqual(error?.kind, .unresolvedReference)
        XCTAssertEqual(error?.message.contains("not a schema"), true)
    }

    func testRemoteAndAnchorRefsAreRejectedAsUnsupported() {
        XCTAssertEqual(schemaError(["$ref": "common.json#/$defs/a"])?.kind, .unsupportedReference)
        XCTAssertEqual(schemaError(["$ref": "https://example.com/schema"])?.kind, .unsupportedReference)
        XCTAssertEqual(schemaError(["$ref": "#anchor"])?.kind, .unsupportedReference)
    }

    func testMalformedPointerEscapeIsRejected() {
        XCTAssertEqual(schemaError(["$defs": ["a~2": true], "$ref": "#/$defs/a~2"])?.kind, .unsupportedReference)
    }

    func testRefMustBeAString() {
        XCTAssertEqual(schemaError(["$ref": 1])?.path, "#/$ref")
    }

    func testDirectSelfReferenceIsRejectedAsCycle() {
        let error = schemaError(["$defs": ["a": ["$ref": "#/$defs/a"]], "$ref": "#/$defs/a"])
        XCTAssertEqual(error?.kind, .referenceCycle)
        XCTAssertEqual(error?.path, "#/$defs/a")
    }

    func testIndirectCycleThroughApplicatorsIsRejected() {
        let error = schemaError([
            "$defs": [
                "a": ["anyOf": [["type": "string"], ["$ref": "#/$defs/b"]]],
                "b": ["allOf": [["not": ["$ref": "#/$defs/a"]]]],
            ],
            "$ref": "#/$defs/a",
        ])
        XCTAssertEqual(error?.kind, .referenceCycle)
        XCTAssertEqual(error?.message.contains("#/$defs/a → #/$defs/b → #/$defs/a"), true)
    }

    func testRootReferencingItselfInPlaceIsRejected() {
        XCTAssertEqual(schemaError(["allOf": [["$ref": "#"]]])?.kind, .referenceCycle)
    }

    func testRecursionThroughPropertiesAndItemsIsAllowed() throws {
        _ = try compiledSchema([
            "$defs": ["node": ["type": "object", "properties": ["children": ["type": "array", "items": ["$ref": "#/$defs/node"]]]]],
            "$ref": "#/$defs/node",
        ])
        _ = try compiledSchema(["type": "object", "additionalProperties": ["$ref": "#"]])
    }

    // MARK: Data input

    func testInitFromDataParsesAndCompiles() throws {
        let schema = try JSONSchema(data: Data(#"{"type":"object","required":["prompt"]}"#.utf8))
        XCTAssertEqual(schema.validate([:]).map(\.keyword), ["required"])
        XCTAssertEqual(schema.document, ["type": "object", "required": ["prompt"]])
    }

    func testInitFromMalformedDataThrowsMalformedJSON() {
        do {
            _ = try JSONSchema(data: Data(#"{"type": "object",}"#.utf8))
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.kind, .malformedJSON)
            XCTAssertEqual(error.path, "#")
            XCTAssertTrue(error.message.contains("line 1"), error.message)
        }
    }

    func testInitFromDataRejectsInvalidSchema() {
        do {
            _ = try JSONSchema(data: Data(#"{"type": "strnig"}"#.utf8))
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.kind, .invalidKeywordValue)
            XCTAssertEqual(error.path, "#/type")
        }
    }
}
