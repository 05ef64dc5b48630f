import Foundation
import Logging
import SwitchyardHost

/// `yard serve` as the store's driver: while it runs it holds the driver
/// lock and drives every job and pipeline run — what was unfinished at start,
/// and whatever the API, the CLI or `yard run --detach` submits meanwhile —
/// and delivers the billing outbox. When another process holds the lock,
/// the server only reads and submits (the holder drives what it submits)
/// and takes the lock over as soon as the holder lets it go.
public final class StoreDaemon: @unchecked Sendable {
    public let engine: JobEngine
    public let configs: EngineConfigs
    /// How often the store is scanned for new work while driving.
    public var scanIntervalSeconds: Double = 0.5
    /// How often the lock is tried again while another process holds it.
    public var retryIntervalSeconds: Double = 2
    /// Seconds between billing outbox deliveries (0: only when a settlement commits).
    public var outboxIntervalSeconds: Double = 30
    /// Told of what the daemon does (a line for stderr).
    public var log: @Sendable (String) -> Void = { _ in }
    private let lock = NSLock()
    private var driving = false
    private var stopped = false

    public init(engine: JobEngine, configs: EngineConfigs) {
        self.engine = engine
        self.configs = configs
    }

    /// Whether this process holds the store's driver lock now.
    public var isDriving: Bool { lock.withLock { driving } }
    var isStopped: Bool { lock.withLock { stopped } }

    /// Runs until the task is cancelled.
    public func run() async {
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.drainOutbox() }
                group.addTask { await self.drive() }
                await group.waitForAll()
            }
        } onCancel: {
            lock.withLock { stopped = true }
        }
    }

    func drive() async {
        var announced = false
        while !isStopped {
            guard let lease = StoreDriver.lease(paths: engine.paths) else {
                if !announced {
                    let pid = StoreDriver.driverPID(paths: engine.paths).map { " (pid \($0))" } ?? ""
                    log("another process\(pid) drives this store: serving reads and submits; taking over when it stops")
                    announced = true
                }
                try? await Task.sleep(nanoseconds: UInt64(retryIntervalSeconds * 1e9))
                continue
            }
            announced = false
            lock.withLock { driving = true }
            log("driving the store (driver lock \(engine.paths.driverLockFile.path))")
            do {
                let driver = try StoreDriver(engine: engine, configs: configs)
                driver.scanIntervalSeconds = scanIntervalSeconds
                while !isStopped {
                    let outcome = try await driver.driveUntilIdle(onUpdate: { _ in }, stop: { [self] in isStopped })
                    for job in outcome.jobs { log("\(job.id) \(job.pluginID) \(job.phase.rawValue)\(job.errorCode.map { " \($0)" } ?? "")") }
                    for run in outcome.runs { log("\(run.id) \(run.pipelineID) \(run.state.rawValue)") }
                    for (id, reason) in outcome.problems { log("could not drive \(id): \(reason)") }
                    if !outcome.jobs.isEmpty || !outcome.runs.isEmpty { await engine.deliverUsage() }
                    try? await Task.sleep(nanoseconds: UInt64(max(scanIntervalSeconds, 0.01) * 1e9))
                }
            } catch {
                if !isStopped { log("driving stopped: \(YardError.describing(error).message)") }
            }
            lock.withLock { driving = false }
            lease.release()
            if !isStopped { try? await Task.sleep(nanoseconds: UInt64(retryIntervalSeconds * 1e9)) }
        }
    }

    /// Usage settled while serving goes out at once (after each settlement);
    /// what a crash or an unreachable provider left behind, on a timer.
    func drainOutbox() async {
        guard let outbox = engine.billingOutbox() else { return }
        while !isStopped {
            let report = await outbox.kick().value
            if report.delivered + report.failed > 0 {
                log("billing outbox: \(report.delivered) delivered, \(report.pending) pending, \(report.failed) failed")
            }
            guard outboxIntervalSeconds > 0 else { return }
            try? await Task.sleep(nanoseconds: UInt64(outboxIntervalSeconds * 1e9))
        }
    }
}
