import XCTest
@testable import SwitchyardHost
final class T: XCTestCase { func testNothing() {} }
