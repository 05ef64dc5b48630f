import Crypto
import Foundation
import XCTest
@testable import SwitchyardHost

final class PluginRegistryTests: TemporaryDirectoryTestCase {
    func registry(extra: [URL] = [], bundled: URL? = nil) -> PluginRegistry {
        PluginRegistry(paths: YardPaths(home: dir.appendingPathComponent("home")), extraPaths: extra.map(\.path),
                       environment: [:], bundled: bundled)
    }

    func testListingNeverLoadsCode() throws {
        // A "library" that would fail to load: listing must still show it as ok,
        // because it only reads manifests and hashes.
        let root = dir.appendingPathComponent("plugins")
        let manifest = try copyPlugin("echo", to: root)
        try Data("not an ELF".utf8).write(to: manifest.deletingLastPathComponent().appendingPathComponent("libSyEcho.so"))
        try refreshSHA256(manifest)
        let rows = registry(extra: [root]).list()
        XCTAssertEqual(rows.map(\.id), ["echo"])
        XCTAssertEqual(rows.first?.status, .ok)
    }

    func testChangedLibraryIsReportedCorruptDespiteTheCache() throws {
        let root = dir.appendingPathComponent("plugins")
        let manifest = try copyPlugin("c-minimal", to: root)
        XCTAssertEqual(registry(extra: [root]).list().first?.status, .ok)
        let library = manifest.deletingLastPathComponent().appendingPathComponent("libSyCMinimal.so")
        var bytes = try Data(contentsOf: library)
        bytes.append(contentsOf: [1, 2, 3])
        try bytes.write(to: library)
        let row = try XCTUnwrap(registry(extra: [root]).list().first)
        XCTAssertEqual(row.status, .corrupt)
        XCTAssertEqual(row.problem?.code, .pluginCorrupt)
    }

    func testScanCacheIsWrittenAndReused() throws {
        let root = dir.appendingPathComponent("plugins")
        try copyPlugin("echo", to: root)
        let reg = registry(extra: [root])
        _ = reg.list()
        let cacheFile = reg.paths.scanCacheFile
        XCTAssertTrue(FileManager.default.fileExists(atPath: cacheFile.path))
        let before = try FileManager.default.attributesOfItem(atPath: cacheFile.path)[.modificationDate] as? Date
        Thread.sleep(forTimeInterval: 0.02)
        _ = reg.list()
        let after = try FileManager.default.attributesOfItem(atPath: cacheFile.path)[.modificationDate] as? Date
        XCTAssertEqual(before, after, "an unchanged tree must not rewrite the cache")
    }

    func testTwoPluginsWithTheSameIDAtTheSamePrecedenceConflict() throws {
        let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b")
        try copyPlugin("echo", to: a)
        try copyPlugin("echo", to: b)
        let reg = registry(extra: [a, b])
        XCTAssertEqual(reg.list().map(\.status), [.conflict, .conflict])
        XCTAssertRefusal(.pluginDuplicateID) { _ = try reg.resolve("echo") }
    }

    func testUserInstalledPluginShadowsTheBundledOne() throws {
        let bundled = dir.appendingPathComponent("bundled")
        try copyPlugin("echo", to: bundled)
        let home = dir.appendingPathComponent("home/plugins")
        let userManifest = try copyPlugin("echo", to: home)
        try recordInLockFile(userManifest)
        let reg = registry(bundled: bundled)
        let rows = reg.list()
        XCTAssertEqual(Set(rows.map { "\($0.source.rawValue):\($0.status.rawValue)" }), ["user:ok", "bundled:shadowed"])
        XCTAssertEqual(try reg.resolve("echo").path, userManifest.path)
    }

    /// What `yard plugin install` records for a plugin in $YARD_HOME/plugins (loads check it).
    func recordInLockFile(_ manifestURL: URL) throws {
        let paths = YardPaths(home: dir.appendingPathComponent("home"))
        let data = try Data(contentsOf: manifestURL)
        let manifest = try PluginManifest.parse(data, source: manifestURL.path)
        var lock = PluginLockFile.load(paths.lockFile)
        lock.plugins[manifest.id] = PluginLockFile.Entry(version: manifest.version, abi: manifest.abi, platform: manifest.platform,
                                                         librarySHA256: manifest.sha256, manifestSHA256: PluginInstaller.hex(SHA256.hash(data: data)),
                                                         packageSHA256: "", signer: nil, unsigned: true, source: "test", installedAt: "")
        try lock.save(paths.lockFile)
    }

    func testUnknownIDIsPluginNotFound() {
        XCTAssertRefusal(.pluginNotFound) { _ = try registry().resolve("nothing-here") }
    }
}
