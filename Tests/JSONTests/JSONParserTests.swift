import Foundation
import XCTest
@testable import SwitchyardJSON

final class JSONParserTests: XCTestCase {
    private func parse(_ text: String) throws -> JSONValue {
        try JSONValue(parsing: Data(text.utf8))
    }

    private func parseError(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> JSONParseError? {
        do {
            let value = try JSONValue(parsing: Data(text.utf8))
            XCTFail("expected a parse error, got \(value)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    private func parseError(bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> JSONParseError? {
        do {
            let value = try JSONValue(parsing: Data(bytes))
            XCTFail("expected a parse error, got \(value)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Accepted input

    func testParsesEveryValueKind() throws {
        let value = try parse(#" { "n" : null , "t":true,"f":false, "i":-12, "d":1.5e2, "s":"x", "a":[ ], "o":{} } "#)
        XCTAssertEqual(value, ["n": nil, "t": true, "f": false, "i": -12, "d": 150, "s": "x", "a": [], "o": [:]])
    }

    func testParsesScalarTopLevelValues() throws {
        XCTAssertEqual(try parse("42"), 42)
        XCTAssertEqual(try parse("\"x\""), "x")
        XCTAssertEqual(try parse("null"), nil)
    }

    func testParsesIntegersExactlyUpToTwoToThe53() throws {
        XCTAssertEqual(try parse("9007199254740991").intValue, 9_007_199_254_740_991)
        XCTAssertEqual(try parse("9007199254740992").intValue, 9_007_199_254_740_992)
        XCTAssertEqual(try parse("-9007199254740992").intValue, -9_007_199_254_740_992)
        XCTAssertEqual(try parse("123456789012345").intValue, 123_456_789_012_345)
    }

    func testIntegerWrittenWithExponentIsStillAnInteger() throws {
        XCTAssertEqual(try parse("1e3").intValue, 1000)
        XCTAssertEqual(try parse("2.0").intValue, 2)
    }

    func testNegativeZeroParsesToZero() throws {
        XCTAssertEqual(try parse("-0"), 0)
        XCTAssertEqual(try parse("-0").intValue, 0)
    }

    func testDecodesEscapesAndSurrogatePairs() throws {
        let value = try parse(#""a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00""#)
        XCTAssertEqual(value, .string("a\"b\\c/d\u{08}\u{0C}\n\r\té😀"))
    }

    func testKeepsRawUTF8Text() throws {
        XCTAssertEqual(try parse("\"日本 😀 e\u{301}\""), .string("日本 😀 e\u{301}"))
    }

    func testSkipsLeadingByteOrderMark() throws {
        XCTAssertEqual(try JSONValue(parsing: Data([0xEF, 0xBB, 0xBF] + Array("[1]".utf8))), [1])
    }

    func testStringOverloadParsesTheSameAsData() throws {
        XCTAssertEqual(try JSONValue(parsing: #"{"a":[1]}"#), ["a": [1]])
    }

    func testAcceptsNestingUpToTheDepthLimit() throws {
        let depth = JSONParser.maximumDepth
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        XCTAssertNoThrow(try parse(text))
    }

    // MARK: Rejected input

    func testRejectsTrailingComma() {
        XCTAssertNotNil(parseError("[1,2,]"))
        XCTAssertNotNil(parseError(#"{"a":1,}"#))
    }

    func testRejectsLeadingZeros() {
        XCTAssertEqual(parseError("012")?.message, "leading zeros are not allowed in numbers")
    }

    func testRejectsMalformedNumbers() {
        for text in ["-", "1.", ".5", "1e", "1e+", "+1", "0x10", "NaN", "Infinity"] {
            XCTAssertNotNil(parseError(text), text)
        }
    }

    func testRejectsNumbersBeyondDoubleRange() {
        XCTAssertEqual(parseError("1e400")?.message.contains("outside the range"), true)
    }

    func testRejectsDuplicateMemberNamesAtTheSecondName() {
        let error = parseError(#"{"a":1,"a":2}"#)
        XCTAssertEqual(error?.message, #"duplicate member name "a""#)
        XCTAssertEqual(error?.offset, 7)
    }

    func testRejectsUnpairedSurrogates() {
        XCTAssertEqual(parseError(#""\uD83D""#)?.message, #"unpaired high surrogate \uD83D"#)
        XCTAssertEqual(parseError(#""\uD83Dx""#)?.message, #"unpaired high surrogate \uD83D"#)
        XCTAssertEqual(parseError(#""\uDE00""#)?.message, #"unpaired low surrogate \uDE00"#)
    }

    func testRejectsUnescapedControlCharacterInString() {
        XCTAssertEqual(parseError("\"a\u{01}b\"")?.message, "control character U+0001 must be escaped inside a string")
        XCTAssertNotNil(parseError("\"a\nb\""))
    }

    func testRejectsInvalidEscapes() {
        XCTAssertNotNil(parseError(#""\x41""#))
        XCTAssertNotNil(parseError(#""\u12G4""#))
        XCTAssertNotNil(parseError(#""\u12""#))
    }

    func testRejectsInvalidUTF8() {
        XCTAssertEqual(parseError(bytes: [0x22, 0xC3, 0x28, 0x22])?.message, "string is not valid UTF-8")
    }

    func testRejectsTrailingContent() {
        XCTAssertEqual(parseError("[1] [2]")?.message, "unexpected character '[' after the JSON value")
    }

    func testRejectsEmptyAndWhitespaceOnlyInput() {
        XCTAssertNotNil(parseError(""))
        XCTAssertNotNil(parseError("  \n "))
    }

    func testRejectsUnterminatedContainersAndStrings() {
        XCTAssertNotNil(parseError("[1"))
        XCTAssertNotNil(parseError(#"{"a":1"#))
        XCTAssertNotNil(parseError(#""abc"#))
        XCTAssertNotNil(parseError(#"{"a" 1}"#))
    }

    func testRejectsSingleQuotesAndBareWords() {
        XCTAssertNotNil(parseError("['a']"))
        XCTAssertNotNil(parseError("{a:1}"))
        XCTAssertNotNil(parseError("tru"))
    }

    func testRejectsNestingBeyondTheDepthLimit() {
        let depth = JSONParser.maximumDepth + 1
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        XCTAssertEqual(parseError(text)?.message, "nesting deeper than \(JSONParser.maximumDepth) levels")
    }

    func testErrorReportsLineAndColumn() {
        let error = parseError("{\n  \"a\": 1,\n  \"b\": tru\n}")
        XCTAssertEqual(error?.line, 3)
        XCTAssertEqual(error?.column, 8)
        XCTAssertEqual(error?.description.hasPrefix("line 3, column 8: "), true)
    }
}
