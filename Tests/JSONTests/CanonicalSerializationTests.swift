import Foundation
import XCTest
@testable import SwitchyardJSON

final class CanonicalSerializationTests: XCTestCase {
    private func text(_ value: JSONValue, sortedKeys: Bool = true) -> String {
        String(decoding: value.serialized(sortedKeys: sortedKeys), as: UTF8.self)
    }

    private func number(bits: UInt64) -> String {
        CanonicalJSON.formatNumber(Double(bitPattern: bits))
    }

    func testObjectKeysAreSortedAtEveryLevel() {
        let value: JSONValue = ["zeta": ["b": 1, "a": 2], "alpha": [["y": nil, "x": true]]]
        XCTAssertEqual(text(value), #"{"alpha":[{"x":true,"y":null}],"zeta":{"a":2,"b":1}}"#)
    }

    func testOutputHasNoWhitespace() {
        let value: JSONValue = ["a": [1, 2, ["b": "c d"]]]
        XCTAssertEqual(text(value), #"{"a":[1,2,{"b":"c d"}]}"#)
    }

    func testEmptyContainers() {
        XCTAssertEqual(text([]), "[]")
        XCTAssertEqual(text([:]), "{}")
        XCTAssertEqual(text(["a": [], "b": [:]]), #"{"a":[],"b":{}}"#)
    }

    func testIntegersArePrintedWithoutFraction() {
        XCTAssertEqual(text([1.0, -3, 0, 100, 9_007_199_254_740_992]), "[1,-3,0,100,9007199254740992]")
    }

    func testNegativeZeroIsPrintedAsZero() {
        XCTAssertEqual(text(.number(-0.0)), "0")
    }

    func testFractionsUseShortestRoundTripDigits() {
        XCTAssertEqual(text([0.1, 2.5, -1.75, 0.3]), "[0.1,2.5,-1.75,0.3]")
        XCTAssertEqual(text(.number(0.1 + 0.2)), "0.30000000000000004")
    }

    func testLargeAndSmallNumbersFollowECMAScriptNotation() {
        XCTAssertEqual(text(.number(1e20)), "100000000000000000000")
        XCTAssertEqual(text(.number(1e21)), "1e+21")
        XCTAssertEqual(text(.number(1.5e300)), "1.5e+300")
        XCTAssertEqual(text(.number(0.000001)), "0.000001")
        XCTAssertEqual(text(.number(0.0000001)), "1e-7")
        XCTAssertEqual(text(.number(-2.5e-10)), "-2.5e-10")
    }

    /// The number table of RFC 8785 Appendix B.
    func testNumbersMatchRFC8785Vectors() {
        let vectors: [(UInt64, String)] = [
            (0x0000_0000_0000_0000, "0"),
            (0x8000_0000_0000_0000, "0"),
            (0x0000_0000_0000_0001, "5e-324"),
            (0x8000_0000_0000_0001, "-5e-324"),
            (0x7FEF_FFFF_FFFF_FFFF, "1.7976931348623157e+308"),
            (0xFFEF_FFFF_FFFF_FFFF, "-1.7976931348623157e+308"),
            (0x4340_0000_0000_0000, "9007199254740992"),
            (0xC340_0000_0000_0000, "-9007199254740992"),
            (0x4430_0000_0000_0000, "295147905179352830000"),
            (0x44B5_2D02_C7E1_4AF5, "9.999999999999997e+22"),
            (0x44B5_2D02_C7E1_4AF6, "1e+23"),
            (0x44B5_2D02_C7E1_4AF7, "1.0000000000000001e+23"),
            (0x444B_1AE4_D6E2_EF4E, "999999999999999700000"),
            (0x444B_1AE4_D6E2_EF4F, "999999999999999900000"),
            (0x444B_1AE4_D6E2_EF50, "1e+21"),
            (0x3EB0_C6F7_A0B5_ED8C, "9.999999999999997e-7"),
            (0x3EB0_C6F7_A0B5_ED8D, "0.000001"),
            (0x41B3_DE43_5555_5553, "333333333.3333332"),
            (0x41B3_DE43_5555_5554, "333333333.33333325"),
            (0x41B3_DE43_5555_5555, "333333333.3333333"),
            (0x41B3_DE43_5555_5556, "333333333.3333334"),
            (0x41B3_DE43_5555_5557, "333333333.33333343"),
            (0xBECB_F647_612F_3696, "-0.0000033333333333333333"),
            (0x4314_3FF3_C1CB_0959, "1424953923781206.2"),
        ]
        for (bits, expected) in vectors {
            XCTAssertEqual(number(bits: bits), expected, String(bits, radix: 16))
        }
    }

    func testNonFiniteNumbersAreWrittenAsNull() {
        XCTAssertEqual(text([.number(.nan), .number(.infinity), .number(-.infinity)]), "[null,null,null]")
    }

    func testStringEscapingFollowsRFC8259Minimum() {
        let value = JSONValue.string("q\" b\\ \u{08}\u{0C}\n\r\t \u{00}\u{1F} / é \u{7F} \u{2028} 😀")
        XCTAssertEqual(text(value), "\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0000\\u001f / é \u{7F} \u{2028} 😀\"")
    }

    func testKeysAreEscapedLikeStrings() {
        XCTAssertEqual(text(["a\"b\n": 1]), #"{"a\"b\n":1}"#)
    }

    func testKeysSortByUTF16CodeUnitsNotScalars() {
        // U+E000 sorts after the surrogate pair of U+1F600 in UTF-16, before it by scalar value.
        let value: JSONValue = ["\u{E000}": 1, "😀": 2, "a": 3, "B": 4, "é": 5]
        XCTAssertEqual(text(value), "{\"B\":4,\"a\":3,\"é\":5,\"😀\":2,\"\u{E000}\":1}")
    }

    func testSerializationIsIndependentOfInsertionOrder() {
        var first: [String: JSONValue] = [:]
        var second: [String: JSONValue] = [:]
        let keys = (0..<200).map { "key\($0)" }
        for key in keys { first[key] = .string(key) }
        for key in keys.reversed() { second[key] = .string(key) }
        XCTAssertEqual(JSONValue.object(first).serialized(), JSONValue.object(second).serialized())
    }

    func testOutputParsesBackToAnEqualValue() throws {
        let value: JSONValue = ["a": [1, -2.5, 1e-7, 1e21, "x\u{0}y", nil, true], "é": ["b": [:]]]
        XCTAssertEqual(try JSONValue(parsing: value.serialized()), value)
    }

    func testEqualDocumentsWithDifferentFormattingSerializeIdentically() throws {
        let compact = try JSONValue(parsing: #"{"b":[1,2],"a":{"y":1.0,"x":"\u00e9"}}"#)
        let spaced = try JSONValue(parsing: "{ \"a\" : { \"x\" : \"é\", \"y\" : 1 },\n \"b\" : [ 1, 2.0 ] }")
        XCTAssertEqual(compact.serialized(), spaced.serialized())
        XCTAssertEqual(text(compact), #"{"a":{"x":"é","y":1},"b":[1,2]}"#)
    }

    func testUnsortedSerializationIsStillValidJSON() throws {
        let value: JSONValue = ["b": 1, "a": [2, ["c": 3]]]
        let unsorted = value.serialized(sortedKeys: false)
        XCTAssertEqual(try JSONValue(parsing: unsorted), value)
        XCTAssertFalse(String(decoding: unsorted, as: UTF8.self).contains(" "))
    }
}
