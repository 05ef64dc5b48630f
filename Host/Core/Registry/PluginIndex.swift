import Foundation
import SwitchyardJSON

/// Registry/index.json: the plugins a registry offers, by id and version, with
/// a package per platform and the package's sha256. Package URLs may be
/// absolute paths, paths relative to the index, file:// or http(s) URLs.
public struct PluginIndex: Codable, Sendable {
    public struct Package: Codable, Sendable {
        public var platform: String
        public var toolchain: String?
        public var url: String
        public var sha256: String
    }
    public struct Release: Codable, Sendable {
        public var version: String
        public var abi: String
        public var packages: [Package]
    }
    public struct Plugin: Codable, Sendable {
        public var id: String
        public var description: String?
        public var versions: [Release]
    }
    public var schemaVersion: Int
    public var plugins: [Plugin]

    enum CodingKeys: String, CodingKey {
        case plugins
        case schemaVersion = "schema_version"
    }

    public init(schemaVersion: Int = 1, plugins: [Plugin] = []) {
        self.schemaVersion = schemaVersion
        self.plugins = plugins
    }

    /// Lists a package: its release (id, version, ABI from its manifest) gains
    /// or replaces the package for the package's platform and toolchain.
    public mutating func add(_ manifest: PluginManifest, url: String, sha256: String) {
        let package = Package(platform: manifest.platform, toolchain: manifest.toolchain, url: url, sha256: sha256)
        var plugin = plugins.first { $0.id == manifest.id } ?? Plugin(id: manifest.id, description: manifest.description, versions: [])
        var release = plugin.versions.first { $0.version == manifest.version } ?? Release(version: manifest.version, abi: manifest.abi, packages: [])
        release.abi = manifest.abi
        release.packages.removeAll { $0.platform == package.platform && $0.toolchain == package.toolchain }
        release.packages.append(package)
        plugin.versions.removeAll { $0.version == release.version }
        plugin.versions.append(release)
        plugin.versions.sort { (SemanticVersion($0.version) ?? SemanticVersion("0.0.0")!) > (SemanticVersion($1.version) ?? SemanticVersion("0.0.0")!) }
        plugin.description = plugin.description ?? manifest.description
        plugins.removeAll { $0.id == plugin.id }
        plugins.append(plugin)
        plugins.sort { $0.id < $1.id }
    }

    public func save(_ url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try encoder.encode(self).write(to: url, options: .atomic)
    }

    public static func load(_ location: URL) throws -> PluginIndex {
        guard let data = try? Data(contentsOf: location) else {
            throw YardError(.indexInvalid, "Cannot read the plugin index at \(location.path).", remediation: "Pass --index with a readable index.json.")
        }
        // An index may come from anywhere: bounded before the recursive decoder sees it.
        do { _ = try DocumentLimits.manifest.parseJSON(data, source: location.lastPathComponent) } catch is JSONParseError {
            // Not JSON at all: refused just below, in the index's own words.
        }
        guard let index = try? JSONDecoder().decode(PluginIndex.self, from: data), index.schemaVersion == 1 else {
            throw YardError(.indexInvalid, "\(location.path) is not a plugin index (schema_version 1).",
                            remediation: "See Registry/schemas/plugin-index.schema.json for the format.")
        }
        return index
    }

    /// The newest release of `id` (or exactly `version`) this host can load, and its package.
    public func select(id: String, version: String? = nil) throws -> (Release, Package) {
        guard let plugin = plugins.first(where: { $0.id == id }) else {
            if plugins.isEmpty {
                throw YardError(.pluginNotFound, "The index lists no plugins at all.",
                                remediation: "Pass --index with a registry's index.json, or make one from packages with `yard plugin index PACKAGE… --index index.json`.")
            }
            throw YardError(.pluginNotFound, "The index offers no plugin named \(id)." + NameSuggestion.sentence(for: id, among: plugins.map(\.id)),
                            remediation: "Check the id; available: \(plugins.map(\.id).sorted().joined(separator: ", ")).")
        }
        let candidates = plugin.versions
            .filter { version == nil || $0.version == version }
            .sorted { (SemanticVersion($0.version) ?? SemanticVersion("0.0.0")!) > (SemanticVersion($1.version) ?? SemanticVersion("0.0.0")!) }
        var reasons: [String] = []
        for release in candidates {
            guard let abi = ABIVersion(release.abi) else { continue }
            if let reason = abi.incompatibility() { reasons.append("\(release.version): \(reason)"); continue }
            let fitting = release.packages.first { $0.platform == HostPlatform.platform
                && ($0.toolchain.map { HostPlatform.isToolchainCompatible($0) } ?? true) }
            if let fitting { return (release, fitting) }
            reasons.append("\(release.version): no package for \(HostPlatform.platform) with \(HostPlatform.toolchain)")
        }
        throw YardError(.pluginIncompatible,
                        "No release of \(id)\(version.map { " \($0)" } ?? "") in the index fits this host (\(HostPlatform.platform), PluginAPI \(HostPlatform.abiString), \(HostPlatform.toolchain)). \(reasons.joined(separator: "; "))",
                        remediation: "Ask the publisher for a build for this host, or upgrade yard.")
    }

    /// Resolves a package URL relative to the index's location.
    public static func packageLocation(_ url: String, indexURL: URL) -> URL {
        if url.hasPrefix("file://"), let u = URL(string: url) { return u }
        if url.hasPrefix("http://") || url.hasPrefix("https://"), let u = URL(string: url) { return u }
        if url.hasPrefix("/") { return URL(fileURLWithPath: url) }
        return indexURL.deletingLastPathComponent().appendingPathComponent(url)
    }
}
