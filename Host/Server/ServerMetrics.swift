import Foundation
import GRDB
import Prometheus
import SwitchyardHost

/// /metrics in Prometheus text format. Plugin call latency is measured as
/// calls happen (JobEngine.pluginCallObserver); jobs by state and spend by
/// engine are read from the store at each scrape, so they are right after a
/// restart and whichever process drove the work.
public final class ServerMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let buckets: [Duration] = [.milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250),
                                       .milliseconds(1000), .milliseconds(5000), .seconds(30)]
    private let lock = NSLock()
    /// Label sets seen so far: a gauge that had a value keeps being exported (at 0) when its rows go.
    private var jobSeries = Set<[String]>()

    public init() {}

    /// Records one plugin call.
    public func observePluginCall(engine: String, operation: String, duration: Duration, ok: Bool) {
        registry.makeDurationHistogram(descriptor: .init(namespace: "yard", metricName: "plugin_call_duration", unitName: "seconds",
                                                         helpText: "Time one plugin call took, by engine and operation."),
                                       labels: [("engine", engine), ("operation", operation)], buckets: buckets).record(duration)
        if !ok {
            registry.makeCounter(descriptor: .init(namespace: "yard", metricName: "plugin_call_failures", unitName: "total",
                                                   helpText: "Plugin calls that failed, by engine and operation."),
                                 labels: [("engine", engine), ("operation", operation)]).increment()
        }
    }

    public func countRequest(status: Int) {
        registry.makeCounter(descriptor: .init(namespace: "yard", metricName: "http_requests", unitName: "total", helpText: "API requests answered, by status class."),
                             labels: [("status", "\(status / 100)xx")]).increment()
    }

    /// The whole exposition, after reading the store's current counts.
    public func render(store: APIStore, driving: Bool) -> String {
        let counts = (try? store.jobCounts()) ?? []
        lock.withLock {
            var current: [[String]: Int] = [:]
            for row in counts { current[[row.engine, row.phase], default: 0] += row.count }
            jobSeries.formUnion(current.keys)
            for series in jobSeries {
                registry.makeGauge(descriptor: .init(namespace: "yard", metricName: "jobs", helpText: "Jobs in the store, by engine and state."),
                                   labels: [("engine", series[0]), ("state", series[1])]).set(to: Double(current[series] ?? 0))
            }
        }
        for row in (try? store.spendByEngine()) ?? [] {
            registry.makeGauge(descriptor: .init(namespace: "yard", metricName: "spend", unitName: "minor_units",
                                                 helpText: "What settled jobs cost, by engine and currency, in minor units (cents)."),
                               labels: [("engine", row.engine), ("currency", row.currency)]).set(to: Double(row.minor))
        }
        registry.makeGauge(descriptor: .init(namespace: "yard", metricName: "driving", helpText: "1 when this server holds the store's driver lock.")).set(to: driving ? 1.0 : 0.0)
        return registry.emitToString()
    }
}

extension APIStore {
    /// What settled jobs cost, by engine and currency (the ledger's
    /// charged_minor). Empty when the store keeps no ledger.
    public func spendByEngine() throws -> [(engine: String, currency: String, minor: Int)] {
        try pool.read { db in
            guard try db.tableExists("ledger_job") else { return [] }
            return try Row.fetchAll(db, sql: """
                SELECT job.plugin_id, l.currency, SUM(COALESCE(l.charged_minor, 0)) AS minor
                FROM ledger_job l JOIN job ON job.id = l.job_id WHERE l.settled_at IS NOT NULL GROUP BY job.plugin_id, l.currency
                """).map { (engine: $0["plugin_id"], currency: $0["currency"], minor: $0["minor"]) }
        }
    }
}
