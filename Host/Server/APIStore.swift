import Crypto
import Foundation
import GRDB
import SwitchyardHost

/// What an API token may do. Each scope includes the ones below it.
public enum TokenScope: String, Codable, Sendable, CaseIterable, Comparable {
    /// Read the account's jobs, runs, artifacts and credits.
    case read
    /// Also submit, cancel and resume work, and upload inputs.
    case run
    /// Also manage engines, secrets and plugins (host-wide).
    case admin

    var rank: Int { TokenScope.allCases.firstIndex(of: self) ?? 0 }
    public static func < (lhs: TokenScope, rhs: TokenScope) -> Bool { lhs.rank < rhs.rank }
}

/// One API token as stored: never the token itself, only its SHA-256.
public struct APIToken: Codable, Sendable, Hashable {
    public var id: String
    public var account: String
    public var scope: TokenScope
    public var name: String?
    public var createdAt: Date
    public var revokedAt: Date?
    public var lastUsedAt: Date?
}

/// Tokens and who owns what, in the job store's own database (one file to
/// back up). Work submitted over the API belongs to the token's account;
/// a pipeline run's step jobs belong to whoever owns the run. Work submitted
/// with the CLI belongs to no account and is not visible over the API.
public final class APIStore: @unchecked Sendable {
    public let pool: DatabasePool

    public init(pool: DatabasePool) throws {
        self.pool = pool
        // Tables of the API only, created beside the job store's: the store's
        // own migrator never sees them, so neither side's migrations collide.
        try pool.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS api_token (
                    id TEXT PRIMARY KEY, account TEXT NOT NULL, scope TEXT NOT NULL, name TEXT,
                    token_sha256 TEXT NOT NULL UNIQUE, created_at DATETIME NOT NULL, revoked_at DATETIME, last_used_at DATETIME);
                CREATE TABLE IF NOT EXISTS api_owner (
                    kind TEXT NOT NULL, object_id TEXT NOT NULL, account TEXT NOT NULL, created_at DATETIME NOT NULL,
                    PRIMARY KEY (kind, object_id, account));
                CREATE INDEX IF NOT EXISTS api_owner_account ON api_owner (account, kind, created_at);
                """)
        }
    }

    /// The store of a JobEngine's SQLite store (the only backend today).
    public convenience init(engine: JobEngine) throws {
        guard let sqlite = engine.store as? SQLiteJobStore else {
            throw YardError("STORE_UNSUPPORTED", "The HTTP API needs the SQLite job store.", remediation: "Use the default store ($YARD_HOME/jobs.sqlite).")
        }
        try self.init(pool: sqlite.pool)
    }

    public static func validAccount(_ account: String) -> Bool {
        account.range(of: "^[a-z0-9][a-z0-9._-]{0,63}$", options: .regularExpression) != nil
    }

    static func digest(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    // MARK: tokens

    /// Creates a token and returns it with its record: the token is shown
    /// once and only its SHA-256 is kept.
    public func createToken(account: String, scope: TokenScope, name: String? = nil, now: Date = Date()) throws -> (token: String, record: APIToken) {
        guard Self.validAccount(account) else {
            throw YardError(.nameInvalid, "\"\(SafePath.shown(account))\" is not an account id.",
                            remediation: "Use lowercase letters, digits, '.', '_' or '-' (at most 64), e.g. --account acme.", field: "account")
        }
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = generator.next() }
        let secret = bytes.map { String(format: "%02x", $0) }.joined()
        let token = "yard_" + secret
        let record = APIToken(id: "tok_" + String(secret.prefix(10)), account: account, scope: scope, name: name, createdAt: now)
        try pool.write { db in
            try db.execute(sql: "INSERT INTO api_token (id, account, scope, name, token_sha256, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [record.id, account, scope.rawValue, name, Self.digest(token), now])
        }
        return (token, record)
    }

    static func token(_ row: Row) -> APIToken {
        APIToken(id: row["id"], account: row["account"], scope: TokenScope(rawValue: row["scope"]) ?? .read, name: row["name"],
                 createdAt: row["created_at"], revokedAt: row["revoked_at"], lastUsedAt: row["last_used_at"])
    }

    public func tokens() throws -> [APIToken] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM api_token ORDER BY created_at, id").map(Self.token) }
    }

    /// Revokes a token by id; false when there is no such token.
    @discardableResult
    public func revoke(_ id: String, now: Date = Date()) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "UPDATE api_token SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", arguments: [now, id])
            return db.changesCount > 0
        }
    }

    /// How stale `last_used_at` may get: a request only reads the token, and
    /// writes its use at most this often (a write per request would queue
    /// every API call behind the store's single writer).
    static let lastUsedResolutionSeconds: TimeInterval = 60

    /// The live token a bearer string names, or nil. Revocation takes effect
    /// at once: every request reads the token's row.
    public func authenticate(_ bearer: String, now: Date = Date()) throws -> APIToken? {
        guard bearer.hasPrefix("yard_"), bearer.utf8.count <= 128 else { return nil }
        let digest = Self.digest(bearer)
        guard let row = try pool.read({ db in
            try Row.fetchOne(db, sql: "SELECT * FROM api_token WHERE token_sha256 = ? AND revoked_at IS NULL", arguments: [digest])
        }) else { return nil }
        var token = Self.token(row)
        if token.lastUsedAt.map({ now.timeIntervalSince($0) >= Self.lastUsedResolutionSeconds }) ?? true {
            try pool.write { db in
                try db.execute(sql: "UPDATE api_token SET last_used_at = ? WHERE token_sha256 = ?", arguments: [now, digest])
            }
            token.lastUsedAt = now
        }
        return token
    }

    // MARK: ownership

    public enum OwnedKind: String, Sendable { case job, run, artifact }

    public func own(_ kind: OwnedKind, _ id: String, account: String, now: Date = Date()) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO api_owner (kind, object_id, account, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [kind.rawValue, id, account, now])
        }
    }

    /// SQL that is true when `job` (the table alias) belongs to the account
    /// bound to the one `?` it holds: the job itself, or the run it is a step of.
    static let jobOwned = """
        EXISTS (SELECT 1 FROM api_owner o WHERE o.account = ? AND
                ((o.kind = 'job' AND o.object_id = job.id) OR
                 (o.kind = 'run' AND job.idempotency_key LIKE 'pipeline/' || o.object_id || '/%')))
        """

    public func ownsJob(_ jobID: String, account: String) throws -> Bool {
        try pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM job WHERE job.id = ? AND \(Self.jobOwned))", arguments: [jobID, account]) ?? false
        }
    }

    public func ownsRun(_ runID: String, account: String) throws -> Bool {
        try pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM api_owner WHERE kind = 'run' AND object_id = ? AND account = ?)",
                              arguments: [runID, account]) ?? false
        }
    }

    /// An artifact is the account's when it uploaded it, or when it is an
    /// output of one of its jobs (a run's outputs are its step jobs' outputs).
    /// Plugins store artifacts without naming the job, so the job's outputs
    /// are what tie an artifact to it; a digest is 64 hex digits, safe in LIKE.
    public func ownsArtifact(_ sha256: String, account: String) throws -> Bool {
        try pool.read { db in
            if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM api_owner WHERE kind = 'artifact' AND object_id = ? AND account = ?)",
                                 arguments: [sha256, account]) == true { return true }
            guard ArtifactDirectory.isDigest(sha256) else { return false }
            return try Bool.fetchOne(db, sql: """
                SELECT EXISTS (SELECT 1 FROM job WHERE job.outputs_json LIKE '%sha256:' || ? || '%' AND \(Self.jobOwned))
                """, arguments: [sha256, account]) ?? false
        }
    }

    /// A page of the account's jobs, newest first, after `cursor` (the last
    /// row of the previous page: its created_at and id).
    public func jobs(account: String, phase: JobPhase?, engine: String?, capability: String?, limit: Int,
                     after cursor: (createdAt: String, id: String)?) throws -> (jobs: [JobRecord], next: (createdAt: String, id: String)?) {
        try pool.read { db in
            var sql = "SELECT job.*, CAST(job.created_at AS TEXT) AS created_at_text FROM job WHERE \(Self.jobOwned)"
            var arguments: [(any DatabaseValueConvertible)?] = [account]
            if let phase { sql += " AND job.phase = ?"; arguments.append(phase.rawValue) }
            if let engine { sql += " AND job.plugin_id = ?"; arguments.append(engine) }
            if let capability { sql += " AND job.capability = ?"; arguments.append(capability) }
            if let cursor {
                sql += " AND (CAST(job.created_at AS TEXT) < ? OR (CAST(job.created_at AS TEXT) = ? AND job.id < ?))"
                arguments += [cursor.createdAt, cursor.createdAt, cursor.id]
            }
            sql += " ORDER BY job.created_at DESC, job.id DESC LIMIT ?"
            arguments.append(limit + 1)
            let rows = try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments) ?? [])
            let page = rows.prefix(limit)
            let jobs = try page.map { try JobRecord(row: $0) }
            let next = rows.count > limit ? page.last.map { (createdAt: $0["created_at_text"] as String, id: $0["id"] as String) } : nil
            return (jobs, next)
        }
    }

    public func runIDs(account: String, limit: Int) throws -> [String] {
        try pool.read { db in
            try String.fetchAll(db, sql: "SELECT object_id FROM api_owner WHERE kind = 'run' AND account = ? ORDER BY created_at DESC, object_id DESC LIMIT ?",
                                arguments: [account, limit])
        }
    }

    /// Events of the account's jobs (or of one job) after an event id, oldest first.
    public func events(account: String, jobID: String?, afterID: Int64, limit: Int = 500) throws -> [JobEvent] {
        try pool.read { db in
            var sql = "SELECT e.* FROM job_event e JOIN job ON job.id = e.job_id WHERE e.id > ? AND \(Self.jobOwned)"
            var arguments: [(any DatabaseValueConvertible)?] = [afterID, account]
            if let jobID { sql += " AND e.job_id = ?"; arguments.append(jobID) }
            sql += " ORDER BY e.id LIMIT ?"
            arguments.append(limit)
            return try JobEvent.fetchAll(db, sql: sql, arguments: StatementArguments(arguments) ?? [])
        }
    }

    /// Job counts by engine and phase, for /metrics.
    public func jobCounts() throws -> [(engine: String, phase: String, count: Int)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT plugin_id, phase, COUNT(*) AS n FROM job GROUP BY plugin_id, phase").map {
                (engine: $0["plugin_id"], phase: $0["phase"], count: $0["n"])
            }
        }
    }
}
