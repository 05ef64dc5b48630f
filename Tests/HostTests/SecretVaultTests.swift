import Foundation
import XCTest
@testable import SwitchyardHost

final class SecretVaultTests: TemporaryDirectoryTestCase {
    override var needsStagedPlugins: Bool { false }

    func testStoredValueRoundTripsAndIsNotPlainTextOnDisk() throws {
        let vault = SecretVault(paths: YardPaths(home: dir), environment: [:])
        try vault.set("FAL_KEY", value: "fal-secret-value-123")
        XCTAssertEqual(vault.value(of: "FAL_KEY"), "fal-secret-value-123")
        let onDisk = try String(contentsOf: dir.appendingPathComponent("secrets.json"), encoding: .utf8)
        XCTAssertFalse(onDisk.contains("fal-secret-value-123"))
        let keyPermissions = try FileManager.default.attributesOfItem(atPath: YardPaths(home: dir).vaultKeyFile.path)[.posixPermissions] as? Int
        XCTAssertEqual(keyPermissions, 0o600)
        XCTAssertEqual(vault.names().map(\.name), ["FAL_KEY"])
    }

    func testEnvironmentOverridesTheStoredValue() throws {
        try SecretVault(paths: YardPaths(home: dir), environment: [:]).set("FAL_KEY", value: "stored")
        XCTAssertEqual(SecretVault(paths: YardPaths(home: dir), environment: ["FAL_KEY": "from-env"]).value(of: "FAL_KEY"), "from-env")
    }

    func testAnotherKeyCannotReadTheValues() throws {
        try SecretVault(paths: YardPaths(home: dir), environment: [:]).set("FAL_KEY", value: "stored")
        let otherKey = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        XCTAssertNil(SecretVault(paths: YardPaths(home: dir), environment: ["YARD_SECRET_KEY": otherKey]).value(of: "FAL_KEY"))
    }

    func testRemoveForgetsTheValue() throws {
        let vault = SecretVault(paths: YardPaths(home: dir), environment: [:])
        try vault.set("KLING_SECRET_KEY", value: "v")
        XCTAssertTrue(try vault.remove("KLING_SECRET_KEY"))
        XCTAssertNil(vault.value(of: "KLING_SECRET_KEY"))
        XCTAssertFalse(try vault.remove("KLING_SECRET_KEY"))
    }

    func testLowercaseNameIsRefused() {
        XCTAssertRefusal(.usage) { try SecretVault(paths: YardPaths(home: dir), environment: [:]).set("fal_key", value: "v") }
    }
}
