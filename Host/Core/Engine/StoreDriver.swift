import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The one process that drives a store. It holds the store's driver lock
/// ($YARD_HOME/driver.lock), resumes every unfinished job and pipeline run,
/// follows them on their poll schedules, picks up work other processes
/// submit meanwhile, and returns when nothing unfinished is left. Every other
/// process only submits (under a per-job claim) and reads.
///
/// `yard run --detach` starts one in the background when no process holds
/// the lock; an attached `yard run` that gets the lock drives in the
/// foreground and stops when its own work is done; `yard serve` can hold it
/// for as long as it runs.
public final class StoreDriver: @unchecked Sendable {
    public let engine: JobEngine
    public let runner: PipelineRunner
    /// How often the store is scanned for work submitted by other processes.
    public var scanIntervalSeconds: Double = 0.5
    let logger = Logger(label: "switchyard.driver")
    private let lock = NSLock()
    /// Work that failed to be driven in this process (e.g. its plugin is
    /// gone): not picked up again, so the driver still comes to an end.
    private var givenUp = Set<String>()

    public init(engine: JobEngine, configs: EngineConfigs) throws {
        self.engine = engine
        self.runner = try PipelineRunner(engine: engine, configs: configs)
    }

    /// What one driving session finished.
    public struct Outcome: Sendable {
        public var jobs: [JobRecord] = []
        public var runs: [PipelineRunRecord] = []
        /// Job and run ids that could not be driven, with the reason.
        public var problems: [String: String] = [:]
        public init() {}
    }

    public enum Update: Sendable {
        case job(JobUpdate)
        case step(PipelineStepUpdate)
    }

    // MARK: the lock

    /// Takes the store's driver lock without waiting; nil when another process drives the store.
    public static func lease(paths: YardPaths) -> StoreLock? {
        StoreLock.acquire(paths.driverLockFile, note: "\(getpid())")
    }

    /// The pid of the process driving the store, if one does.
    public static func driverPID(paths: YardPaths) -> Int32? {
        guard let note = StoreLock.holderNote(paths.driverLockFile) else { return nil }
        return Int32(note) ?? -1
    }

    public static func isDriven(paths: YardPaths) -> Bool { StoreLock.isHeld(paths.driverLockFile) }

    // MARK: work

    struct Work {
        var runs: [PipelineRunRecord]
        var jobs: [JobRecord]
        var isEmpty: Bool { runs.isEmpty && jobs.isEmpty }
    }

    /// Unfinished runs, and unfinished jobs that are not a step of one of
    /// them (a run's own execution follows its step jobs), leaving out what
    /// another live process has claimed (an attached `yard run` following its
    /// own work, or a submit in progress).
    func unfinishedWork() throws -> Work {
        let skip = lock.withLock { givenUp }
        let paths = engine.paths
        let unfinishedRuns = try runner.store.unfinishedRuns()
        let prefixes = unfinishedRuns.map { "pipeline/\($0.id)/" }
        let runs = unfinishedRuns.filter { !skip.contains($0.id) && !StoreLock.isHeld(paths.claimFile($0.id)) }
        let jobs = try engine.store.unfinishedJobs().filter { job in
            !skip.contains(job.id) && !prefixes.contains { job.idempotencyKey.hasPrefix($0) } && !StoreLock.isHeld(paths.claimFile(job.id))
        }
        return Work(runs: runs, jobs: jobs)
    }


    /// Whether any job or run is unfinished (ignoring what this driver gave up on).
    public func hasUnfinishedWork() throws -> Bool { !(try unfinishedWork().isEmpty) }

    private enum Finished {
        case job(JobRecord)
        case run(PipelineRunRecord)
        case problem(String, String)
        case tick
    }

    /// Drives until no unfinished work is left, or until `stop` answers true
    /// (checked whenever something finishes and on every scan). The caller
    /// holds the lease. Work still in flight when `stop` ends the session is
    /// left as it is in the store, for the next driver.
    public func driveUntilIdle(onUpdate: @escaping @Sendable (Update) -> Void = { _ in },
                               stop: @escaping @Sendable () -> Bool = { false }) async throws -> Outcome {
        var outcome = Outcome()
        let interval = UInt64(max(scanIntervalSeconds, 0.01) * 1e9)
        try await withThrowingTaskGroup(of: Finished.self) { group in
            var inFlight = Set<String>()
            func scan() throws -> Bool {
                let work = try unfinishedWork()
                for run in work.runs where !inFlight.contains(run.id) {
                    inFlight.insert(run.id)
                    group.addTask { [self] in
                        do {
                            return .run(try await runner.execute(run.id) { onUpdate(.step($0)) })
                        } catch is CancellationError {
                            throw CancellationError()
                        } catch {
                            return .problem(run.id, "\(error)")
                        }
                    }
                }
                for job in work.jobs where !inFlight.contains(job.id) {
                    inFlight.insert(job.id)
                    group.addTask { [self] in
                        do {
                            return .job(try await engine.drive(job.id) { onUpdate(.job($0)) })
                        } catch is CancellationError {
                            throw CancellationError()
                        } catch {
                            return .problem(job.id, "\(error)")
                        }
                    }
                }
                return !work.isEmpty
            }
            _ = try scan()
            group.addTask {
                try await Task.sleep(nanoseconds: interval)
                return .tick
            }
            loop: while let finished = try await group.next() {
                switch finished {
                case .job(let job):
                    inFlight.remove(job.id)
                    outcome.jobs.append(job)
                case .run(let run):
                    inFlight.remove(run.id)
                    outcome.runs.append(run)
                case .problem(let id, let reason):
                    inFlight.remove(id)
                    lock.withLock { _ = givenUp.insert(id) }
                    outcome.problems[id] = reason
                    logger.error("could not drive", metadata: ["id": "\(id)", "reason": "\(reason)"])
                case .tick:
                    if stop() { break loop }
                    let found = try scan()
                    if inFlight.isEmpty && !found { break loop }
                    group.addTask {
                        try await Task.sleep(nanoseconds: interval)
                        return .tick
                    }
                    continue
                }
                if stop() { break loop }
            }
            group.cancelAll()
        }
        return outcome
    }

    /// Drives while work remains, as the store's driver: the lease is given
    /// up only when a look taken after releasing it still finds nothing, so
    /// work submitted while the driver was stopping always has a driver.
    public func driveWhileWorkRemains(lease: StoreLock, onUpdate: @escaping @Sendable (Update) -> Void = { _ in }) async throws -> Outcome {
        var total = Outcome()
        var held: StoreLock? = lease
        while let current = held {
            let session = try await driveUntilIdle(onUpdate: onUpdate)
            total.jobs += session.jobs
            total.runs += session.runs
            total.problems.merge(session.problems) { _, new in new }
            current.release()
            guard try hasUnfinishedWork() else { break }
            held = Self.lease(paths: engine.paths) // nil: another driver took over
        }
        return total
    }
}
