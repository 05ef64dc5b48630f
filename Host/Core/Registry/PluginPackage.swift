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

    /// What a package may hold, checked before any entry is inflated: a
    /// zip's central directory can declare anything, so every byte read is
    /// counted against these limits too (zip bombs stop at the limit).
    public struct Limits: Sendable {
        /// The package file itself.
        public var maxPackageBytes: Int64 = 256 << 20
        /// The library, inflated.
        public var maxLibraryBytes: Int64 = 512 << 20
        public var maxManifestBytes: Int64 = Int64(DocumentLimits.manifest.maxBytes)
        public var maxSignatureBytes: Int64 = 64 << 10
        /// plugin.json, the library and signature.json.
        public var maxEntries = 3
        public init() {}
        public static let standard = Limits()
    }

    /// An opened package whose small members (manifest, signature) are read
    /// into memory; the library is written out only by `extractLibrary`,
    /// after the caller has checked the signature.
    struct Contents {
        let archive: Archive
        let name: String
        let limits: Limits
        let manifestBytes: Data
        let signatureBytes: Data?
        /// Entry names other than plugin.json and signature.json.
        let otherEntries: [Entry]
    }

    static func tooLarge(_ package: String, _ what: String, _ limit: Int64) -> YardError {
        YardError(.packageTooLarge, "\(package): \(what) is larger than \(limit) bytes.",
                  remediation: "Do not install it: a plugin package holds only plugin.json, a library and signature.json, well under these limits.")
    }

    /// Opens `package` and reads plugin.json and signature.json, refusing a
    /// package over the size or entry limits, an entry that is not a plain
    /// file name, or a member that inflates past its limit. Writes nothing.
    static func open(_ package: URL, limits: Limits = .standard) throws -> Contents {
        let name = package.lastPathComponent
        let size = ((try? FileManager.default.attributesOfItem(atPath: package.path))?[.size] as? NSNumber)?.int64Value ?? 0
        guard size <= limits.maxPackageBytes else { throw tooLarge(name, "the package", limits.maxPackageBytes) }
        let archive: Archive
        do { archive = try Archive(url: package, accessMode: .read) } catch {
            throw YardError(.packageInvalid, "\(name) is not a plugin package (zip archive).",
                            remediation: "Create packages with `yard plugin pack`.")
        }
        var names = Set<String>()
        var entries: [Entry] = []
        for entry in archive {
            let entryName = entry.path
            guard entries.count < limits.maxEntries else {
                throw YardError(.packageInvalid, "\(name) holds more than \(limits.maxEntries) entries.",
                                remediation: "Packages hold only plugin.json, the library and signature.json.")
            }
            guard entry.type == .file, SafePath.isPlainComponent(entryName), names.insert(entryName).inserted else {
                throw YardError(.packageInvalid, "\(name) holds an entry \"\(SafePath.shown(entryName))\" that is not a plain file name.",
                                remediation: "Do not install it: packages hold only plugin.json, the library and signature.json.")
            }
            let limit = entryName == manifestName ? limits.maxManifestBytes : entryName == signatureName ? limits.maxSignatureBytes : limits.maxLibraryBytes
            guard Int64(clamping: entry.uncompressedSize) <= limit else { throw tooLarge(name, entryName, limit) }
            entries.append(entry)
        }
        guard let manifestEntry = entries.first(where: { $0.path == manifestName }) else {
            throw YardError(.packageInvalid, "\(name) has no plugin.json.", remediation: "Create the package with `yard plugin pack`.")
        }
        let manifestBytes = try read(manifestEntry, from: archive, limit: limits.maxManifestBytes, package: name)
        let signatureBytes = try entries.first { $0.path == signatureName }.map { try read($0, from: archive, limit: limits.maxSignatureBytes, package: name) }
        return Contents(archive: archive, name: name, limits: limits, manifestBytes: manifestBytes, signatureBytes: signatureBytes,
                        otherEntries: entries.filter { $0.path != manifestName && $0.path != signatureName })
    }

    /// Thrown from inside the inflater's consumer: ZIPFoundation stops there.
    struct InflateLimit: Error {}

    static func read(_ entry: Entry, from archive: Archive, limit: Int64, package: String) throws -> Data {
        var data = Data()
        do {
            _ = try archive.extract(entry, skipCRC32: false) { chunk in
                guard Int64(data.count + chunk.count) <= limit else { throw InflateLimit() }
                data.append(chunk)
            }
        } catch is InflateLimit {
            throw tooLarge(package, entry.path, limit)
        } catch {
            throw YardError(.packageInvalid, "\(package): \(entry.path) cannot be read (\(error)).", remediation: "The package is damaged: fetch it again.")
        }
        return data
    }

    /// Inflates the library into `file`, at most its limit, hashing as it
    /// writes; returns the hex sha256. The caller checks it against the
    /// (already signature-checked) manifest before anything is moved into place.
    static func extractLibrary(_ entry: Entry, of contents: Contents, to file: URL) throws -> String {
        guard FileManager.default.createFile(atPath: file.path, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = try? FileHandle(forWritingTo: file) else {
            throw YardError(.ioFailed, "Cannot write \(file.path).", remediation: "Check free space and permissions of \(file.deletingLastPathComponent().path).")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        var written: Int64 = 0
        let limit = contents.limits.maxLibraryBytes
        do {
            _ = try contents.archive.extract(entry, skipCRC32: false) { chunk in
                written += Int64(chunk.count)
                guard written <= limit else { throw InflateLimit() }
                hasher.update(data: chunk)
                try handle.write(contentsOf: chunk)
            }
        } catch is InflateLimit {
            throw tooLarge(contents.name, entry.path, limit)
        } catch let error as YardError {
            throw error
        } catch {
            throw YardError(.packageInvalid, "\(contents.name): \(entry.path) cannot be read (\(error)).", remediation: "The package is damaged: fetch it again.")
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
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
        /// Where the plugin's code runs (`plugin install --isolation`); absent in
        /// lock files written before isolation existed, which means process.
        public var isolation: PluginIsolation?

        enum CodingKeys: String, CodingKey {
            case version, abi, platform, signer, unsigned, source, isolation
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

/// What a plugin's files must match when it loads. An installed plugin
/// ($YARD_HOME/plugins/ID) must match what `yard plugin install` recorded in
/// the lock file: the manifest byte for byte, and through it the library. A
/// plugin.json widened in place (an extra secret, an extra host) or a swapped
/// library is refused with MANIFEST_MISMATCH on every load, not only at install.
public enum LockExpectation: Sendable {
    /// Not an installed plugin (bundled, --plugin-path): nothing recorded to match.
    case none
    /// Installed under `id`; the lock file's entry, or nil when it has none.
    case installed(id: String, entry: PluginLockFile.Entry?)

    func verify(manifestBytes: Data, manifest: PluginManifest, manifestURL: URL) throws {
        guard case .installed(let id, let entry) = self else { return }
        let reinstall = "Reinstall it from its package (`yard plugin install PACKAGE`), or remove it (`yard plugin remove \(id)`). Never edit an installed plugin in place."
        guard let entry else {
            throw YardError(.manifestMismatch, "\(id) in \(manifestURL.deletingLastPathComponent().path) is not recorded in plugins.lock.json: it was not installed by `yard plugin install`.",
                            remediation: reinstall)
        }
        guard manifest.id == id else {
            throw YardError(.manifestMismatch, "The plugin installed as \(id) now calls itself \(manifest.id).", remediation: reinstall, field: "$.id")
        }
        let digest = PluginInstaller.hex(SHA256.hash(data: manifestBytes))
        guard digest == entry.manifestSHA256 else {
            throw YardError(.manifestMismatch, "\(id)'s plugin.json changed after it was installed (sha256 \(digest.prefix(16))…, the lock file records \(entry.manifestSHA256.prefix(16))…): its secrets, hosts or limits may have been widened.",
                            remediation: reinstall, field: "$")
        }
        guard manifest.sha256.lowercased() == entry.librarySHA256.lowercased() else {
            throw YardError(.manifestMismatch, "\(id)'s plugin.json names another library than the one installed.", remediation: reinstall, field: "$.sha256")
        }
    }
}

public struct InstallReport: Codable, Sendable {
    public var id: String
    public var version: String
    public var previousVersion: String?
    public var signer: String?
    public var unsigned: Bool
    public var path: String
    public var isolation: PluginIsolation

    enum CodingKeys: String, CodingKey {
        case id, version, signer, unsigned, path, isolation
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

    public func install(package: URL, allowUnsigned: Bool, source: String? = nil, isolation: PluginIsolation = .process) throws -> InstallReport {
        let fm = FileManager.default
        guard fm.fileExists(atPath: package.path) else {
            throw YardError(.pluginNotFound, "No package at \(package.path).", remediation: "Check the path, or install by id from an index.")
        }
        let tmpRoot = paths.home.appendingPathComponent("tmp")
        try fm.createDirectory(at: tmpRoot, withIntermediateDirectories: true)
        let staging = tmpRoot.appendingPathComponent("install-\(UUID().uuidString)")
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: staging) }

        // Manifest and signature are read into memory; the signature is checked
        // before any payload is written, and limits hold while inflating.
        let contents = try PluginPackage.open(package)
        let manifestBytes = contents.manifestBytes

        // Signature before anything else about the content: an untrusted
        // package's claims are not worth checking.
        var signer: String?
        if let sigData = contents.signatureBytes {
            guard let signature = try? JSONDecoder().decode(PackageSignature.self, from: sigData) else {
                throw YardError(.pluginSignatureInvalid, "signature.json in \(package.lastPathComponent) is malformed.", remediation: "Re-sign the package with `yard plugin sign`.")
            }
            if let refusal = trust.check(signature, manifestBytes: manifestBytes) { throw refusal }
            signer = "\(signature.publisher) (\(signature.keyID))"
        }
        let manifest = try PluginManifest.parse(manifestBytes, source: "\(package.lastPathComponent)/plugin.json")
        if signer == nil && !allowUnsigned {
            throw YardError(.pluginUnsigned, "\(manifest.id) \(manifest.version) is not signed.",
                            remediation: "Install signed packages only. For a plugin you built yourself, pass --allow-unsigned, or sign it with `yard plugin sign`.")
        }
        try PluginLoader.checkCompatibility(manifest)
        guard let libraryEntry = contents.otherEntries.first(where: { $0.path == manifest.library }), SafePath.isPlainComponent(manifest.library) else {
            throw YardError(.packageInvalid, "The package lacks \(manifest.library), the library plugin.json names.", remediation: "Repack it with `yard plugin pack`.")
        }
        if let stray = contents.otherEntries.first(where: { $0.path != manifest.library }) {
            throw YardError(.packageInvalid, "\(package.lastPathComponent) holds an unexpected file \(stray.path).",
                            remediation: "Packages hold only plugin.json, the library and signature.json.")
        }
        try manifestBytes.write(to: staging.appendingPathComponent(PluginPackage.manifestName))
        if let sigData = contents.signatureBytes { try sigData.write(to: staging.appendingPathComponent(PluginPackage.signatureName)) }
        let library = staging.appendingPathComponent(manifest.library)
        let librarySHA256 = try PluginPackage.extractLibrary(libraryEntry, of: contents, to: library)
        guard !manifest.sha256.isEmpty, librarySHA256 == manifest.sha256.lowercased() else {
            throw YardError(.pluginCorrupt, "\(manifest.id): \(manifest.library) in the package has sha256 \(librarySHA256.prefix(16))…, but plugin.json says \(manifest.sha256.prefix(16))….",
                            remediation: "Do not install it: the package was altered or damaged. Fetch it again from its publisher.", field: "$.sha256")
        }
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
            source: source ?? package.path, installedAt: ISO8601DateFormatter().string(from: Date()), isolation: isolation)
        try lock.save(paths.lockFile)
        return InstallReport(id: manifest.id, version: manifest.version, previousVersion: previous, signer: signer,
                             unsigned: signer == nil, path: destination.path, isolation: isolation)
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
