import ArgumentParser
import Foundation
import SwitchyardHost

/// A diagnostics bundle to attach to a bug report. Secret values never
/// appear: only names and whether they are set; the finished text is swept
/// once more for every secret value this host knows.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor", abstract: "Print a redacted diagnostics bundle: host, plugins, secrets (names only), engines, recent failures.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Also write the bundle (JSON) to this file.") var out: String?

    func run() async throws {
        let paths = global.paths
        let registry = global.registry
        let vault = SecretVault(paths: paths)
        var bundle: [String: Any] = [
            "host": ["version": HostPlatform.hostVersion, "abi": HostPlatform.abiString, "platform": HostPlatform.platform, "toolchain": HostPlatform.toolchain],
            "paths": ["home": paths.home.path, "registry": YardPaths.registryDirectory()?.path ?? "not found",
                      "search": registry.roots.map { "\($0.1.rawValue): \($0.0.path)" }],
        ]
        let rows = registry.list()
        let policy = PluginIsolationPolicy(paths: paths, registry: registry)
        bundle["plugins"] = rows.map { row -> [String: Any] in
            var entry: [String: Any] = ["id": row.id, "version": row.version, "abi": row.abi, "source": row.source.rawValue, "status": row.status.rawValue]
            if let problem = row.problem { entry["problem"] = "\(problem.code.rawValue): \(problem.message)" }
            let manifest = URL(fileURLWithPath: row.manifestPath)
            entry["isolation"] = policy.isolation(for: manifest, id: row.id).rawValue
            entry["isolation_reason"] = policy.reason(for: manifest, id: row.id)
            return entry
        }
        bundle["isolation"] = Self.isolation(paths: paths)
        var declared = Set<String>()
        for row in rows where row.status == .ok {
            if let manifest = try? PluginManifest.parse(Data(contentsOf: URL(fileURLWithPath: row.manifestPath)), source: row.manifestPath) {
                declared.formUnion(manifest.secrets.map(\.name))
            }
        }
        declared.formUnion(vault.names().map(\.name))
        bundle["secrets"] = declared.sorted().map { name -> [String: String] in
            let env = ProcessInfo.processInfo.environment[name] != nil
            return ["name": name, "state": env ? "set (environment)" : vault.value(of: name) != nil ? "set (vault)" : "not set"]
        }
        if let store = try? SQLiteJobStore(path: paths.jobStoreFile) {
            let jobs = (try? store.jobs(limit: 500, phase: nil)) ?? []
            bundle["jobs"] = Dictionary(grouping: jobs, by: \.phase.rawValue).mapValues(\.count)
            bundle["recent_failures"] = jobs.filter { $0.phase == .failed || $0.phase == .needsAttention }.prefix(10).map {
                ["job": $0.id, "engine": $0.pluginID, "state": $0.phase.rawValue, "error": $0.errorJSON ?? "", "message": $0.message ?? ""]
            }
            bundle["engine_health"] = rows.compactMap { row -> [String: String]? in
                guard let health = try? store.latestHealth(pluginID: row.id) else { return nil }
                return ["engine": row.id, "status": health.status, "checked_at": ISO8601DateFormatter().string(from: health.checkedAt), "message": health.message ?? ""]
            }
        }
        bundle["environment"] = ProcessInfo.processInfo.environment.filter { $0.key.hasPrefix("YARD_") }
            .mapValues { _ in "set" }
        var text = String(decoding: try JSONSerialization.data(withJSONObject: bundle, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self)
        var known: [Redactor.Value] = declared.compactMap { name in vault.value(of: name).map { Redactor.Value(name: name, value: $0) } }
        if let key = ProcessInfo.processInfo.environment["YARD_SECRET_KEY"] { known.append(Redactor.Value(name: "YARD_SECRET_KEY", value: key)) }
        // Whole values, fragments a truncation left, and JWT or Bearer shapes.
        text = Redactor(values: known).redact(text)
        if let out { try text.write(toFile: out, atomically: true, encoding: .utf8) }
        print(text)
    }

    /// What an isolated plugin's runner enforces on this machine: the runner
    /// applies its sandbox to itself, tries to break out, and reports.
    static func isolation(paths: YardPaths) -> [String: Any] {
        guard let runner = RunnerConfiguration.locateExecutable() else {
            return ["runner": "missing", "problem": "yard-plugin-runner is not installed beside yard: isolated plugins cannot load. Reinstall with scripts/build.sh."]
        }
        do {
            let report = try SandboxProbe.run(RunnerConfiguration(executable: runner, scratchRoot: paths.home.appendingPathComponent("tmp/runners")))
            var result: [String: Any] = ["runner": runner.path, "summary": report.summary, "checks": report.checks ?? [:],
                                         "layers": report.layers.map { ["layer": $0.layer, "state": $0.state, "detail": $0.detail] }]
            if !report.degraded.isEmpty {
                result["degraded"] = report.degraded.map { "\($0.layer): \($0.detail)" }
            }
            return result
        } catch let error as YardError {
            return ["runner": runner.path, "problem": "\(error.code.rawValue): \(error.message)"]
        } catch {
            return ["runner": runner.path, "problem": "\(error)"]
        }
    }
}
