import Foundation
import GRDB

/// One webhook delivery the host accepted: a provider's retry of the same
/// delivery finds this row and is dropped.
public struct WebhookDeliveryRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "webhook_delivery"
    public var pluginID: String
    public var dedupeKey: String
    public var jobID: String?
    /// applied | unmatched | stale
    public var outcome: String
    public var receivedAt: Date

    public init(pluginID: String, dedupeKey: String, jobID: String?, outcome: String, receivedAt: Date) {
        self.pluginID = pluginID
        self.dedupeKey = dedupeKey
        self.jobID = jobID
        self.outcome = outcome
        self.receivedAt = receivedAt
    }

    public enum CodingKeys: String, CodingKey, ColumnExpression {
        case outcome
        case pluginID = "plugin_id"
        case dedupeKey = "dedupe_key"
        case jobID = "job_id"
        case receivedAt = "received_at"
    }
}

extension SQLiteJobStore {
    public func jobs(pluginID: String, refMatching match: [String: String]) throws -> [JobRecord] {
        guard !match.isEmpty else { return [] }
        var sql = "SELECT * FROM job WHERE plugin_id = ? AND ref_json IS NOT NULL"
        var arguments: [any DatabaseValueConvertible] = [pluginID]
        for (key, value) in match.sorted(by: { $0.key < $1.key }) {
            // A JSON path with the member name quoted, so any key is safe.
            sql += " AND CAST(json_extract(ref_json, ?) AS TEXT) = ?"
            arguments.append("$.\"\(key.replacingOccurrences(of: "\"", with: ""))\"")
            arguments.append(value)
        }
        return try pool.read { db in try JobRecord.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)) }
    }

    public func webhookDelivery(pluginID: String, dedupeKey: String) throws -> WebhookDeliveryRecord? {
        try pool.read { db in try WebhookDeliveryRecord.fetchOne(db, key: ["plugin_id": pluginID, "dedupe_key": dedupeKey]) }
    }

    public func recordWebhookDelivery(_ record: WebhookDeliveryRecord) throws {
        try pool.write { db in try record.insert(db, onConflict: .ignore) }
    }
}
