import Foundation
import XCTest
@testable import SwitchyardJSON

/// Bounds that keep hostile or pathological input from exhausting time or stack.
final class JSONResourceLimitTests: XCTestCase {
    private func nestedArrays(depth: Int) -> JSONValue {
        var value: JSONValue = []
        for _ in 1..<depth { value = [value] }
        return value
    }

    /// Runs `body` on a thread with a small stack; a stack overflow crashes the test run.
    private func onSmallStack(_ body: @escaping @Sendable () -> Void) {
        let finished = DispatchSemaphore(value: 0)
        let thread = Thread {
            body()
            finished.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
        XCTAssertEqual(finished.wait(timeout: .now() + 120), .success)
    }

    /// Every level tries both alternatives, and both fail at the leaf: work grows about
    /// 2.2-fold per level (45,830 subschema applications at depth 8).
    private let exponentialSchema: JSONValue = [
        "type": "array", "items": ["anyOf": [["$ref": "#"], ["oneOf": [["$ref": "#"], false]]]],
    ]

    private func arraysAroundALeaf(depth: Int) -> JSONValue {
        var value: JSONValue = [1]
        for _ in 0..<depth { value = [value] }
        return value
    }

    func testExponentialAlternativesStopAtTheEvaluationBudget() throws {
        let schema = try compiledSchema(exponentialSchema)
        let found = schema.validate(arraysAroundALeaf(depth: 8), stepLimit: 20_000)
        XCTAssertEqual(found, [SchemaViolation(
            path: "$", keyword: "complexity",
            message: "validation gave up after 20000 schema evaluations; the value is too complex to check against this schema")])
    }

    func testSameValidationWithinTheBudgetReportsTheRealViolation() throws {
        let schema = try compiledSchema(exponentialSchema)
        XCTAssertEqual(schema.validate(arraysAroundALeaf(depth: 8), stepLimit: 100_000).map(\.keyword), ["anyOf"])
    }

    func testOrdinaryValidationStaysWellWithinTheBudget() throws {
        let schema = try compiledSchema(["type": "array", "items": ["type": "object", "properties": ["a": ["type": "integer"]]]])
        let instance = JSONValue.array(Array(repeating: ["a": 1], count: 1_000))
        XCTAssertEqual(schema.validate(instance, stepLimit: 5_000), [])
    }

    func testMaximallyNestedDocumentIsHandledOnASmallStack() throws {
        let depth = JSONParser.maximumDepth
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        let schema = try compiledSchema(["type": "array", "items": ["$ref": "#"]])
        let defaults = try compiledSchema(["items": ["$ref": "#"], "properties": ["a": ["default": 1]]])
        // Written on the thread, read after the semaphore: never accessed concurrently.
        nonisolated(unsafe) var keywords: [String] = []
        nonisolated(unsafe) var roundTrips = false
        onSmallStack {
            guard let value = try? JSONValue(parsing: Data(text.utf8)) else { return }
            keywords = schema.validate(value).map(\.keyword)
            roundTrips = (try? JSONValue(parsing: defaults.applyingDefaults(to: value).serialized())) == value
        }
        XCTAssertEqual(keywords, ["depth"])
        XCTAssertTrue(roundTrips)
    }
}
