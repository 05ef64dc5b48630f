import Foundation
import XCTest
@testable import SwitchyardJSON

final class JSONSchemaKeywordTests: XCTestCase {
    private func assertValid(_ instance: JSONValue, _ schema: JSONValue, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try violations(of: instance, against: schema, file: file, line: line), [], file: file, line: line)
    }

    /// The single violation `instance` produces, or a failure when there is not exactly one.
    private func onlyViolation(_ instance: JSONValue, _ schema: JSONValue, file: StaticString = #filePath, line: UInt = #line) throws -> SchemaViolation? {
        let found = try violations(of: instance, against: schema, file: file, line: line)
        XCTAssertEqual(found.count, 1, "violations: \(found)", file: file, line: line)
        return found.first
    }

    // MARK: type

    func testTypeMismatchReportsPathKeywordAndMessage() throws {
        let violation = try onlyViolation(42, ["type": "string"])
        XCTAssertEqual(violation, SchemaViolation(path: "$", keyword: "type", message: "expected string, got integer 42"))
    }

    func testTypeStringAcceptsOnlyStrings() throws {
        try assertValid("x", ["type": "string"])
        for other: JSONValue in [nil, true, 1, 1.5, [], [:]] {
            XCTAssertEqual(try violations(of: other, against: ["type": "string"]).map(\.keyword), ["type"], "\(other)")
        }
    }

    func testTypeArrayAcceptsAnyListedType() throws {
        let schema: JSONValue = ["type": ["string", "null"]]
        try assertValid("x", schema)
        try assertValid(nil, schema)
        XCTAssertEqual(try onlyViolation(3.5, schema)?.message, "expected string or null, got number 3.5")
    }

    func testIntegerTypeAcceptsIntegralNumbersIncludingOnePointZero() throws {
        try assertValid(3, ["type": "integer"])
        try assertValid(.number(1.0), ["type": "integer"])
        try assertValid(.number(-1e15), ["type": "integer"])
    }

    func testIntegerTypeRejectsFractionalNumbers() throws {
        XCTAssertEqual(try onlyViolation(2.5, ["type": "integer"])?.keyword, "type")
    }

    func testNumberTypeAcceptsIntegers() throws {
        try assertValid(7, ["type": "number"])
        try assertValid(7.25, ["type": "number"])
        XCTAssertEqual(try onlyViolation("7", ["type": "number"])?.keyword, "type")
    }

    func testNullBooleanArrayAndObjectTypes() throws {
        try assertValid(nil, ["type": "null"])
        try assertValid(false, ["type": "boolean"])
        try assertValid([1], ["type": "array"])
        try assertValid(["a": 1], ["type": "object"])
        XCTAssertEqual(try onlyViolation(0, ["type": "boolean"])?.keyword, "type")
        XCTAssertEqual(try onlyViolation(["a": 1], ["type": "array"])?.keyword, "type")
        XCTAssertEqual(try onlyViolation([], ["type": "object"])?.keyword, "type")
        XCTAssertEqual(try onlyViolation(false, ["type": "null"])?.keyword, "type")
    }

    // MARK: enum / const

    func testEnumAcceptsAListedValue() throws {
        try assertValid("wav", ["enum": ["wav", "flac", nil, 3]])
        try assertValid(nil, ["enum": ["wav", "flac", nil, 3]])
    }

    func testEnumRejectsUnlistedValueAndNamesAllowedValues() throws {
        let violation = try onlyViolation("mp3", ["enum": ["wav", "flac"]])
        XCTAssertEqual(violation, SchemaViolation(path: "$", keyword: "enum", message: #""mp3" is not one of the allowed values: "wav", "flac""#))
    }

    func testEnumComparesNumbersByValue() throws {
        try assertValid(.number(3.0), ["enum": [3]])
        XCTAssertEqual(try onlyViolation("3", ["enum": [3]])?.keyword, "enum")
    }

    func testEnumComparesStructuredValuesRegardlessOfKeyOrder() throws {
        let schema: JSONValue = ["enum": [["w": 512, "h": 512], ["w": 1024, "h": 768]]]
        try assertValid(["h": 768, "w": 1024], schema)
        XCTAssertEqual(try onlyViolation(["w": 1024, "h": 512], schema)?.keyword, "enum")
    }

    func testEnumComparesStringsByUnicodeScalars() throws {
        XCTAssertEqual(try onlyViolation("e\u{301}", ["enum": ["\u{E9}"]])?.keyword, "enum")
    }

    func testEnumDoesNotConfuseFalseWithZeroOrNull() throws {
        XCTAssertEqual(try onlyViolation(0, ["enum": [false, nil]])?.keyword, "enum")
    }

    func testConstAcceptsAnEqualValue() throws {
        try assertValid(["mode": "fast"], ["const": ["mode": "fast"]])
    }

    func testConstRejectsADifferentValue() throws {
        let violation = try onlyViolation("slow", ["const": "fast"])
        XCTAssertEqual(violation, SchemaViolation(path: "$", keyword: "const", message: #""slow" is not the required value "fast""#))
    }

    func testConstNullRejectsFalse() throws {
        XCTAssertEqual(try onlyViolation(false, ["const": nil])?.keyword, "const")
    }

    // MARK: properties / required / additionalProperties

    func testPropertiesValidateEachPresentMember() throws {
        let found = try violations(of: ["a": 1, "b": "x"], against: ["properties": ["a": ["type": "string"], "b": ["type": "integer"]]])
        XCTAssertEqual(found.map(\.path), ["$.a", "$.b"])
    }

    func testPropertiesIgnoreAbsentMembers() throws {
        try assertValid([:], ["properties": ["a": ["type": "string"]]])
    }

    func testObjectKeywordsIgnoreNonObjects() throws {
        try assertValid("text", ["properties": ["a": false], "required": ["a"], "additionalProperties": false])
    }

    func testNestedViolationReportsFullPath() throws {
        let schema: JSONValue = [
            "type": "object",
            "properties": ["inputs": ["type": "object", "properties": ["duration": ["type": "number", "maximum": 30]]]],
        ]
        let violation = try onlyViolation(["inputs": ["duration": 42]], schema)
        XCTAssertEqual(violation, SchemaViolation(path: "$.inputs.duration", keyword: "maximum", message: "42 is greater than the maximum of 30"))
    }

    func testArrayElementViolationReportsIndexPath() throws {
        let schema: JSONValue = [
            "properties": ["images": ["items": ["properties": ["url": ["type": "string"]]]]],
        ]
        let instance: JSONValue = ["images": [["url": "a"], ["url": "b"], ["url": 3]]]
        XCTAssertEqual(try onlyViolation(instance, schema)?.path, "$.images[2].url")
    }

    func testMemberNamesThatAreNotIdentifiersUseBracketPaths() throws {
        let schema: JSONValue = ["additionalProperties": ["type": "string"]]
        let found = try violations(of: ["aspect-ratio": 1, "it's": 2, "2x": 3, "é": 4, "ok_1": 5], against: schema)
        XCTAssertEqual(found.map(\.path), ["$['2x']", "$['aspect-ratio']", "$['it\\'s']", "$.ok_1", "$['é']"])
    }

    func testRequiredPropertyMissingReportsItsPath() throws {
        let schema: JSONValue = ["properties": ["inputs": ["type": "object", "required": ["prompt"]]]]
        let violation = try onlyViolation(["inputs": [:]], schema)
        XCTAssertEqual(violation, SchemaViolation(path: "$.inputs.prompt", keyword: "required", message: #"required property "prompt" is missing"#))
    }

    func testEveryMissingRequiredPropertyIsReported() throws {
        let found = try violations(of: ["b": 1], against: ["required": ["a", "b", "c"]])
        XCTAssertEqual(found.map(\.path), ["$.a", "$.c"])
        XCTAssertEqual(Set(found.map(\.keyword)), ["required"])
    }

    func testRequiredIsSatisfiedByExplicitNull() throws {
        try assertValid(["a": nil], ["required": ["a"]])
    }

    func testAdditionalPropertiesFalseRejectsUndeclaredMembers() throws {
        let violation = try onlyViolation(["prompt": "x", "promt": "y"], ["properties": ["prompt": true], "additionalProperties": false])
        XCTAssertEqual(violation, SchemaViolation(path: "$.promt", keyword: "additionalProperties", message: #"property "promt" is not allowed"#))
    }

    func testAdditionalPropertiesFalseReportsEveryUndeclaredMember() throws {
        let found = try violations(of: ["z": 1, "y": 2, "a": 3], against: ["properties": ["a": true], "additionalProperties": false])
        XCTAssertEqual(found.map(\.path), ["$.y", "$.z"])
    }

    func testAdditionalPropertiesSchemaValidatesOnlyUndeclaredMembers() throws {
        let schema: JSONValue = ["properties": ["name": ["type": "string"]], "additionalProperties": ["type": "integer"]]
        try assertValid(["name": "n", "width": 5], schema)
        let violation = try onlyViolation(["name": "n", "width": "5"], schema)
        XCTAssertEqual(violation?.path, "$.width")
        XCTAssertEqual(violation?.keyword, "type")
    }

    func testAdditionalPropertiesTrueAllowsAnything() throws {
        try assertValid(["anything": [1, 2]], ["properties": ["a": true], "additionalProperties": true])
    }

    // MARK: items / minItems / maxItems / uniqueItems

    func testItemsValidatesEveryElement() throws {
        let found = try violations(of: [1, "two", 3, "four"], against: ["items": ["type": "integer"]])
        XCTAssertEqual(found.map(\.path), ["$[1]", "$[3]"])
    }

    func testArrayKeywordsIgnoreNonArrays() throws {
        try assertValid("abc", ["items": false, "minItems": 5, "maxItems": 0, "uniqueItems": true])
    }

    func testMinItemsIsInclusive() throws {
        try assertValid([1, 2], ["minItems": 2])
        let violation = try onlyViolation([1], ["minItems": 2])
        XCTAssertEqual(violation, SchemaViolation(path: "$", keyword: "minItems", message: "array has 1 item, fewer than the minimum of 2"))
    }

    func testMaxItemsIsInclusive() throws {
        try assertValid([1, 2], ["maxItems": 2])
        XCTAssertEqual(try onlyViolation([1, 2, 3], ["maxItems": 2])?.message, "array has 3 items, more than the maximum of 2")
    }

    func testUniqueItemsRejectsDuplicates() throws {
        let violation = try onlyViolation(["a", "b", "a"], ["uniqueItems": true])
        XCTAssertEqual(violation?.keyword, "uniqueItems")
        XCTAssertEqual(violation?.message, #"items at index 0 and 2 are both "a", but items must be unique"#)
    }

    func testUniqueItemsTreatsOneAndOnePointZeroAsEqual() throws {
        XCTAssertEqual(try onlyViolation([1, .number(1.0)], ["uniqueItems": true])?.keyword, "uniqueItems")
    }

    func testUniqueItemsComparesObjectsRegardlessOfKeyOrder() throws {
        XCTAssertEqual(try onlyViolation([["a": 1, "b": 2], ["b": 2, "a": 1]], ["uniqueItems": true])?.keyword, "uniqueItems")
        try assertValid([["a": 1], ["a": 2], [1], ["1"], true, 1], ["uniqueItems": true])
    }

    func testUniqueItemsFalseAllowsDuplicates() throws {
        try assertValid([1, 1], ["uniqueItems": false])
    }

    // MARK: numbers

    func testMinimumIsInclusive() throws {
        try assertValid(0, ["minimum": 0])
        XCTAssertEqual(try onlyViolation(-0.5, ["minimum": 0])?.message, "-0.5 is less than the minimum of 0")
    }

    func testMaximumIsInclusive() throws {
        try assertValid(30, ["maximum": 30])
        XCTAssertEqual(try onlyViolation(30.5, ["maximum": 30])?.keyword, "maximum")
    }

    func testExclusiveMinimumExcludesTheBound() throws {
        try assertValid(0.001, ["exclusiveMinimum": 0])
        let violation = try onlyViolation(0, ["exclusiveMinimum": 0])
        XCTAssertEqual(violation, SchemaViolation(path: "$", keyword: "exclusiveMinimum", message: "0 must be greater than 0"))
    }

    func testExclusiveMaximumExcludesTheBound() throws {
        try assertValid(0.999, ["exclusiveMaximum": 1])
        XCTAssertEqual(try onlyViolation(1, ["exclusiveMaximum": 1])?.message, "1 must be less than 1")
    }

    func testMultipleOfAcceptsExactMultiples() throws {
        try assertValid(64, ["multipleOf": 8])
        try assertValid(0, ["multipleOf": 8])
        try assertValid(-16, ["multipleOf": 8])
        XCTAssertEqual(try onlyViolation(60, ["multipleOf": 8])?.message, "60 is not a multiple of 8")
    }

    func testMultipleOfToleratesBinaryRoundingOfDecimalFractions() throws {
        try assertValid(0.3, ["multipleOf": 0.1])
        try assertValid(19.99, ["multipleOf": 0.01])
        try assertValid(0.0075, ["multipleOf": 0.0001])
        XCTAssertEqual(try onlyViolation(0.00751, ["multipleOf": 0.0001])?.keyword, "multipleOf")
        XCTAssertEqual(try onlyViolation(0.35, ["multipleOf": 0.1])?.keyword, "multipleOf")
    }

    func testMultipleOfWithOverflowingQuotientIsNotAMultiple() throws {
        XCTAssertEqual(try onlyViolation(1e308, ["multipleOf": 0.123456789])?.keyword, "multipleOf")
    }

    func testNumericKeywordsIgnoreNonNumbers() throws {
        try assertValid("5", ["minimum": 10, "maximum": 0, "exclusiveMinimum": 10, "exclusiveMaximum": 0, "multipleOf": 7])
    }

    func testAllFailingNumericKeywordsAreReported() throws {
        let found = try violations(of: 5, against: ["minimum": 10, "exclusiveMinimum": 10, "multipleOf": 2])
        XCTAssertEqual(found.map(\.keyword), ["minimum", "exclusiveMinimum", "multipleOf"])
    }

    // MARK: strings

    func testMinLengthIsInclusive() throws {
        try assertValid("abc", ["minLength": 3])
        XCTAssertEqual(try onlyViolation("ab", ["minLength": 3])?.message, #""ab" has 2 characters, fewer than the minimum of 3"#)
    }

    func testMaxLengthIsInclusive() throws {
        try assertValid("abc", ["maxLength": 3])
        XCTAssertEqual(try onlyViolation("abcd", ["maxLength": 3])?.message, #""abcd" has 4 characters, more than the maximum of 3"#)
    }

    func testLengthCountsUnicodeScalarsNotGraphemeClusters() throws {
        // One grapheme, two scalars: too long for maxLength 1 although String.count is 1.
        XCTAssertEqual(try onlyViolation("e\u{301}", ["maxLength": 1])?.keyword, "maxLength")
        try assertValid("e\u{301}", ["minLength": 2])
    }

    func testLengthCountsUnicodeScalarsNotUTF16Units() throws {
        try assertValid("😀", ["maxLength": 1, "minLength": 1])
    }

    func testPatternIsAnUnanchoredSearch() throws {
        try assertValid("xxabcxx", ["pattern": "abc"])
        XCTAssertEqual(try onlyViolation("xxabxx", ["pattern": "abc"])?.keyword, "pattern")
    }

    func testPatternAnchorsAreHonoured() throws {
        try assertValid("1024x768", ["pattern": "^[0-9]+x[0-9]+$"])
        let violation = try onlyViolation("1024x768px", ["pattern": "^[0-9]+x[0-9]+$"])
        XCTAssertEqual(violation?.message, #""1024x768px" does not match the pattern "^[0-9]+x[0-9]+$""#)
    }

    func testPatternWorksOnNonASCIIStrings() throws {
        try assertValid("日本😀語", ["pattern": "😀語$"])
    }

    func testStringKeywordsIgnoreNonStrings() throws {
        try assertValid(12345, ["minLength": 10, "maxLength": 1, "pattern": "^x$", "format": "date-time"])
    }

    // MARK: allOf / anyOf / oneOf / not

    func testAllOfCollectsViolationsFromEveryBranch() throws {
        let found = try violations(of: 5, against: ["allOf": [["minimum": 10], ["multipleOf": 2], ["type": "integer"]]])
        XCTAssertEqual(found.map(\.keyword), ["minimum", "multipleOf"])
    }

    func testAnyOfPassesWhenOneAlternativeMatches() throws {
        try assertValid("x", ["anyOf": [["type": "integer"], ["type": "string"]]])
        try assertValid(1, ["anyOf": [["type": "integer"], ["minimum": 0]]])
    }

    func testAnyOfFailureIsOneSummarisedViolation() throws {
        let schema: JSONValue = ["anyOf": [["type": "string"], ["type": "integer", "minimum": 10]]]
        let violation = try onlyViolation(3, schema)
        XCTAssertEqual(violation?.path, "$")
        XCTAssertEqual(violation?.keyword, "anyOf")
        XCTAssertEqual(
            violation?.message,
            "3 matches none of the 2 alternatives in anyOf; closest is alternative 1: 3 is less than the minimum of 10")
    }

    func testAnyOfSummaryLocatesNestedFailureOfClosestAlternative() throws {
        let schema: JSONValue = ["anyOf": [
            ["type": "string"],
            ["type": "object", "required": ["url"], "properties": ["url": ["type": "string"]]],
        ]]
        let violation = try onlyViolation(["url": 5], schema)
        XCTAssertEqual(violation?.message.hasSuffix("closest is alternative 1: $.url: expected string, got integer 5"), true, violation?.message ?? "")
    }

    func testOneOfPassesWithExactlyOneMatch() throws {
        try assertValid(5, ["oneOf": [["type": "integer"], ["type": "string"]]])
    }

    func testOneOfRejectsSeveralMatches() throws {
        let violation = try onlyViolation(5, ["oneOf": [["type": "integer"], ["minimum": 0], ["type": "string"]]])
        XCTAssertEqual(violation, SchemaViolation(
            path: "$", keyword: "oneOf",
            message: "5 matches the alternatives at indices 0 and 1 of oneOf, but must match exactly one"))
    }

    func testOneOfWithNoMatchIsOneSummarisedViolation() throws {
        let violation = try onlyViolation(nil, ["oneOf": [["type": "integer"], ["type": "string"]]])
        XCTAssertEqual(violation?.keyword, "oneOf")
        XCTAssertEqual(violation?.message.hasPrefix("null matches none of the 2 alternatives in oneOf"), true)
    }

    func testNotRejectsAMatchingValue() throws {
        let violation = try onlyViolation("", ["not": ["const": ""]])
        XCTAssertEqual(violation, SchemaViolation(path: "$", keyword: "not", message: #""" must not match the schema given in 'not'"#))
    }

    func testNotAcceptsANonMatchingValue() throws {
        try assertValid("x", ["not": ["const": ""]])
    }

    // MARK: if / then / else

    private let conditional: JSONValue = [
        "if": ["properties": ["mode": ["const": "video"]], "required": ["mode"]],
        "then": ["required": ["fps"]],
        "else": ["required": ["size"]],
    ]

    func testThenAppliesWhenIfHolds() throws {
        try assertValid(["mode": "video", "fps": 24], conditional)
        XCTAssertEqual(try onlyViolation(["mode": "video", "size": 1], conditional)?.path, "$.fps")
    }

    func testElseAppliesWhenIfFails() throws {
        try assertValid(["mode": "image", "size": 1], conditional)
        XCTAssertEqual(try onlyViolation(["mode": "image", "fps": 24], conditional)?.path, "$.size")
    }

    func testIfFailureItselfIsNotAViolation() throws {
        try assertValid(3, ["if": ["type": "string"]])
    }

    func testThenAndElseWithoutIfAreIgnored() throws {
        try assertValid(3, ["then": false, "else": false])
    }

    // MARK: $ref

    func testRefToDefsValidatesAgainstTheTarget() throws {
        let schema: JSONValue = [
            "$defs": ["size": ["type": "integer", "minimum": 64]],
            "properties": ["width": ["$ref": "#/$defs/size"], "height": ["$ref": "#/$defs/size"]],
        ]
        try assertValid(["width": 64, "height": 128], schema)
        let violation = try onlyViolation(["width": 64, "height": 32], schema)
        XCTAssertEqual(violation?.path, "$.height")
        XCTAssertEqual(violation?.keyword, "minimum")
    }

    func testRefToDefinitionsIsSupported() throws {
        let schema: JSONValue = ["definitions": ["name": ["type": "string"]], "items": ["$ref": "#/definitions/name"]]
        XCTAssertEqual(try onlyViolation(["a", 1], schema)?.path, "$[1]")
    }

    func testRefSiblingKeywordsAlsoApply() throws {
        let schema: JSONValue = ["$defs": ["n": ["type": "integer"]], "$ref": "#/$defs/n", "maximum": 10]
        XCTAssertEqual(try violations(of: 10.5, against: schema).map(\.keyword), ["type", "maximum"])
    }

    func testEscapedAndPercentEncodedPointersResolve() throws {
        let schema: JSONValue = [
            "$defs": ["a/b": ["type": "string"], "c~d": ["type": "integer"], "e f": ["type": "boolean"]],
            "properties": [
                "x": ["$ref": "#/$defs/a~1b"], "y": ["$ref": "#/$defs/c~0d"], "z": ["$ref": "#/%24defs/e%20f"],
            ],
        ]
        try assertValid(["x": "s", "y": 1, "z": true], schema)
        XCTAssertEqual(try violations(of: ["x": 1, "y": "s", "z": 0], against: schema).map(\.path), ["$.x", "$.y", "$.z"])
    }

    func testRecursiveRefValidatesATree() throws {
        let schema: JSONValue = [
            "$defs": ["node": [
                "type": "object", "required": ["name"],
                "properties": ["name": ["type": "string"], "children": ["type": "array", "items": ["$ref": "#/$defs/node"]]],
            ]],
            "$ref": "#/$defs/node",
        ]
        let tree: JSONValue = ["name": "root", "children": [["name": "a"], ["name": "b", "children": [["children": []]]]]]
        let violation = try onlyViolation(tree, schema)
        XCTAssertEqual(violation?.path, "$.children[1].children[0].name")
        XCTAssertEqual(violation?.keyword, "required")
    }

    func testRefToRootSupportsRecursion() throws {
        let schema: JSONValue = ["type": "object", "additionalProperties": ["$ref": "#"]]
        try assertValid(["a": ["b": [:]]], schema)
        XCTAssertEqual(try onlyViolation(["a": ["b": 1]], schema)?.path, "$.a.b")
    }

    func testDeepRecursionStopsAtTheDepthLimit() throws {
        var instance: JSONValue = []
        for _ in 0..<400 { instance = [instance] }
        let schema: JSONValue = ["type": "array", "items": ["$ref": "#"]]
        let found = try violations(of: instance, against: schema)
        XCTAssertEqual(found.map(\.keyword), ["depth"])
    }

    func testModerateRecursionIsWithinTheDepthLimit() throws {
        var instance: JSONValue = []
        for _ in 0..<60 { instance = [instance] }
        try assertValid(instance, ["type": "array", "items": ["$ref": "#"]])
    }

    // MARK: boolean schemas

    func testTrueSchemaAcceptsAnything() throws {
        try assertValid(["x": [1, nil]], true)
    }

    func testFalseSchemaRejectsEverything() throws {
        XCTAssertEqual(try onlyViolation(nil, false), SchemaViolation(path: "$", keyword: "false", message: "null is not allowed here"))
    }

    func testFalsePropertySchemaRejectsThatMemberOnly() throws {
        let schema: JSONValue = ["properties": ["legacy": false, "ok": true]]
        try assertValid(["ok": 1], schema)
        XCTAssertEqual(try onlyViolation(["legacy": 1, "ok": 1], schema)?.path, "$.legacy")
    }

    // MARK: Collection and determinism

    func testViolationsAreCollectedAcrossTheWholeDocument() throws {
        let schema: JSONValue = [
            "type": "object", "required": ["prompt", "seed"], "additionalProperties": false,
            "properties": [
                "prompt": ["type": "string", "minLength": 1],
                "seed": ["type": "integer"],
                "steps": ["type": "integer", "minimum": 1, "maximum": 100],
                "size": ["enum": ["512x512", "1024x1024"]],
            ],
        ]
        let found = try violations(of: ["prompt": "", "steps": 0, "size": "1x1", "extra": true], against: schema)
        XCTAssertEqual(found.map { "\($0.path) \($0.keyword)" }, [
            "$.seed required", "$.prompt minLength", "$.size enum", "$.steps minimum", "$.extra additionalProperties",
        ])
    }

    func testViolationOrderIsDeterministic() throws {
        let schema = try compiledSchema(["additionalProperties": ["type": "string"]])
        var members: [String: JSONValue] = [:]
        for index in 0..<50 { members["k\(index)"] = .number(Double(index)) }
        let first = schema.validate(.object(members))
        XCTAssertEqual(first.count, 50)
        XCTAssertEqual(first.map(\.path), first.map(\.path).sorted())
        XCTAssertEqual(schema.validate(.object(members)), first)
    }

    func testIsValidAgreesWithValidate() throws {
        let schema = try compiledSchema(["type": "object", "required": ["a"], "properties": ["a": ["type": "integer"]]])
        XCTAssertTrue(schema.isValid(["a": 1]))
        XCTAssertFalse(schema.isValid(["a": "1"]))
        XCTAssertFalse(schema.isValid([:]))
        XCTAssertFalse(schema.isValid([]))
    }

    func testViolationDescriptionAndCodableRoundTrip() throws {
        let violation = SchemaViolation(path: "$.a", keyword: "type", message: "expected string, got integer 1")
        XCTAssertEqual(violation.description, "$.a: expected string, got integer 1")
        let data = try JSONEncoder().encode(violation)
        XCTAssertEqual(try JSONDecoder().decode(SchemaViolation.self, from: data), violation)
    }

    func testLongValuesAreTruncatedInMessages() throws {
        let long = String(repeating: "x", count: 200)
        let message = try onlyViolation(.string(long), ["type": "integer"])?.message ?? ""
        XCTAssertLessThan(message.count, 100)
        XCTAssertTrue(message.hasSuffix("…"), message)
    }

    func testSchemaIsUsableFromConcurrentTasks() async throws {
        let schema = try compiledSchema(["items": ["type": "string", "pattern": "^[a-z]+$"]])
        let results = await withTaskGroup(of: Int.self) { group in
            for index in 0..<8 {
                group.addTask { schema.validate(["ok", "NOT", .string("x\(index)")]).count }
            }
            var counts: [Int] = []
            for await count in group { counts.append(count) }
            return counts
        }
        XCTAssertEqual(results, Array(repeating: 2, count: 8))
    }
}
