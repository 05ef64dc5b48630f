import CPluginAPI
import Foundation
import SwitchyardJSON
#if canImport(Glibc)
import Glibc
#endif

/// Collects every log line a plugin writes, for the checks to inspect.
public final class CollectingLogSink: HostLogSink, @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    public init() {}
    public func record(pluginID: String, jobID: String?, level: Int32, message: String) {
        lock.withLock { lines.append(message) }
    }
    public var all: [String] { lock.withLock { lines } }
}

/// The body of one conformance check, run inside a child process.
public struct ConformanceChild: @unchecked Sendable {
    let manifestURL: URL
    let config: [String: Any]
    /// Where the plugin's code runs during the checks: the kit must pass both ways.
    let isolation: PluginIsolation
    let log = CollectingLogSink()
    /// Canary values for every declared secret: they must never come back.
    let canaries: [String: String]

    public init(manifestURL: URL, config: [String: Any], isolation: PluginIsolation = .inProcess) {
        self.manifestURL = manifestURL
        self.config = config
        self.isolation = isolation
        let manifest = (try? Data(contentsOf: manifestURL)).flatMap { try? PluginManifest.parse($0, source: "") }
        var canaries: [String: String] = [:]
        for secret in manifest?.secrets ?? [] { canaries[secret.name] = "sy-canary-\(secret.name.lowercased())-\(UUID().uuidString.prefix(8))" }
        self.canaries = canaries
    }

    func services(tempDir: URL) -> HostServiceSet {
        let artifacts = ArtifactDirectory(root: tempDir)
        seedExampleArtifacts(artifacts)
        return HostServiceSet(log: log, clock: SystemClock(), http: BlockingHTTPTransport(defaultTimeoutMs: 10_000),
                              secrets: EnvironmentSecrets(environment: [:], values: canaries),
                              artifacts: artifacts, kv: MemoryKeyValueStore(), crypto: true,
                              process: HostProcessService(artifacts: artifacts, workRoot: tempDir.appendingPathComponent("process")))
    }

    /// The manifest's example_artifacts, so example_inputs can name them by sha256.
    func seedExampleArtifacts(_ artifacts: ArtifactDirectory) {
        let manifest = (try? Data(contentsOf: manifestURL)).flatMap { try? PluginManifest.parse($0, source: "") }
        for example in manifest?.exampleArtifacts ?? [] {
            if let data = Data(base64Encoded: example.dataBase64) { _ = try? artifacts.put(data, mediaType: example.mediaType) }
        }
    }

    static var temporaryFolder: URL { FileManager.default.temporaryDirectory.appendingPathComponent("yard-conformance-\(getpid())") }

    public func run(_ id: String) -> ConformanceCheck {
        let start = DispatchTime.now()
        let tempDir = Self.temporaryFolder
        defer { try? FileManager.default.removeItem(at: tempDir) }
        var result: ConformanceCheck
        do {
            let (ok, detail) = try body(id, tempDir: tempDir)
            result = ConformanceCheck(id: id, ok: ok, detail: detail)
        } catch {
            result = ConformanceCheck(id: id, ok: false, detail: "\(error)")
        }
        // Under the network guard (tests, --standin) a request to, or lookup of, a non-loopback host fails the check.
        let refused = NetworkGuard.violations
        if NetworkGuard.isActive, !refused.isEmpty {
            result = ConformanceCheck(id: id, ok: false, detail: "contacted hosts outside loopback: \(Set(refused).sorted().joined(separator: ", ")); \(result.detail)")
        }
        result.durationMs = ConformanceSuite.ms(since: start)
        return result
    }

    func load(_ services: HostServiceSet) throws -> LoadedPlugin {
        // Inside the check's own temporary folder, removed with it.
        try PluginLoader.load(manifestURL: manifestURL, services: services, isolation: isolation,
                              runner: RunnerConfiguration(scratchRoot: Self.temporaryFolder.appendingPathComponent("runners")))
    }

    func request(_ object: [String: Any]) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    }

    func job(_ n: Int) -> [String: Any] {
        ["id": "conformance-\(getpid())-\(n)", "idempotency_key": "idem-\(getpid())-\(n)-\(UUID().uuidString.prefix(6))", "attempt": 1]
    }

    func example(_ capability: PluginManifest.Capability) -> Any {
        capability.exampleInputs.map { jsonObject($0) } ?? [String: Any]()
    }

    /// Runs submit and polls to a terminal state; returns the final document and every document seen.
    func lifecycle(_ plugin: LoadedPlugin, capability: PluginManifest.Capability, n: Int, maxPolls: Int = 400) throws -> ([String: Any], [Data]) {
        let jobInfo = job(n)
        let jobID = jobInfo["id"] as? String
        var documents: [Data] = []
        let submitted = plugin.call(.submit, request: request(["capability": capability.id, "inputs": example(capability), "config": config, "job": jobInfo]), jobID: jobID)
        documents.append(submitted.document)
        guard submitted.isOK, let doc = submitted.json else {
            throw CheckFailure("submit of \(capability.id) returned status \(submitted.status): \(String(decoding: submitted.document, as: UTF8.self).prefix(300))")
        }
        if let result = doc["result"] as? [String: Any] { return (result, documents) }
        guard let ref = doc["ref"] else { throw CheckFailure("submit wrote neither \"ref\" nor \"result\"") }
        for _ in 0..<maxPolls {
            let polled = plugin.call(.poll, request: request(["ref": ref, "config": config, "job": jobInfo]), jobID: jobID)
            documents.append(polled.document)
            guard polled.isOK, let state = polled.json else {
                throw CheckFailure("poll returned status \(polled.status): \(String(decoding: polled.document, as: UTF8.self).prefix(300))")
            }
            switch state["state"] as? String {
            case "succeeded", "failed", "cancelled": return (state, documents)
            case "queued", "running":
                let wait = min(max((state["next_poll_after_ms"] as? Int) ?? 10, 1), 200)
                usleep(useconds_t(wait * 1000))
            default:
                throw CheckFailure("poll answered an unknown state \(String(describing: state["state"]))")
            }
        }
        throw CheckFailure("the job did not finish within \(maxPolls) polls")
    }

    struct CheckFailure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    func body(_ id: String, tempDir: URL) throws -> (Bool, String) {
        switch id {
        case "load.rtld_now":
            let (manifest, library) = try PluginLoader.inspect(manifestURL: manifestURL)
            let start = DispatchTime.now()
            guard dlopen(library.path, RTLD_NOW | RTLD_LOCAL) != nil else {
                return (false, "dlopen failed: \(dlerror().map { String(cString: $0) } ?? "?")")
            }
            return (true, "\(manifest.library) loads with RTLD_NOW in \(String(format: "%.2f", ConformanceSuite.ms(since: start))) ms")

        case "symbols.entry":
            let (_, library) = try PluginLoader.inspect(manifestURL: manifestURL)
            guard let handle = dlopen(library.path, RTLD_NOW | RTLD_LOCAL) else { return (false, "dlopen failed") }
            guard dlsym(handle, SY_PLUGIN_ENTRY_SYMBOL) != nil else { return (false, "\(SY_PLUGIN_ENTRY_SYMBOL) is not exported") }
            let others = (2...9).filter { dlsym(handle, "sy_plugin_entry_v\($0)") != nil }
            if !others.isEmpty { return (false, "also exports entries for ABI majors \(others)") }
            return (true, "exports \(SY_PLUGIN_ENTRY_SYMBOL)")

        case "entry.descriptor":
            let plugin = try load(services(tempDir: tempDir))
            let sandbox = plugin.sandbox.map { report in
                "; isolated: " + report.layers.map { "\($0.layer) \($0.state)" }.joined(separator: ", ")
            } ?? ""
            return (true, "descriptor \(plugin.descriptor["id"] ?? "?") \(plugin.descriptor["version"] ?? "?") matches plugin.json\(sandbox)")

        case "extension.unknown_is_null":
            let plugin = try load(services(tempDir: tempDir))
            let unknown = "sy.conformance-unknown-\(getpid())/1"
            return !plugin.hasExtension(unknown) ? (true, "get_extension(\"\(unknown)\") is NULL") : (false, "get_extension returned non-NULL for an unknown id")

        case "capability.unknown_rejected":
            let plugin = try load(services(tempDir: tempDir))
            let body = request(["capability": "conformance.not_a_capability", "inputs": [String: Any](), "config": config, "job": job(0)])
            let validated = plugin.call(.validate, request: body)
            let diagnostics = (validated.json?["diagnostics"] as? [[String: Any]]) ?? []
            let refusedInValidate = (validated.isOK && !diagnostics.isEmpty) || validated.status == SY_E_UNSUPPORTED
            let submitted = plugin.call(.submit, request: body)
            let refusedInSubmit = !submitted.isOK
            if refusedInValidate && refusedInSubmit { return (true, "validate and submit both refuse it") }
            return (false, "validate \(refusedInValidate ? "refused" : "accepted") it; submit \(refusedInSubmit ? "refused" : "accepted") it")

        case "validate.malformed_request":
            let plugin = try load(services(tempDir: tempDir))
            var problems: [String] = []
            for (label, bytes) in [("not JSON", Data("{not json".utf8)), ("a JSON array", Data("[1,2]".utf8)), ("empty", Data())] {
                for op in [PluginOperation.validate, .submit, .poll, .cancel] {
                    let result = plugin.call(op, request: bytes)
                    if result.status != SY_E_INVALID_ARGUMENT { problems.append("\(op.rawValue) of \(label) returned \(result.status)") }
                }
            }
            return problems.isEmpty ? (true, "every operation returns SY_E_INVALID_ARGUMENT") : (false, problems.joined(separator: "; "))

        case "validate.schema_violations":
            // The host checks inputs against the capability's limits before the
            // plugin's validate (ARCHITECTURE: validation order), so a plugin need
            // not repeat the schema; it must answer garbage with a well-formed
            // diagnostics document, never a crash.
            let plugin = try load(services(tempDir: tempDir))
            var problems: [String] = []
            var tried = 0, flaggedByPlugin = 0
            for capability in plugin.manifest.capabilities {
                let hostSchema = try capability.limits.map { try JSONSchema($0) }
                for inputs in violations(of: capability) {
                    tried += 1
                    let result = plugin.call(.validate, request: request(["capability": capability.id, "inputs": inputs, "config": config]))
                    guard result.isOK, let diagnostics = result.json?["diagnostics"] as? [[String: Any]] else {
                        problems.append("\(capability.id): validate returned \(result.status) without a diagnostics list")
                        continue
                    }
                    if !diagnostics.isEmpty { flaggedByPlugin += 1 }
                    let hostFlags = hostSchema.map { !$0.validate(jsonValue(inputs)).isEmpty } ?? false
                    if diagnostics.isEmpty && !hostFlags {
                        problems.append("\(capability.id): neither the limits schema nor the plugin refuses \(String(decoding: request(["inputs": inputs]), as: UTF8.self))")
                    }
                }
            }
            return problems.isEmpty
                ? (true, "\(tried) violating inputs answered with diagnostics (\(flaggedByPlugin) flagged by the plugin, all by the limits schema)")
                : (false, problems.joined(separator: "; "))

        case "validate.example_inputs":
            let plugin = try load(services(tempDir: tempDir))
            let manifest = plugin.manifest
            var problems: [String] = []
            for capability in manifest.capabilities {
                let result = plugin.call(.validate, request: request(["capability": capability.id, "inputs": example(capability), "config": config]))
                let errors = ((result.json?["diagnostics"] as? [[String: Any]]) ?? []).filter { ($0["severity"] as? String) != "warning" }
                if !result.isOK || !errors.isEmpty { problems.append("\(capability.id): \(String(decoding: result.document, as: UTF8.self).prefix(300))") }
            }
            return problems.isEmpty ? (true, "example inputs of \(manifest.capabilities.count) capabilities validate") : (false, problems.joined(separator: "; "))

        case "lifecycle.submit_poll":
            let plugin = try load(services(tempDir: tempDir))
            var states: [String] = []
            for (i, capability) in plugin.manifest.capabilities.enumerated() {
                let (final, _) = try lifecycle(plugin, capability: capability, n: i)
                let state = final["state"] as? String ?? "?"
                if state != "succeeded" { return (false, "\(capability.id) ended \(state): \(final["error"] ?? "")") }
                states.append("\(capability.id) → \(state)")
            }
            return (true, states.joined(separator: ", "))

        case "outputs.contract":
            // What the job engine enforces after harvest: a plugin the kit passes is one the engine accepts.
            let artifacts = ArtifactDirectory(root: tempDir)
            let plugin = try load(services(tempDir: tempDir))
            guard let catalogDirectory = YardPaths.registryDirectory()?.appendingPathComponent("capabilities"),
                  let catalog = try? CapabilityCatalog.load(directory: catalogDirectory), !catalog.entries.isEmpty else {
                return (false, "the capability catalog (Registry/capabilities) was not found: set YARD_REGISTRY to the Registry folder")
            }
            let contract = OutputContract(catalog: catalog, artifacts: artifacts)
            var problems: [String] = [], checked: [String] = [], uncatalogued: [String] = []
            var planned: [String] = []
            for (i, capability) in plugin.manifest.capabilities.enumerated() {
                guard catalog.entries[capability.id] != nil else { uncatalogued.append(capability.id); continue }
                // model.download answers a plan of files that the host downloads and verifies into its model catalog
                // (docs/adr/0007); the outputs the contract applies to exist only after that.
                if capability.id == "model.download" { planned.append(capability.id); continue }
                let (final, _) = try lifecycle(plugin, capability: capability, n: 300 + i)
                guard final["state"] as? String == "succeeded" else {
                    problems.append("\(capability.id) ended \(final["state"] as? String ?? "?"), so its outputs could not be checked")
                    continue
                }
                let outputs = harvest(jsonValue(final["outputs"] ?? [String: Any]()), plugin: plugin, artifacts: artifacts)
                let violations = contract.violations(outputs, capability: capability.id, declared: capability)
                if violations.isEmpty { checked.append(capability.id) }
                for v in violations.prefix(5) { problems.append("\(capability.id): $.outputs\(v.field.dropFirst()) \(v.message)") }
            }
            var note = uncatalogued.isEmpty ? "" : "; not in the catalog, unchecked: \(uncatalogued.joined(separator: ", "))"
            if !planned.isEmpty { note += "; \(planned.joined(separator: ", ")) answers a download plan the host carries out" }
            return problems.isEmpty ? (true, "outputs of \(checked.joined(separator: ", ").nonEmpty ?? "no capability") fit the catalog\(note)")
                                    : (false, problems.joined(separator: "; "))

        case "cancel.idempotent":
            let plugin = try load(services(tempDir: tempDir))
            guard let capability = plugin.manifest.capabilities.first else { return (false, "no capability") }
            let jobInfo = job(1)
            let submitted = plugin.call(.submit, request: request(["capability": capability.id, "inputs": example(capability), "config": config, "job": jobInfo]))
            guard submitted.isOK, let doc = submitted.json else { return (false, "submit failed with status \(submitted.status)") }
            let ref: Any = doc["ref"] ?? ["result": doc["result"] ?? NSNull()]
            let outcomes = ["cancelled_in_queue", "cancelled_running", "already_finished", "not_found"]
            var seen: [String] = []
            for _ in 0..<2 {
                let cancelled = plugin.call(.cancel, request: request(["ref": ref, "config": config, "job": jobInfo]))
                guard cancelled.isOK, let outcome = cancelled.json?["outcome"] as? String, outcomes.contains(outcome),
                      ["no", "yes", "unknown"].contains(cancelled.json?["charged"] as? String ?? "") else {
                    return (false, "cancel returned \(cancelled.status): \(String(decoding: cancelled.document, as: UTF8.self).prefix(200))")
                }
                seen.append(outcome)
            }
            _ = try lifecycle(plugin, capability: capability, n: 2)
            let late = plugin.call(.cancel, request: request(["ref": ref, "config": config, "job": jobInfo]))
            guard late.isOK else { return (false, "a third cancel failed with \(late.status)") }
            return (true, "cancel answered \(seen.joined(separator: " then ")), and again after a job finished")

        case "documents.schema":
            // The documents the plugin writes, against the ABI's schemas. sy.webhook/1 needs a delivery signed
            // the provider's way, so its answers are checked by the adapter's own webhook tests, not here.
            let plugin = try load(services(tempDir: tempDir))
            var problems: [String] = [], checked = 0
            func check(_ result: PluginCallResult?, _ answer: String, _ label: String) {
                guard let result else { return }
                checked += 1
                for v in ABIDocumentSchemas.violations(of: result, answer: answer).prefix(3) { problems.append("\(label): \(v)") }
            }
            for (i, capability) in plugin.manifest.capabilities.enumerated() {
                let body: [String: Any] = ["capability": capability.id, "inputs": example(capability), "config": config]
                check(plugin.call(.validate, request: request(body)), "validate_answer", "validate \(capability.id)")
                if plugin.hasExtension(SY_EXTENSION_ESTIMATE) {
                    check(plugin.callExtension(SY_EXTENSION_ESTIMATE, request: request(body)), "estimate_answer", "estimate \(capability.id)")
                }
                let jobInfo = job(500 + i)
                let submitted = plugin.call(.submit, request: request(body.merging(["job": jobInfo]) { a, _ in a }), jobID: jobInfo["id"] as? String)
                check(submitted, "submit_answer", "submit \(capability.id)")
                if let ref = submitted.json?["ref"] {
                    for _ in 0..<400 {
                        let polled = plugin.call(.poll, request: request(["ref": ref, "config": config, "job": jobInfo]), jobID: jobInfo["id"] as? String)
                        check(polled, "poll_answer", "poll \(capability.id)")
                        guard polled.isOK, let state = polled.json?["state"] as? String, state == "queued" || state == "running" else { break }
                        usleep(useconds_t(min(max((polled.json?["next_poll_after_ms"] as? Int) ?? 10, 1), 200) * 1000))
                    }
                }
                let ref: Any = submitted.json?["ref"] ?? ["result": submitted.json?["result"] ?? NSNull()]
                check(plugin.call(.cancel, request: request(["ref": ref, "config": config, "job": jobInfo])), "cancel_answer", "cancel \(capability.id)")
                if plugin.hasExtension(SY_EXTENSION_RECONCILE) {
                    check(plugin.callExtension(SY_EXTENSION_RECONCILE, request: request(body.merging(["job": job(600 + i)]) { a, _ in a })),
                          "reconcile_answer", "reconcile \(capability.id)")
                }
            }
            check(plugin.call(.health, request: request(["config": config])), "health_answer", "health")
            if plugin.hasExtension(SY_EXTENSION_BALANCE) {
                check(plugin.callExtension(SY_EXTENSION_BALANCE, request: request(["config": config])), "balance_answer", "balance")
            }
            return problems.isEmpty ? (true, "\(checked) answers fit abi-v1.schema.json") : (false, problems.joined(separator: "; "))

        case "network.allow_list":
            let plugin = try load(services(tempDir: tempDir))
            for (i, capability) in plugin.manifest.capabilities.enumerated() { _ = try? lifecycle(plugin, capability: capability, n: i) }
            _ = plugin.call(.health, request: request(["config": config]))
            let denied = plugin.context.deniedRequests
            return denied.isEmpty
                ? (true, "requests went only to allowed hosts (\(Set(plugin.context.requestedHosts).sorted().joined(separator: ", ").nonEmpty ?? "none made"))")
                : (false, "tried to reach hosts outside network.hosts: \(denied.joined(separator: ", "))")

        case "secrets.not_logged":
            let plugin = try load(services(tempDir: tempDir))
            var documents: [Data] = []
            for (i, capability) in plugin.manifest.capabilities.enumerated() {
                if let (_, docs) = try? lifecycle(plugin, capability: capability, n: i) { documents += docs }
            }
            documents.append(plugin.call(.health, request: request(["config": config])).document)
            let leakedInLogs = Set(plugin.context.secretLeaks)
            let text = documents.map { String(decoding: $0, as: UTF8.self) }.joined() + log.all.joined()
            let leakedInDocs = canaries.filter { text.contains($0.value) }.map(\.key)
            if canaries.isEmpty { return (true, "the plugin declares no secrets") }
            if !leakedInLogs.isEmpty || !leakedInDocs.isEmpty {
                return (false, "secret values leaked: logs \(leakedInLogs.sorted()), documents \(leakedInDocs.sorted())")
            }
            return (true, "canaries for \(canaries.keys.sorted().joined(separator: ", ")) never appeared in \(log.all.count) log lines or \(documents.count) documents")

        case "concurrency.jobs":
            let plugin = try load(services(tempDir: tempDir))
            guard let capability = plugin.manifest.capabilities.first else { return (false, "no capability") }
            let count = min(16, plugin.manifest.maxConcurrency ?? 16)
            let failures = FailureList()
            DispatchQueue.concurrentPerform(iterations: count) { i in
                do {
                    let (final, _) = try lifecycle(plugin, capability: capability, n: 100 + i)
                    if final["state"] as? String != "succeeded" { failures.add("job \(i) ended \(final["state"] ?? "?")") }
                } catch { failures.add("job \(i): \(error)") }
            }
            return failures.all.isEmpty ? (true, "\(count) concurrent jobs all succeeded") : (false, failures.all.joined(separator: "; "))

        case "services.absent":
            let plugin = try load(.none)
            guard let capability = plugin.manifest.capabilities.first else { return (false, "no capability") }
            let validated = plugin.call(.validate, request: request(["capability": capability.id, "inputs": example(capability), "config": config]))
            guard validated.isOK else { return (false, "validate failed without services: \(validated.status)") }
            let submitted = plugin.call(.submit, request: request(["capability": capability.id, "inputs": example(capability), "config": config, "job": job(7)]))
            let known: Set<Int32> = [SY_OK, SY_E_FAILED, SY_E_UNSUPPORTED, SY_E_DENIED, SY_E_NOT_FOUND, SY_E_INTERNAL]
            guard known.contains(submitted.status) else { return (false, "submit returned unknown status \(submitted.status)") }
            if !submitted.isOK, submitted.json?["error"] == nil {
                return (false, "submit failed (\(submitted.status)) without an error document")
            }
            if let ref = submitted.json?["ref"] {
                let polled = plugin.call(.poll, request: request(["ref": ref, "config": config]))
                guard known.contains(polled.status) else { return (false, "poll returned unknown status \(polled.status)") }
            }
            let health = plugin.call(.health, request: request(["config": config]))
            guard known.contains(health.status) else { return (false, "health returned unknown status \(health.status)") }
            return (true, "validate, submit, poll and health answer without host services (submit status \(submitted.status))")

        default:
            return (false, "unknown check \(id)")
        }
    }

    /// The outputs as the job engine stores them: every {"url"} file downloaded
    /// (inside the plugin's allow-list) or decoded (data: URLs) into `artifacts`.
    /// A file that cannot be fetched keeps its URL, which the contract refuses.
    func harvest(_ value: JSONValue, plugin: LoadedPlugin, artifacts: ArtifactDirectory, depth: Int = 0) -> JSONValue {
        guard depth < 32 else { return value }
        switch value {
        case .object(let members):
            if let url = members["url"]?.stringValue, members["artifact"] == nil {
                var bytes: Data?
                var type = members["media_type"]?.stringValue ?? members["content_type"]?.stringValue
                if url.hasPrefix("data:"), let comma = url.firstIndex(of: ",") {
                    bytes = Data(base64Encoded: String(url[url.index(after: comma)...]), options: .ignoreUnknownCharacters)
                    type = type ?? String(url.dropFirst(5).prefix { $0 != ";" && $0 != "," })
                } else if plugin.context.isAllowed(url), let answer = try? BlockingHTTPTransport(defaultTimeoutMs: 10_000).perform(HostHTTPRequest(method: "GET", url: url)),
                          (200..<300).contains(answer.status) {
                    bytes = answer.body
                    type = type ?? answer.headers["content-type"]
                }
                guard let bytes, let digest = try? artifacts.put(bytes, mediaType: type ?? "application/octet-stream") else { return value }
                var declared = (type.map(MediaSniffer.normalize)) ?? "application/octet-stream"
                if declared == "application/octet-stream", let sniffed = MediaSniffer.sniff(bytes.prefix(64)) { declared = sniffed }
                return ["artifact": .string("sha256:\(digest)"), "media_type": .string(declared), "size": .number(Double(bytes.count))]
            }
            return .object(members.mapValues { harvest($0, plugin: plugin, artifacts: artifacts, depth: depth + 1) })
        case .array(let items):
            return .array(items.map { harvest($0, plugin: plugin, artifacts: artifacts, depth: depth + 1) })
        default:
            return value
        }
    }

    /// Inputs that a capability's limits must refuse: an unknown member when
    /// additionalProperties is false, and a wrong type for each typed property.
    func violations(of capability: PluginManifest.Capability) -> [[String: Any]] {
        guard let limits = capability.limits.map(jsonObject) as? [String: Any] else { return [] }
        let base = (example(capability) as? [String: Any]) ?? [:]
        var result: [[String: Any]] = []
        if (limits["additionalProperties"] as? Bool) == false {
            var inputs = base
            inputs["__conformance_unknown__"] = 1
            result.append(inputs)
        }
        for (name, schema) in (limits["properties"] as? [String: Any]) ?? [:] {
            guard let type = (schema as? [String: Any])?["type"] as? String else { continue }
            var inputs = base
            inputs[name] = type == "string" ? [1, 2] as Any : "not-a-\(type)" as Any
            result.append(inputs)
        }
        for hostile in [["__deep__": Array(repeating: [[[[1]]]], count: 50)], ["__null__": NSNull()], ["__huge__": String(repeating: "x", count: 100_000)]] {
            result.append(base.merging(hostile) { _, new in new })
        }
        for name in (limits["required"] as? [String]) ?? [] {
            var inputs = base
            inputs.removeValue(forKey: name)
            result.append(inputs)
        }
        return result
    }

    final class FailureList: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [String] = []
        func add(_ s: String) { lock.withLock { items.append(s) } }
        var all: [String] { lock.withLock { items } }
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
