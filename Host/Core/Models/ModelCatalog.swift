import Foundation
import GRDB

/// One model the host keeps on disk: which repository at which resolved
/// revision, what kind of model, its files with their digests, and whether it
/// is usable. Files live under `$YARD_HOME/models/<vendor>/<repo>/<revision>/`.
public struct ModelRecord: Codable, Sendable, Hashable {
    public enum Status: String, Codable, Sendable { case available, downloading, failed }

    /// `<vendor>:<repo>`, e.g. `huggingface:stabilityai/sdxl-turbo`, `civitai:4384/128713`.
    public var id: String
    public var vendor: String
    public var repo: String
    /// The commit (huggingface) or version id (civitai) actually fetched.
    public var revision: String
    /// checkpoint, lora, llm, video, audio, embedding, vae, controlnet, other.
    public var type: String
    public var license: String?
    public var status: Status
    /// Why the model is not available (a stable code, then a sentence).
    public var reason: String?
    public var files: [ModelFileRecord]
    public var path: String
    public var createdAt: Date
    public var updatedAt: Date

    public var totalBytes: Int { files.reduce(0) { $0 + $1.size } }

    enum CodingKeys: String, CodingKey {
        case id, vendor, repo, revision, type, license, status, reason, files, path
        case createdAt = "created_at", updatedAt = "updated_at"
        case totalBytes = "total_bytes"
    }

    public init(id: String, vendor: String, repo: String, revision: String, type: String, license: String?, status: Status,
                reason: String? = nil, files: [ModelFileRecord], path: String, createdAt: Date = Date(), updatedAt: Date = Date()) {
        self.id = id
        self.vendor = vendor
        self.repo = repo
        self.revision = revision
        self.type = type
        self.license = license
        self.status = status
        self.reason = reason
        self.files = files
        self.path = path
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        vendor = try c.decode(String.self, forKey: .vendor)
        repo = try c.decode(String.self, forKey: .repo)
        revision = try c.decode(String.self, forKey: .revision)
        type = try c.decode(String.self, forKey: .type)
        license = try c.decodeIfPresent(String.self, forKey: .license)
        status = try c.decode(Status.self, forKey: .status)
        reason = try c.decodeIfPresent(String.self, forKey: .reason)
        files = try c.decode([ModelFileRecord].self, forKey: .files)
        path = try c.decode(String.self, forKey: .path)
        createdAt = try c.decode(Date.self, forKey: .createdAt)
        updatedAt = try c.decode(Date.self, forKey: .updatedAt)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(vendor, forKey: .vendor)
        try c.encode(repo, forKey: .repo)
        try c.encode(revision, forKey: .revision)
        try c.encode(type, forKey: .type)
        try c.encodeIfPresent(license, forKey: .license)
        try c.encode(status, forKey: .status)
        try c.encodeIfPresent(reason, forKey: .reason)
        try c.encode(files, forKey: .files)
        try c.encode(path, forKey: .path)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
        try c.encode(totalBytes, forKey: .totalBytes)
    }
}

public struct ModelFileRecord: Codable, Sendable, Hashable {
    /// Relative to the model's directory.
    public var path: String
    public var size: Int
    /// Hex sha256 of the bytes on disk (for LFS files, the Hub's announced digest, verified).
    public var sha256: String?

    public init(path: String, size: Int, sha256: String?) {
        self.path = path
        self.size = size
        self.sha256 = sha256
    }
}

/// The model catalog, in the host's SQLite store (table `model`, created by
/// the migration "2026-11-22 models.catalog").
public final class ModelCatalog: @unchecked Sendable {
    let pool: DatabasePool
    public let root: URL

    public init(store: SQLiteJobStore, root: URL) {
        self.pool = store.pool
        self.root = root
    }

    /// `$YARD_HOME/models`.
    public static func root(of paths: YardPaths) -> URL { paths.home.appendingPathComponent("models") }

    static func migrate(_ db: Database) throws {
        try db.create(table: "model") { t in
            t.column("id", .text).notNull()
            t.column("revision", .text).notNull()
            t.column("vendor", .text).notNull()
            t.column("repo", .text).notNull()
            t.column("type", .text).notNull()
            t.column("license", .text)
            t.column("status", .text).notNull()
            t.column("reason", .text)
            t.column("files_json", .text).notNull()
            t.column("path", .text).notNull()
            t.column("created_at", .datetime).notNull()
            t.column("updated_at", .datetime).notNull()
            t.primaryKey(["id", "revision"])
        }
    }

    public func directory(vendor: String, repo: String, revision: String) -> URL {
        root.appendingPathComponent(vendor).appendingPathComponent(repo).appendingPathComponent(revision)
    }

    /// `directory(…)` after checking each part: the vendor and the revision
    /// are one plain name each (a Hub commit, a Civitai version id, a digest),
    /// the repo is `owner/name`, and the folder stays below the model root
    /// whatever symlinks lie on the way.
    public func checkedDirectory(vendor: String, repo: String, revision: String) throws -> URL {
        try SafePath.fileName(vendor, field: "vendor")
        try SafePath.fileName(revision, field: "revision")
        guard !revision.hasPrefix("."), !vendor.hasPrefix(".") else {
            throw YardError(.nameInvalid, "The model revision \"\(SafePath.shown(revision))\" is not a plain name.",
                            remediation: "Pull a branch, tag or commit id; report the model host's answer if it named this revision.", field: "revision")
        }
        let repoParts = try SafePath.components(of: repo, field: "repo")
        guard repoParts.count <= 2, repoParts.allSatisfy({ !$0.hasPrefix(".") }) else {
            throw YardError(.nameInvalid, "\"\(SafePath.shown(repo))\" is not a repo id (owner/name).", remediation: "Use owner/name.", field: "repo")
        }
        return try SafePath.contained("\(vendor)/\(repo)/\(revision)", in: root, field: "revision")
    }

    public func save(_ record: ModelRecord) throws {
        let files = String(decoding: try JSONEncoder().encode(record.files), as: UTF8.self)
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO model (id, revision, vendor, repo, type, license, status, reason, files_json, path, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id, revision) DO UPDATE SET type = excluded.type, license = excluded.license, status = excluded.status,
                  reason = excluded.reason, files_json = excluded.files_json, path = excluded.path, updated_at = excluded.updated_at
                """, arguments: [record.id, record.revision, record.vendor, record.repo, record.type, record.license, record.status.rawValue,
                                 record.reason, files, record.path, record.createdAt, record.updatedAt])
        }
    }

    public func setStatus(id: String, revision: String, _ status: ModelRecord.Status, reason: String?) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE model SET status = ?, reason = ?, updated_at = ? WHERE id = ? AND revision = ?",
                           arguments: [status.rawValue, reason, Date(), id, revision])
        }
    }

    public func all() throws -> [ModelRecord] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM model ORDER BY id, created_at").map(Self.record) }
    }

    /// Every revision of `id` (or the one given), newest first.
    public func records(id: String, revision: String? = nil) throws -> [ModelRecord] {
        try pool.read { db in
            if let revision {
                return try Row.fetchAll(db, sql: "SELECT * FROM model WHERE id = ? AND (revision = ? OR revision LIKE ?) ORDER BY updated_at DESC",
                                        arguments: [id, revision, revision + "%"]).map(Self.record)
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM model WHERE id = ? ORDER BY updated_at DESC", arguments: [id]).map(Self.record)
        }
    }

    public func delete(id: String, revision: String) throws {
        try pool.write { db in try db.execute(sql: "DELETE FROM model WHERE id = ? AND revision = ?", arguments: [id, revision]) }
    }

    static func record(_ row: Row) throws -> ModelRecord {
        let filesText: String = row["files_json"]
        let files = (try? JSONDecoder().decode([ModelFileRecord].self, from: Data(filesText.utf8))) ?? []
        return ModelRecord(id: row["id"], vendor: row["vendor"], repo: row["repo"], revision: row["revision"], type: row["type"],
                           license: row["license"], status: ModelRecord.Status(rawValue: row["status"]) ?? .failed, reason: row["reason"],
                           files: files, path: row["path"], createdAt: row["created_at"], updatedAt: row["updated_at"])
    }
}
