import Foundation
import XCTest
import ZIPFoundation
@testable import SwitchyardHost

final class PluginInstallerTests: TemporaryDirectoryTestCase {
    var paths: YardPaths!
    var publisher: PublisherKeyFile!

    override func setUpWithError() throws {
        try super.setUpWithError()
        paths = YardPaths(home: dir.appendingPathComponent("home"))
        publisher = PublisherKeyFile.generate(publisher: "Test Publisher")
    }

    /// An installer that trusts `publisher` (as `yard plugin trust` would).
    func installer(trusting keys: [PublisherKeyFile]? = nil) throws -> PluginInstaller {
        let keysDir = paths.trustedKeysDirectory
        try FileManager.default.createDirectory(at: keysDir, withIntermediateDirectories: true)
        for key in keys ?? [publisher] { try JSONEncoder().encode(key.publicOnly).write(to: keysDir.appendingPathComponent("\(key.keyID).json")) }
        return PluginInstaller(paths: paths, registryDirectory: nil)
    }

    func pack(_ id: String, version: String? = nil, key: PublisherKeyFile?) throws -> URL {
        let staged = Build.plugins.appendingPathComponent(id)
        let template = dir.appendingPathComponent("\(id)-\(version ?? "x")-template.json")
        try FileManager.default.copyItem(at: staged.appendingPathComponent("plugin.json"), to: template)
        if let version { try editManifest(template) { $0["version"] = version } }
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: template)) as! [String: Any]
        let out = dir.appendingPathComponent("\(id)-\(version ?? "x")-\(UUID().uuidString.prefix(4)).yardpkg")
        try PluginPackage.pack(manifestURL: template, library: staged.appendingPathComponent(manifest["library"] as! String), output: out, key: key)
        return out
    }

    func testSignedPackageInstallsAndIsRecordedInTheLockFile() throws {
        let package = try pack("c-minimal", key: publisher)
        let report = try installer().install(package: package, allowUnsigned: false)
        XCTAssertEqual(report.id, "c-minimal")
        XCTAssertFalse(report.unsigned)
        let lock = PluginLockFile.load(paths.lockFile)
        let entry = try XCTUnwrap(lock.plugins["c-minimal"])
        XCTAssertEqual(entry.signer, "Test Publisher (\(publisher.keyID))")
        XCTAssertEqual(entry.packageSHA256, try PluginLoader.sha256(of: package))
        let installed = paths.pluginsDirectory.appendingPathComponent("c-minimal/plugin.json")
        XCTAssertNoThrow(try PluginLoader.inspect(manifestURL: installed))
        XCTAssertEqual(entry.librarySHA256, try PluginLoader.sha256(of: installed.deletingLastPathComponent().appendingPathComponent("libSyCMinimal.so")))
    }

    func testUnsignedPackageNeedsTheExplicitFlag() throws {
        let package = try pack("c-minimal", key: nil)
        XCTAssertRefusal(.pluginUnsigned) { _ = try installer().install(package: package, allowUnsigned: false) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: paths.pluginsDirectory.appendingPathComponent("c-minimal").path))
        let report = try installer().install(package: package, allowUnsigned: true)
        XCTAssertTrue(report.unsigned)
        XCTAssertEqual(PluginLockFile.load(paths.lockFile).plugins["c-minimal"]?.unsigned, true)
    }

    func testSignatureByAnUntrustedKeyIsRefused() throws {
        let stranger = PublisherKeyFile.generate(publisher: "Stranger")
        let package = try pack("c-minimal", key: stranger)
        XCTAssertRefusal(.pluginSignatureInvalid) { _ = try installer().install(package: package, allowUnsigned: true) }
    }

    func testManifestChangedAfterSigningIsRefused() throws {
        let package = try pack("c-minimal", key: publisher)
        try rewrite(package, entry: "plugin.json") { data in
            var object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            object["network"] = ["hosts": ["attacker.example"]]
            return try JSONSerialization.data(withJSONObject: object)
        }
        XCTAssertRefusal(.pluginSignatureInvalid) { _ = try installer().install(package: package, allowUnsigned: false) }
    }

    func testLibraryChangedInsideASignedPackageIsRefused() throws {
        let package = try pack("c-minimal", key: publisher)
        try rewrite(package, entry: "libSyCMinimal.so") { data in data + Data([0x90]) }
        XCTAssertRefusal(.pluginCorrupt) { _ = try installer().install(package: package, allowUnsigned: false) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: paths.pluginsDirectory.appendingPathComponent("c-minimal").path),
                       "nothing is moved into place when a check fails")
    }

    func testPackageWithAPathEntryIsRefused() throws {
        let package = try pack("c-minimal", key: publisher)
        let archive = try Archive(url: package, accessMode: .update)
        let payload = Data("x".utf8)
        try archive.addEntry(with: "../escape.sh", type: .file, uncompressedSize: Int64(payload.count)) { _, _ in payload }
        XCTAssertRefusal(.packageInvalid) { _ = try installer().install(package: package, allowUnsigned: true) }
    }

    func testFileThatIsNotAPackageIsRefused() throws {
        let bogus = dir.appendingPathComponent("bogus.yardpkg")
        try Data("hello".utf8).write(to: bogus)
        XCTAssertRefusal(.packageInvalid) { _ = try installer().install(package: bogus, allowUnsigned: true) }
    }

    func testInstallingANewerVersionUpgradesAndRemoveDeletes() throws {
        let inst = try installer()
        _ = try inst.install(package: try pack("c-minimal", key: publisher), allowUnsigned: false)
        let v2 = try pack("c-minimal", version: "1.1.0", key: publisher)
        let report = try inst.install(package: v2, allowUnsigned: false)
        XCTAssertEqual(report.previousVersion, "1.0.0")
        XCTAssertEqual(report.version, "1.1.0")
        XCTAssertEqual(PluginLockFile.load(paths.lockFile).plugins["c-minimal"]?.version, "1.1.0")
        XCTAssertEqual(try inst.remove(id: "c-minimal"), "1.1.0")
        XCTAssertNil(PluginLockFile.load(paths.lockFile).plugins["c-minimal"])
        XCTAssertRefusal(.pluginNotFound) { _ = try inst.remove(id: "c-minimal") }
    }

    func testIndexSelectsTheNewestReleaseThatFitsThisHost() throws {
        let index = PluginIndex(schemaVersion: 1, plugins: [PluginIndex.Plugin(id: "runpod", description: nil, versions: [
            .init(version: "1.2.0", abi: "1.0", packages: [.init(platform: HostPlatform.platform, toolchain: "c", url: "a.yardpkg", sha256: "aa")]),
            .init(version: "2.0.0", abi: "2.0", packages: [.init(platform: HostPlatform.platform, toolchain: "c", url: "b.yardpkg", sha256: "bb")]),
            .init(version: "1.3.0", abi: "1.0", packages: [.init(platform: "macos-arm64", toolchain: "c", url: "c.yardpkg", sha256: "cc")]),
        ])])
        let (release, package) = try index.select(id: "runpod")
        XCTAssertEqual(release.version, "1.2.0")
        XCTAssertEqual(package.url, "a.yardpkg")
        XCTAssertRefusal(.pluginIncompatible) { _ = try index.select(id: "runpod", version: "2.0.0") }
        XCTAssertRefusal(.pluginNotFound) { _ = try index.select(id: "kling") }
    }

    /// Replaces one entry of a zip package.
    func rewrite(_ package: URL, entry name: String, _ transform: (Data) throws -> Data) throws {
        let archive = try Archive(url: package, accessMode: .update)
        let entry = try XCTUnwrap(archive[name])
        var data = Data()
        _ = try archive.extract(entry) { data.append($0) }
        let changed = try transform(data)
        try archive.remove(entry)
        try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(changed.count)) { position, size in
            changed.subdata(in: Int(position)..<Int(position) + size)
        }
    }
}
