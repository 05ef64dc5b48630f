import Foundation
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost

/// The echo plugin with a price per request edited into its manifest, and an
/// engine with a credits ledger whose engines are platform-billed.
func pricedEcho(in dir: URL, amountMinor: Int) throws -> URL {
    let plugins = dir.appendingPathComponent("plugins-\(UUID().uuidString.prefix(6))")
    try copyPlugin("echo", to: plugins) { manifest in
        var capabilities = manifest["capabilities"] as? [[String: Any]] ?? []
        capabilities[0]["pricing"] = ["unit": "request", "amount_minor": amountMinor, "currency": "USD"]
        manifest["capabilities"] = capabilities
    }
    return plugins
}

func makeLedgerEngine(home: URL, plugins: URL, billing: BillingConfig, secrets: [String: String] = [:],
                      http: any HTTPTransport = BlockingHTTPTransport(defaultTimeoutMs: 2_000)) throws -> (JobEngine, JobLedger) {
    let engine = try makeTestEngine(home: home, plugins: plugins, secrets: secrets, http: http)
    engine.policy.minPollMs = 1
    engine.policy.maxPollMs = 5
    let store = try XCTUnwrap(engine.store as? SQLiteJobStore)
    let ledger = JobLedger(store: store, config: billing, prices: PriceBook(directories: []))
    engine.ledger = ledger
    return (engine, ledger)
}

func platformBilling(account: String = "acme", meter: Bool = false) -> BillingConfig {
    var config = BillingConfig()
    config.defaultMode = .platform
    config.defaultAccount = account
    if meter { config.meter = BillingConfig.Meter(plugin: "stripe-billing", eventName: "switchyard_usage_minor") }
    return config
}

func echoSpec(_ text: String = "hello", polls: Int = 0, extra: [String: JSONValue] = [:], billing: BillingScope? = nil) -> JobSpec {
    var spec = JobSpec(pluginID: "echo", capability: "debug.echo", inputs: ["text": .string(text), "polls": .number(Double(polls))].merging(extra) { _, new in new })
    spec.billing = billing
    return spec
}

/// The stable code of a refusal, whether the pre-flight or the reservation refused.
func refusalCode(_ error: Error) -> String? {
    if let refusal = error as? JobEngine.Refusal { return refusal.verdict.firstError?.code }
    return (error as? YardError)?.code.rawValue
}

func XCTAssertLedgerBalances(_ ledger: JobLedger, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual((try? ledger.audit()) ?? ["audit failed"], [], "the ledger must balance to the cent", file: file, line: line)
}
