import ArgumentParser
import Foundation
import GRDB
import SwitchyardHost

/// Host overhead per job through the real engine (pre-flight with plugin
/// validate, persist, submit, two polls, complete) with the echo adapter,
/// against the least a durable host must do: insert and update one job row in
/// the same SQLite store. Used by scripts/bench-engine.sh.
struct BenchEngineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-engine", abstract: "Measure engine overhead per job (benchmark helper).", shouldDisplay: false)
    @OptionGroup var global: GlobalOptions
    @Option var jobs = 2000
    @Option var concurrency = 8

    func run() async throws {
        let paths = global.paths
        let engine = try JobEngine.standard(paths: paths, registry: global.registry)
        engine.policy.maxPollMs = 0 // poll as soon as the adapter allows: measure the host, not the schedule
        engine.policy.minPollMs = 0
        func spec(_ i: Int) -> JobSpec { JobSpec(pluginID: "echo", capability: "debug.echo", inputs: ["text": .string("bench \(i)"), "polls": 0]) }
        _ = try await engine.drive(try await engine.start(spec(-1)).id) // warm: load, health cache

        var latencies: [Double] = []
        latencies.reserveCapacity(jobs)
        let sequentialStart = DispatchTime.now()
        for i in 0..<jobs {
            let t = DispatchTime.now()
            let job = try await engine.drive(try await engine.start(spec(i)).id)
            guard job.phase == .succeeded else { throw YardError("BENCH", "job \(job.id) ended \(job.phase)", remediation: "") }
            latencies.append(Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e6)
        }
        let sequentialSeconds = Double(DispatchTime.now().uptimeNanoseconds - sequentialStart.uptimeNanoseconds) / 1e9

        let concurrentStart = DispatchTime.now()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    for i in stride(from: worker, to: jobs, by: concurrency) {
                        _ = try await engine.drive(try await engine.start(spec(jobs + i)).id)
                    }
                }
            }
            try await group.waitForAll()
        }
        let concurrentSeconds = Double(DispatchTime.now().uptimeNanoseconds - concurrentStart.uptimeNanoseconds) / 1e9

        // Baseline: one insert + one update of a job row per job, same store, same durability settings.
        guard let store = engine.store as? SQLiteJobStore else { return }
        var baseline: [Double] = []
        let baseStart = DispatchTime.now()
        for i in 0..<jobs {
            let t = DispatchTime.now()
            try await store.pool.write { db in
                try db.execute(sql: """
                    INSERT INTO job (id, idempotency_key, plugin_id, plugin_version, capability, inputs_json, input_hash, config_json, phase,
                                     attempt, created_at, updated_at, poll_count, consecutive_errors, cancel_requested)
                    VALUES (?, ?, 'echo', '1.0.0', 'debug.echo', '{}', 'h', '{}', 'submitting', 1, ?, ?, 0, 0, 0)
                    """, arguments: ["base\(i)", "base-key-\(i)", Date(), Date()])
            }
            try await store.pool.write { db in
                try db.execute(sql: "UPDATE job SET phase = 'succeeded', outputs_json = '{}', updated_at = ? WHERE id = ?", arguments: [Date(), "base\(i)"])
            }
            baseline.append(Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e6)
        }
        let baseSeconds = Double(DispatchTime.now().uptimeNanoseconds - baseStart.uptimeNanoseconds) / 1e9

        func percentile(_ values: [Double], _ p: Double) -> Double {
            let sorted = values.sorted()
            return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
        let p50 = percentile(latencies, 0.5), p99 = percentile(latencies, 0.99)
        let b50 = percentile(baseline, 0.5), b99 = percentile(baseline, 0.99)
        print(String(format: "engine  per job  p50 %.3f ms  p99 %.3f ms  sequential %.0f jobs/s  concurrent(%d) %.0f jobs/s", p50, p99, Double(jobs) / sequentialSeconds, concurrency, Double(jobs) / concurrentSeconds))
        print(String(format: "baseline insert+update  p50 %.3f ms  p99 %.3f ms  %.0f rows/s", b50, b99, Double(jobs) / baseSeconds))
        print(String(format: "ratio (engine / baseline)  p50 %.1fx  p99 %.1fx", p50 / b50, p99 / b99))
    }
}

/// Resident memory and CPU time of this process, from /proc and getrusage.
enum ProcessUsage {
    static func residentMB() -> Double { field("VmRSS") }
    static func peakResidentMB() -> Double { field("VmHWM") }

    static func field(_ name: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
        return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }
}

/// N jobs in flight at once, each polled once a second: memory and CPU of the
/// host while it keeps them all moving. Used by scripts/bench-engine.sh.
struct BenchInflightCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-inflight", abstract: "Measure N jobs in flight (benchmark helper).", shouldDisplay: false)
    @OptionGroup var global: GlobalOptions
    @Option var jobs = 10_000
    @Option var seconds = 20.0

    func run() async throws {
        let engine = try JobEngine.standard(paths: global.paths, registry: global.registry)
        engine.policy.minPollMs = 1000
        engine.policy.maxPollMs = 1000
        let rssBefore = ProcessUsage.residentMB()
        let startWall = Date()
        var ids: [String] = []
        ids.reserveCapacity(jobs)
        try await withThrowingTaskGroup(of: [String].self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var mine: [String] = []
                    for i in stride(from: worker, to: jobs, by: 8) {
                        mine.append(try await engine.start(JobSpec(pluginID: "echo", capability: "debug.echo", inputs: ["text": .string("inflight \(i)"), "polls": 50])).id)
                    }
                    return mine
                }
            }
            for try await chunk in group { ids += chunk }
        }
        let started = Date().timeIntervalSince(startWall)
        let drivers = Task {
            await withTaskGroup(of: Void.self) { group in
                for id in ids { group.addTask { _ = try? await engine.drive(id) } }
            }
        }
        try await Task.sleep(nanoseconds: 3_000_000_000) // let the schedule settle
        guard let store = engine.store as? SQLiteJobStore else { return }
        let pollsBefore = try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT SUM(poll_count) FROM job") ?? 0 }
        let cpuBefore = ProcessUsage.cpuSeconds(), wallBefore = Date()
        try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
        let cpu = ProcessUsage.cpuSeconds() - cpuBefore, wall = Date().timeIntervalSince(wallBefore)
        let pollsAfter = try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT SUM(poll_count) FROM job") ?? 0 }
        let rss = ProcessUsage.residentMB()
        print(String(format: "in flight %d jobs (started in %.1f s)  polls %.0f/s  CPU %.2f cores  RSS %.0f MB (%.0f MB before, peak %.0f MB)",
                     jobs, started, Double(pollsAfter - pollsBefore) / wall, cpu / wall, rss, rssBefore, ProcessUsage.peakResidentMB()))
        drivers.cancel()
        Foundation.exit(0)
    }
}

/// Downloads one URL into the artifact store; prints seconds and RSS growth.
struct BenchDownloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-download", abstract: "Measure an artifact download (benchmark helper).", shouldDisplay: false)
    @OptionGroup var global: GlobalOptions
    @Argument var url: String

    func run() async throws {
        let downloader = ArtifactDownloader(directory: ArtifactDirectory(root: global.paths.home.appendingPathComponent("artifacts")))
        let rssBefore = ProcessUsage.residentMB()
        let start = Date()
        let result = try await downloader.download(url: url, isAllowed: { _ in true })
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "%.3f %d %.1f", seconds, result.size, ProcessUsage.peakResidentMB() - rssBefore))
    }
}
