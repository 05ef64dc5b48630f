import Foundation
import GRDB

public enum PipelineRunState: String, Codable, Sendable {
    case running, succeeded, failed, cancelled
}

public enum PipelineStepState: String, Codable, Sendable {
    case pending, running, succeeded, failed, skipped, blocked

    public var isFinished: Bool { self != .pending && self != .running }
}

/// One pipeline run. The parsed pipeline is stored with it, so a resumed run
/// follows the definition it started with even if the file changed since.
public struct PipelineRunRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "pipeline_run"
    public var id: String
    public var pipelineID: String
    public var source: String
    public var definitionJSON: String
    public var inputsJSON: String
    public var quality: String
    public var noCache: Bool
    public var state: PipelineRunState
    public var outputsJSON: String?
    public var errorJSON: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var finishedAt: Date?
    /// Whose credits pay for the run's steps (nil: the ledger's default
    /// account), kept with the run so whichever process drives it bills the same account.
    public var billingAccount: String? = nil
    /// Extra budgets every step counts against, as a JSON array of budget ids.
    public var billingBudgetsJSON: String? = nil

    /// The billing scope every step job of this run is submitted with.
    public var billing: BillingScope? {
        let budgets = billingBudgetsJSON.flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) } ?? []
        guard billingAccount != nil || !budgets.isEmpty else { return nil }
        return BillingScope(account: billingAccount, budgets: budgets)
    }

    enum CodingKeys: String, CodingKey, ColumnExpression {
        case id, source, quality, state
        case billingAccount = "billing_account"
        case billingBudgetsJSON = "billing_budgets_json"
        case pipelineID = "pipeline_id"
        case definitionJSON = "definition_json"
        case inputsJSON = "inputs_json"
        case noCache = "no_cache"
        case outputsJSON = "outputs_json"
        case errorJSON = "error_json"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case finishedAt = "finished_at"
    }
}

/// One step of a run. `engineIndex` is the engine of the preference list being
/// tried; with `round` it makes the job's idempotency key, so a step killed
/// mid-job finds its job again instead of submitting a second one.
public struct PipelineStepRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "pipeline_step"
    public var runID: String
    public var name: String
    public var position: Int
    public var capability: String
    public var state: PipelineStepState
    public var engine: String?
    public var engineIndex: Int
    public var round: Int
    public var jobID: String?
    public var cacheHit: Bool
    /// Engines tried before the current one and why they were passed over.
    public var attemptsJSON: String
    public var outputsJSON: String?
    public var errorJSON: String?
    public var estimateMinor: Int?
    public var startedAt: Date?
    public var finishedAt: Date?

    enum CodingKeys: String, CodingKey, ColumnExpression {
        case name, position, capability, state, engine, round
        case runID = "run_id"
        case engineIndex = "engine_index"
        case jobID = "job_id"
        case cacheHit = "cache_hit"
        case attemptsJSON = "attempts_json"
        case outputsJSON = "outputs_json"
        case errorJSON = "error_json"
        case estimateMinor = "estimate_minor"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }

    public var idempotencyKey: String { Self.idempotencyKey(runID: runID, name: name, round: round, engineIndex: engineIndex) }

    public static func idempotencyKey(runID: String, name: String, round: Int, engineIndex: Int) -> String {
        "pipeline/\(runID)/\(name)/\(round)/\(engineIndex)"
    }
}

/// A finished step's outputs, by (engine id and version, capability, canonical
/// inputs with artifact sha256s, seed): a later run with the same key reuses them
/// instead of paying again.
public struct StepCacheRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "step_cache"
    public var key: String
    public var pluginID: String
    public var pluginVersion: String
    public var capability: String
    public var outputsJSON: String
    public var jobID: String?
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case key, capability
        case pluginID = "plugin_id"
        case pluginVersion = "plugin_version"
        case outputsJSON = "outputs_json"
        case jobID = "job_id"
        case createdAt = "created_at"
    }
}

/// Pipeline runs, their steps and the step cache, in the job store's SQLite
/// database (tables created by the migration "2026-11-22 pipeline.runs").
public final class PipelineRunStore: @unchecked Sendable {
    let pool: DatabasePool

    public init(pool: DatabasePool) { self.pool = pool }

    public convenience init(jobStore: any JobStore) throws {
        guard let sqlite = jobStore as? SQLiteJobStore else {
            throw YardError("STORE_UNSUPPORTED", "Pipeline runs need the SQLite job store.", remediation: "Run pipelines with the default store.")
        }
        self.init(pool: sqlite.pool)
    }

    static func createTables(_ db: Database) throws {
        try db.create(table: "pipeline_run") { t in
            t.primaryKey("id", .text)
            t.column("pipeline_id", .text).notNull()
            t.column("source", .text).notNull()
            t.column("definition_json", .text).notNull()
            t.column("inputs_json", .text).notNull()
            t.column("quality", .text).notNull()
            t.column("no_cache", .boolean).notNull()
            t.column("state", .text).notNull().indexed()
            t.column("outputs_json", .text)
            t.column("error_json", .text)
            t.column("created_at", .datetime).notNull()
            t.column("updated_at", .datetime).notNull()
            t.column("finished_at", .datetime)
        }
        try db.create(table: "pipeline_step") { t in
            t.column("run_id", .text).notNull().references("pipeline_run", onDelete: .cascade)
            t.column("name", .text).notNull()
            t.column("position", .integer).notNull()
            t.column("capability", .text).notNull()
            t.column("state", .text).notNull()
            t.column("engine", .text)
            t.column("engine_index", .integer).notNull()
            t.column("round", .integer).notNull()
            t.column("job_id", .text)
            t.column("cache_hit", .boolean).notNull()
            t.column("attempts_json", .text).notNull()
            t.column("outputs_json", .text)
            t.column("error_json", .text)
            t.column("estimate_minor", .integer)
            t.column("started_at", .datetime)
            t.column("finished_at", .datetime)
            t.primaryKey(["run_id", "name"])
        }
        try db.create(table: "step_cache") { t in
            t.primaryKey("key", .text)
            t.column("plugin_id", .text).notNull()
            t.column("plugin_version", .text).notNull()
            t.column("capability", .text).notNull()
            t.column("outputs_json", .text).notNull()
            t.column("job_id", .text)
            t.column("created_at", .datetime).notNull()
        }
    }

    /// Who pays for a run: added after runs shipped, so older runs have none (the default account).
    static func addBilling(_ db: Database) throws {
        try db.alter(table: "pipeline_run") { t in
            t.add(column: "billing_account", .text)
            t.add(column: "billing_budgets_json", .text)
        }
    }

    /// The run and all its steps, in one transaction, before any step starts.
    public func insert(_ run: PipelineRunRecord, steps: [PipelineStepRecord]) throws {
        try pool.write { db in
            try run.insert(db)
            for step in steps { try step.insert(db) }
        }
    }

    public func run(id: String) throws -> PipelineRunRecord? {
        try pool.read { db in try PipelineRunRecord.fetchOne(db, key: id) }
    }

    public func runs(limit: Int) throws -> [PipelineRunRecord] {
        try pool.read { db in try PipelineRunRecord.order(Column("created_at").desc).limit(limit).fetchAll(db) }
    }

    public func unfinishedRuns() throws -> [PipelineRunRecord] {
        try pool.read { db in try PipelineRunRecord.filter(Column("state") == PipelineRunState.running.rawValue).order(Column("created_at")).fetchAll(db) }
    }

    public func steps(runID: String) throws -> [PipelineStepRecord] {
        try pool.read { db in try PipelineStepRecord.filter(Column("run_id") == runID).order(Column("position")).fetchAll(db) }
    }

    @discardableResult
    public func updateRun(id: String, _ change: (inout PipelineRunRecord) -> Void) throws -> PipelineRunRecord {
        try pool.write { db in
            guard var run = try PipelineRunRecord.fetchOne(db, key: id) else { throw PipelineRunStore.runNotFound(id) }
            change(&run)
            run.updatedAt = Date()
            try run.update(db)
            return run
        }
    }

    @discardableResult
    public func updateStep(runID: String, name: String, _ change: (inout PipelineStepRecord) -> Void) throws -> PipelineStepRecord {
        try pool.write { db in
            guard var step = try PipelineStepRecord.fetchOne(db, key: ["run_id": runID, "name": name]) else { throw PipelineRunStore.runNotFound(runID) }
            change(&step)
            try step.update(db)
            return step
        }
    }

    public func cached(key: String) throws -> StepCacheRecord? {
        try pool.read { db in try StepCacheRecord.fetchOne(db, key: key) }
    }

    public func saveCache(_ record: StepCacheRecord) throws {
        try pool.write { db in try record.save(db) }
    }

    public static func runNotFound(_ id: String) -> YardError {
        YardError("RUN_NOT_FOUND", "No pipeline run \(id).", remediation: "List runs with `yard runs list`; run ids start with run_.", field: "--resume")
    }
}
