import Foundation
import GRDB

/// Where a job is. `submitting` is written, and committed, before the
/// provider is called: a job found in that state after a crash may or may not
/// exist at the provider, so it is reconciled, never blindly resubmitted.
public enum JobPhase: String, Codable, Sendable, CaseIterable {
    case submitting, queued, running, succeeded, failed, cancelled
    case needsAttention = "needs_attention"

    public var isTerminal: Bool { [.succeeded, .failed, .cancelled, .needsAttention].contains(self) }
}

/// One row of `job`. JSON members are stored as canonical JSON text.
public struct JobRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "job"

    public var id: String
    public var idempotencyKey: String
    public var pluginID: String
    public var pluginVersion: String
    public var capability: String
    public var inputsJSON: String
    public var inputHash: String
    public var configJSON: String
    public var phase: JobPhase
    public var refJSON: String?
    public var attempt: Int
    public var progress: Double?
    public var message: String?
    public var outputsJSON: String?
    public var errorJSON: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var submittedAt: Date?
    public var finishedAt: Date?
    public var nextPollAt: Date?
    public var pollCount: Int
    public var consecutiveErrors: Int
    public var cancelRequested: Bool
    public var cancelOutcomeJSON: String?
    public var deadlineAt: Date?
    public var estimateMinor: Int?
    /// What the provider measured (the SDK's Usage document), from the last
    /// poll, webhook or cancel answer that carried it: settlement prices it.
    /// Never outputs: the next step sees catalog outputs only.
    public var usageJSON: String? = nil

    public enum CodingKeys: String, CodingKey, ColumnExpression {
        case id, capability, phase, attempt, progress, message
        case idempotencyKey = "idempotency_key"
        case pluginID = "plugin_id"
        case pluginVersion = "plugin_version"
        case inputsJSON = "inputs_json"
        case inputHash = "input_hash"
        case configJSON = "config_json"
        case refJSON = "ref_json"
        case outputsJSON = "outputs_json"
        case errorJSON = "error_json"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case submittedAt = "submitted_at"
        case finishedAt = "finished_at"
        case nextPollAt = "next_poll_at"
        case pollCount = "poll_count"
        case consecutiveErrors = "consecutive_errors"
        case cancelRequested = "cancel_requested"
        case cancelOutcomeJSON = "cancel_outcome_json"
        case deadlineAt = "deadline_at"
        case estimateMinor = "estimate_minor"
        case usageJSON = "usage_json"
    }

    public typealias Columns = CodingKeys

    public var errorCode: String? {
        errorJSON.flatMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }?["code"] as? String
    }
}

/// One line of a job's event log (state changes, progress, provider messages).
public struct JobEvent: Codable, Sendable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "job_event"
    public var id: Int64?
    public var jobID: String
    public var at: Date
    public var kind: String
    public var message: String
    public var dataJSON: String?

    enum CodingKeys: String, CodingKey {
        case id, at, kind, message
        case jobID = "job_id"
        case dataJSON = "data_json"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

public struct ArtifactRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "artifact"
    public var sha256: String
    public var size: Int
    public var mediaType: String
    public var jobID: String?
    public var sourceURL: String?
    public var createdAt: Date

    public init(sha256: String, size: Int, mediaType: String, jobID: String?, sourceURL: String?, createdAt: Date) {
        self.sha256 = sha256
        self.size = size
        self.mediaType = mediaType
        self.jobID = jobID
        self.sourceURL = sourceURL
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case sha256, size
        case mediaType = "media_type"
        case jobID = "job_id"
        case sourceURL = "source_url"
        case createdAt = "created_at"
    }
}

/// One health check of an engine, cached under the key of what it checked:
/// the plugin and its version, the engine configuration and the secrets it
/// saw. A check made with another config or another key is a different
/// check: it is never reused for this one.
public struct EngineHealthRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "engine_health_check"
    public var cacheKey: String
    public var pluginID: String
    public var pluginVersion: String
    /// sha256 of the canonical effective configuration.
    public var configDigest: String
    /// A one-way digest of the declared secrets' values (never the values).
    public var secretFingerprint: String
    public var status: String
    public var message: String?
    public var checkedAt: Date
    /// A stable code for why the engine is not ok (AUTH_FAILED, …), when it said.
    public var code: String?
    /// The sy.balance/1 answer at the same moment (a CostEstimate document), or an error document.
    public var balanceJSON: String?

    public init(pluginID: String, status: String, message: String?, checkedAt: Date, code: String? = nil,
                pluginVersion: String = "", configDigest: String = "", secretFingerprint: String = "", balanceJSON: String? = nil) {
        self.pluginID = pluginID
        self.pluginVersion = pluginVersion
        self.configDigest = configDigest
        self.secretFingerprint = secretFingerprint
        self.cacheKey = Self.key(pluginID: pluginID, version: pluginVersion, configDigest: configDigest, secretFingerprint: secretFingerprint)
        self.status = status
        self.message = message
        self.checkedAt = checkedAt
        self.code = code
        self.balanceJSON = balanceJSON
    }

    public static func key(pluginID: String, version: String, configDigest: String, secretFingerprint: String) -> String {
        "\(pluginID)@\(version)#\(configDigest)#\(secretFingerprint)"
    }

    public enum CodingKeys: String, CodingKey {
        case status, message, code
        case cacheKey = "cache_key"
        case pluginID = "plugin_id"
        case pluginVersion = "plugin_version"
        case configDigest = "config_digest"
        case secretFingerprint = "secret_fingerprint"
        case checkedAt = "checked_at"
        case balanceJSON = "balance_json"
    }
}
