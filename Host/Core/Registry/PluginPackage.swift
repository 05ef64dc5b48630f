import Crypto
import Foundation
import ZIPFoundation

/// A plugin package (.yardpkg): one zip archive holding plugin.json, the
/// library it names, and optionally signature.json. Nothing else is allowed,
/// and no entry may carry a path, so unpacking cannot escape its folder.
public enum PluginPackage {
    public static let manifestName = "plugin.json"
    public static let signatureName = "signature.json"

    /// Builds a package from a manifest template and a built library, filling
    /// in sha256, platform and toolchain. With `key`, signs it too.
    @discardableResult
    public static func pack(manifestURL: URL, library: URL, output: URL, key: PublisherKeyFile?, unpacked: Bool = false) throws -> PluginManifest {
        guard let templateData = try? Data(contentsOf: manifestURL),
              var object = try? JSONSerialization.jsonObject(with: templateData) as? [String: Any] else {
            throw YardError(.manifestInvalid, "\(manifestURL.path) is not a readable JSON manifest.", remediation: "Check the path.")
        }
        guard FileManager.default.fileExists(atPath: library.path) else {
            throw YardError(.pluginNotFound, "No library at \(library.path).", remediation: "Build the plugin first (`swift build`).")
        }
        let libraryName = (object["library"] as? String) ?? library.lastPathComponent
        object["library"] = libraryName
        object["sha256"] = try PluginLoader.sha256(of: library)
        if ((object["platform"] as? String) ?? "").isEmpty { object["platform"] = HostPlatform.platform }
        if ((object["toolchain"] as? String) ?? "").isEmpty { object["toolchain"] = HostPlatform.toolchain }
        let manifestBytes = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        let manifest = try PluginManifest.parse(manifestBytes, source: manifestURL.path)
        try PluginLoader.checkCompatibility(manifest)

        let fm = FileManager.default
        let staging = unpacked ? output : fm.temporaryDirectory.appendingPathComponent("yard-pack-\(UUID().uuidString)")
        try? fm.removeItem(at: staging)
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { if !unpacked { try? fm.removeItem(at: staging) } }
        try manifestBytes.write(to: staging.appendingPathComponent(manifestName))
        try? fm.removeItem(at: staging.appendingPathComponent(libraryName))
        try fm.copyItem(at: library, to: staging.appendingPathComponent(libraryName))
        var files = [manifestName, libraryName]
        if let key {
            let signature = try PackageSignature.sign(manifestBytes, with: key)
            try JSONEncoder().encode(signature).write(to: staging.appendingPathComponent(signatureName))
            files.append(signatureName)
        }
        if unpacked { return manifest }
        try? fm.removeItem(at: output)
        let archive = try Archive(url: output, accessMode: .create)
        for file in files { try archive.addEntry(with: file, relativeTo: staging, compressionMethod: .deflate) }
        return manifest
    }

    /// The manifest inside a package, read without unpacking it.
    public static func manifest(of package: URL) throws -> PluginManifest {
        let archive: Archive
        do { archive = try Archive(url: package, accessMode: .read) } catch {
            throw YardError(.packageInvalid, "\(package.path) is not a plugin package (zip).", remediation: "Create one with `yard plugin pack`.")
        }
        guard let entry = archive[manifestName], entry.uncompressedSize < 4 << 20 else {
            throw YardError(.packageInvalid, "\(package.path) has no plugin.json.", remediation: "Create the package with `yard plugin pack`.")
        }
        var bytes = Data()
        _ = try archive.extract(entry) { bytes.append($0) }
        return try PluginManifest.parse(bytes, source: "\(package.lastPathComponent)/plugin.json")
    }

    /// Adds or replaces the signature of an existing package.
    public static func sign(package: URL, key: PublisherKeyFile) throws {
        let archive: Archive
        do { archive = try Archive(url: package, accessMode: .update) } catch {
            throw YardError(.packageInvalid, "\(package.path) is not a plugin package (zip).", remediation: "Create one with `yard plugin pack`.")
        }
        guard let entry = archive[manifestName] else {
            throw YardError(.packageInvalid, "\(package.path) has no plugin.json.", remediation: "Create the package with `yard plugin pack`.")
        }
        var manifestBytes = Data()
        _ = try archive.extract(entry) { manifestBytes.append($0) }
        let signature = try JSONEncoder().encode(PackageSignature.sign(manifestBytes, with: key))
        if let old = archive[signatureName] { try archive.remove(old) }
        try archive.addEntry(with: signatureName, type: .file, uncompressedSize: Int64(signature.count)) { position, size in
            signature.subdata(in: Int(position)..<Int(position) + size)
        }
    }

    /// Unpacks into `directory` after checking every entry name.
    static func unpack(_ package: URL, into directory: URL) throws {
        let archive: Archive
        do { archive = try Archive(url: package, accessMode: .read) } catch {
            throw YardError(.packageInvalid, "\(package.lastPathComponent) is not a plugin package (zip archive).",
                            remediation: "Create packages with `yard plugin pack`.")
        }
        var names = Set<String>()
        for entry in archive {
            let name = entry.path
            guard entry.type == .file, !name.contains("/"), !name.contains("\\"), name != ".", name != "..", names.insert(name).inserted else {
                throw YardError(.packageInvalid, "\(package.lastPathComponent) holds an entry \"\(name)\" that is not a plain file name.",
                                remediation: "Do not install it: packages hold only plugin.json, the library and signature.json.")
            }
        }
        guard names.contains(manifestName) else {
            throw YardError(.packageInvalid, "\(package.lastPathComponent) has no plugin.json.", remediation: "Create the package with `yard plugin pack`.")
        }
        guard names.count <= 3 else {
            throw YardError(.packageInvalid, "\(package.lastPathComponent) holds unexpected files: \(names.sorted().joined(separator: ", ")).",
                            remediation: "Packages hold only plugin.json, the library and signature.json.")
        }
        for entry in archive {
            _ = try archive.extract(entry, to: directory.appendingPathComponent(entry.path))
        }
    }
}

/// What `yard plugin install` recorded: plugins.lock.json in $YARD_HOME.
public struct PluginLockFile: Codable, Sendable {
    public struct Entry: Codable, Sendable, Equatable {
        public var version: String
        public var abi: String
        public var platform: String
        public var librarySHA256: String
        public var manifestSHA256: String
        public var packageSHA256: String
        public var signer: String?
        public var unsigned: Bool
        public var source: String
        public var installedAt: String

        enum CodingKeys: String, CodingKey {
            case version, abi, platform, signer, unsigned, source
            case librarySHA256 = "library_sha256"
            case manifestSHA256 = "manifest_sha256"
            case packageSHA256 = "package_sha256"
            case installedAt = "installed_at"
        }
    }
    public var lockVersion = 1
    public var plugins: [String: Entry] = [:]

    enum CodingKeys: String, CodingKey {
        case plugins
        case lockVersion = "lock_version"
    }

    public static func load(_ url: URL) -> PluginLockFile {
        (try? Data(contentsOf: url)).flatMap { try? JSONDecoder().decode(PluginLockFile.self, from: $0) } ?? PluginLockFile()
    }

    public func save(_ url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try encoder.encode(self).write(to: url, options: .atomic)
    }
}

public struct InstallReport: Codable, Sendable {
    public var id: String
    public var version: String
    public var previousVersion: String?
    public var signer: String?
    public var unsigned: Bool
    public var path: String

    enum CodingKeys: String, CodingKey {
        case id, version, signer, unsigned, path
        case previousVersion = "previous_version"
    }
}

/// Installs, removes and upgrades plugins in $YARD_HOME/plugins. Every check
/// passes before anything is moved into place, and the move is a rename, so
/// a refused or interrupted install leaves the previous state intact.
public struct PluginInstaller: Sendable {
    public var paths: YardPaths
    public var trust: TrustStore

    public init(paths: YardPaths, registryDirectory: URL? = YardPaths.registryDirectory()) {
        self.paths = paths
        var dirs = [paths.trustedKeysDirectory]
        if let registryDirectory { dirs.insert(registryDirectory.appendingPathComponent("keys"), at: 0) }
        self.trust = TrustStore(directories: dirs)
    }

    public func install(package: URL, allowUnsigned: Bool, source: String? = nil) throws -> InstallReport {
        let fm = FileManager.default
        guard fm.fileExists(atPath: package.path) else {
            throw YardError(.pluginNotFound, "No package at \(package.path).", remediation: "Check the path, or install by id from an index.")
        }
        let tmpRoot = paths.home.appendingPathComponent("tmp")
        try fm.createDirectory(at: tmpRoot, withIntermediateDirectories: true)
        let staging = tmpRoot.appendingPathComponent("install-\(UUID().uuidString)")
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: staging) }

        try PluginPackage.unpack(package, into: staging)
        let manifestURL = staging.appendingPathComponent(PluginPackage.manifestName)
        let manifestBytes = try Data(contentsOf: manifestURL)
        let manifest = try PluginManifest.parse(manifestBytes, source: "\(package.lastPathComponent)/plugin.json")

        // Signature before anything else about the content: an untrusted
        // package's claims are not worth checking.
        var signer: String?
        let sigURL = staging.appendingPathComponent(PluginPackage.signatureName)
        if let sigData = try? Data(contentsOf: sigURL) {
            guard let signature = try? JSONDecoder().decode(PackageSignature.self, from: sigData) else {
                throw YardError(.pluginSignatureInvalid, "signature.json in \(package.lastPathComponent) is malformed.", remediation: "Re-sign the package with `yard plugin sign`.")
            }
            if let refusal = trust.check(signature, manifestBytes: manifestBytes) { throw refusal }
            signer = "\(signature.publisher) (\(signature.keyID))"
        } else if !allowUnsigned {
            throw YardError(.pluginUnsigned, "\(manifest.id) \(manifest.version) is not signed.",
                            remediation: "Install signed packages only. For a plugin you built yourself, pass --allow-unsigned, or sign it with `yard plugin sign`.")
        }
        let library = staging.appendingPathComponent(manifest.library)
        guard fm.fileExists(atPath: library.path) else {
            throw YardError(.packageInvalid, "The package lacks \(manifest.library), the library plugin.json names.", remediation: "Repack it with `yard plugin pack`.")
        }
        try PluginLoader.checkCompatibility(manifest)
        try PluginLoader.verifyLibrary(manifest, at: library)
        try PluginLoader.checkELF(library, id: manifest.id)

        let destination = paths.pluginsDirectory.appendingPathComponent(manifest.id)
        var lock = PluginLockFile.load(paths.lockFile)
        let previous = lock.plugins[manifest.id]?.version
            ?? (try? PluginManifest.parse(Data(contentsOf: destination.appendingPathComponent("plugin.json")), source: ""))?.version
        try fm.createDirectory(at: paths.pluginsDirectory, withIntermediateDirectories: true)
        let old = tmpRoot.appendingPathComponent("old-\(UUID().uuidString)")
        if fm.fileExists(atPath: destination.path) { try fm.moveItem(at: destination, to: old) }
        do {
            try fm.moveItem(at: staging, to: destination)
        } catch {
            if fm.fileExists(atPath: old.path) { try? fm.moveItem(at: old, to: destination) }
            throw YardError(.ioFailed, "Could not move \(manifest.id) into \(destination.path): \(error).", remediation: "Check permissions and free space in \(paths.home.path).")
        }
        try? fm.removeItem(at: old)

        lock.plugins[manifest.id] = PluginLockFile.Entry(
            version: manifest.version, abi: manifest.abi, platform: manifest.platform,
            librarySHA256: manifest.sha256, manifestSHA256: Self.hex(SHA256.hash(data: manifestBytes)),
            packageSHA256: try PluginLoader.sha256(of: package), signer: signer, unsigned: signer == nil,
            source: source ?? package.path, installedAt: ISO8601DateFormatter().string(from: Date()))
        try lock.save(paths.lockFile)
        return InstallReport(id: manifest.id, version: manifest.version, previousVersion: previous, signer: signer,
                             unsigned: signer == nil, path: destination.path)
    }

    public func remove(id: String) throws -> String {
        let fm = FileManager.default
        let destination = paths.pluginsDirectory.appendingPathComponent(id)
        guard !id.contains("/"), id != "..", fm.fileExists(atPath: destination.path) else {
            throw YardError(.pluginNotFound, "\(id) is not installed in \(paths.pluginsDirectory.path).",
                            remediation: "Run `yard plugin list`; bundled plugins cannot be removed, only shadowed.")
        }
        let version = (try? PluginManifest.parse(Data(contentsOf: destination.appendingPathComponent("plugin.json")), source: ""))?.version ?? "?"
        try fm.removeItem(at: destination)
        var lock = PluginLockFile.load(paths.lockFile)
        lock.plugins.removeValue(forKey: id)
        try lock.save(paths.lockFile)
        return version
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
