import Foundation
import GRDB
import NIOCore
import SwitchyardHost
import SwitchyardJSON

/// One thing a live stream can carry: a row of the job event log (with the
/// account and run it belongs to), or a change of a pipeline run's state.
struct LiveEvent: Sendable {
    /// The job_event row id (what `Last-Event-ID` resumes from); nil for a run's change.
    var id: Int64?
    var account: String?
    var jobID: String?
    var runID: String?
    var event: JobEvent?
    /// A run's change: its state as the run table has it.
    var runState: String?
    /// The progress frame, serialized once for every stream that carries it.
    var frame: ByteBuffer?

    /// A state event that moved the job to a terminal phase.
    var endsJob: Bool {
        guard let event, event.kind == "state" else { return false }
        return JobPhase(rawValue: event.message)?.isTerminal ?? false
    }

    var endsRun: Bool { runState.map { $0 != PipelineRunState.running.rawValue } ?? false }
}

/// What one stream wants: everything of an account, or of one of its jobs or runs.
struct StreamFilter: Sendable {
    var account: String
    var jobID: String?
    var runID: String?

    func admits(_ live: LiveEvent) -> Bool {
        if let jobID { return live.jobID == jobID && live.event != nil }
        guard live.account == account else { return false }
        if let runID { return live.runID == runID }
        return true
    }
}

/// The one poller of the event log behind every live stream. However many
/// clients listen, the log is read once per interval; each client gets the
/// batches its filter admits through a bounded buffer. A client that falls
/// behind (its buffer fills) is cut loose instead of slowing the others: its
/// subscription ends marked `overflowed`, and it catches up from the log by
/// event id on its own (see `EventStream`), so it skips nothing.
final class EventBroadcaster: @unchecked Sendable {
    final class Subscription: @unchecked Sendable {
        let filter: StreamFilter
        let batches: AsyncStream<[LiveEvent]>
        fileprivate let continuation: AsyncStream<[LiveEvent]>.Continuation
        private let lock = NSLock()
        private var _overflowed = false
        /// True when the buffer filled and the subscription was ended for it.
        var overflowed: Bool { lock.withLock { _overflowed } }
        fileprivate func markOverflowed() { lock.withLock { _overflowed = true } }
        /// Stops listening (the stream is done with it).
        func end() { continuation.finish() }

        init(filter: StreamFilter, buffer: Int) {
            self.filter = filter
            (batches, continuation) = AsyncStream.makeStream(of: [LiveEvent].self, bufferingPolicy: .bufferingOldest(buffer))
        }
    }

    let pool: DatabasePool
    let pollSeconds: Double
    /// An empty batch this often lets every stream write a keep-alive and notice a client that left.
    let heartbeatSeconds: Double
    /// Batches a subscriber may have waiting before it is cut loose.
    let bufferBatches: Int
    private let lock = NSLock()
    private var subscribers: [ObjectIdentifier: Subscription] = [:]
    private var poller: Task<Void, Never>?
    /// Polls done since start (the load check and tests read it: one per interval, whatever the client count).
    private var pollCount = 0
    var polls: Int { lock.withLock { pollCount } }

    init(pool: DatabasePool, pollSeconds: Double, heartbeatSeconds: Double = 5, bufferBatches: Int = 256) {
        self.pool = pool
        self.pollSeconds = max(0.005, pollSeconds)
        self.heartbeatSeconds = heartbeatSeconds
        self.bufferBatches = bufferBatches
    }

    var subscriberCount: Int { lock.withLock { subscribers.count } }

    /// Subscribes before the caller replays the log, so nothing falls between
    /// the replay and the first batch (the caller skips ids it has already sent).
    func subscribe(_ filter: StreamFilter) -> Subscription {
        let subscription = Subscription(filter: filter, buffer: bufferBatches)
        let key = ObjectIdentifier(subscription)
        subscription.continuation.onTermination = { [weak self] _ in self?.remove(key) }
        lock.withLock {
            subscribers[key] = subscription
            if poller == nil { poller = Task { [self] in await poll() } }
        }
        return subscription
    }

    private func remove(_ key: ObjectIdentifier) {
        lock.withLock { _ = subscribers.removeValue(forKey: key) }
    }

    /// Ends every subscription (the server is stopping).
    func shutdown() {
        let all = lock.withLock { () -> [Subscription] in
            poller?.cancel()
            poller = nil
            defer { subscribers = [:] }
            return Array(subscribers.values)
        }
        for subscription in all { subscription.continuation.finish() }
    }

    /// Where the log and the run table are now: the last event id, the newest
    /// run change, and the runs changed at that instant.
    private func head() throws -> (Int64, String, Set<String>) {
        try pool.read { db in
            let last = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM job_event") ?? 0
            let mark = try String.fetchOne(db, sql: "SELECT MAX(CAST(updated_at AS TEXT)) FROM pipeline_run") ?? ""
            return (last, mark, Set(try Self.runChanges(db, since: mark).compactMap { $0.live.runID }))
        }
    }

    /// Runs while anyone listens. Starts at the head of the log: a new
    /// subscriber replays what came before from the log itself.
    private func poll() async {
        var (lastEventID, runMark, runsAtMark) = (try? head()) ?? (0, "", [])
        var quiet: Double = 0
        while !Task.isCancelled {
            let listeners = lock.withLock { () -> [Subscription] in
                if subscribers.isEmpty { poller = nil }
                return Array(subscribers.values)
            }
            if listeners.isEmpty { return }
            lock.withLock { pollCount += 1 }
            var batch: [LiveEvent] = []
            let (eventsAfter, mark) = (lastEventID, runMark)
            if let read = try? Self.readBlocking(pool, after: eventsAfter, runsSince: mark) {
                batch = read.0
                let runs = read.1
                for change in runs where !(change.mark == runMark && runsAtMark.contains(change.live.runID ?? "")) {
                    batch.append(change.live)
                }
                if let newest = runs.last?.mark {
                    if newest != runMark { runsAtMark = [] }
                    runMark = newest
                    runsAtMark.formUnion(runs.filter { $0.mark == newest }.compactMap { $0.live.runID })
                }
            }
            // (A busy or briefly locked database: the next interval reads the same rows again.)
            if let last = batch.compactMap(\.id).max() { lastEventID = last }
            quiet = batch.isEmpty ? quiet + pollSeconds : 0
            let heartbeat = quiet >= heartbeatSeconds
            if heartbeat { quiet = 0 }
            if !batch.isEmpty || heartbeat {
                for subscription in listeners {
                    let admitted = batch.filter(subscription.filter.admits)
                    guard !admitted.isEmpty || heartbeat else { continue }
                    if case .dropped = subscription.continuation.yield(admitted) {
                        subscription.markOverflowed()
                        subscription.continuation.finish()
                    }
                }
            }
            // A full batch means more is waiting: read again at once.
            if batch.filter({ $0.id != nil }).count < 2000 { try? await Task.sleep(nanoseconds: UInt64(pollSeconds * 1e9)) }
        }
    }

    // MARK: reading the log

    /// GRDB's blocking read, never its async one: an async read resumes on
    /// the cooperative pool while the handlers' blocking reads may be waiting
    /// there for a reader, and with a few hundred streams the two starve each
    /// other (the server stopped answering at 200 clients).
    static func readBlocking(_ pool: DatabasePool, after: Int64, runsSince mark: String) throws -> ([LiveEvent], [(mark: String, live: LiveEvent)]) {
        try pool.read { db in (try read(db, after: after, filter: nil, limit: 2000), try runChanges(db, since: mark)) }
    }

    static func replayBlocking(_ pool: DatabasePool, after: Int64, filter: StreamFilter, limit: Int) throws -> [LiveEvent] {
        try pool.read { db in try read(db, after: after, filter: filter, limit: limit) }
    }

    /// The account a job belongs to: its own owner row, the owner of the run
    /// it is a step of (`pipeline/RUN/…` keys), or the account its API
    /// idempotency key names (`api/ACCOUNT/…`, set before the job exists, so
    /// a job's first events already have their account).
    static let liveSelect = """
        SELECT * FROM (
          SELECT e.*, j.run_id,
                 COALESCE((SELECT o.account FROM api_owner o WHERE o.kind = 'job' AND o.object_id = j.id LIMIT 1),
                          (SELECT o.account FROM api_owner o WHERE o.kind = 'run' AND o.object_id = j.run_id LIMIT 1),
                          CASE WHEN j.idempotency_key LIKE 'api/%'
                               THEN substr(j.idempotency_key, 5, instr(substr(j.idempotency_key, 5), '/') - 1) END) AS account
          FROM job_event e
          JOIN (SELECT id, idempotency_key,
                       CASE WHEN idempotency_key LIKE 'pipeline/%'
                            THEN substr(idempotency_key, 10, instr(substr(idempotency_key, 10), '/') - 1) END AS run_id
                FROM job) j ON j.id = e.job_id
          WHERE e.id > ?
        )
        """

    /// Events after `after`, oldest first: all of them (the poller), or the ones a stream's filter admits (its replay).
    static func read(_ db: Database, after: Int64, filter: StreamFilter?, limit: Int) throws -> [LiveEvent] {
        var sql = liveSelect
        var arguments: [(any DatabaseValueConvertible)?] = [after]
        if let filter {
            sql += " WHERE account = ?"
            arguments.append(filter.account)
            if let job = filter.jobID { sql += " AND job_id = ?"; arguments.append(job) }
            if let run = filter.runID { sql += " AND run_id = ?"; arguments.append(run) }
        }
        sql += " ORDER BY id LIMIT ?"
        arguments.append(limit)
        return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments) ?? []).map { row in
            let event = try JobEvent(row: row)
            var live = LiveEvent(id: event.id, account: row["account"], jobID: event.jobID, runID: row["run_id"], event: event, runState: nil)
            live.frame = EventStream.frame(id: event.id, event: "progress", data: EventStream.progressView(live))
            return live
        }
    }

    /// Owned runs whose record changed at or after `mark` (an updated_at as text).
    static func runChanges(_ db: Database, since mark: String) throws -> [(mark: String, live: LiveEvent)] {
        try Row.fetchAll(db, sql: """
            SELECT r.id, r.state, CAST(r.updated_at AS TEXT) AS mark, o.account FROM pipeline_run r
            JOIN api_owner o ON o.kind = 'run' AND o.object_id = r.id
            WHERE CAST(r.updated_at AS TEXT) >= ? ORDER BY mark LIMIT 500
            """, arguments: [mark]).map { row in
            (mark: row["mark"], live: LiveEvent(id: nil, account: row["account"], jobID: nil, runID: row["id"], event: nil, runState: row["state"]))
        }
    }
}
