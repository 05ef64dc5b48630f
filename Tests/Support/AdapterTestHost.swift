import Foundation
import SwitchyardHost
import SwitchyardJSON

/// The real job engine around one adapter, for adapter tests that read like
/// specifications: a throw-away home (SQLite store, artifact store), only the
/// plugin under test, secrets given explicitly (never the environment), the
/// capability catalog, and fast polling. It turns the network guard on: any
/// request to (or name lookup of) a host that is not loopback is refused and
/// recorded in `NetworkGuard.violations`, so a test cannot reach a real
/// provider by a default URL left in place. Point the adapter's config at a
/// stand-in and drive jobs as `yard` would:
///
///     let standIn = RunPodStandIn(); try await standIn.start()
///     let host = try AdapterTestHost(plugin: pluginDir, secrets: ["RUNPOD_API_KEY": standIn.apiKey],
///                                    config: ["endpoint_id": .string(standIn.endpointID), "base_url": .string(standIn.baseURL)])
///     let job = try await host.run("image.generate", ["prompt": "a lighthouse"])
///     XCTAssertEqual(job.phase, .succeeded)
public final class AdapterTestHost: @unchecked Sendable {
    public let engine: JobEngine
    public let home: URL
    public let pluginID: String
    /// Engine configuration every job gets (a job's own config is merged over it).
    public var config: [String: JSONValue]

    /// - Parameters:
    ///   - plugin: the folder holding the adapter's plugin.json and library.
    ///   - catalog: the capability catalog folder; default: Registry/capabilities
    ///     of a Switchyard checkout found through $YARD_REGISTRY, else none (only
    ///     the adapter's own limits apply).
    public init(plugin: URL, secrets: [String: String] = [:], config: [String: JSONValue] = [:],
                catalog: URL? = nil, clock: any HostClock = SystemClock()) throws {
        NetworkGuard.activate()
        home = FileManager.default.temporaryDirectory.appendingPathComponent("yard-adapter-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        let manifestURL = plugin.appendingPathComponent("plugin.json")
        let manifest = try PluginManifest.parse(try Data(contentsOf: manifestURL), source: manifestURL.path)
        pluginID = manifest.id
        self.config = config
        let paths = YardPaths(home: home)
        let catalogDirectory = catalog ?? YardPaths.registryDirectory()?.appendingPathComponent("capabilities")
        engine = JobEngine(store: try SQLiteJobStore(path: paths.jobStoreFile), paths: paths,
                           registry: PluginRegistry(paths: paths, extraPaths: [plugin.deletingLastPathComponent().path], environment: [:], bundled: nil),
                           catalog: try CapabilityCatalog.load(directory: catalogDirectory),
                           secrets: EnvironmentSecrets(environment: [:], values: secrets), clock: clock,
                           http: BlockingHTTPTransport(defaultTimeoutMs: 5_000))
        engine.policy.minPollMs = 1
        engine.policy.maxPollMs = 20
        engine.policy.baseBackoffMs = 2
    }

    deinit { try? FileManager.default.removeItem(at: home) }

    public func spec(_ capability: String, _ inputs: [String: JSONValue], config extra: [String: JSONValue] = [:], idempotencyKey: String? = nil) -> JobSpec {
        JobSpec(pluginID: pluginID, capability: capability, inputs: inputs, config: config.merging(extra) { _, new in new }, idempotencyKey: idempotencyKey)
    }

    /// Pre-flight only: what `yard run --dry-run` prints.
    public func preflight(_ capability: String, _ inputs: [String: JSONValue], config extra: [String: JSONValue] = [:]) async -> PreflightVerdict {
        await engine.preflight(spec(capability, inputs, config: extra))
    }

    /// Submits a job and returns once its ref is stored (or it is refused by throwing).
    public func submit(_ capability: String, _ inputs: [String: JSONValue], config extra: [String: JSONValue] = [:],
                       idempotencyKey: String? = nil) async throws -> JobRecord {
        try await engine.start(spec(capability, inputs, config: extra, idempotencyKey: idempotencyKey))
    }

    /// Submits a job and polls it to a terminal phase.
    public func run(_ capability: String, _ inputs: [String: JSONValue], config extra: [String: JSONValue] = [:],
                    idempotencyKey: String? = nil) async throws -> JobRecord {
        try await engine.drive(try await submit(capability, inputs, config: extra, idempotencyKey: idempotencyKey).id)
    }

    public func cancel(_ job: JobRecord) async throws -> JobRecord { try await engine.cancel(job.id) }

    /// A finished job's outputs (artifact handles after harvest), or nil.
    public func outputs(_ job: JobRecord) -> [String: JSONValue]? {
        job.outputsJSON.flatMap { try? JSONValue(parsing: Data($0.utf8)) }?.objectValue
    }

    /// A finished job's error code, e.g. "AUTH_FAILED".
    public func errorCode(_ job: JobRecord) -> String? { job.errorCode }

    /// The bytes of an artifact the job produced.
    public func artifact(_ handle: JSONValue?) throws -> Data? {
        guard let text = handle?["artifact"]?.stringValue, text.hasPrefix("sha256:") else { return nil }
        return try engine.artifacts.read(sha256: String(text.dropFirst("sha256:".count)))
    }
}
