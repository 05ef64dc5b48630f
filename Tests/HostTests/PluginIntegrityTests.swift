import Crypto
import Foundation
import XCTest
import ZIPFoundation
@testable import SwitchyardHost

/// An installed plugin must match the lock file on every load (a plugin.json
/// widened in place is MANIFEST_MISMATCH), and a package is measured before
/// it is unpacked and its signature checked before any payload is written.
final class PluginIntegrityTests: TemporaryDirectoryTestCase {
    var paths: YardPaths!
    var publisher: PublisherKeyFile!

    override func setUpWithError() throws {
        try super.setUpWithError()
        paths = YardPaths(home: dir.appendingPathComponent("home"))
        publisher = PublisherKeyFile.generate(publisher: "Test Publisher")
        try PrivateFiles.makeDirectory(paths.trustedKeysDirectory)
        try JSONEncoder().encode(publisher.publicOnly).write(to: paths.trustedKeysDirectory.appendingPathComponent("\(publisher.keyID).json"))
    }

    var installer: PluginInstaller { PluginInstaller(paths: paths, registryDirectory: nil) }

    func pack(_ id: String, key: PublisherKeyFile?) throws -> URL {
        let staged = Build.plugins.appendingPathComponent(id)
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: staged.appendingPathComponent("plugin.json"))) as! [String: Any]
        let out = dir.appendingPathComponent("\(id)-\(UUID().uuidString.prefix(4)).yardpkg")
        try PluginPackage.pack(manifestURL: staged.appendingPathComponent("plugin.json"), library: staged.appendingPathComponent(manifest["library"] as! String),
                               output: out, key: key)
        return out
    }

    func installedEcho() throws -> URL {
        _ = try installer.install(package: try pack("echo", key: publisher), allowUnsigned: false)
        return paths.pluginsDirectory.appendingPathComponent("echo/plugin.json")
    }

    func registry() -> PluginRegistry { PluginRegistry(paths: paths, environment: [:], bundled: nil) }

    func engine() throws -> JobEngine {
        JobEngine(store: try SQLiteJobStore(path: paths.jobStoreFile), paths: paths, registry: registry(),
                  catalog: try CapabilityCatalog.load(directory: Build.repository.appendingPathComponent("Registry/capabilities")),
                  secrets: EnvironmentSecrets(environment: [:]))
    }

    // MARK: every load

    func testAnInstalledPluginLoadsWhileItMatchesTheLockFile() throws {
        _ = try installedEcho()
        XCTAssertEqual(registry().list().first?.status, .ok)
        XCTAssertNoThrow(try engine().plugin("echo"))
    }

    func testAManifestWidenedInPlaceIsRefusedOnLoad() throws {
        let manifest = try installedEcho()
        try editManifest(manifest) { object in
            var secrets = object["secrets"] as? [[String: Any]] ?? []
            secrets.append(["name": "RUNPOD_API_KEY", "required": false])
            object["secrets"] = secrets
            object["network"] = ["hosts": ["attacker.example"]]
        }
        let row = try XCTUnwrap(registry().list().first)
        XCTAssertEqual(row.status, .corrupt)
        XCTAssertEqual(row.problem?.code, .manifestMismatch)
        XCTAssertRefusal(.manifestMismatch) { _ = try self.engine().plugin("echo") }
        XCTAssertRefusal(.manifestMismatch) {
            _ = try PluginLoader.inspect(manifestURL: manifest, lockExpectation: self.registry().lockExpectation(for: manifest))
        }
    }

    func testAnEditThatKeepsSizeAndTimestampIsCaughtDespiteTheScanCache() throws {
        let manifest = try installedEcho()
        XCTAssertEqual(registry().list().first?.status, .ok, "the scan cache now holds an ok row")
        let attributes = try FileManager.default.attributesOfItem(atPath: manifest.path)
        var text = try String(contentsOf: manifest, encoding: .utf8)
        let name = try XCTUnwrap(text.range(of: "\"Echo"))
        text.replaceSubrange(name, with: "\"Ech0")
        try text.write(to: manifest, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.modificationDate: attributes[.modificationDate] as Any], ofItemAtPath: manifest.path)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: manifest.path)[.size] as? Int, attributes[.size] as? Int)
        XCTAssertEqual(registry().list().first?.problem?.code, .manifestMismatch)
        XCTAssertRefusal(.manifestMismatch) { _ = try self.engine().plugin("echo") }
    }

    func testAPluginFolderDroppedIntoTheInstallRootWithoutInstallIsRefused() throws {
        try FileManager.default.createDirectory(at: paths.pluginsDirectory, withIntermediateDirectories: true)
        try copyPlugin("echo", to: paths.pluginsDirectory)
        XCTAssertEqual(registry().list().first?.problem?.code, .manifestMismatch)
        XCTAssertRefusal(.manifestMismatch) { _ = try self.engine().plugin("echo") }
    }

    func testAPluginOnAnExplicitPathIsNotHeldToTheLockFile() throws {
        let elsewhere = dir.appendingPathComponent("dev")
        let manifest = try copyPlugin("echo", to: elsewhere)
        XCTAssertNoThrow(try PluginLoader.inspect(manifestURL: manifest, lockExpectation: registry().lockExpectation(for: manifest)))
    }

    // MARK: packages

    func testADeclaredZipBombIsRefusedBeforeAnythingIsInflated() throws {
        let package = try pack("c-minimal", key: publisher)
        var limits = PluginPackage.Limits()
        limits.maxLibraryBytes = 1 << 10
        XCTAssertRefusal(.packageTooLarge) { _ = try PluginPackage.open(package, limits: limits) }
    }

    func testAnEntryThatInflatesPastItsLimitStopsAtTheLimit() throws {
        // 64 MiB of zeros deflates to about 64 KiB; the manifest entry may hold at most 16 KiB.
        let package = dir.appendingPathComponent("bomb.yardpkg")
        let archive = try Archive(url: package, accessMode: .create)
        let size: Int64 = 64 << 20
        let chunk = Data(count: 1 << 20)
        try archive.addEntry(with: "plugin.json", type: .file, uncompressedSize: size, compressionMethod: .deflate) { position, length in
            chunk.prefix(length)
        }
        XCTAssertLessThan(try XCTUnwrap(FileManager.default.attributesOfItem(atPath: package.path)[.size] as? Int), 1 << 20)
        var limits = PluginPackage.Limits()
        limits.maxManifestBytes = 16 << 10
        XCTAssertRefusal(.packageTooLarge) { _ = try PluginPackage.open(package, limits: limits) }
        XCTAssertRefusal(.packageTooLarge) { _ = try self.installer.install(package: package, allowUnsigned: true) }
    }

    func testTooManyEntriesAreRefusedWithoutReadingThem() throws {
        let package = dir.appendingPathComponent("many.yardpkg")
        let archive = try Archive(url: package, accessMode: .create)
        for i in 0..<50 {
            let payload = Data("x".utf8)
            try archive.addEntry(with: "f\(i)", type: .file, uncompressedSize: Int64(payload.count)) { _, _ in payload }
        }
        XCTAssertRefusal(.packageInvalid) { _ = try self.installer.install(package: package, allowUnsigned: true) }
    }

    func testTheSignatureIsCheckedBeforeTheLibraryIsInflated() throws {
        // A package signed by a stranger whose library entry is also damaged:
        // the refusal is about the signature, so the library was never read.
        let stranger = PublisherKeyFile.generate(publisher: "Stranger")
        let package = try pack("c-minimal", key: stranger)
        try corruptLibraryData(package, name: "libSyCMinimal.so")
        XCTAssertRefusal(.pluginSignatureInvalid) { _ = try self.installer.install(package: package, allowUnsigned: false) }
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: paths.home.appendingPathComponent("tmp").path)) ?? []
        XCTAssertEqual(leftovers, [], "no staging folder is left behind")
        XCTAssertFalse(FileManager.default.fileExists(atPath: paths.pluginsDirectory.appendingPathComponent("c-minimal").path))
    }

    func testADamagedLibraryInATrustedPackageIsRefusedAndNothingIsInstalled() throws {
        let package = try pack("c-minimal", key: publisher)
        try corruptLibraryData(package, name: "libSyCMinimal.so")
        do {
            _ = try installer.install(package: package, allowUnsigned: false)
            XCTFail("a damaged package was installed")
        } catch let error as YardError {
            XCTAssertTrue([.packageInvalid, .pluginCorrupt].contains(error.code), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: paths.pluginsDirectory.appendingPathComponent("c-minimal").path))
    }

    /// Flips bytes in the middle of an entry's stored data (its CRC no longer
    /// matches), found through its local file header (PKWARE APPNOTE 4.3.7).
    func corruptLibraryData(_ package: URL, name: String) throws {
        var bytes = [UInt8](try Data(contentsOf: package))
        let nameBytes = Array(name.utf8)
        func u16(_ i: Int) -> Int { Int(bytes[i]) | Int(bytes[i + 1]) << 8 }
        func u32(_ i: Int) -> Int { u16(i) | u16(i + 2) << 16 }
        var start: Int?
        var i = 0
        while i + 30 < bytes.count {
            if bytes[i] == 0x50, bytes[i + 1] == 0x4B, bytes[i + 2] == 0x03, bytes[i + 3] == 0x04,
               u16(i + 26) == nameBytes.count, Array(bytes[(i + 30)..<(i + 30 + nameBytes.count)]) == nameBytes {
                start = i
                break
            }
            i += 1
        }
        let header = try XCTUnwrap(start, "no local header for \(name)")
        let data = header + 30 + u16(header + 26) + u16(header + 28)
        let middle = data + max(u32(header + 18), 256) / 2
        for j in middle..<(middle + 64) { bytes[j] ^= 0xFF }
        try Data(bytes).write(to: package)
    }
}
