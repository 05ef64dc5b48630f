import Foundation

/// Where the host keeps its data. `YARD_HOME` (or --home) overrides the user
/// data directory so tests and several profiles never share state.
public struct YardPaths: Sendable {
    public var home: URL

    public init(home: URL) { self.home = home }

    public static func resolve(home: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) -> YardPaths {
        if let home, !home.isEmpty { return YardPaths(home: URL(fileURLWithPath: home)) }
        if let env = environment["YARD_HOME"], !env.isEmpty { return YardPaths(home: URL(fileURLWithPath: env)) }
        let base = environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.local/share")
        return YardPaths(home: URL(fileURLWithPath: base).appendingPathComponent("switchyard"))
    }

    /// Why `home` cannot serve as the data directory, or nil when it can: it
    /// is a file, sits below a file, or its nearest existing folder is not writable.
    public static func homeProblem(_ home: URL) -> String? {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: home.path, isDirectory: &isDirectory) {
            if !isDirectory.boolValue { return "The data directory \(home.path) is a file, not a folder." }
            return fm.isWritableFile(atPath: home.path) ? nil : "The data directory \(home.path) is not writable."
        }
        var ancestor = home.deletingLastPathComponent()
        while ancestor.path != "/" && !fm.fileExists(atPath: ancestor.path, isDirectory: &isDirectory) { ancestor.deleteLastPathComponent() }
        _ = fm.fileExists(atPath: ancestor.path, isDirectory: &isDirectory)
        if !isDirectory.boolValue { return "The data directory \(home.path) cannot be created: \(ancestor.path) is a file." }
        if !fm.isWritableFile(atPath: ancestor.path) { return "The data directory \(home.path) cannot be created: \(ancestor.path) is not writable." }
        return nil
    }

    public var pluginsDirectory: URL { home.appendingPathComponent("plugins") }
    public var cacheDirectory: URL { home.appendingPathComponent("cache") }
    public var scanCacheFile: URL { cacheDirectory.appendingPathComponent("plugin-scan.json") }
    public var lockFile: URL { home.appendingPathComponent("plugins.lock.json") }
    /// Trusted publisher keys (*.json) and the vault key (0700).
    public var trustedKeysDirectory: URL { home.appendingPathComponent("keys") }
    /// The one place the secret vault's key lives (when not in YARD_SECRET_KEY):
    /// never beside secrets.json, and outside anything a plugin runner is given.
    /// A sandbox that lets a runner see parts of $YARD_HOME must exclude `hostPrivatePaths`.
    public var vaultKeyFile: URL { trustedKeysDirectory.appendingPathComponent("vault.key") }
    /// Where earlier versions kept the vault key; moved to `vaultKeyFile` on first use.
    public var legacyVaultKeyFile: URL { home.appendingPathComponent("secret.key") }
    public var secretsFile: URL { home.appendingPathComponent("secrets.json") }
    public var jobStoreFile: URL { home.appendingPathComponent("yard.sqlite") }
    /// What no plugin may read: the vault, its key, the store (job rows, ledger).
    public var hostPrivatePaths: [URL] {
        [vaultKeyFile, legacyVaultKeyFile, secretsFile, jobStoreFile, trustedKeysDirectory,
         URL(fileURLWithPath: jobStoreFile.path + "-wal"), URL(fileURLWithPath: jobStoreFile.path + "-shm")]
    }

    /// The `Registry/` folder of the source tree or of an installed share
    /// directory: YARD_REGISTRY, else the first ancestor of the executable
    /// holding `Registry/keys`.
    public static func registryDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
        if let env = environment["YARD_REGISTRY"], !env.isEmpty { return URL(fileURLWithPath: env) }
        var dir = executable.deletingLastPathComponent()
        for _ in 0..<8 {
            let candidate = dir.appendingPathComponent("Registry")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("keys").path) { return candidate }
            let installed = dir.appendingPathComponent("share/switchyard/Registry")
            if FileManager.default.fileExists(atPath: installed.appendingPathComponent("keys").path) { return installed }
            dir.deleteLastPathComponent()
        }
        return nil
    }

    /// First-party plugins staged by scripts/build.sh next to the executable.
    public static func bundledPluginsDirectory() -> URL {
        executable.deletingLastPathComponent().appendingPathComponent("plugins")
    }

    /// This process's executable, wherever it was started from: argv[0] is only
    /// "yard" when yard was found on PATH.
    public static var executable: URL {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return URL(fileURLWithPath: path) }
        return URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
    }
}
