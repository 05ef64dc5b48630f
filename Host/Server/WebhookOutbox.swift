import AsyncHTTPClient
import Crypto
import Foundation
import GRDB
import NIOCore
import SwitchyardHost
import SwitchyardJSON

/// One endpoint an account registered for outbound webhooks. The signing
/// secret is answered once, when the endpoint is created, and never again.
public struct WebhookEndpoint: Sendable, Hashable {
    public var id: String
    public var account: String
    public var url: String
    public var events: [String]
    public var createdAt: Date

    /// Whether the endpoint asked for this event type (`job.*` takes every job event).
    func wants(_ type: String) -> Bool {
        events.contains { pattern in
            pattern == type || pattern == "*" || (pattern.hasSuffix(".*") && type.hasPrefix(String(pattern.dropLast(1))))
        }
    }
}

/// Signed outbound webhooks, from a durable outbox in the job store's
/// database. A job or run that finishes becomes one delivery per endpoint
/// that wants it (enqueued exactly once: the delivery's key is unique, and
/// the scan's cursor moves in the same transaction), and each delivery is
/// tried until the endpoint answers 2xx, with exponential backoff up to a cap
/// and a bounded number of attempts. Deliveries and every attempt are kept
/// as the delivery log. Outstanding deliveries survive a restart.
///
/// Signature (like Stripe's): `Switchyard-Signature: t=UNIX_SECONDS,v1=HEX`
/// where HEX = lowercase hex HMAC-SHA256(secret, "UNIX_SECONDS." + body),
/// computed per attempt over the exact bytes sent. `Switchyard-Delivery`
/// is the same for every attempt of one delivery (receivers dedupe on it).
public final class WebhookOutbox: @unchecked Sendable {
    public let pool: DatabasePool
    /// The clock of the backoff and the signatures (tests move it by hand).
    public var now: @Sendable () -> Date = { Date() }
    public var baseDelaySeconds: Double = 10
    public var maxDelaySeconds: Double = 3600
    public var maxAttempts = 10
    public var timeoutSeconds: Int64 = 10
    public var log: @Sendable (String) -> Void = { _ in }

    static let terminalJobPhases = JobPhase.allCases.filter(\.isTerminal).map(\.rawValue)

    public init(pool: DatabasePool) throws {
        self.pool = pool
        try pool.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS api_webhook_endpoint (
                    id TEXT PRIMARY KEY, account TEXT NOT NULL, url TEXT NOT NULL, secret TEXT NOT NULL,
                    events_json TEXT NOT NULL, created_at DATETIME NOT NULL, deleted_at DATETIME);
                CREATE INDEX IF NOT EXISTS api_webhook_endpoint_account ON api_webhook_endpoint (account);
                CREATE TABLE IF NOT EXISTS api_webhook_delivery (
                    id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL, account TEXT NOT NULL, event_id TEXT NOT NULL,
                    event_type TEXT NOT NULL, event_key TEXT NOT NULL, body TEXT NOT NULL, created_at DATETIME NOT NULL,
                    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at DATETIME,
                    last_status INTEGER, last_error TEXT, delivered_at DATETIME,
                    UNIQUE (endpoint_id, event_key));
                CREATE INDEX IF NOT EXISTS api_webhook_delivery_due ON api_webhook_delivery (state, next_attempt_at);
                CREATE TABLE IF NOT EXISTS api_webhook_attempt (
                    delivery_id TEXT NOT NULL, attempt INTEGER NOT NULL, at DATETIME NOT NULL,
                    status INTEGER, error TEXT, duration_ms INTEGER, PRIMARY KEY (delivery_id, attempt));
                CREATE TABLE IF NOT EXISTS api_webhook_cursor (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                """)
        }
    }

    static func randomHex(_ count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// The signature header's value for one attempt.
    public static func signature(secret: String, timestamp: Int, body: Data) -> String {
        var signed = Data("\(timestamp).".utf8)
        signed.append(body)
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Data(secret.utf8)))
        return "t=\(timestamp),v1=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// Seconds before attempt `attempt + 1` after `attempt` failed ones: base · 2^(attempt−1), at most the cap.
    public func delay(afterAttempt attempt: Int) -> Double {
        min(maxDelaySeconds, baseDelaySeconds * pow(2, Double(max(0, attempt - 1))))
    }

    // MARK: endpoints

    public static let eventTypes = ["job.succeeded", "job.failed", "job.cancelled", "job.needs_attention", "run.succeeded", "run.failed", "run.cancelled"]

    /// Registers an endpoint; answers it with its signing secret (shown once).
    public func register(account: String, url: String, events: [String]) throws -> (endpoint: WebhookEndpoint, secret: String) {
        guard let parsed = URLComponents(string: url), let scheme = parsed.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = parsed.host, !host.isEmpty, parsed.user == nil, parsed.password == nil, url.utf8.count <= 2048 else {
            throw YardError("WEBHOOK_URL_INVALID", "\(SafePath.shown(String(url.prefix(200)))) is not an http(s) URL this server can post to.",
                            remediation: "Send an absolute http:// or https:// URL without credentials in it, e.g. https://example.com/hooks/switchyard.", field: "url")
        }
        // Under the network guard (tests, stand-in runs) the server may reach
        // loopback only: refuse the endpoint now rather than every delivery later.
        if NetworkGuard.isActive && !NetworkGuard.isLoopback(host) {
            throw YardError("WEBHOOK_URL_INVALID", "\(SafePath.shown(host)) is not a loopback host, and this server runs with YARD_NETWORK_GUARD=loopback.",
                            remediation: "Use a loopback URL (http://127.0.0.1:PORT/…) here, or run yard serve without the network guard.", field: "url")
        }
        for pattern in events {
            let known = pattern == "*" || Self.eventTypes.contains(pattern) || ["job.*", "run.*"].contains(pattern)
            guard known else {
                throw YardError("WEBHOOK_EVENT_UNKNOWN", "Unknown webhook event \(SafePath.shown(pattern)).",
                                remediation: "Use job.*, run.*, * or one of \(Self.eventTypes.joined(separator: ", ")).", field: "events")
            }
        }
        let endpoint = WebhookEndpoint(id: "whe_" + Self.randomHex(8), account: account, url: url, events: events.isEmpty ? ["job.*", "run.*"] : events, createdAt: now())
        let secret = "whsec_" + Self.randomHex(32)
        let eventsText = String(decoding: JSONValue.array(endpoint.events.map(JSONValue.string)).serialized(), as: UTF8.self)
        try pool.write { db in
            try db.execute(sql: "INSERT INTO api_webhook_endpoint (id, account, url, secret, events_json, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [endpoint.id, account, url, secret, eventsText, endpoint.createdAt])
            try Self.startCursors(db)
        }
        return (endpoint, secret)
    }

    static func endpoint(_ row: Row) -> WebhookEndpoint {
        let events = (try? JSONValue(parsing: Data((row["events_json"] as String).utf8)))?.arrayValue?.compactMap(\.stringValue) ?? []
        return WebhookEndpoint(id: row["id"], account: row["account"], url: row["url"], events: events, createdAt: row["created_at"])
    }

    public func endpoints(account: String) throws -> [WebhookEndpoint] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM api_webhook_endpoint WHERE account = ? AND deleted_at IS NULL ORDER BY created_at, id",
                             arguments: [account]).map(Self.endpoint)
        }
    }

    public func endpoint(_ id: String, account: String) throws -> WebhookEndpoint? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM api_webhook_endpoint WHERE id = ? AND account = ? AND deleted_at IS NULL",
                             arguments: [id, account]).map(Self.endpoint)
        }
    }

    /// Stops sending to an endpoint; what is still pending for it is dropped, its log kept.
    @discardableResult
    public func remove(_ id: String, account: String) throws -> Bool {
        let at = now()
        return try pool.write { db in
            try db.execute(sql: "UPDATE api_webhook_endpoint SET deleted_at = ? WHERE id = ? AND account = ? AND deleted_at IS NULL", arguments: [at, id, account])
            guard db.changesCount > 0 else { return false }
            try db.execute(sql: "UPDATE api_webhook_delivery SET state = 'dropped', next_attempt_at = NULL WHERE endpoint_id = ? AND state = 'pending'", arguments: [id])
            return true
        }
    }

    // MARK: the delivery log

    public struct Attempt: Sendable, Hashable {
        public var attempt: Int
        public var at: Date
        public var status: Int?
        public var error: String?
        public var durationMs: Int?
    }

    public struct Delivery: Sendable, Hashable {
        public var id: String
        public var endpointID: String
        public var eventID: String
        public var eventType: String
        public var state: String
        public var attempts: Int
        public var createdAt: Date
        public var nextAttemptAt: Date?
        public var deliveredAt: Date?
        public var lastStatus: Int?
        public var lastError: String?
        public var log: [Attempt]
    }

    public func deliveries(endpoint: String, limit: Int = 50) throws -> [Delivery] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM api_webhook_delivery WHERE endpoint_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
                             arguments: [endpoint, limit]).map { row in
                let attempts = try Row.fetchAll(db, sql: "SELECT * FROM api_webhook_attempt WHERE delivery_id = ? ORDER BY attempt",
                                                arguments: [row["id"] as String]).map {
                    Attempt(attempt: $0["attempt"], at: $0["at"], status: $0["status"], error: $0["error"], durationMs: $0["duration_ms"])
                }
                return Delivery(id: row["id"], endpointID: row["endpoint_id"], eventID: row["event_id"], eventType: row["event_type"], state: row["state"],
                                attempts: row["attempts"], createdAt: row["created_at"], nextAttemptAt: row["next_attempt_at"],
                                deliveredAt: row["delivered_at"], lastStatus: row["last_status"], lastError: row["last_error"], log: attempts)
            }
        }
    }

    // MARK: enqueueing

    /// Cursors start at the present when the first endpoint is registered:
    /// an endpoint hears of what finishes after it exists, not of history.
    static func startCursors(_ db: Database) throws {
        let lastEvent = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM job_event") ?? 0
        let lastRun = try String.fetchOne(db, sql: "SELECT MAX(CAST(updated_at AS TEXT)) FROM pipeline_run") ?? ""
        try db.execute(sql: "INSERT OR IGNORE INTO api_webhook_cursor (name, value) VALUES ('job_event', ?), ('pipeline_run', ?)",
                       arguments: ["\(lastEvent)", lastRun])
    }

    struct Finished {
        var key: String
        var type: String
        var account: String
        var data: JSONValue
    }

    /// Turns what finished since the last scan into deliveries, once each.
    /// `jobView` and `runView` give the object each event carries.
    @discardableResult
    public func enqueue(jobView: (JobRecord, String) -> JSONValue, runView: (String) throws -> JSONValue?) throws -> Int {
        let (cursors, endpoints) = try pool.read { db -> ([String: String], [WebhookEndpoint]) in
            let cursors = Dictionary(try Row.fetchAll(db, sql: "SELECT name, value FROM api_webhook_cursor").map { ($0["name"] as String, $0["value"] as String) }) { a, _ in a }
            let endpoints = try Row.fetchAll(db, sql: "SELECT * FROM api_webhook_endpoint WHERE deleted_at IS NULL").map(Self.endpoint)
            return (cursors, endpoints)
        }
        guard !endpoints.isEmpty, let eventCursor = cursors["job_event"].flatMap({ Int64($0) }), let runCursor = cursors["pipeline_run"] else { return 0 }
        let accounts = Set(endpoints.map(\.account))
        var finished: [Finished] = []
        var newEventCursor = eventCursor, newRunCursor = runCursor
        try pool.read { db in
            let placeholders = Self.terminalJobPhases.map { _ in "?" }.joined(separator: ", ")
            let rows = try Row.fetchAll(db, sql: EventBroadcaster.liveSelect + " WHERE kind = 'state' AND message IN (\(placeholders)) ORDER BY id LIMIT 500",
                                        arguments: StatementArguments([eventCursor] + Self.terminalJobPhases) ?? [])
            // A full page: the next scan goes on after its last row; otherwise everything up to the head was seen.
            if rows.count == 500, let last = rows.last { newEventCursor = last["id"] } else {
                newEventCursor = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM job_event") ?? eventCursor
            }
            for row in rows {
                guard let account: String = row["account"], accounts.contains(account), let job = try JobRecord.fetchOne(db, key: row["job_id"] as String) else { continue }
                let id: Int64 = row["id"]
                finished.append(Finished(key: "job:\(job.id):\(id)", type: "job.\(row["message"] as String)", account: account,
                                         data: .object(["job": jobView(job, account)])))
            }
            let runs = try Row.fetchAll(db, sql: """
                SELECT r.id, r.state, CAST(r.updated_at AS TEXT) AS mark, CAST(r.finished_at AS TEXT) AS finished, o.account FROM pipeline_run r
                JOIN api_owner o ON o.kind = 'run' AND o.object_id = r.id
                WHERE CAST(r.updated_at AS TEXT) >= ? AND r.state != 'running' AND r.finished_at IS NOT NULL ORDER BY mark LIMIT 500
                """, arguments: [runCursor])
            if let last = runs.last { newRunCursor = last["mark"] }
            for row in runs {
                guard let account: String = row["account"], accounts.contains(account) else { continue }
                let runID: String = row["id"]
                finished.append(Finished(key: "run:\(runID):\(row["finished"] as String? ?? "")", type: "run.\(row["state"] as String)", account: account, data: .null))
            }
        }
        // Run views read the store themselves: built outside the transaction.
        for i in finished.indices where finished[i].data == .null {
            let runID = finished[i].key.split(separator: ":")[1]
            finished[i].data = .object(["run": try runView(String(runID)) ?? .null])
        }
        let at = now()
        return try pool.write { db in
            // Another scan got here first: leave it to that one.
            guard try String.fetchOne(db, sql: "SELECT value FROM api_webhook_cursor WHERE name = 'job_event'") == "\(eventCursor)" else { return 0 }
            var added = 0
            for item in finished {
                let eventID = "evt_" + SHA256.hash(data: Data(item.key.utf8)).prefix(12).map { String(format: "%02x", $0) }.joined()
                let body = JSONValue.object(["id": .string(eventID), "type": .string(item.type), "account": .string(item.account),
                                             "created_at": JSONResponse.time(at), "data": item.data])
                for endpoint in endpoints where endpoint.account == item.account && endpoint.wants(item.type) {
                    try db.execute(sql: """
                        INSERT OR IGNORE INTO api_webhook_delivery (id, endpoint_id, account, event_id, event_type, event_key, body, created_at, state, attempts, next_attempt_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)
                        """, arguments: ["whd_" + Self.randomHex(10), endpoint.id, item.account, eventID, item.type, item.key,
                                         String(decoding: body.serialized(), as: UTF8.self), at, at])
                    added += db.changesCount
                }
            }
            try db.execute(sql: "UPDATE api_webhook_cursor SET value = ? WHERE name = 'job_event'", arguments: ["\(newEventCursor)"])
            try db.execute(sql: "UPDATE api_webhook_cursor SET value = ? WHERE name = 'pipeline_run'", arguments: [newRunCursor])
            return added
        }
    }

    // MARK: delivering

    struct Due {
        var id: String
        var url: String
        var secret: String
        var type: String
        var body: String
        var attempts: Int
    }

    /// Blocking reads and writes only (see EventBroadcaster.readBlocking).
    func dueDeliveries(at: Date, limit: Int) throws -> [Due] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT d.id, d.event_type, d.body, d.attempts, e.url, e.secret FROM api_webhook_delivery d
                JOIN api_webhook_endpoint e ON e.id = d.endpoint_id
                WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND e.deleted_at IS NULL ORDER BY d.next_attempt_at LIMIT ?
                """, arguments: [at, limit]).map {
                Due(id: $0["id"], url: $0["url"], secret: $0["secret"], type: $0["event_type"], body: $0["body"], attempts: $0["attempts"])
            }
        }
    }

    /// Tries every delivery that is due now (at most `limit`, a few at once); answers how many were tried.
    @discardableResult
    public func deliverDue(limit: Int = 32) async throws -> Int {
        let at = now()
        let due = try dueDeliveries(at: at, limit: limit)
        await withTaskGroup(of: Void.self) { group in
            for (i, delivery) in due.enumerated() {
                if i >= 8 { await group.next() }
                group.addTask { await self.attempt(delivery) }
            }
        }
        return due.count
    }

    struct Recorded {
        var delivery: String
        var number: Int
        var at: Date
        var status: Int?
        var error: String?
        var ms: Int
        var state: String
        var next: Date?
        var ok: Bool
    }

    /// One attempt into the log and the delivery's new state, in one transaction.
    func record(_ r: Recorded) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO api_webhook_attempt (delivery_id, attempt, at, status, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [r.delivery, r.number, r.at, r.status, r.error, r.ms])
            try db.execute(sql: """
                UPDATE api_webhook_delivery SET attempts = ?, state = ?, next_attempt_at = ?, last_status = ?, last_error = ?, delivered_at = ?
                WHERE id = ? AND state = 'pending'
                """, arguments: [r.number, r.state, r.next, r.status, r.error, r.ok ? r.at : nil, r.delivery])
        }
    }

    func attempt(_ delivery: Due) async {
        let at = now()
        let body = Data(delivery.body.utf8)
        var request = HTTPClientRequest(url: delivery.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "switchyard-webhooks/1")
        request.headers.add(name: "Switchyard-Delivery", value: delivery.id)
        request.headers.add(name: "Switchyard-Event", value: delivery.type)
        request.headers.add(name: "Switchyard-Signature", value: Self.signature(secret: delivery.secret, timestamp: Int(at.timeIntervalSince1970), body: body))
        request.body = .bytes(ByteBuffer(bytes: body))
        let started = ContinuousClock.now
        var status: Int?
        var failure: String?
        do {
            try NetworkGuard.check(url: delivery.url)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(timeoutSeconds))
            status = Int(response.status.code)
            // Read (and drop) at most a little of the answer, so the connection can be reused.
            _ = try? await response.body.collect(upTo: 64 << 10)
        } catch {
            // The error names the host at most; the secret is never part of a request's description.
            failure = String(String(describing: error).prefix(300))
        }
        let elapsed = ContinuousClock.now - started
        let ms = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        let ok = status.map { (200..<300).contains($0) } ?? false
        let number = delivery.attempts + 1
        let state = ok ? "delivered" : number >= maxAttempts ? "failed" : "pending"
        let next: Date? = state == "pending" ? at.addingTimeInterval(delay(afterAttempt: number)) : nil
        if failure == nil && !ok { failure = "HTTP \(status ?? 0)" }
        let (answered, error) = (status, ok ? nil : failure)
        do {
            try record(Recorded(delivery: delivery.id, number: number, at: at, status: answered, error: error, ms: ms, state: state, next: next, ok: ok))
        } catch {
            log("webhook delivery \(delivery.id): could not record attempt \(number): \(YardError.describing(error).message)")
        }
        if state == "failed" { log("webhook delivery \(delivery.id) (\(delivery.type)) failed after \(number) attempts: \(failure ?? "?")") }
    }
}
