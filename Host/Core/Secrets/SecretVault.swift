import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Secrets at rest: $YARD_HOME/secrets.json holds AES-GCM sealed values; the
/// 256-bit key is $YARD_SECRET_KEY (base64) or $YARD_HOME/keys/vault.key
/// (mode 0600 in a 0700 folder, created on first use; `YardPaths.vaultKeyFile`
/// is the only place it is named). A key at the old place beside
/// secrets.json ($YARD_HOME/secret.key) is moved there on first use. An
/// environment variable of the same name overrides a stored value. Values
/// are never printed: `list` shows names.
public final class SecretVault: SecretSource, @unchecked Sendable {
    let file: URL
    let keyFile: URL
    let legacyKeyFile: URL
    let environment: [String: String]
    private let lock = NSLock()
    /// Values already decrypted, valid while secrets.json and the key file
    /// are the files they were read from (same inode, size and mtime): the
    /// engine redacts every stored text with every declared secret, and
    /// reading, parsing and opening AES-GCM boxes each time cost more than the
    /// job itself. Another process's `yard secrets set` replaces the file
    /// (rename), which changes its inode, so the next read sees the new value.
    private var opened: (stamp: [FileStamp?], values: [String: String?])?

    struct FileStamp: Equatable {
        var inode: UInt64, size: Int64, seconds: Int, nanoseconds: Int
        static func of(_ url: URL) -> FileStamp? {
            var info = stat()
            guard stat(url.path, &info) == 0 else { return nil }
            return FileStamp(inode: UInt64(info.st_ino), size: Int64(info.st_size), seconds: Int(info.st_mtim.tv_sec), nanoseconds: Int(info.st_mtim.tv_nsec))
        }
    }

    public init(paths: YardPaths, environment: [String: String] = ProcessInfo.processInfo.environment) {
        file = paths.secretsFile
        keyFile = paths.vaultKeyFile
        legacyKeyFile = paths.legacyVaultKeyFile
        self.environment = environment
    }

    /// Moves a key from beside secrets.json to the keys folder (a rename, so
    /// a crash leaves it in one place or the other, never in neither).
    func migrateLegacyKey() throws {
        let fm = FileManager.default
        guard fm.fileExists(atPath: legacyKeyFile.path), !fm.fileExists(atPath: keyFile.path) else { return }
        try PrivateFiles.makeDirectory(keyFile.deletingLastPathComponent())
        PrivateFiles.tighten(keyFile.deletingLastPathComponent())
        guard rename(legacyKeyFile.path, keyFile.path) == 0 else {
            throw YardError(.ioFailed, "Cannot move the vault key from \(legacyKeyFile.path) to \(keyFile.path).",
                            remediation: "Move it by hand (mkdir -m 700 -p \(keyFile.deletingLastPathComponent().path) && mv \(legacyKeyFile.path) \(keyFile.path)).")
        }
        PrivateFiles.tighten(keyFile)
    }

    struct Sealed: Codable {
        var version = 1
        var entries: [String: String] = [:]
    }

    private func key(create: Bool) throws -> SymmetricKey? {
        if let env = environment["YARD_SECRET_KEY"], !env.isEmpty {
            guard let raw = Data(base64Encoded: env), raw.count == 32 else {
                throw YardError("SECRET_KEY_INVALID", "YARD_SECRET_KEY is not 32 bytes of base64.",
                                remediation: "Set it to the output of `head -c32 /dev/urandom | base64`, or unset it to use the key file.")
            }
            return SymmetricKey(data: raw)
        }
        try migrateLegacyKey()
        if let raw = try? Data(contentsOf: keyFile) {
            PrivateFiles.tighten(keyFile)
            guard raw.count == 32 else {
                throw YardError("SECRET_KEY_INVALID", "\(keyFile.path) is damaged (not 32 bytes).",
                                remediation: "Restore it from a backup; without it the stored secrets cannot be read. Or remove secrets.json and the key and set the secrets again.")
            }
            return SymmetricKey(data: raw)
        }
        guard create else { return nil }
        try PrivateFiles.makeDirectory(keyFile.deletingLastPathComponent())
        PrivateFiles.tighten(keyFile.deletingLastPathComponent())
        let key = SymmetricKey(size: .bits256)
        let bytes = key.withUnsafeBytes { Data($0) }
        let tmp = keyFile.deletingLastPathComponent().appendingPathComponent(".vault.key.\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: tmp.path, contents: bytes, attributes: [.posixPermissions: 0o600]) else {
            throw YardError(.ioFailed, "Cannot create \(keyFile.path).", remediation: "Check that \(keyFile.deletingLastPathComponent().path) is writable.")
        }
        defer { unlink(tmp.path) }
        // link() fails if another process made the key first: then that key is the one.
        if link(tmp.path, keyFile.path) != 0 {
            guard errno == EEXIST, let raw = try? Data(contentsOf: keyFile), raw.count == 32 else {
                throw YardError(.ioFailed, "Cannot create \(keyFile.path).", remediation: "Check that \(keyFile.deletingLastPathComponent().path) is writable.")
            }
            return SymmetricKey(data: raw)
        }
        return key
    }

    private func load() -> Sealed {
        (try? Data(contentsOf: file)).flatMap { try? JSONDecoder().decode(Sealed.self, from: $0) } ?? Sealed()
    }

    private func save(_ sealed: Sealed) throws {
        let data = try JSONEncoder().encode(sealed)
        try PrivateFiles.makeDirectory(file.deletingLastPathComponent())
        let tmp = file.appendingPathExtension("tmp")
        try? FileManager.default.removeItem(at: tmp)
        guard FileManager.default.createFile(atPath: tmp.path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw YardError(.ioFailed, "Cannot write \(file.path).", remediation: "Check permissions of \(file.deletingLastPathComponent().path).")
        }
        guard rename(tmp.path, file.path) == 0 else {
            throw YardError(.ioFailed, "Cannot replace \(file.path).", remediation: "Check permissions of \(file.deletingLastPathComponent().path).")
        }
    }

    public func set(_ name: String, value: String) throws {
        guard name.range(of: "^[A-Z][A-Z0-9_]{0,63}$", options: .regularExpression) != nil else {
            throw YardError(.usage, "\"\(name)\" is not a secret name.", remediation: "Use UPPER_SNAKE_CASE, as plugins declare them (e.g. FAL_KEY).", field: "name")
        }
        try lock.withLock {
            guard let key = try key(create: true) else { return }
            var sealed = load()
            let box = try AES.GCM.seal(Data(value.utf8), using: key, authenticating: Data(name.utf8))
            sealed.entries[name] = box.combined?.base64EncodedString()
            try save(sealed)
            opened = nil
        }
    }

    @discardableResult
    public func remove(_ name: String) throws -> Bool {
        try lock.withLock {
            var sealed = load()
            guard sealed.entries.removeValue(forKey: name) != nil else { return false }
            try save(sealed)
            opened = nil
            return true
        }
    }

    /// Names of stored secrets, and which are also set in the environment.
    public func names() -> [(name: String, fromEnvironment: Bool)] {
        lock.withLock { load().entries.keys.sorted().map { ($0, environment[$0] != nil) } }
    }

    public func value(of name: String) -> String? {
        if let env = environment[name], !env.isEmpty { return env }
        return lock.withLock {
            // A missing file is part of the stamp too: it appearing changes it.
            let stamp = [FileStamp.of(file), FileStamp.of(keyFile), FileStamp.of(legacyKeyFile)]
            if let opened, opened.stamp == stamp, let known = opened.values[name] { return known }
            let value = decrypt(name)
            // decrypt may have moved a legacy key: stamp what is there now.
            let after = [FileStamp.of(file), FileStamp.of(keyFile), FileStamp.of(legacyKeyFile)]
            var values = opened?.stamp == after ? opened?.values ?? [:] : [:]
            values[name] = .some(value)
            opened = (after, values)
            return value
        }
    }

    private func decrypt(_ name: String) -> String? {
        guard let b64 = load().entries[name], let combined = Data(base64Encoded: b64),
              let key = try? key(create: false), let box = try? AES.GCM.SealedBox(combined: combined),
              let plain = try? AES.GCM.open(box, using: key, authenticating: Data(name.utf8)) else { return nil }
        return String(decoding: plain, as: UTF8.self)
    }
}
