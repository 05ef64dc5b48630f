import Foundation
import SwitchyardJSON

/// A diagnostics bundle to attach to a bug report (`yard doctor`, and
/// GET /api/v1/diagnostics): one JSON document. Secret values never appear:
/// only names and whether they are set; config values under secret-looking
/// keys are replaced; the finished text is swept once more for every secret
/// value this host knows.
public enum DiagnosticsBundle {
    /// Config keys whose values are credentials, whatever the engine.
    public static func isSecretKey(_ key: String) -> Bool {
        let lower = key.lowercased()
        return ["key", "token", "secret", "password", "credential", "authorization"].contains { lower.contains($0) } && !lower.hasSuffix("_url")
    }

    public static func redacted(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let members):
            return .object(Dictionary(uniqueKeysWithValues: members.map { key, member in (key, isSecretKey(key) && member.stringValue != nil ? .string("[REDACTED]") : redacted(member)) }))
        case .array(let items): return .array(items.map(redacted))
        default: return value
        }
    }

    /// Stored JSON text as JSON, not as a string inside JSON.
    public static func parsed(_ text: String?) -> JSONValue {
        guard let text else { return .null }
        return (try? JSONValue(parsing: Data(text.utf8))) ?? .string(text)
    }

    /// The bundle as pretty-printed JSON text, redacted. `environment` is the
    /// process environment whose YARD_ names (never values) are listed.
    public static func text(paths: YardPaths, registry: PluginRegistry, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let vault = SecretVault(paths: paths)
        var bundle: [String: JSONValue] = [
            "generated_at": .string(timestamp(Date())),
            "host": ["version": .string(HostPlatform.hostVersion), "abi": .string(HostPlatform.abiString), "platform": .string(HostPlatform.platform),
                     "toolchain": .string(HostPlatform.toolchain)],
            "paths": ["home": .string(paths.home.path), "registry": .string(YardPaths.registryDirectory()?.path ?? "not found"),
                      "search": .array(registry.roots.map { .string("\($0.1.rawValue): \($0.0.path)") })],
        ]
        let rows = registry.list()
        let policy = PluginIsolationPolicy(paths: paths, registry: registry)
        bundle["plugins"] = .array(rows.map { row in
            var entry: [String: JSONValue] = ["id": .string(row.id), "version": .string(row.version), "abi": .string(row.abi),
                                              "source": .string(row.source.rawValue), "status": .string(row.status.rawValue)]
            if let problem = row.problem { entry["problem"] = ["code": .string(problem.code.rawValue), "message": .string(problem.message)] }
            let manifest = URL(fileURLWithPath: row.manifestPath)
            entry["isolation"] = .string(policy.isolation(for: manifest, id: row.id).rawValue)
            entry["isolation_reason"] = .string(policy.reason(for: manifest, id: row.id))
            return .object(entry)
        })
        bundle["isolation"] = Self.isolation(paths: paths)
        var declared = Set<String>()
        for row in rows where row.status == .ok {
            if let manifest = try? PluginManifest.parse(Data(contentsOf: URL(fileURLWithPath: row.manifestPath)), source: row.manifestPath) {
                declared.formUnion(manifest.secrets.map(\.name))
            }
        }
        declared.formUnion(vault.names().map(\.name))
        bundle["secrets"] = .array(declared.sorted().map { name in
            let env = environment[name] != nil
            return ["name": .string(name), "state": .string(env ? "set (environment)" : vault.value(of: name) != nil ? "set (vault)" : "not set")]
        })
        var configs: [String: JSONValue] = [:]
        let configFolder = paths.home.appendingPathComponent("config")
        for file in ((try? FileManager.default.contentsOfDirectory(atPath: configFolder.path)) ?? []).sorted() where file.hasSuffix(".json") {
            let data = FileManager.default.contents(atPath: configFolder.appendingPathComponent(file).path) ?? Data()
            configs[String(file.dropLast(5))] = (try? JSONValue(parsing: data)).map(Self.redacted) ?? .string("not valid JSON (\(data.count) bytes)")
        }
        bundle["configs"] = .object(configs)
        if let store = try? SQLiteJobStore(path: paths.jobStoreFile) {
            let jobs = (try? store.jobs(limit: 500, phase: nil)) ?? []
            bundle["jobs"] = .object(Dictionary(grouping: jobs, by: \.phase.rawValue).mapValues { .number(Double($0.count)) })
            bundle["recent_failures"] = .array(jobs.filter { $0.phase == .failed || $0.phase == .needsAttention }.prefix(10).map {
                ["job": .string($0.id), "engine": .string($0.pluginID), "state": .string($0.phase.rawValue), "error": Self.parsed($0.errorJSON),
                 "message": $0.message.map(JSONValue.string) ?? .null, "at": .string(timestamp($0.finishedAt ?? $0.updatedAt))]
            })
            bundle["engine_health"] = .array(rows.compactMap { row -> JSONValue? in
                guard let health = try? store.latestHealth(pluginID: row.id) else { return nil }
                return ["engine": .string(row.id), "status": .string(health.status), "checked_at": .string(timestamp(health.checkedAt)),
                        "message": health.message.map(JSONValue.string) ?? .null]
            })
            bundle["driver"] = StoreDriver.driverPID(paths: paths).map { ["pid": .number(Double($0))] } ?? "not running"
        }
        bundle["environment"] = .object(environment.filter { $0.key.hasPrefix("YARD_") }.mapValues { _ in "set" })
        var text = prettyText(JSONValue.object(bundle)) ?? "{}"
        var known: [Redactor.Value] = declared.compactMap { name in vault.value(of: name).map { Redactor.Value(name: name, value: $0) } }
        if let key = environment["YARD_SECRET_KEY"] { known.append(Redactor.Value(name: "YARD_SECRET_KEY", value: key)) }
        // Whole values, fragments a truncation left, and JWT or Bearer shapes.
        text = Redactor(values: known).redact(text)
        return text
    }

    /// What an isolated plugin's runner enforces on this machine: the runner
    /// applies its sandbox to itself, tries to break out, and reports.
    static func isolation(paths: YardPaths) -> JSONValue {
        guard let runner = RunnerConfiguration.locateExecutable() else {
            return ["runner": "missing", "problem": "yard-plugin-runner is not installed beside yard: isolated plugins cannot load. Reinstall with scripts/build.sh."]
        }
        do {
            let report = try SandboxProbe.run(RunnerConfiguration(executable: runner, scratchRoot: paths.home.appendingPathComponent("tmp/runners")))
            var result: [String: JSONValue] = ["runner": .string(runner.path), "summary": .object(report.summary.mapValues { .string($0) }),
                                               "checks": .object((report.checks ?? [:]).mapValues { .string($0) }),
                                               "layers": .array(report.layers.map { ["layer": .string($0.layer), "state": .string($0.state), "detail": .string($0.detail)] })]
            if !report.degraded.isEmpty {
                result["degraded"] = .array(report.degraded.map { .string("\($0.layer): \($0.detail)") })
            }
            return .object(result)
        } catch let error as YardError {
            return ["runner": .string(runner.path), "problem": .string("\(error.code.rawValue): \(error.message)")]
        } catch {
            return ["runner": .string(runner.path), "problem": .string("\(error)")]
        }
    }

    public static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    static func prettyText(_ value: JSONValue) -> String? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) }
    }
}
