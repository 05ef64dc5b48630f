import Foundation
import GRDB

/// The engine's view of durable state. One protocol, two backends planned:
/// SQLite for one machine (SQLiteJobStore) and PostgreSQL for several hosts
/// working one queue. Every method is one transaction.
public protocol JobStore: Sendable {
    /// Inserts a job unless its idempotency key exists; returns the stored row
    /// and whether it was created. Commits before the caller contacts a provider.
    func insertJob(_ job: JobRecord) throws -> (JobRecord, created: Bool)
    func job(id: String) throws -> JobRecord?
    func job(idempotencyKey: String) throws -> JobRecord?
    /// Read-modify-write of one job in a single transaction.
    @discardableResult
    func updateJob(id: String, _ change: @Sendable (inout JobRecord) throws -> Void) throws -> JobRecord
    func unfinishedJobs() throws -> [JobRecord]
    func jobs(limit: Int, phase: JobPhase?) throws -> [JobRecord]
    func appendEvent(jobID: String, kind: String, message: String, data: String?) throws
    func events(jobID: String, afterID: Int64) throws -> [JobEvent]
    func recordArtifact(_ artifact: ArtifactRecord) throws
    /// The cached check with this key (EngineHealthRecord.key), if any.
    func health(cacheKey: String) throws -> EngineHealthRecord?
    /// The newest check of an engine under any key (for diagnostics).
    func latestHealth(pluginID: String) throws -> EngineHealthRecord?
    func saveHealth(_ record: EngineHealthRecord) throws
    /// Settles a parked job (needs_attention, its submission never confirmed)
    /// by what is now known, in one transaction with its ledger row and an
    /// audit event: the provider never received it (failed, refunded), or it
    /// did, under `ref` (queued again, to be polled and settled from usage).
    @discardableResult
    func resolveParked(jobID: String, _ resolution: ParkedResolution, audit: String, at: Date) throws -> JobRecord
    // Plugin-scoped key-value store behind sy.kv/1.
    func kvGet(pluginID: String, key: String, now: Date) throws -> Data?
    func kvPut(pluginID: String, key: String, value: Data, expiresAt: Date?) throws
    func kvRemove(pluginID: String, key: String) throws
    // Webhook intake: find a job by members of its stored ref; remember deliveries.
    func jobs(pluginID: String, refMatching match: [String: String]) throws -> [JobRecord]
    func webhookDelivery(pluginID: String, dedupeKey: String) throws -> WebhookDeliveryRecord?
    func recordWebhookDelivery(_ record: WebhookDeliveryRecord) throws
}

/// What became of a job whose submission was never confirmed.
public enum ParkedResolution: Sendable, Equatable {
    /// The provider never received it: nothing to pay.
    case notSubmitted
    /// The provider has it under this ref (canonical JSON of the plugin's ref).
    case submitted(ref: String)
}

/// SQLite in WAL mode under $YARD_HOME, through GRDB.
public final class SQLiteJobStore: JobStore, @unchecked Sendable {
    public let pool: DatabasePool
    /// Runs inside the transaction that moves a job to a terminal phase (the
    /// credits ledger settles there). Set once, before jobs run.
    public var finishHook: (@Sendable (Database, JobRecord) throws -> Void)?
    /// Runs inside the transaction that resolves a parked job (the ledger refunds or re-holds there).
    public var parkedHook: (@Sendable (Database, JobRecord, ParkedResolution, String) throws -> Void)?

    public init(path: URL) throws {
        try PrivateFiles.makeDirectory(path.deletingLastPathComponent())
        // SQLite gives the -wal and -shm files the database file's mode: a
        // database created 0600 keeps all three private.
        if !FileManager.default.fileExists(atPath: path.path) {
            FileManager.default.createFile(atPath: path.path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        for file in [path.path, path.path + "-wal", path.path + "-shm"] { PrivateFiles.tighten(URL(fileURLWithPath: file)) }
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        do {
            pool = try DatabasePool(path: path.path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch {
            throw YardError(.ioFailed, "Cannot open the job store at \(path.path): \(error).",
                            remediation: "Check that \(path.deletingLastPathComponent().path) is writable and not on a network file system.")
        }
    }

    /// Named, append-only migrations: never edit one that has shipped.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("2026-11-22 jobs, events, artifacts, health, kv") { db in
            try db.create(table: "job") { t in
                t.primaryKey("id", .text)
                t.column("idempotency_key", .text).notNull().unique()
                t.column("plugin_id", .text).notNull()
                t.column("plugin_version", .text).notNull()
                t.column("capability", .text).notNull()
                t.column("inputs_json", .text).notNull()
                t.column("input_hash", .text).notNull()
                t.column("config_json", .text).notNull()
                t.column("phase", .text).notNull().indexed()
                t.column("ref_json", .text)
                t.column("attempt", .integer).notNull()
                t.column("progress", .double)
                t.column("message", .text)
                t.column("outputs_json", .text)
                t.column("error_json", .text)
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime).notNull()
                t.column("submitted_at", .datetime)
                t.column("finished_at", .datetime)
                t.column("next_poll_at", .datetime)
                t.column("poll_count", .integer).notNull()
                t.column("consecutive_errors", .integer).notNull()
                t.column("cancel_requested", .boolean).notNull()
                t.column("cancel_outcome_json", .text)
                t.column("deadline_at", .datetime)
                t.column("estimate_minor", .integer)
            }
            try db.create(table: "job_event") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("job_id", .text).notNull().indexed().references("job", onDelete: .cascade)
                t.column("at", .datetime).notNull()
                t.column("kind", .text).notNull()
                t.column("message", .text).notNull()
                t.column("data_json", .text)
            }
            try db.create(table: "artifact") { t in
                t.primaryKey("sha256", .text)
                t.column("size", .integer).notNull()
                t.column("media_type", .text).notNull()
                t.column("job_id", .text)
                t.column("source_url", .text)
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "engine_health") { t in
                t.primaryKey("plugin_id", .text)
                t.column("status", .text).notNull()
                t.column("message", .text)
                t.column("checked_at", .datetime).notNull()
            }
            try db.create(table: "plugin_kv") { t in
                t.column("plugin_id", .text).notNull()
                t.column("key", .text).notNull()
                t.column("value", .blob).notNull()
                t.column("expires_at", .datetime)
                t.primaryKey(["plugin_id", "key"])
            }
        }
        migrator.registerMigration("2026-11-22 engine_health.code") { db in
            try db.alter(table: "engine_health") { t in t.add(column: "code", .text) }
        }
        migrator.registerMigration("2026-11-22 webhook_delivery") { db in
            try db.create(table: "webhook_delivery") { t in
                t.column("plugin_id", .text).notNull()
                t.column("dedupe_key", .text).notNull()
                t.column("job_id", .text)
                t.column("outcome", .text).notNull()
                t.column("received_at", .datetime).notNull()
                t.primaryKey(["plugin_id", "dedupe_key"])
            }
        }
        migrator.registerMigration("2026-11-22 models.catalog", migrate: ModelCatalog.migrate)
        LedgerSchema.register(&migrator)
        migrator.registerMigration("2026-11-22 pipeline.runs") { db in try PipelineRunStore.createTables(db) }
        migrator.registerMigration("2026-12-01 job.usage_json, engine_health_check") { db in
            try db.alter(table: "job") { t in t.add(column: "usage_json", .text) }
            // Keyed by what was checked; engine_health (keyed by plugin only) stays, unused.
            try db.create(table: "engine_health_check") { t in
                t.primaryKey("cache_key", .text)
                t.column("plugin_id", .text).notNull().indexed()
                t.column("plugin_version", .text).notNull()
                t.column("config_digest", .text).notNull()
                t.column("secret_fingerprint", .text).notNull()
                t.column("status", .text).notNull()
                t.column("message", .text)
                t.column("code", .text)
                t.column("checked_at", .datetime).notNull()
                t.column("balance_json", .text)
            }
        }
        return migrator
    }

    public func insertJob(_ job: JobRecord) throws -> (JobRecord, created: Bool) {
        try pool.write { db in try Self.insert(job, db) }
    }

    /// insertJob's work inside a caller's transaction (the ledger reserves in the same one).
    static func insert(_ job: JobRecord, _ db: Database) throws -> (JobRecord, created: Bool) {
        if let existing = try JobRecord.filter(JobRecord.Columns.idempotencyKey == job.idempotencyKey).fetchOne(db) {
            return (existing, false)
        }
        try job.insert(db)
        var event = JobEvent(id: nil, jobID: job.id, at: job.createdAt, kind: "state", message: job.phase.rawValue, dataJSON: nil)
        try event.insert(db)
        return (job, true)
    }

    public func job(id: String) throws -> JobRecord? {
        try pool.read { db in try JobRecord.fetchOne(db, key: id) }
    }

    public func job(idempotencyKey: String) throws -> JobRecord? {
        try pool.read { db in try JobRecord.filter(JobRecord.Columns.idempotencyKey == idempotencyKey).fetchOne(db) }
    }

    public func updateJob(id: String, _ change: @Sendable (inout JobRecord) throws -> Void) throws -> JobRecord {
        try pool.write { db in try updateJob(id: id, in: db, change) }
    }

    /// updateJob's work inside a caller's transaction (the engine commits a
    /// poll's events and artifacts in the same one).
    public func updateJob(id: String, in db: Database, _ change: (inout JobRecord) throws -> Void) throws -> JobRecord {
        guard var job = try JobRecord.fetchOne(db, key: id) else {
            throw YardError.jobNotFound(id)
        }
        let before = job.phase
        try change(&job)
        job.updatedAt = Date()
        try job.update(db)
        if job.phase != before {
            var event = JobEvent(id: nil, jobID: id, at: job.updatedAt, kind: "state", message: job.phase.rawValue, dataJSON: job.errorJSON)
            try event.insert(db)
            if job.phase.isTerminal && !before.isTerminal { try finishHook?(db, job) }
        }
        return job
    }

    public func resolveParked(jobID: String, _ resolution: ParkedResolution, audit: String, at: Date) throws -> JobRecord {
        try pool.write { db in
            guard var job = try JobRecord.fetchOne(db, key: jobID) else { throw YardError.jobNotFound(jobID) }
            guard job.phase == .needsAttention, job.refJSON == nil else {
                throw YardError("JOB_NOT_PARKED", "Job \(jobID) is \(job.phase.rawValue)\(job.refJSON != nil ? " with a ref" : ""); only a job whose submission was never confirmed (needs_attention, no ref) is resolved this way.",
                                remediation: "See it with `yard jobs show \(jobID)`; cancel a running job with `yard jobs cancel \(jobID)`.", field: "id")
            }
            switch resolution {
            case .notSubmitted:
                job.phase = .failed
                job.errorJSON = #"{"charged":"no","code":"SUBMIT_NOT_RECEIVED","message":"The provider never received this job.","remediation":"Run it again if it is still wanted.","retryable":false}"#
                job.finishedAt = job.finishedAt ?? at
            case .submitted(let ref):
                job.phase = .queued
                job.refJSON = ref
                job.errorJSON = nil
                job.finishedAt = nil
                job.submittedAt = job.submittedAt ?? at
                job.nextPollAt = at
                job.consecutiveErrors = 0
                // A new deadline from now: the time parked is not the job's to lose.
                if let deadline = job.deadlineAt { job.deadlineAt = at.addingTimeInterval(max(60, deadline.timeIntervalSince(job.createdAt))) }
            }
            job.message = audit
            job.updatedAt = at
            try job.update(db)
            var state = JobEvent(id: nil, jobID: jobID, at: at, kind: "state", message: job.phase.rawValue, dataJSON: job.errorJSON)
            try state.insert(db)
            var event = JobEvent(id: nil, jobID: jobID, at: at, kind: "audit", message: audit, dataJSON: nil)
            try event.insert(db)
            try parkedHook?(db, job, resolution, audit)
            return job
        }
    }

    public func unfinishedJobs() throws -> [JobRecord] {
        try pool.read { db in
            try JobRecord.filter([JobPhase.submitting, .queued, .running].map(\.rawValue).contains(JobRecord.Columns.phase))
                .order(JobRecord.Columns.createdAt).fetchAll(db)
        }
    }

    /// Jobs parked because their submission was never confirmed, oldest first.
    public func parkedJobs() throws -> [JobRecord] {
        try pool.read { db in
            try JobRecord.filter(JobRecord.Columns.phase == JobPhase.needsAttention.rawValue && JobRecord.Columns.refJSON == nil)
                .order(JobRecord.Columns.createdAt).fetchAll(db)
        }
    }

    public func jobs(limit: Int, phase: JobPhase?) throws -> [JobRecord] {
        try pool.read { db in
            var request = JobRecord.order(JobRecord.Columns.createdAt.desc).limit(limit)
            if let phase { request = request.filter(JobRecord.Columns.phase == phase.rawValue) }
            return try request.fetchAll(db)
        }
    }

    public func appendEvent(jobID: String, kind: String, message: String, data: String?) throws {
        try pool.write { db in
            var event = JobEvent(id: nil, jobID: jobID, at: Date(), kind: kind, message: message, dataJSON: data)
            try event.insert(db)
        }
    }

    public func events(jobID: String, afterID: Int64) throws -> [JobEvent] {
        try pool.read { db in
            try JobEvent.filter(Column("job_id") == jobID && Column("id") > afterID).order(Column("id")).fetchAll(db)
        }
    }

    public func recordArtifact(_ artifact: ArtifactRecord) throws {
        try pool.write { db in try artifact.save(db) }
    }

    /// The media type an artifact was stored with, if the store indexed it.
    public func artifactMediaType(sha256: String) throws -> String? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT media_type FROM artifact WHERE sha256 = ?", arguments: [sha256]) }
    }

    public func health(cacheKey: String) throws -> EngineHealthRecord? {
        try pool.read { db in try EngineHealthRecord.fetchOne(db, key: cacheKey) }
    }

    public func latestHealth(pluginID: String) throws -> EngineHealthRecord? {
        try pool.read { db in
            try EngineHealthRecord.filter(Column("plugin_id") == pluginID).order(Column("checked_at").desc).fetchOne(db)
        }
    }

    public func saveHealth(_ record: EngineHealthRecord) throws {
        try pool.write { db in try record.save(db) }
    }

    public func kvGet(pluginID: String, key: String, now: Date) throws -> Data? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT value, expires_at FROM plugin_kv WHERE plugin_id = ? AND key = ?", arguments: [pluginID, key])
                .flatMap { row -> Data? in
                    if let expiry: Date = row["expires_at"], expiry <= now { return nil }
                    return row["value"]
                }
        }
    }

    public func kvPut(pluginID: String, key: String, value: Data, expiresAt: Date?) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO plugin_kv (plugin_id, key, value, expires_at) VALUES (?, ?, ?, ?)",
                           arguments: [pluginID, key, value, expiresAt])
        }
    }

    public func kvRemove(pluginID: String, key: String) throws {
        try pool.write { db in try db.execute(sql: "DELETE FROM plugin_kv WHERE plugin_id = ? AND key = ?", arguments: [pluginID, key]) }
    }
}

/// sy.kv/1 backed by the job store, so plugin caches survive restarts.
public struct StoreKeyValueStore: PluginKeyValueStore {
    let store: any JobStore
    let clock: any HostClock

    public init(store: any JobStore, clock: any HostClock = SystemClock()) {
        self.store = store
        self.clock = clock
    }

    private var now: Date { Date(timeIntervalSince1970: Double(clock.nowUnixMs()) / 1000) }

    public func get(pluginID: String, key: String) -> Data? { try? store.kvGet(pluginID: pluginID, key: key, now: now) }
    public func put(pluginID: String, key: String, value: Data, ttlMs: Int64) {
        try? store.kvPut(pluginID: pluginID, key: key, value: value, expiresAt: ttlMs > 0 ? now.addingTimeInterval(Double(ttlMs) / 1000) : nil)
    }
    public func remove(pluginID: String, key: String) { try? store.kvRemove(pluginID: pluginID, key: key) }
}
