import Foundation
import SwitchyardTesting
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost

/// Where scripts/build.sh put yard and the staged first-party plugins: the
/// folder of this test bundle.
enum Build {
    static let binDirectory: URL = {
        var url = Bundle(for: Marker.self).bundleURL
        while url.pathExtension == "xctest" || url.lastPathComponent == "Contents" || url.lastPathComponent == "MacOS" {
            url.deleteLastPathComponent()
        }
        return url
    }()
    static var yard: URL { binDirectory.appendingPathComponent("yard") }
    static var plugins: URL { binDirectory.appendingPathComponent("plugins") }
    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
    final class Marker {}
}

func requireStagedPlugins(file: StaticString = #filePath, line: UInt = #line) throws {
    guard FileManager.default.fileExists(atPath: Build.plugins.appendingPathComponent("echo/plugin.json").path) else {
        throw YardError("BUILD_MISSING", "The bundled plugins are not staged.", remediation: "Run scripts/test.sh (it stages the plugins with scripts/build.sh first).")
    }
}

func temporaryDirectory(_ label: String = #function) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("yard-test-\(label.filter { $0.isLetter || $0.isNumber })-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The built yard every CLI test runs: missing is a failure, not a skip.
func requireBuiltYard() throws {
    guard FileManager.default.isExecutableFile(atPath: Build.yard.path) else {
        throw YardError("BUILD_MISSING", "\(Build.yard.path) is not built.", remediation: "Run scripts/test.sh (it builds yard and stages the plugins with scripts/build.sh).")
    }
}

/// Copies a staged plugin into `dir/<name>` and lets the test edit its manifest.
@discardableResult
func copyPlugin(_ id: String, to dir: URL, as name: String? = nil, edit: (inout [String: Any]) -> Void = { _ in }) throws -> URL {
    let source = Build.plugins.appendingPathComponent(id)
    let target = dir.appendingPathComponent(name ?? id)
    try FileManager.default.copyItem(at: source, to: target)
    try editManifest(target.appendingPathComponent("plugin.json"), edit)
    return target.appendingPathComponent("plugin.json")
}

func editManifest(_ url: URL, _ edit: (inout [String: Any]) -> Void) throws {
    var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    edit(&object)
    try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]).write(to: url)
}

/// Builds a fixture plugin from Tests/Fixtures/plugins/NAME.c with the system C
/// compiler, beside a manifest whose sha256 matches.
/// `defines` become -D flags (NAME=VALUE); `folder` names the plugin's folder (default: the fixture's name).
func fixturePlugin(_ name: String, in dir: URL, folder: String? = nil, defines: [String: String] = [:],
                   edit: (inout [String: Any]) -> Void = { _ in }) throws -> URL {
    let pluginDir = dir.appendingPathComponent(folder ?? name)
    try FileManager.default.createDirectory(at: pluginDir, withIntermediateDirectories: true)
    let library = pluginDir.appendingPathComponent("lib\(name).so")
    let source = Build.repository.appendingPathComponent("Tests/Fixtures/plugins/\(name).c")
    let include = Build.repository.appendingPathComponent("PluginAPI/include")
    let flags = defines.sorted { $0.key < $1.key }.map { "-D\($0.key)=\($0.value)" }
    let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                ["cc", "-std=c99", "-shared", "-fPIC", "-I", include.path] + flags + ["-o", library.path, source.path])
    // env answers 127 when there is no cc at all; any other failure is the fixture's.
    if result.status == 127 { throw YardError("DEPENDENCY_MISSING", "No C compiler: \(result.stderr)", remediation: "apt-get install -y gcc (.ci/run and scripts/demo.sh install it).") }
    guard result.status == 0 else {
        throw YardError("FIXTURE_BUILD_FAILED", "cc could not build \(name).c: \(result.stderr)", remediation: "Fix the fixture.")
    }
    var manifest: [String: Any] = [
        "schema_version": 1, "id": "fixture", "name": "Fixture", "version": "1.0.0", "abi": "1.0",
        "library": library.lastPathComponent, "platform": HostPlatform.platform, "toolchain": "c",
        "sha256": try PluginLoader.sha256(of: library),
        "capabilities": [["id": "debug.ping", "example_inputs": [String: Any]()]],
        "network": ["hosts": [String]()],
    ]
    edit(&manifest)
    let url = pluginDir.appendingPathComponent("plugin.json")
    try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys]).write(to: url)
    return url
}

/// Rewrites sha256 in a manifest to match its library (after a test altered the library).
func refreshSHA256(_ manifestURL: URL) throws {
    let object = try JSONSerialization.jsonObject(with: Data(contentsOf: manifestURL)) as! [String: Any]
    let library = manifestURL.deletingLastPathComponent().appendingPathComponent(object["library"] as! String)
    let digest = try PluginLoader.sha256(of: library)
    try editManifest(manifestURL) { $0["sha256"] = digest }
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var json: Any? { try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) }
}

func runProcess(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// The environment every yard a test starts runs in: its own YARD_HOME, no
/// extra plugin path, and the network guard on (loopback only), reporting
/// refusals to `guardLog`.
func yardEnvironment(home: URL, guardLog: URL? = nil, extra: [String: String] = [:]) -> [String: String] {
    var env = ProcessInfo.processInfo.environment
    env["YARD_HOME"] = home.path
    env["YARD_PLUGIN_PATH"] = ""
    env["YARD_NETWORK_GUARD"] = "loopback"
    if let guardLog { env["YARD_NETWORK_GUARD_LOG"] = guardLog.path }
    for (k, v) in extra { env[k] = v }
    return env
}

/// Runs the built yard with its own YARD_HOME. A request to, or name lookup
/// of, a non-loopback host by yard or any child it starts fails the test.
/// `expectRefusals`: the test itself makes yard try a real host (to check the guard).
func yard(_ arguments: [String], home: URL, extraEnvironment: [String: String] = [:], expectRefusals: Bool = false,
          file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
    let guardLog = FileManager.default.temporaryDirectory.appendingPathComponent("yard-network-guard-\(UUID().uuidString.prefix(8)).log")
    defer { try? FileManager.default.removeItem(at: guardLog) }
    let result = try runProcess(Build.yard, arguments, environment: yardEnvironment(home: home, guardLog: guardLog, extra: extraEnvironment))
    if !expectRefusals, let refused = try? String(contentsOf: guardLog, encoding: .utf8), !refused.isEmpty {
        XCTFail("yard \(arguments.prefix(3).joined(separator: " ")) tried to reach hosts outside loopback: \(refused.split(separator: "\n").joined(separator: "; "))", file: file, line: line)
    }
    return result
}

/// Starts the built yard in the background with its own YARD_HOME (output
/// discarded), for tests that kill it mid-work.
func startYard(_ arguments: [String], home: URL) throws -> Process {
    let process = Process()
    process.executableURL = Build.yard
    process.arguments = arguments
    process.environment = yardEnvironment(home: home)
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    return process
}

func XCTAssertRefusal(_ code: YardError.Code, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected \(code.rawValue), but nothing was refused", file: file, line: line)
    } catch let error as YardError {
        XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
        XCTAssertFalse(error.remediation.isEmpty, "a refusal must say what to do", file: file, line: line)
    } catch {
        XCTFail("expected YardError \(code.rawValue), got \(error)", file: file, line: line)
    }
}

/// A service set with everything a job needs, recording logs.
func fullServices(root: URL, secrets: [String: String] = [:], log: CollectingLogSink = CollectingLogSink()) -> HostServiceSet {
    HostServiceSet(log: log, clock: SystemClock(), http: BlockingHTTPTransport(defaultTimeoutMs: 5_000),
                   secrets: EnvironmentSecrets(environment: [:], values: secrets),
                   artifacts: ArtifactDirectory(root: root), kv: MemoryKeyValueStore(), crypto: true)
}

func requestData(_ object: [String: Any]) -> Data {
    try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
}

/// A test with its own temporary directory, removed afterwards. Tests that
/// load the staged first-party plugins skip (with the reason) when they are missing.
class TemporaryDirectoryTestCase: XCTestCase {
    var dir: URL!
    var needsStagedPlugins: Bool { true }

    /// Tests reach only loopback: the host's transports refuse anything else, and a refusal fails the test.
    override class func setUp() {
        super.setUp()
        NetworkGuard.activate()
    }

    override func setUpWithError() throws {
        NetworkGuard.resetViolations()
        try prepareDirectory()
    }

    /// XCTest runs an async setUp before setUpWithError: either may come first.
    func prepareDirectory() throws {
        if needsStagedPlugins { try requireStagedPlugins() }
        if dir == nil { dir = try temporaryDirectory(String(describing: type(of: self))) }
    }

    override func tearDown() {
        let refused = NetworkGuard.violations
        if !refused.isEmpty { XCTFail("the test tried to reach hosts outside loopback: \(refused.joined(separator: "; "))") }
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }
}

/// A stand-in server a test starts on loopback.
protocol LoopbackStandIn: AnyObject, Sendable {
    func start(port: Int) async throws
    func stop() async
}

extension ProviderStandIn: LoopbackStandIn {}
extension HubStandIn: LoopbackStandIn {}

extension XCTestCase {
    /// Starts `standIn` on a free loopback port and stops it when the test
    /// ends, whatever the test replaced it with in the meantime.
    func started<S: LoopbackStandIn>(_ standIn: S) async throws -> S {
        try await standIn.start(port: 0)
        addTeardownBlock { await standIn.stop() }
        return standIn
    }
}

/// A job engine as the tests use it: its own SQLite store under `home`, only
/// the plugins in `plugins`, secrets given explicitly (never the environment),
/// the real capability catalog unless one is given, fast backoff.
func makeTestEngine(home: URL, plugins: URL, secrets: [String: String] = [:], catalog: CapabilityCatalog? = nil,
                    http: any HTTPTransport = BlockingHTTPTransport(defaultTimeoutMs: 2_000)) throws -> JobEngine {
    let paths = YardPaths(home: home)
    let engine = JobEngine(store: try SQLiteJobStore(path: paths.jobStoreFile), paths: paths,
                           registry: PluginRegistry(paths: paths, extraPaths: [plugins.path], environment: [:], bundled: nil),
                           catalog: try catalog ?? CapabilityCatalog.load(directory: Build.repository.appendingPathComponent("Registry/capabilities")),
                           secrets: EnvironmentSecrets(environment: [:], values: secrets), http: http)
    engine.policy.baseBackoffMs = 2
    // XCTest keeps every test case (and the engines they hold) alive until the
    // run ends: idle runners go soon, so they do not pile up.
    engine.runner.idleTimeoutSeconds = 10
    return engine
}

/// `yard plugin test ID --standin --json`: the whole kit against the engine's
/// built-in stand-in, on loopback only, with no account. Every check must pass.
func assertConformantAgainstItsStandIn(_ id: String, home: URL, extraEnvironment: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line) throws {
    let result = try yard(["plugin", "test", id, "--standin", "--json", "--isolation", "both"], home: home, extraEnvironment: extraEnvironment, file: file, line: line)
    let report = try XCTUnwrap(result.json as? [String: Any], result.stdout + result.stderr, file: file, line: line)
    let failed = (report["checks"] as? [[String: Any]] ?? []).filter { $0["ok"] as? Bool != true }
    XCTAssertEqual(failed.count, 0, "\(failed)", file: file, line: line)
    XCTAssertEqual(report["passed"] as? Int, 3 + 2 * ConformanceSuite.childChecks.count, "every check, in process and in a runner", file: file, line: line)
    XCTAssertEqual(result.status, 0, file: file, line: line)
}

/// Records an "ok" health check of `pluginID` with exactly this config and
/// the engine's secrets, so a pre-flight skips the live check.
func cacheHealthy(_ engine: JobEngine, _ pluginID: String, config: [String: JSONValue]) throws {
    let plugin = try engine.plugin(pluginID)
    let (_, digest, fingerprint) = engine.healthCacheKey(plugin, config: config)
    try engine.store.saveHealth(EngineHealthRecord(pluginID: pluginID, status: "ok", message: nil, checkedAt: Date(),
                                                   pluginVersion: plugin.manifest.version, configDigest: digest, secretFingerprint: fingerprint))
}

/// Starts `yard serve --port 0` and returns it with its base URL (read from the first line it prints).
func startYardServe(home: URL, environment extra: [String: String] = [:]) throws -> (Process, String) {
    let serve = Process()
    serve.executableURL = Build.yard
    serve.arguments = ["serve", "--port", "0"]
    serve.environment = yardEnvironment(home: home, extra: extra)
    let out = Pipe()
    serve.standardOutput = out
    serve.standardError = FileHandle.nullDevice
    try serve.run()
    let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
    guard let base = line.split(separator: " ").last.map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) }), base.hasPrefix("http://") else {
        serve.terminate()
        throw YardError("SERVE_FAILED", "yard serve did not start: \(line)", remediation: "Run it by hand to see why.")
    }
    return (serve, base)
}
