import Foundation

/// Where an installed plugin was found. Order is precedence: a plugin in an
/// earlier source shadows one with the same id in a later source.
public enum PluginSource: String, Codable, Sendable, Comparable {
    case explicit   // --plugin-path and YARD_PLUGIN_PATH
    case user       // $YARD_HOME/plugins (yard plugin install)
    case bundled    // first-party plugins staged next to the yard executable

    var rank: Int { self == .explicit ? 0 : self == .user ? 1 : 2 }
    public static func < (l: PluginSource, r: PluginSource) -> Bool { l.rank < r.rank }
}

/// One row of `yard plugin list`, built from manifests and the scan cache only.
public struct InstalledPlugin: Codable, Sendable {
    public enum Status: String, Codable, Sendable {
        case ok, invalid, corrupt, incompatible, shadowed, conflict
    }
    public var id: String
    public var version: String
    public var abi: String
    public var capabilities: [String]
    public var source: PluginSource
    public var status: Status
    public var manifestPath: String
    /// File name of the library beside the manifest.
    public var library: String
    public var problem: YardError?

    enum CodingKeys: String, CodingKey {
        case id, version, abi, capabilities, source, status, problem, library
        case manifestPath = "manifest"
    }
}

/// Finds installed plugins without loading their code. Library hashes are
/// cached by (path, size, mtime) in $YARD_HOME/cache/plugin-scan.json, so a
/// listing costs a few stat calls per plugin once the cache is warm.
public struct PluginRegistry: Sendable {
    public var roots: [(URL, PluginSource)]
    public var paths: YardPaths

    public init(paths: YardPaths, extraPaths: [String] = [],
                environment: [String: String] = ProcessInfo.processInfo.environment,
                bundled: URL? = YardPaths.bundledPluginsDirectory()) {
        self.paths = paths
        var roots: [(URL, PluginSource)] = []
        let fromEnv = (environment["YARD_PLUGIN_PATH"] ?? "").split(separator: ":").map(String.init)
        for p in extraPaths + fromEnv where !p.isEmpty { roots.append((URL(fileURLWithPath: p), .explicit)) }
        roots.append((paths.pluginsDirectory, .user))
        if let bundled { roots.append((bundled, .bundled)) }
        self.roots = roots
    }

    /// Manifests under each root: ROOT/plugin.json or ROOT/<dir>/plugin.json.
    func manifestURLs() -> [(URL, PluginSource)] {
        var result: [(URL, PluginSource)] = []
        let fm = FileManager.default
        for (root, source) in roots {
            let direct = root.appendingPathComponent("plugin.json")
            if fm.fileExists(atPath: direct.path) { result.append((direct, source)); continue }
            guard let children = try? fm.contentsOfDirectory(atPath: root.path) else { continue }
            for child in children.sorted() where !child.hasPrefix(".") {
                let manifest = root.appendingPathComponent(child).appendingPathComponent("plugin.json")
                if fm.fileExists(atPath: manifest.path) { result.append((manifest, source)) }
            }
        }
        return result
    }

    /// What an installed plugin's files must match (its lock file entry);
    /// `.none` for a plugin outside $YARD_HOME/plugins.
    public func lockExpectation(for manifestURL: URL) -> LockExpectation {
        let folder = manifestURL.standardizedFileURL.deletingLastPathComponent()
        guard folder.deletingLastPathComponent().path == paths.pluginsDirectory.standardizedFileURL.path else { return .none }
        let id = folder.lastPathComponent
        return .installed(id: id, entry: PluginLockFile.load(paths.lockFile).plugins[id])
    }

    /// Every plugin found, with its status; duplicates resolved by precedence.
    /// Installed plugins are checked against the lock file on every listing
    /// (the scan cache only spares re-hashing unchanged libraries).
    public func list() -> [InstalledPlugin] {
        var cache = ScanCache.load(paths.scanCacheFile)
        var rows: [InstalledPlugin] = []
        for (url, source) in manifestURLs() {
            var row = cache.row(for: url, source: source)
            if row.status == .ok, case .installed = lockExpectation(for: url) {
                do {
                    let data = try Data(contentsOf: url)
                    try lockExpectation(for: url).verify(manifestBytes: data, manifest: try PluginManifest.parse(data, source: url.path), manifestURL: url)
                } catch let error as YardError {
                    row.status = .corrupt
                    row.problem = error
                } catch {
                    row.status = .corrupt
                }
            }
            rows.append(row)
        }
        cache.prune(keeping: Set(rows.map(\.manifestPath)))
        cache.saveIfChanged(paths.scanCacheFile)
        return Self.resolveDuplicates(rows)
    }

    static func resolveDuplicates(_ rows: [InstalledPlugin]) -> [InstalledPlugin] {
        var rows = rows
        let groups = Dictionary(grouping: rows.indices.filter { rows[$0].status == .ok }, by: { rows[$0].id })
        for (id, indices) in groups where indices.count > 1 {
            let best = indices.map { rows[$0].source }.min()!
            let winners = indices.filter { rows[$0].source == best }
            for i in indices {
                if winners.count > 1 && rows[i].source == best {
                    rows[i].status = .conflict
                    rows[i].problem = YardError(.pluginDuplicateID,
                        "Two plugins named \(id) are installed at the same precedence: \(winners.map { rows[$0].manifestPath }.joined(separator: " and ")).",
                        remediation: "Remove one of them (`yard plugin remove \(id)` or delete the folder), or name the one you mean by its path.")
                } else if rows[i].source != best {
                    rows[i].status = .shadowed
                    rows[i].problem = YardError(.pluginDuplicateID, "\(id) here is shadowed by the \(best.rawValue) copy.",
                                                remediation: "Nothing to do, unless you meant this copy: remove the other one.")
                }
            }
        }
        return rows
    }

    /// The manifest of plugin `reference`: an installed id, or a path to a
    /// plugin folder or plugin.json.
    public func resolve(_ reference: String) throws -> URL {
        let fm = FileManager.default
        if reference.contains("/") || reference.hasSuffix(".json") {
            var url = URL(fileURLWithPath: reference)
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue { url.appendPathComponent("plugin.json") }
            guard fm.fileExists(atPath: url.path) else {
                throw YardError(.pluginNotFound, "No plugin at \(reference).", remediation: "Give a folder holding plugin.json, or an installed plugin's id.")
            }
            return url
        }
        let all = list()
        let rows = all.filter { $0.id == reference }
        if let ok = rows.first(where: { $0.status == .ok }) { return URL(fileURLWithPath: ok.manifestPath) }
        if let conflict = rows.first(where: { $0.status == .conflict }), let problem = conflict.problem { throw problem }
        if let broken = rows.first, let problem = broken.problem { throw problem }
        throw YardError(.pluginNotFound, "No plugin named \(reference) is installed." + NameSuggestion.sentence(for: reference, among: all.map(\.id)),
                        remediation: "Run `yard plugin list` to see what is installed, or `yard plugin install`.")
    }
}

/// The scan cache: one entry per manifest path.
struct ScanCache: Codable {
    struct Entry: Codable {
        var manifestSize: Int
        var manifestMtime: Double
        var librarySize: Int
        var libraryMtime: Double
        var row: InstalledPlugin
    }
    var version = 1
    var entries: [String: Entry] = [:]
    var changed = false

    enum CodingKeys: String, CodingKey { case version, entries }

    static func load(_ url: URL) -> ScanCache {
        guard let data = try? Data(contentsOf: url), let cache = try? JSONDecoder().decode(ScanCache.self, from: data),
              cache.version == 1 else { return ScanCache() }
        return cache
    }

    func saveIfChanged(_ url: URL) {
        guard changed, let data = try? JSONEncoder().encode(self) else { return }
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? data.write(to: url, options: .atomic)
    }

    mutating func prune(keeping paths: Set<String>) {
        let stale = entries.keys.filter { !paths.contains($0) }
        for key in stale { entries.removeValue(forKey: key) }
        if !stale.isEmpty { changed = true }
    }

    static func stat(_ path: String) -> (Int, Double)? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        let size = (attributes[.size] as? NSNumber)?.intValue ?? -1
        let mtime = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return (size, mtime)
    }

    mutating func row(for manifestURL: URL, source: PluginSource) -> InstalledPlugin {
        let path = manifestURL.path
        let manifestStat = Self.stat(path) ?? (-1, 0)
        if var entry = entries[path], entry.manifestSize == manifestStat.0, entry.manifestMtime == manifestStat.1 {
            let libPath = manifestURL.deletingLastPathComponent().appendingPathComponent(entry.row.library).path
            let libStat = Self.stat(libPath) ?? (-1, 0)
            if entry.librarySize == libStat.0, entry.libraryMtime == libStat.1 {
                if entry.row.source != source { entry.row.source = source; entries[path] = entry; changed = true }
                return entry.row
            }
        }
        let row = Self.inspect(manifestURL, source: source)
        let libPath = manifestURL.deletingLastPathComponent().appendingPathComponent(row.library).path
        let libStat = Self.stat(libPath) ?? (-1, 0)
        entries[path] = Entry(manifestSize: manifestStat.0, manifestMtime: manifestStat.1,
                              librarySize: libStat.0, libraryMtime: libStat.1, row: row)
        changed = true
        return row
    }

    static func inspect(_ url: URL, source: PluginSource) -> InstalledPlugin {
        let raw = (try? Data(contentsOf: url)).flatMap { try? JSONDecoder().decode(PartialManifest.self, from: $0) }
        var row = InstalledPlugin(id: raw?.id ?? url.deletingLastPathComponent().lastPathComponent,
                                  version: raw?.version ?? "?", abi: raw?.abi ?? "?",
                                  capabilities: raw?.capabilities?.compactMap(\.id) ?? [],
                                  source: source, status: .ok, manifestPath: url.path,
                                  library: raw?.library ?? "", problem: nil)
        do {
            _ = try PluginLoader.inspect(manifestURL: url)
        } catch let error as YardError {
            row.problem = error
            switch error.code {
            case .pluginCorrupt: row.status = .corrupt
            case .pluginIncompatible: row.status = .incompatible
            default: row.status = .invalid
            }
        } catch {
            row.status = .invalid
        }
        return row
    }

    /// Enough of plugin.json to show a row even when the manifest is invalid.
    struct PartialManifest: Decodable {
        struct Cap: Decodable { var id: String? }
        var id: String?
        var version: String?
        var abi: String?
        var library: String?
        var capabilities: [Cap]?
    }
}

