import Foundation
import XCTest
@testable import SwitchyardHost

/// The `yard plugin` commands as a user runs them: real processes, own YARD_HOME.
final class YardCLITests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }

    func testListShowsTheBundledPluginsAsJSON() throws {
        let result = try yard(["plugin", "list", "--json"], home: home)
        XCTAssertEqual(result.status, 0, result.stderr)
        let rows = try XCTUnwrap(result.json as? [[String: Any]])
        let byID = Dictionary(uniqueKeysWithValues: rows.map { ($0["id"] as! String, $0) })
        XCTAssertEqual(byID["echo"]?["capabilities"] as? [String], ["debug.echo"])
        XCTAssertEqual(byID["echo"]?["source"] as? String, "bundled")
        XCTAssertEqual(byID["echo"]?["status"] as? String, "ok")
        XCTAssertEqual(byID["c-minimal"]?["abi"] as? String, "1.0")
        for key in ["id", "version", "abi", "capabilities", "source", "status"] { XCTAssertNotNil(byID["echo"]?[key], key) }
    }

    func testEchoPassesEveryConformanceCheck() throws {
        let result = try yard(["plugin", "test", "echo", "--standin", "--json"], home: home)
        let report = try XCTUnwrap(result.json as? [String: Any], result.stdout + result.stderr)
        let failed = (report["checks"] as? [[String: Any]] ?? []).filter { $0["ok"] as? Bool != true }
        XCTAssertEqual(failed.count, 0, "\(failed)")
        XCTAssertEqual(report["passed"] as? Int, 3 + ConformanceSuite.childChecks.count)
        XCTAssertEqual(result.status, 0)
    }

    func testTheCPluginPassesEveryConformanceCheck() throws {
        let result = try yard(["plugin", "test", "c-minimal", "--standin", "--json"], home: home)
        XCTAssertEqual(result.status, 0, result.stdout)
        XCTAssertEqual((result.json as? [String: Any])?["failed"] as? Int, 0)
    }

    func testAPluginThatCrashesInItsEntryIsReportedNotFatal() throws {
        let manifest = try fixturePlugin("crash_in_entry", in: dir)
        let result = try yard(["plugin", "test", manifest.path, "--json"], home: home)
        XCTAssertEqual(result.status, 1)
        let checks = try XCTUnwrap((result.json as? [String: Any])?["checks"] as? [[String: Any]], result.stdout)
        let entry = try XCTUnwrap(checks.first { $0["id"] as? String == "entry.descriptor" })
        XCTAssertEqual(entry["ok"] as? Bool, false)
        XCTAssertTrue((entry["detail"] as? String ?? "").contains("signal 11"), "\(entry)")
        XCTAssertEqual(checks.first { $0["id"] as? String == "symbols.entry" }?["ok"] as? Bool, true,
                       "checks that do not call the entry still run and pass")
    }

    func testAPluginThatHangsInItsEntryIsReportedAsHung() throws {
        let manifest = try fixturePlugin("hang_in_entry", in: dir)
        let start = Date()
        let result = try yard(["plugin", "test", manifest.path, "--json", "--timeout", "1"], home: home)
        XCTAssertEqual(result.status, 1)
        let checks = try XCTUnwrap((result.json as? [String: Any])?["checks"] as? [[String: Any]])
        let entry = try XCTUnwrap(checks.first { $0["id"] as? String == "entry.descriptor" })
        XCTAssertTrue((entry["detail"] as? String ?? "").contains("hung"), "\(entry)")
        XCTAssertLessThan(Date().timeIntervalSince(start), 60)
    }

    func testRefusalsCarryCodeAndRemediation() throws {
        let human = try yard(["plugin", "info", "no-such-plugin"], home: home)
        XCTAssertEqual(human.status, 1)
        XCTAssertTrue(human.stderr.contains("error[PLUGIN_NOT_FOUND]"), human.stderr)
        XCTAssertTrue(human.stderr.contains("fix:"), human.stderr)
        let json = try yard(["plugin", "info", "no-such-plugin", "--json"], home: home)
        let error = try XCTUnwrap((json.json as? [String: Any])?["error"] as? [String: Any])
        XCTAssertEqual(error["code"] as? String, "PLUGIN_NOT_FOUND")
        XCTAssertNotNil(error["remediation"])
    }

    func testPublishFlowKeygenPackSignTrustInstall() throws {
        let keys = dir.appendingPathComponent("keys")
        XCTAssertEqual(try yard(["plugin", "keygen", "--publisher", "Acme Media", "--out", keys.path], home: home).status, 0)
        let privateKey = keys.appendingPathComponent("acme-media.private.json")
        let permissions = try FileManager.default.attributesOfItem(atPath: privateKey.path)[.posixPermissions] as? Int
        XCTAssertEqual(permissions, 0o600)
        let package = dir.appendingPathComponent("c-minimal.yardpkg")
        let packed = try yard(["plugin", "pack", "--manifest", Build.repository.appendingPathComponent("Plugins/c-minimal/plugin.json").path,
                               "--library", Build.binDirectory.appendingPathComponent("libSyCMinimal.so").path, "--out", package.path], home: home)
        XCTAssertEqual(packed.status, 0, packed.stderr)
        XCTAssertEqual(try yard(["plugin", "sign", package.path, "--key", privateKey.path], home: home).status, 0)

        let untrusted = try yard(["plugin", "install", package.path, "--json"], home: home)
        XCTAssertEqual(untrusted.status, 1)
        XCTAssertEqual(((untrusted.json as? [String: Any])?["error"] as? [String: Any])?["code"] as? String, "PLUGIN_SIGNATURE_INVALID")

        XCTAssertEqual(try yard(["plugin", "trust", keys.appendingPathComponent("acme-media.public.json").path], home: home).status, 0)
        let installed = try yard(["plugin", "install", package.path], home: home)
        XCTAssertEqual(installed.status, 0, installed.stderr)
        XCTAssertTrue(installed.stdout.contains("signed by Acme Media"), installed.stdout)
        let rows = try XCTUnwrap(try yard(["plugin", "list", "--json"], home: home).json as? [[String: Any]])
        XCTAssertTrue(rows.contains { $0["id"] as? String == "c-minimal" && $0["source"] as? String == "user" && $0["status"] as? String == "ok" })
        XCTAssertEqual(try yard(["plugin", "test", "c-minimal"], home: home).status, 0)
    }

    func testInstallByIDFromAnIndexVerifiesThePackageHash() throws {
        let package = dir.appendingPathComponent("c-minimal.yardpkg")
        XCTAssertEqual(try yard(["plugin", "pack", "--manifest", Build.repository.appendingPathComponent("Plugins/c-minimal/plugin.json").path,
                                 "--library", Build.binDirectory.appendingPathComponent("libSyCMinimal.so").path, "--out", package.path], home: home).status, 0)
        func writeIndex(sha: String) throws -> URL {
            let index: [String: Any] = ["schema_version": 1, "plugins": [["id": "c-minimal", "versions": [
                ["version": "1.0.0", "abi": "1.0", "packages": [["platform": HostPlatform.platform, "toolchain": "c", "url": "c-minimal.yardpkg", "sha256": sha]]]]]]]
            let url = dir.appendingPathComponent("index.json")
            try JSONSerialization.data(withJSONObject: index).write(to: url)
            return url
        }
        let wrong = try yard(["plugin", "install", "c-minimal", "--index", writeIndex(sha: String(repeating: "0", count: 64)).path, "--allow-unsigned", "--json"], home: home)
        XCTAssertEqual(((wrong.json as? [String: Any])?["error"] as? [String: Any])?["code"] as? String, "PLUGIN_CORRUPT")
        let right = try yard(["plugin", "install", "c-minimal", "--index", writeIndex(sha: PluginLoader.sha256(of: package)).path, "--allow-unsigned"], home: home)
        XCTAssertEqual(right.status, 0, right.stderr)
    }
}
