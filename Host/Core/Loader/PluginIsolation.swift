import CPluginAPI
import Foundation

/// Where a plugin's code runs.
public enum PluginIsolation: String, Codable, Sendable, CaseIterable {
    /// In yard-plugin-runner, a sandboxed process of its own: a crash or a
    /// hang fails calls, never the host. The default for every plugin that
    /// is not bundled with yard.
    case process
    /// In the host's own process: no IPC cost, but a crash takes the host
    /// down. For the first-party plugins bundled with yard.
    case inProcess = "in-process"
}

/// One kind of call into a plugin, named as plugin.json's call_timeouts_ms names it.
public enum PluginCallKind: Sendable, Hashable {
    case operation(PluginOperation)
    case `extension`(String)

    /// The deadline's name: validate, submit, poll, cancel, health, estimate,
    /// webhook, reconcile, balance (an unknown extension: "extension").
    public var deadlineName: String {
        switch self {
        case .operation(let op): return op.rawValue
        case .extension(SY_EXTENSION_ESTIMATE): return "estimate"
        case .extension(SY_EXTENSION_WEBHOOK): return "webhook"
        case .extension(SY_EXTENSION_RECONCILE): return "reconcile"
        case .extension(SY_EXTENSION_BALANCE): return "balance"
        case .extension: return "extension"
        }
    }

    public var description: String {
        switch self {
        case .operation(let op): return op.rawValue
        case .extension(let id): return id
        }
    }
}

/// How long each call may take. Defaults are the host's; plugin.json's
/// call_timeouts_ms may set its own within the host's bounds. A call past its
/// deadline fails with PLUGIN_TIMEOUT; an isolated plugin's runner is then
/// killed and restarted, an in-process call is abandoned on its thread.
public struct PluginDeadlines: Sendable, Equatable {
    /// Milliseconds per call name, plus "load" for starting the runner and the entry.
    public var milliseconds: [String: Int]

    public static let defaults: [String: Int] = [
        "load": 15_000, "validate": 10_000, "estimate": 10_000, "submit": 120_000, "poll": 60_000,
        "cancel": 60_000, "health": 30_000, "webhook": 15_000, "reconcile": 60_000, "balance": 30_000,
        "extension": 30_000,
    ]
    /// The host's bounds on what a manifest may ask for.
    public static let minimumMs = 50
    public static let maximumMs = 600_000

    public init(manifest: PluginManifest? = nil) {
        var values = Self.defaults
        for (name, ms) in manifest?.callTimeoutsMs ?? [:] where values[name] != nil {
            values[name] = min(max(ms, Self.minimumMs), Self.maximumMs)
        }
        milliseconds = values
    }

    public func ms(for kind: PluginCallKind) -> Int { milliseconds[kind.deadlineName] ?? Self.defaults["extension"] ?? 30_000 }
    public var loadMs: Int { milliseconds["load"] ?? 15_000 }
}

/// Why a call failed without the plugin answering it.
public enum PluginCallFailure: Sendable, Equatable {
    /// The runner died (signal, exit, broken protocol) while the call was in flight.
    case crashed(String)
    /// The call missed its deadline.
    case timedOut(Int)
    /// The plugin answered with a document the host cannot use.
    case outputInvalid(String)
    /// The runner could not be started for this call (it crashes or hangs at load).
    case unavailable(String)

    public var code: String {
        switch self {
        case .crashed, .unavailable: return "PLUGIN_CRASHED"
        case .timedOut: return "PLUGIN_TIMEOUT"
        case .outputInvalid: return "PLUGIN_OUTPUT_INVALID"
        }
    }
}

/// Picks the isolation of a plugin: an explicit override (`--isolation`,
/// YARD_ISOLATION) first, then what `plugin install` recorded in the lock
/// file, then by where the plugin was found: bundled with yard runs in
/// process, anything else in a runner.
public struct PluginIsolationPolicy: Sendable {
    public var override: PluginIsolation?
    public var lockFile: URL
    public var pluginsDirectory: URL
    public var bundledRoots: [URL]

    /// Set by the CLI's `--isolation` for the whole invocation.
    nonisolated(unsafe) public static var commandLineOverride: PluginIsolation?

    public init(paths: YardPaths, registry: PluginRegistry, environment: [String: String] = ProcessInfo.processInfo.environment) {
        override = Self.commandLineOverride ?? environment["YARD_ISOLATION"].flatMap(PluginIsolation.init(rawValue:))
        lockFile = paths.lockFile
        pluginsDirectory = paths.pluginsDirectory
        bundledRoots = registry.roots.filter { $0.1 == .bundled }.map(\.0)
    }

    public func isolation(for manifestURL: URL, id: String) -> PluginIsolation {
        if let override { return override }
        let path = manifestURL.standardizedFileURL.resolvingSymlinksInPath().path
        func isInside(_ root: URL) -> Bool {
            let rootPath = root.standardizedFileURL.resolvingSymlinksInPath().path
            return path.hasPrefix(rootPath.hasSuffix("/") ? rootPath : rootPath + "/")
        }
        if isInside(pluginsDirectory) {
            return PluginLockFile.load(lockFile).plugins[id]?.isolation ?? .process
        }
        if bundledRoots.contains(where: isInside) { return .inProcess }
        return .process
    }

    /// Why `isolation(for:id:)` chose what it chose, for `plugin info` and `doctor`.
    public func reason(for manifestURL: URL, id: String) -> String {
        if let override { return Self.commandLineOverride != nil ? "--isolation \(override.rawValue)" : "YARD_ISOLATION=\(override.rawValue)" }
        let mode = isolation(for: manifestURL, id: id)
        let path = manifestURL.standardizedFileURL.resolvingSymlinksInPath().path
        if path.hasPrefix(pluginsDirectory.standardizedFileURL.resolvingSymlinksInPath().path + "/") {
            return PluginLockFile.load(lockFile).plugins[id]?.isolation != nil ? "recorded in plugins.lock.json" : "installed plugin (default)"
        }
        return mode == .inProcess ? "bundled with yard (first-party)" : "third-party plugin (default)"
    }
}
