import CPluginAPI
import Foundation
import XCTest
@testable import SwitchyardHost

/// The loader compares every struct_size with the frozen v1.0 size of its
/// struct (version.h), in this process and in the runner: a plugin built
/// against a later minor that appended fields loads; a smaller struct is refused.
final class ABILayoutTests: TemporaryDirectoryTestCase {
    func testFrozenV1_0SizesAreTheLayoutThatShipped() throws {
        guard MemoryLayout<UnsafeRawPointer>.size == 8 else { throw YardError("PLATFORM_UNSUPPORTED", "The pinned v1.0 sizes are LP64's; this host is not LP64.", remediation: "Pin the sizes for this data model in abi_layout.c and here.") }
        XCTAssertEqual(SY_PLUGIN_V1_0_SIZE, 96)
        XCTAssertEqual(SY_HOST_V1_0_SIZE, 72)
        XCTAssertEqual(SY_CALL_V1_0_SIZE, 48)
        XCTAssertEqual(SY_SINK_V1_0_SIZE, 24)
        XCTAssertEqual(SY_VERSION_V1_0_SIZE, 16)
        XCTAssertEqual(SY_EXTENSION_ESTIMATE_V1_0_SIZE, 16)
        XCTAssertEqual(SY_SERVICE_PROCESS_V1_0_SIZE, 48)
    }

    func testStructsWithFieldsALaterMinorAppendedLoadAndWork() throws {
        for isolation in [PluginIsolation.inProcess, .process] {
            let manifest = try fixturePlugin("struct_sizes", in: dir, folder: "larger-\(isolation)")
            let plugin = try PluginLoader.load(manifestURL: manifest, services: .none, isolation: isolation)
            let submit = plugin.call(.submit, request: requestData(["capability": "debug.ping", "inputs": [String: Any](), "config": [String: Any]()]))
            XCTAssertEqual(submit.status, SY_OK, "\(isolation)")
            let result = submit.json?["result"] as? [String: Any]
            XCTAssertEqual(result?["state"] as? String, "succeeded", "\(isolation)")
            let estimate = plugin.callExtension("sy.estimate/1", request: requestData(["capability": "debug.ping", "inputs": [String: Any]()]))
            XCTAssertEqual(estimate?.status, SY_OK, "\(isolation): an estimate table larger than v1.0's is callable")
            XCTAssertEqual(estimate?.json?["amount_minor"] as? Int, 7, "\(isolation)")
            plugin.stopRunner()
        }
    }

    func testPluginStructSmallerThanV1_0IsPluginCorrupt() throws {
        for isolation in [PluginIsolation.inProcess, .process] {
            let manifest = try fixturePlugin("struct_sizes", in: dir, folder: "smaller-\(isolation)", defines: ["SMALLER_PLUGIN": "1"])
            do {
                _ = try PluginLoader.load(manifestURL: manifest, services: .none, isolation: isolation)
                XCTFail("\(isolation): loaded a sy_plugin_t smaller than v1.0's")
            } catch let error as YardError {
                XCTAssertEqual(error.code, .pluginCorrupt, "\(isolation): \(error)")
                XCTAssertTrue(error.message.contains("\(SY_PLUGIN_V1_0_SIZE - MemoryLayout<UnsafeRawPointer>.size) bytes"), error.message)
                XCTAssertTrue(error.message.contains("PluginAPI 1.0's \(SY_PLUGIN_V1_0_SIZE)"), error.message)
                XCTAssertFalse(error.remediation.isEmpty)
            }
        }
    }

    func testExtensionTableSmallerThanV1_0IsNeverCalled() throws {
        for isolation in [PluginIsolation.inProcess, .process] {
            let manifest = try fixturePlugin("struct_sizes", in: dir, folder: "table-\(isolation)", defines: ["SMALLER_TABLE": "1"])
            let plugin = try PluginLoader.load(manifestURL: manifest, services: .none, isolation: isolation)
            let estimate = plugin.callExtension("sy.estimate/1", request: requestData(["capability": "debug.ping", "inputs": [String: Any]()]))
            XCTAssertNotEqual(estimate?.status, SY_OK, "\(isolation): called through a table smaller than v1.0's")
            XCTAssertNil(estimate?.json?["amount_minor"], "\(isolation)")
            plugin.stopRunner()
        }
    }
}
