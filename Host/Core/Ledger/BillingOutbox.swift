import Foundation
import GRDB
import Logging
import SwitchyardJSON

/// One usage event waiting in the outbox. `identifier` (the job attempt) and
/// `idempotencyKey` are fixed when the row is written, so every redelivery —
/// after a retry, a timeout or a crash — is the same event to the provider.
public struct MeterEvent: Codable, Sendable, Hashable {
    public var id: Int64
    public var jobID: String
    public var identifier: String
    public var idempotencyKey: String
    public var eventName: String
    public var customerID: String
    public var value: Int
    /// Unix seconds of the settlement.
    public var timestamp: Int64
    public var state: String
    public var attempts: Int
    public var lastError: String?

    enum CodingKeys: String, CodingKey {
        case id, identifier, value, timestamp, state, attempts
        case jobID = "job_id"
        case idempotencyKey = "idempotency_key"
        case eventName = "event_name"
        case customerID = "customer_id"
        case lastError = "last_error"
    }

    init(row: Row) {
        id = row["id"]; jobID = row["job_id"]; identifier = row["identifier"]; idempotencyKey = row["idempotency_key"]
        eventName = row["event_name"]; customerID = row["customer_id"]; value = row["value"]; timestamp = row["timestamp"]
        state = row["state"]; attempts = row["attempts"]; lastError = row["last_error"]
    }
}

/// What one delivery attempt came to.
public enum MeterDelivery: Sendable, Equatable {
    /// Recorded by the provider (or already recorded: a duplicate identifier).
    case delivered
    /// Try again later (429, 5xx with Stripe-Should-Retry, a dropped connection, a missing key).
    case retry(afterMs: Int?, reason: String)
    /// The provider refused the event itself; retrying cannot help.
    case rejected(reason: String)
}

/// Sends one meter event to the billing provider.
public protocol MeterSender: Sendable {
    func send(_ event: MeterEvent) async -> MeterDelivery
}

public struct OutboxReport: Codable, Sendable, Hashable {
    public var delivered = 0
    public var pending = 0
    public var failed = 0
}

/// The transactional outbox: rows are written in the settlement transaction
/// and delivered after commit. A row is marked delivered only after the
/// provider confirmed it, so a crash at any point leaves it pending and it is
/// sent again with the same identifier and Idempotency-Key.
public final class BillingOutbox: @unchecked Sendable {
    let pool: DatabasePool
    let sender: any MeterSender
    let clock: any HostClock
    public var maxAttemptsPerRun = 5
    public var baseBackoffMs = 200
    let logger = Logger(label: "switchyard.billing")
    private let lock = NSLock()
    private var running: Task<OutboxReport, Never>?

    public init(pool: DatabasePool, sender: any MeterSender, clock: any HostClock = SystemClock()) {
        self.pool = pool
        self.sender = sender
        self.clock = clock
    }

    var now: Date { Date(timeIntervalSince1970: Double(clock.nowUnixMs()) / 1000) }

    static func enqueue(_ db: Database, job: JobRecord, customer: String, eventName: String, value: Int, at: Date) throws {
        let identifier = "\(job.id)-\(job.attempt)"
        try db.execute(sql: """
            INSERT OR IGNORE INTO billing_outbox (job_id, identifier, idempotency_key, event_name, customer_id, value, timestamp, state, attempts, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)
            """, arguments: [job.id, identifier, "sy-meter-\(identifier)", eventName, customer, value, Int64(at.timeIntervalSince1970), at])
    }

    public func events(state: String? = nil) throws -> [MeterEvent] {
        try pool.read { db in
            let rows = state == nil ? try Row.fetchAll(db, sql: "SELECT * FROM billing_outbox ORDER BY id")
                : try Row.fetchAll(db, sql: "SELECT * FROM billing_outbox WHERE state = ? ORDER BY id", arguments: [state])
            return rows.map(MeterEvent.init(row:))
        }
    }

    /// Starts a delivery run unless one is going; returns the running one.
    @discardableResult
    public func kick(includeFailed: Bool = false) -> Task<OutboxReport, Never> {
        lock.withLock {
            if let running { return running }
            let task = Task { [self] in
                let report = await deliverPending(includeFailed: includeFailed)
                lock.withLock { self.running = nil }
                return report
            }
            running = task
            return task
        }
    }

    /// Delivers every pending row, retrying each with backoff up to
    /// maxAttemptsPerRun; what still fails stays pending for the next run.
    public func deliverPending(includeFailed: Bool = false) async -> OutboxReport {
        var report = OutboxReport()
        let states = includeFailed ? ["pending", "failed"] : ["pending"]
        let rows = (try? due(states)) ?? []
        for event in rows {
            var attempt = 0
            while true {
                attempt += 1
                let outcome = await sender.send(event)
                FaultInjection.point("outbox-after-send")
                switch outcome {
                case .delivered:
                    try? markDelivered(event)
                    report.delivered += 1
                case .retry(let after, let reason):
                    try? record(event, state: "pending", error: reason)
                    if attempt < maxAttemptsPerRun {
                        let delay = after ?? min(30_000, baseBackoffMs << min(attempt, 10))
                        try? await Task.sleep(nanoseconds: UInt64(delay) * 1_000_000)
                        continue
                    }
                    logger.warning("usage event still pending", metadata: ["identifier": "\(event.identifier)", "reason": "\(reason)"])
                    report.pending += 1
                case .rejected(let reason):
                    try? record(event, state: "failed", error: reason)
                    logger.error("usage event rejected", metadata: ["identifier": "\(event.identifier)", "reason": "\(reason)"])
                    report.failed += 1
                }
                break
            }
        }
        return report
    }

    func due(_ states: [String]) throws -> [MeterEvent] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM billing_outbox WHERE state IN (\(states.map { "'\($0)'" }.joined(separator: ","))) ORDER BY id").map(MeterEvent.init(row:))
        }
    }

    func markDelivered(_ event: MeterEvent) throws {
        let at = now
        try pool.write { db in
            try db.execute(sql: "UPDATE billing_outbox SET state = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL WHERE id = ?",
                           arguments: [at, event.id])
        }
    }

    func record(_ event: MeterEvent, state: String, error: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE billing_outbox SET state = ?, attempts = attempts + 1, last_error = ? WHERE id = ? AND state != 'delivered'",
                           arguments: [state, error, event.id])
        }
    }
}

/// Sends meter events through a billing plugin (capability billing.meter),
/// like any other plugin call: the plugin speaks the provider's protocol
/// through the host's http service; the host owns retries and the outbox.
public struct PluginMeterSender: MeterSender {
    let engine: JobEngine
    let pluginID: String
    let config: [String: JSONValue]

    public init(engine: JobEngine, pluginID: String, config: [String: JSONValue]) {
        self.engine = engine
        self.pluginID = pluginID
        self.config = config
    }

    /// The plugin's configuration from $YARD_HOME/config/PLUGIN.json, as `yard run` reads it.
    public static func configuration(paths: YardPaths, pluginID: String) -> [String: JSONValue] {
        let file = paths.home.appendingPathComponent("config/\(pluginID).json")
        return (try? Data(contentsOf: file)).flatMap { try? JSONValue(parsing: $0) }?.objectValue ?? [:]
    }

    public func send(_ event: MeterEvent) async -> MeterDelivery {
        let plugin: LoadedPlugin
        do { plugin = try engine.plugin(pluginID) } catch { return .retry(afterMs: nil, reason: "billing plugin \(pluginID) is not available: \(error)") }
        let inputs: [String: Any] = ["event_name": event.eventName, "customer_id": event.customerID, "value": event.value,
                                     "identifier": event.identifier, "timestamp": ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(event.timestamp)))]
        let document: [String: Any] = ["capability": "billing.meter", "inputs": inputs, "config": jsonObject(.object(config)),
                                       "job": ["id": event.identifier, "idempotency_key": event.idempotencyKey, "attempt": 1]]
        let result = await engine.call(plugin, .submit, document, jobID: nil)
        let doc = result.json ?? [:]
        if result.isOK, let finished = doc["result"] as? [String: Any], finished["state"] as? String == "succeeded" { return .delivered }
        let error = (doc["error"] as? [String: Any]) ?? (doc["result"] as? [String: Any])?["error"] as? [String: Any] ?? [:]
        let code = error["code"] as? String ?? "PLUGIN_INTERNAL"
        let reason = "\(code): \(plugin.context.redact(error["message"] as? String ?? "status \(result.status)"))"
        if error["retryable"] as? Bool == true || ["AUTH_MISSING", "AUTH_FAILED", "PLUGIN_INTERNAL"].contains(code) {
            return .retry(afterMs: error["retry_after_ms"] as? Int, reason: reason)
        }
        return .rejected(reason: reason)
    }
}

extension JobEngine {
    /// The outbox for this engine's ledger, delivering through the configured
    /// billing plugin; nil when no meter is configured.
    public func billingOutbox(config pluginConfig: [String: JSONValue]? = nil) -> BillingOutbox? {
        guard let ledger, let meter = ledger.config.meter else { return nil }
        let config = pluginConfig ?? PluginMeterSender.configuration(paths: paths, pluginID: meter.plugin)
        let outbox = BillingOutbox(pool: ledger.store.pool, sender: PluginMeterSender(engine: self, pluginID: meter.plugin, config: config), clock: clock)
        ledger.onUsageCommitted { [weak outbox] in outbox?.kick() }
        return outbox
    }
}

extension JobEngine {
    /// Delivers every pending usage event (this run's and any a crash left
    /// behind) before a short-lived process such as `yard run` exits.
    @discardableResult
    public func deliverUsage(includeFailed: Bool = false) async -> OutboxReport? {
        guard let outbox = billingOutbox() else { return nil }
        // A command should not wait long for an unreachable provider: what is left stays pending.
        outbox.maxAttemptsPerRun = 3
        return await outbox.deliverPending(includeFailed: includeFailed)
    }
}
