import XCTest
import SwitchyardJSON
final class PlaceholderJSONTests: XCTestCase { func testParses() throws { XCTAssertEqual(try JSONValue(parsing: Data("1".utf8)), .number(1)) } }
