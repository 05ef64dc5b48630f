import Foundation
import XCTest
@testable import SwitchyardJSON

final class JSONValueTests: XCTestCase {
    // MARK: Accessors

    func testAccessorsReturnPayloadOnlyForMatchingCase() {
        XCTAssertEqual(JSONValue.string("a").stringValue, "a")
        XCTAssertNil(JSONValue.number(1).stringValue)
        XCTAssertEqual(JSONValue.bool(true).boolValue, true)
        XCTAssertNil(JSONValue.string("true").boolValue)
        XCTAssertEqual(JSONValue.number(2.5).doubleValue, 2.5)
        XCTAssertNil(JSONValue.string("2.5").doubleValue)
        XCTAssertEqual(JSONValue.array([1, 2]).arrayValue, [1, 2])
        XCTAssertNil(JSONValue.object([:]).arrayValue)
        XCTAssertEqual(JSONValue.object(["a": 1]).objectValue, ["a": 1])
        XCTAssertNil(JSONValue.array([]).objectValue)
        XCTAssertTrue(JSONValue.null.isNull)
        XCTAssertFalse(JSONValue.bool(false).isNull)
    }

    func testIntValueIsSetForIntegralNumbers() {
        XCTAssertEqual(JSONValue.number(42).intValue, 42)
        XCTAssertEqual(JSONValue.number(-7).intValue, -7)
        XCTAssertEqual(JSONValue.number(-0.0).intValue, 0)
    }

    func testIntValueIsNilForFractionalNonFiniteAndNonNumbers() {
        XCTAssertNil(JSONValue.number(1.5).intValue)
        XCTAssertNil(JSONValue.number(.infinity).intValue)
        XCTAssertNil(JSONValue.number(.nan).intValue)
        XCTAssertNil(JSONValue.number(1e300).intValue, "beyond Int range")
        XCTAssertNil(JSONValue.string("1").intValue)
    }

    func testIntValueIsExactAtTwoToThe53() {
        XCTAssertEqual(JSONValue.number(9_007_199_254_740_992).intValue, 9_007_199_254_740_992)
        XCTAssertEqual(JSONValue.number(-9_007_199_254_740_992).intValue, -9_007_199_254_740_992)
    }

    func testIsIntegerDistinguishesIntegralNumbers() {
        XCTAssertTrue(JSONValue.number(3).isInteger)
        XCTAssertTrue(JSONValue.number(1e300).isInteger)
        XCTAssertFalse(JSONValue.number(3.25).isInteger)
        XCTAssertFalse(JSONValue.number(.infinity).isInteger)
        XCTAssertFalse(JSONValue.string("3").isInteger)
    }

    func testStringSubscriptReadsObjectMembers() {
        let value: JSONValue = ["inputs": ["duration": 5]]
        XCTAssertEqual(value["inputs"]?["duration"], 5)
        XCTAssertNil(value["missing"])
        XCTAssertNil(JSONValue.array([1])["inputs"])
    }

    func testIntSubscriptReadsArrayElementsAndIsNilOutOfBounds() {
        let value: JSONValue = ["a", "b"]
        XCTAssertEqual(value[1], "b")
        XCTAssertNil(value[2])
        XCTAssertNil(value[-1])
        XCTAssertNil(JSONValue.object(["0": 1])[0])
    }

    // MARK: Literals

    func testLiteralsBuildTheMatchingCases() {
        let value: JSONValue = ["n": nil, "b": true, "i": 3, "d": 0.5, "s": "x", "a": [1], "o": ["k": "v"]]
        XCTAssertEqual(value, .object([
            "n": .null, "b": .bool(true), "i": .number(3), "d": .number(0.5), "s": .string("x"),
            "a": .array([.number(1)]), "o": .object(["k": .string("v")]),
        ]))
    }

    func testDictionaryLiteralWithRepeatedKeyKeepsLastValue() {
        let value: JSONValue = ["a": 1, "a": 2]
        XCTAssertEqual(value, ["a": 2])
    }

    // MARK: Codable

    func testDecodingThroughJSONDecoderPreservesEveryCase() throws {
        let text = #"{"n":null,"b":false,"i":12,"d":-1.25,"s":"hé","a":[1,"x"],"o":{"k":[]}}"#
        let decoded = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        XCTAssertEqual(decoded, [
            "n": nil, "b": false, "i": 12, "d": -1.25, "s": "hé", "a": [1, "x"], "o": ["k": []],
        ])
    }

    func testDecodingKeepsBooleansDistinctFromNumbers() throws {
        let decoded = try JSONDecoder().decode([JSONValue].self, from: Data("[true, 1, 0, false]".utf8))
        XCTAssertEqual(decoded, [.bool(true), .number(1), .number(0), .bool(false)])
    }

    func testDecodingKeepsIntegersExactUpToTwoToThe53() throws {
        let text = "[9007199254740991, 9007199254740992, -9007199254740992]"
        let decoded = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        XCTAssertEqual(decoded[0]?.intValue, 9_007_199_254_740_991)
        XCTAssertEqual(decoded[1]?.intValue, 9_007_199_254_740_992)
        XCTAssertEqual(decoded[2]?.intValue, -9_007_199_254_740_992)
    }

    func testEncodingWritesIntegersWithoutFraction() throws {
        let data = try JSONEncoder().encode(JSONValue.array([3, 2.5, -0.0]))
        XCTAssertEqual(String(decoding: data, as: UTF8.self), "[3,2.5,0]")
    }

    func testCodableRoundTripIsLossless() throws {
        let original: JSONValue = ["a": [1, 2.5, "three", nil, true], "b": ["c": ["d": -4]]]
        let data = try JSONEncoder().encode(original)
        XCTAssertEqual(try JSONDecoder().decode(JSONValue.self, from: data), original)
    }

    func testJSONValueWorksAsACodableMember() throws {
        struct Envelope: Codable, Equatable {
            var id: String
            var payload: JSONValue
        }
        let envelope = Envelope(id: "e1", payload: ["seed": 7, "tags": ["x"]])
        let data = try JSONEncoder().encode(envelope)
        XCTAssertEqual(try JSONDecoder().decode(Envelope.self, from: data), envelope)
    }

    func testDescriptionIsTheCanonicalSerialization() {
        let value: JSONValue = ["b": 1, "a": [true, nil]]
        XCTAssertEqual(value.description, #"{"a":[true,null],"b":1}"#)
    }
}
