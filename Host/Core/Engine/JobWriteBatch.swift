import Foundation
import GRDB

/// The writes one step of a job makes besides its row — the plugin's log
/// lines, the artifacts it stored, the engine's own events — held while the
/// step runs and committed in the same transaction as the job row that
/// records the step's outcome (ADR 0021). A poll answer is then one write
/// transaction instead of one per line, artifact and state change.
///
/// What is held is what the step's outcome explains: if the host dies before
/// the row is written, the step is repeated (the poll asked again), and it
/// writes its lines and artifacts again. The plugin's kv is not held: it
/// stands for state the plugin keeps across calls (what it told the
/// provider), which must be durable the moment the plugin writes it.
final class JobWriteBatch: @unchecked Sendable {
    struct Event {
        var kind: String
        var message: String
        var data: String?
        var at: Date
    }

    struct Pending {
        var events: [Event] = []
        var artifacts: [ArtifactRecord] = []
        var isEmpty: Bool { events.isEmpty && artifacts.isEmpty }
    }

    private let lock = NSLock()
    /// Jobs with a step in progress; a second step of the same job at once
    /// (a webhook during a poll) shares the first one's batch.
    private var open: [String: Pending] = [:]
    private var depth: [String: Int] = [:]

    /// Opens the job's batch (or joins the one open).
    func begin(_ jobID: String) {
        lock.withLock {
            depth[jobID, default: 0] += 1
            if open[jobID] == nil { open[jobID] = Pending() }
        }
    }

    /// Leaves the job's batch; returns what nothing committed yet, when this
    /// was the last step in it.
    func end(_ jobID: String) -> Pending? {
        lock.withLock {
            let left = (depth[jobID] ?? 1) - 1
            if left > 0 {
                depth[jobID] = left
                return nil
            }
            depth[jobID] = nil
            return open.removeValue(forKey: jobID)
        }
    }

    /// Takes what is held so far, for the transaction that writes the row; the batch stays open.
    func take(_ jobID: String) -> Pending? {
        lock.withLock {
            guard let pending = open[jobID] else { return nil }
            open[jobID] = Pending()
            return pending.isEmpty ? nil : pending
        }
    }

    /// Holds an event if the job has a step in progress; false: write it now.
    func hold(event: Event, jobID: String) -> Bool {
        lock.withLock {
            guard open[jobID] != nil else { return false }
            open[jobID]?.events.append(event)
            return true
        }
    }

    func hold(artifact: ArtifactRecord, jobID: String) -> Bool {
        lock.withLock {
            guard open[jobID] != nil else { return false }
            open[jobID]?.artifacts.append(artifact)
            return true
        }
    }
}

extension JobEngine {
    /// Runs one step of a job (a call and the storing of its outcome) with its
    /// writes batched; what no row update committed is written at the end.
    func batchingWrites<T>(_ jobID: String, _ step: () async throws -> T) async rethrows -> T {
        batch.begin(jobID)
        do {
            let value = try await step()
            flush(batch.end(jobID), jobID: jobID)
            return value
        } catch {
            flush(batch.end(jobID), jobID: jobID)
            throw error
        }
    }

    /// An event of the job: held with its step's batch, or written now.
    func event(_ jobID: String, kind: String, message: String, data: String?) {
        if batch.hold(event: .init(kind: kind, message: message, data: data, at: Date()), jobID: jobID) { return }
        try? store.appendEvent(jobID: jobID, kind: kind, message: message, data: data)
    }

    /// An artifact produced for a job: indexed with its step's batch, or now.
    func recordArtifact(jobID: String, _ record: ArtifactRecord) {
        if batch.hold(artifact: record, jobID: jobID) { return }
        try? store.recordArtifact(record)
    }

    /// Updates the job row, with everything its step holds, in one transaction.
    @discardableResult
    func commit(_ jobID: String, _ change: @escaping @Sendable (inout JobRecord) throws -> Void) throws -> JobRecord {
        let pending = batch.take(jobID)
        guard let pending, let sqlite = store as? SQLiteJobStore else {
            flush(pending, jobID: jobID)
            return try store.updateJob(id: jobID, change)
        }
        do {
            return try sqlite.pool.write { db in
                try Self.insert(pending, jobID: jobID, db)
                return try sqlite.updateJob(id: jobID, in: db, change)
            }
        } catch {
            // The row could not be written: the lines and artifacts still are, on their own.
            flush(pending, jobID: jobID)
            throw error
        }
    }

    static func insert(_ pending: JobWriteBatch.Pending, jobID: String, _ db: Database) throws {
        for artifact in pending.artifacts { try artifact.save(db) }
        for held in pending.events {
            var event = JobEvent(id: nil, jobID: jobID, at: held.at, kind: held.kind, message: held.message, dataJSON: held.data)
            try event.insert(db)
        }
    }

    /// Writes held lines and artifacts that no row update took, in one transaction.
    func flush(_ pending: JobWriteBatch.Pending?, jobID: String) {
        guard let pending, !pending.isEmpty else { return }
        if let sqlite = store as? SQLiteJobStore {
            if (try? sqlite.pool.write({ db in try Self.insert(pending, jobID: jobID, db) })) != nil { return }
        }
        // One by one, so one bad record (a job deleted meanwhile) does not take the others with it.
        for artifact in pending.artifacts { try? store.recordArtifact(artifact) }
        for held in pending.events { try? store.appendEvent(jobID: jobID, kind: held.kind, message: held.message, data: held.data) }
    }
}
