import XCTest
@testable import SwitchyardHost

/// "Did you mean …?": close enough to be the name meant, far enough not to guess.
final class NameSuggestionTests: XCTestCase {
    let presets = ["ugc-product-clip", "storyboard-builder", "talking-clip", "image-to-video"]

    func testATypoIsAnsweredWithTheNameMeant() {
        XCTAssertEqual(NameSuggestion.closest(to: "ugc-product-clp", among: presets), ["ugc-product-clip"])
        XCTAssertEqual(NameSuggestion.closest(to: "jbos", among: ["jobs", "runs", "engines"]), ["jobs"], "two swapped letters are one edit")
        XCTAssertEqual(NameSuggestion.closest(to: "Echo", among: ["echo", "fal"]), ["echo"], "case does not matter")
    }

    func testADistinctivePrefixIsEnough() {
        XCTAssertEqual(NameSuggestion.closest(to: "story", among: presets), ["storyboard-builder"])
    }

    func testNothingCloseMeansNoSuggestion() {
        XCTAssertEqual(NameSuggestion.closest(to: "banana", among: presets), [])
        XCTAssertEqual(NameSuggestion.sentence(for: "banana", among: presets), "")
        XCTAssertEqual(NameSuggestion.closest(to: "", among: presets), [])
    }

    func testTheSentenceNamesAtMostTwo() {
        XCTAssertEqual(NameSuggestion.sentence(for: "rund", among: ["runs", "run", "jobs", "plan"]), " Did you mean run or runs?")
    }

    func testEditDistanceCountsTyposOnce() {
        XCTAssertEqual(NameSuggestion.editDistance("kitten", "sitting"), 3)
        XCTAssertEqual(NameSuggestion.editDistance("ab", "ba"), 1)
        XCTAssertEqual(NameSuggestion.editDistance("", "abc"), 3)
    }
}
