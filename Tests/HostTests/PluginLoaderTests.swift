import CPluginAPI
import Crypto
import Foundation
import XCTest
@testable import SwitchyardHost

final class PluginLoaderTests: TemporaryDirectoryTestCase {
    func testEchoRunsTheWholeJobModelThroughTheABI() throws {
        let manifest = try copyPlugin("echo", to: dir)
        let log = CollectingLogSink()
        let plugin = try PluginLoader.load(manifestURL: manifest, services: fullServices(root: dir.appendingPathComponent("artifacts"), log: log))
        let job: [String: Any] = ["id": "j1", "idempotency_key": "k1", "attempt": 1]

        let verdict = plugin.call(.validate, request: requestData(["capability": "debug.echo", "inputs": ["text": "hi"]]))
        XCTAssertEqual(verdict.status, SY_OK)
        XCTAssertEqual((verdict.json?["diagnostics"] as? [Any])?.count, 0)

        let submitted = plugin.call(.submit, request: requestData(["capability": "debug.echo", "inputs": ["text": "hi", "polls": 1], "job": job]), jobID: "j1")
        let ref = try XCTUnwrap(submitted.json?["ref"])
        var states: [String] = []
        var final: [String: Any] = [:]
        for _ in 0..<10 {
            final = try XCTUnwrap(plugin.call(.poll, request: requestData(["ref": ref, "job": job]), jobID: "j1").json)
            states.append(final["state"] as! String)
            if states.last == "succeeded" { break }
        }
        XCTAssertEqual(states, ["queued", "running", "succeeded"])
        let outputs = try XCTUnwrap(final["outputs"] as? [String: Any])
        let expected = SHA256.hash(data: Data("hi".utf8)).map { String(format: "%02x", $0) }.joined()
        XCTAssertEqual(outputs["sha256"] as? String, expected, "sy.crypto/1 sha256 through the ABI")
        XCTAssertEqual((outputs["file"] as? [String: Any])?["artifact"] as? String, "sha256:\(expected)", "sy.artifacts/1 put")
        XCTAssertEqual(try ArtifactDirectory(root: dir.appendingPathComponent("artifacts")).read(sha256: expected), Data("hi".utf8))
        XCTAssertTrue(log.all.contains { $0.contains("finished job j1") }, "sy.log/1 lines carry through: \(log.all)")

        let cancel = plugin.call(.cancel, request: requestData(["ref": ref, "job": job]))
        XCTAssertEqual(cancel.json?["outcome"] as? String, "already_finished")
        XCTAssertEqual(plugin.call(.health, request: requestData(["config": [String: Any]()])).json?["status"] as? String, "ok")
        XCTAssertEqual(plugin.callExtension("sy.estimate/1", request: requestData(["capability": "debug.echo", "inputs": ["text": "abc"]]))?.json?["amount_minor"] as? Int, 0)
        let reconciled = try XCTUnwrap(plugin.callExtension("sy.reconcile/1", request: requestData(["capability": "debug.echo", "inputs": ["text": "hi", "polls": 1], "job": job]))?.json)
        XCTAssertEqual((reconciled["ref"] as? [String: Any])?["key"] as? String, "k1", "reconcile finds the job by its idempotency key")
        XCTAssertNil(plugin.extensionTable("sy.unknown/1"))
    }

    func testEchoFailureCarriesItsStableCode() throws {
        let plugin = try PluginLoader.load(manifestURL: try copyPlugin("echo", to: dir), services: fullServices(root: dir))
        let submitted = plugin.call(.submit, request: requestData(["capability": "debug.echo", "inputs": ["text": "x", "polls": 0, "fail_with": "ENGINE_TIMEOUT"]]))
        let ref = try XCTUnwrap(submitted.json?["ref"])
        _ = plugin.call(.poll, request: requestData(["ref": ref]))
        let final = try XCTUnwrap(plugin.call(.poll, request: requestData(["ref": ref])).json)
        XCTAssertEqual(final["state"] as? String, "failed")
        XCTAssertEqual((final["error"] as? [String: Any])?["code"] as? String, "ENGINE_TIMEOUT")
    }

    func testMissingManifestIsPluginNotFound() {
        XCTAssertRefusal(.pluginNotFound) { _ = try PluginLoader.load(manifestURL: dir.appendingPathComponent("nope/plugin.json"), services: .none) }
    }

    func testMissingLibraryIsPluginNotFound() throws {
        let manifest = try copyPlugin("echo", to: dir)
        try FileManager.default.removeItem(at: manifest.deletingLastPathComponent().appendingPathComponent("libSyEcho.so"))
        XCTAssertRefusal(.pluginNotFound) { _ = try PluginLoader.load(manifestURL: manifest, services: .none) }
    }

    func testFileThatIsNotAnELFIsPluginCorrupt() throws {
        let manifest = try copyPlugin("echo", to: dir)
        try Data("#!/bin/sh\necho not a library\n".utf8).write(to: manifest.deletingLastPathComponent().appendingPathComponent("libSyEcho.so"))
        try refreshSHA256(manifest)
        XCTAssertRefusal(.pluginCorrupt) { _ = try PluginLoader.load(manifestURL: manifest, services: .none) }
    }

    func testTruncatedLibraryIsPluginCorrupt() throws {
        let manifest = try copyPlugin("c-minimal", to: dir)
        let library = manifest.deletingLastPathComponent().appendingPathComponent("libSyCMinimal.so")
        let bytes = try Data(contentsOf: library)
        try bytes.prefix(bytes.count / 3).write(to: library)
        try refreshSHA256(manifest)
        XCTAssertRefusal(.pluginCorrupt) { _ = try PluginLoader.load(manifestURL: manifest, services: .none) }
    }

    func testLibraryChangedAfterPackagingIsPluginCorrupt() throws {
        let manifest = try copyPlugin("c-minimal", to: dir)
        let library = manifest.deletingLastPathComponent().appendingPathComponent("libSyCMinimal.so")
        var bytes = try Data(contentsOf: library)
        bytes.append(0)
        try bytes.write(to: library)
        XCTAssertRefusal(.pluginCorrupt) { _ = try PluginLoader.load(manifestURL: manifest, services: .none) }
    }

    func testLibraryWithoutEntrySymbolIsPluginCorrupt() throws {
        let manifest = try fixturePlugin("no_entry", in: dir)
        XCTAssertRefusal(.pluginCorrupt) { _ = try PluginLoader.load(manifestURL: manifest, services: .none) }
    }

    func testManifestForOtherABIMajorIsRefusedBeforeLoading() throws {
        // The library would crash if loaded; the refusal must come first.
        let manifest = try fixturePlugin("crash_in_entry", in: dir) { $0["abi"] = "2.0" }
        XCTAssertRefusal(.pluginIncompatible) { _ = try PluginLoader.load(manifestURL: manifest, services: .none) }
    }

    func testLibraryExportingOnlyAnotherMajorsEntryIsIncompatible() throws {
        let manifest = try fixturePlugin("abi_v2", in: dir)
        do {
            _ = try PluginLoader.load(manifestURL: manifest, services: .none)
            XCTFail("loaded a v2 plugin")
        } catch let error as YardError {
            XCTAssertEqual(error.code, .pluginIncompatible)
            XCTAssertTrue(error.message.contains("sy_plugin_entry_v2"), error.message)
        }
    }

    func testManifestWithNewerMinorIsIncompatible() throws {
        let manifest = try fixturePlugin("crash_in_entry", in: dir) { $0["abi"] = "1.\(HostPlatform.abiMinor + 1)" }
        XCTAssertRefusal(.pluginIncompatible) { _ = try PluginLoader.load(manifestURL: manifest, services: .none) }
    }

    func testDescriptorWithNewerMinorIsIncompatible() throws {
        let manifest = try fixturePlugin("newer_minor", in: dir)
        XCTAssertRefusal(.pluginIncompatible) { _ = try PluginLoader.load(manifestURL: manifest, services: .none) }
    }

    func testOtherPlatformIsIncompatible() throws {
        let manifest = try copyPlugin("c-minimal", to: dir) { $0["platform"] = "macos-arm64" }
        XCTAssertRefusal(.pluginIncompatible) { _ = try PluginLoader.load(manifestURL: manifest, services: .none) }
    }

    func testSwiftPluginFromAnotherToolchainIsIncompatible() throws {
        let manifest = try copyPlugin("echo", to: dir) { $0["toolchain"] = "swift-5.9" }
        XCTAssertRefusal(.pluginIncompatible) { _ = try PluginLoader.load(manifestURL: manifest, services: .none) }
    }

    func testManifestMissingIDIsManifestInvalid() throws {
        let manifest = try copyPlugin("echo", to: dir) { $0.removeValue(forKey: "id") }
        do {
            _ = try PluginLoader.load(manifestURL: manifest, services: .none)
            XCTFail("loaded")
        } catch let error as YardError {
            XCTAssertEqual(error.code, .manifestInvalid)
            XCTAssertEqual(error.field, "$.id")
        }
    }

    func testManifestWithBadVersionIsManifestInvalid() throws {
        let manifest = try copyPlugin("echo", to: dir) { $0["version"] = "one" }
        XCTAssertRefusal(.manifestInvalid) { _ = try PluginLoader.load(manifestURL: manifest, services: .none) }
    }

    func testDescriptorNotMatchingManifestIsRefused() throws {
        let manifest = try copyPlugin("c-minimal", to: dir) { $0["id"] = "impostor" }
        XCTAssertRefusal(.manifestMismatch) { _ = try PluginLoader.load(manifestURL: manifest, services: .none) }
    }

    func testCapabilitiesNotMatchingDescriptorAreRefused() throws {
        let manifest = try copyPlugin("c-minimal", to: dir) {
            $0["capabilities"] = [["id": "debug.ping"], ["id": "image.generate"]]
        }
        XCTAssertRefusal(.manifestMismatch) { _ = try PluginLoader.load(manifestURL: manifest, services: .none) }
    }
}
