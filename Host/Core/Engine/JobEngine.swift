import CPluginAPI
import Crypto
import Foundation
import Logging
import SwitchyardJSON
#if canImport(Glibc)
import Glibc
#endif

/// What the engine reports while it works, for progress displays.
public struct JobUpdate: Sendable {
    public var job: JobRecord
    public var note: String?
}

/// The durable job engine. The job row (idempotency key, input hash) is
/// committed before the provider is called; the returned ref is committed the
/// moment it arrives; the engine owns the poll schedule; on restart it resumes
/// every unfinished job from its stored ref. A job whose submit may have
/// reached the provider without its ref being stored is reconciled through
/// the plugin's sy.reconcile/1, or parked in needs_attention — never
/// submitted a second time on a guess.
public final class JobEngine: @unchecked Sendable {
    public let store: any JobStore
    public let paths: YardPaths
    public let registry: PluginRegistry
    public let catalog: CapabilityCatalog
    public let secrets: any SecretSource
    public let artifacts: ArtifactDirectory
    public let clock: any HostClock
    let executor = PluginCallExecutor()
    /// A job step's writes, held for the transaction that records its outcome.
    let batch = JobWriteBatch()
    let logger = Logger(label: "switchyard.engine")
    let http: any HTTPTransport
    public let downloader: ArtifactDownloader
    /// sy.process/1 for local engines; scratch folders under YARD_HOME/tmp/process.
    public let processes: HostProcessService
    public var policy = Policy()
    /// The credits ledger: prices, reserves and settles every job (nil: jobs are not priced).
    public var ledger: JobLedger?
    /// Told how long each plugin call took (engine, operation, duration, ok),
    /// for `yard serve`'s /metrics; nil: nothing is measured.
    public var pluginCallObserver: (@Sendable (String, String, Duration, Bool) -> Void)?
    /// Which plugins run in a runner process, and how runners start.
    public var isolationPolicy: PluginIsolationPolicy
    public var runner: RunnerConfiguration
    /// Crashes and missed deadlines per job, for quarantine.
    let quarantine = JobQuarantine()

    private let lock = NSLock()
    private var plugins: [String: LoadedPlugin] = [:]
    private var failedLoads: [String: (YardError, Date)] = [:]
    static let failedLoadMemorySeconds: Double = 2
    private var gates: [String: ConcurrencyGate] = [:]
    private var schemas: [String: JSONSchema] = [:]

    /// Compiled once per engine and capability: compiling costs more than validating.
    func compiledSchema(_ key: String, _ document: JSONValue) throws -> JSONSchema {
        if let cached = lock.withLock({ schemas[key] }) { return cached }
        let schema = try JSONSchema(document)
        lock.withLock { schemas[key] = schema }
        return schema
    }

    public struct Policy: Sendable {
        /// How long a job may take before it is cancelled and failed with ENGINE_TIMEOUT.
        public var jobTimeoutSeconds: Double = 3600
        public var minPollMs = 10
        public var maxPollMs = 60_000
        public var maxConsecutiveErrors = 8
        public var healthTTLSeconds: Double = 60
        public var baseBackoffMs = 250
        public init() {}
    }

    public init(store: any JobStore, paths: YardPaths, registry: PluginRegistry, catalog: CapabilityCatalog,
                secrets: any SecretSource, clock: any HostClock = SystemClock(), http: any HTTPTransport = BlockingHTTPTransport()) {
        self.store = store
        self.paths = paths
        self.registry = registry
        self.catalog = catalog
        self.secrets = secrets
        self.artifacts = ArtifactDirectory(root: paths.home.appendingPathComponent("artifacts"))
        self.downloader = ArtifactDownloader(directory: artifacts)
        self.processes = HostProcessService(artifacts: RecordingArtifactSink(directory: artifacts, store: store),
                                            workRoot: paths.home.appendingPathComponent("tmp/process"))
        self.clock = clock
        self.http = http
        self.isolationPolicy = PluginIsolationPolicy(paths: paths, registry: registry)
        self.runner = RunnerConfiguration(scratchRoot: paths.home.appendingPathComponent("tmp/runners"))
    }

    /// The engine as `yard` uses it: SQLite under $YARD_HOME, the vault, the catalog.
    public static func standard(paths: YardPaths, registry: PluginRegistry) throws -> JobEngine {
        let store = try SQLiteJobStore(path: paths.jobStoreFile)
        // A home made before files were private: no one else may look inside.
        PrivateFiles.tighten(paths.home)
        let catalog = try CapabilityCatalog.load(directory: YardPaths.registryDirectory()?.appendingPathComponent("capabilities"))
        let engine = JobEngine(store: store, paths: paths, registry: registry, catalog: catalog, secrets: SecretVault(paths: paths))
        engine.ledger = try JobLedger.standard(store: store, paths: paths)
        // Against stand-ins (scripts/soak.sh) the adapters' multi-second poll intervals only make runs slow.
        if let cap = ProcessInfo.processInfo.environment["YARD_MAX_POLL_MS"].flatMap(Int.init), cap > 0 {
            engine.policy.maxPollMs = cap
            engine.policy.minPollMs = min(engine.policy.minPollMs, cap)
        }
        return engine
    }

    var now: Date { Date(timeIntervalSince1970: Double(clock.nowUnixMs()) / 1000) }

    /// Waits on the engine's clock: a SleepingClock (SystemClock, a test's
    /// ManualClock) decides what waiting means; any other clock is waited on in real time.
    func sleep(ms: Int) async throws {
        if let clock = clock as? any SleepingClock { return try await clock.sleep(ms: ms) }
        try await Task.sleep(nanoseconds: UInt64(max(0, ms)) * 1_000_000)
    }

    // MARK: plugins

    func services() -> HostServiceSet {
        HostServiceSet(log: StoreLogSink(store: store, batch: batch), clock: clock, http: http, secrets: secrets,
                       artifacts: RecordingArtifactSink(directory: artifacts, store: store, batch: batch),
                       kv: StoreKeyValueStore(store: store, clock: clock), crypto: true, process: processes)
    }

    public func plugin(_ id: String) throws -> LoadedPlugin {
        if let loaded = lock.withLock({ plugins[id] }) { return loaded }
        // A plugin whose runner just crashed or hung while loading is not
        // started again by every job that asks for it at once.
        if let (error, at) = lock.withLock({ failedLoads[id] }), Date().timeIntervalSince(at) < Self.failedLoadMemorySeconds { throw error }
        let manifest = try registry.resolve(id)
        let loaded: LoadedPlugin
        do {
            loaded = try PluginLoader.load(manifestURL: manifest, services: services(),
                                           lockExpectation: registry.lockExpectation(for: manifest),
                                           isolation: isolationPolicy.isolation(for: manifest, id: id), runner: runner)
        } catch let error as YardError where ["PLUGIN_CRASHED", "PLUGIN_TIMEOUT"].contains(error.code.rawValue) {
            lock.withLock { failedLoads[id] = (error, Date()) }
            throw error
        }
        lock.withLock {
            plugins[id] = loaded
            gates[id] = gates[id] ?? ConcurrencyGate(limit: loaded.manifest.maxConcurrency ?? 16)
        }
        return loaded
    }

    func gate(_ id: String) -> ConcurrencyGate {
        lock.withLock {
            if let gate = gates[id] { return gate }
            let gate = ConcurrencyGate(limit: 16)
            gates[id] = gate
            return gate
        }
    }

    /// One plugin call, within the adapter's concurrency limit and its
    /// deadline (PluginDeadlines). A crash, a missed deadline or an unusable
    /// document comes back as a failed result with the host's own error
    /// document (PLUGIN_CRASHED, PLUGIN_TIMEOUT, PLUGIN_OUTPUT_INVALID).
    func call(_ plugin: LoadedPlugin, _ operation: PluginOperation, _ document: [String: Any], jobID: String?) async -> PluginCallResult {
        await call(plugin, operation, jsonValue(document), jobID: jobID)
    }

    func call(_ plugin: LoadedPlugin, _ operation: PluginOperation, _ document: JSONValue, jobID: String?) async -> PluginCallResult {
        let gate = gate(plugin.manifest.id)
        await gate.acquire()
        let body = document.serialized()
        let started = ContinuousClock.now
        let result = await plugin.perform(.operation(operation), request: body, jobID: jobID, executor: executor)
        pluginCallObserver?(plugin.manifest.id, operation.rawValue, ContinuousClock.now - started, result.isOK)
        await gate.release()
        if let failure = result.failure {
            noteFailure(failure, of: .operation(operation), plugin: plugin, jobID: jobID, attributed: result.attributed)
        } else if let jobID, operation == .poll || operation == .submit {
            quarantine.clear(jobID)
        }
        return result
    }

    /// An optional extension (estimate, reconcile, webhook, …): the same
    /// worker pool and the same concurrency limit as the job model's calls, so
    /// a burst of webhooks cannot run more calls at once than max_concurrency.
    func callExtension(_ plugin: LoadedPlugin, _ id: String, _ document: [String: Any], jobID: String?) async -> PluginCallResult? {
        await callExtension(plugin, id, jsonValue(document), jobID: jobID)
    }

    func callExtension(_ plugin: LoadedPlugin, _ id: String, _ document: JSONValue, jobID: String?) async -> PluginCallResult? {
        guard plugin.hasExtension(id) else { return nil }
        let body = document.serialized()
        let gate = gate(plugin.manifest.id)
        await gate.acquire()
        let started = ContinuousClock.now
        let result = await plugin.perform(.extension(id), request: body, jobID: jobID, executor: executor)
        if !result.absent { pluginCallObserver?(plugin.manifest.id, id, ContinuousClock.now - started, result.isOK) }
        await gate.release()
        if result.absent { return nil }
        if let failure = result.failure { noteFailure(failure, of: .extension(id), plugin: plugin, jobID: jobID, attributed: result.attributed) }
        return result
    }

    // MARK: pre-flight

    public func preflight(_ spec: JobSpec) async -> PreflightVerdict {
        var verdict = PreflightVerdict(pluginID: spec.pluginID, capability: spec.capability)
        func refuse(_ step: String, _ code: String, _ message: String, _ fix: String, field: String? = nil) -> PreflightVerdict {
            verdict.findings.append(PreflightFinding(step: step, code: code, message: message, remediation: fix, field: field, severity: .error))
            return verdict
        }
        // Findings about stand-in values (yard plan, for outputs of earlier steps) are set aside, not verdicts.
        func sift(_ findings: [PreflightFinding]) -> [PreflightFinding] {
            guard !spec.deferredFields.isEmpty else { return findings }
            var real: [PreflightFinding] = []
            for finding in findings {
                if let field = finding.field, spec.deferredFields.contains(where: { field == $0 || field.hasPrefix($0 + ".") || field.hasPrefix($0 + "[") }) {
                    if !verdict.deferred.contains(finding) { verdict.deferred.append(finding) }
                } else {
                    real.append(finding)
                }
            }
            return real
        }
        // 1. The engine exists and declares the capability.
        let plugin: LoadedPlugin
        do { plugin = try self.plugin(spec.pluginID) } catch let error as YardError {
            return refuse("engine", error.code.rawValue, error.message, error.remediation, field: "engine")
        } catch { return refuse("engine", "PLUGIN_NOT_FOUND", "\(error)", "Run `yard plugin list`.") }
        let manifest = plugin.manifest
        verdict.pluginVersion = manifest.version
        guard let declared = manifest.capabilities.first(where: { $0.id == spec.capability }) else {
            return refuse("capability", "CONTRACT_MISMATCH", "\(manifest.id) does not offer \(spec.capability).",
                          "Use one of \(manifest.capabilityIDs.joined(separator: ", ")), or pick an engine that offers \(spec.capability).", field: "$.capability")
        }
        verdict.stepsPassed.append("capability")

        // 2. Inputs against the catalog's schema and the engine's narrower limits.
        let inputs = JSONValue.object(spec.inputs)
        let catalogEntry = catalog.entries[spec.capability]
        if let catalogEntry {
            let findings = sift(schemaFindings(catalogEntry.input.validate(inputs), step: "schema", source: "catalog \(spec.capability)", schema: catalogEntry.input.document))
            if !findings.isEmpty { verdict.findings += findings; return verdict }
        } else if !catalog.entries.isEmpty {
            verdict.findings.append(PreflightFinding(step: "schema", code: "CAPABILITY_UNCATALOGUED",
                message: "\(spec.capability) is not in the capability catalog; only the engine's own limits apply.",
                remediation: "Prefer catalog capabilities (Registry/capabilities) so pipelines can swap engines.", field: "$.capability", severity: .warning))
        }
        if let limits = declared.limits {
            do {
                let findings = sift(schemaFindings(try compiledSchema("limits:\(manifest.id):\(spec.capability)", limits).validate(inputs), step: "limits", source: "\(manifest.id) limits", schema: limits))
                if !findings.isEmpty { verdict.findings += findings; return verdict }
            } catch {
                return refuse("limits", "MANIFEST_INVALID", "\(manifest.id)'s limits for \(spec.capability) are not a valid schema: \(error)", "Report this to the plugin's author.")
            }
        }
        var model: PluginManifest.Capability.Model?
        switch Self.chooseModel(declared, spec) {
        case .failure(let finding): verdict.findings.append(finding); return verdict
        case .success(let candidates):
            // The first candidate whose limits accept the inputs; if none does, the first one's refusal.
            var firstRefusal: [PreflightFinding]?
            for candidate in candidates {
                guard let limits = candidate.limits else { model = candidate; break }
                do {
                    let findings = sift(schemaFindings(try compiledSchema("model:\(manifest.id):\(spec.capability):\(candidate.id)", limits).validate(inputs),
                                                       step: "limits", source: "\(manifest.id) model \(candidate.id)"))
                    if findings.isEmpty { model = candidate; break }
                    firstRefusal = firstRefusal ?? findings
                } catch {
                    return refuse("limits", "MANIFEST_INVALID", "\(manifest.id)'s limits for model \(candidate.id) are not a valid schema: \(error)", "Report this to the plugin's author.")
                }
            }
            if model == nil, let firstRefusal { verdict.findings += firstRefusal; return verdict }
        }
        verdict.model = model?.id
        if let schema = manifest.configSchema {
            let violations = ((try? compiledSchema("config:\(manifest.id)", schema))?.validate(.object(spec.config))) ?? []
            if let first = violations.first {
                return refuse("config", "CONFIG_INVALID", "Engine configuration: \(first.message)",
                              "Fix the engine's config (--config, or $YARD_HOME/config/\(manifest.id).json).", field: "$.config" + first.path.dropFirst())
            }
        }
        // From here on the plugin sees the chosen model where it reads it.
        let spec = Self.withModel(model?.id, spec)
        if let catalogEntry {
            let findings = sift(fileFindings(spec.inputs, schema: catalogEntry.input.document))
            if !findings.isEmpty { verdict.findings += findings; return verdict }
        }
        verdict.stepsPassed.append("schema")

        // 3. Consent for identity inputs (a real person's face or voice).
        let identity = (catalogEntry?.identityInputs ?? []) + Self.identityInputs(in: declared.limits)
        if let used = identity.first(where: { spec.inputs[$0] != nil && spec.inputs[$0] != .null }), spec.inputs["consent_given"]?.boolValue != true {
            return refuse("consent", "CONSENT_MISSING", "\(used) is an identity input (a real person's likeness), and consent_given is not true.",
                          "Confirm you have the person's consent and pass --input consent_given=true.", field: "$.inputs.consent_given")
        }
        verdict.stepsPassed.append("consent")

        // 4. Required secrets present; configured endpoints inside the allow-list.
        for secret in manifest.secrets where secret.required && secrets.value(of: secret.name) == nil {
            return refuse("secrets", "AUTH_MISSING", "\(manifest.id) needs the secret \(secret.name), which is not set.",
                          "Run `yard secrets set \(secret.name)` (or export \(secret.name)=…).", field: secret.name)
        }
        for (key, value) in spec.config where key.hasSuffix("url") {
            if let url = value.stringValue, !plugin.context.isAllowed(url) {
                return refuse("hosts", "NETWORK_DENIED", "config \(key) points at \(URLComponents(string: url)?.host ?? url), outside \(manifest.id)'s network allow-list.",
                              "Use a host from plugin.json network.hosts (\(manifest.network.hosts.joined(separator: ", "))).", field: "$.config.\(key)")
            }
        }
        verdict.stepsPassed.append("secrets")

        // 5. The plugin's own judgement (no network).
        let request: JSONValue = ["capability": .string(spec.capability), "inputs": inputs, "config": .object(spec.config)]
        let validated = await call(plugin, .validate, request, jobID: nil)
        if validated.failure != nil, let error = validated.answer?["error"], error.objectValue != nil {
            return refuse("validate", error["code"]?.stringValue ?? "PLUGIN_CRASHED", error["message"]?.stringValue ?? "", error["remediation"]?.stringValue ?? "")
        }
        guard validated.isOK, let listed = validated.answer?["diagnostics"]?.arrayValue, case let diagnostics = listed.compactMap(\.objectValue),
              diagnostics.count == listed.count else {
            return refuse("validate", "PLUGIN_INTERNAL", "\(manifest.id)'s validate failed (status \(validated.status)).", "Run `yard plugin test \(manifest.id)` and report the result to its author.")
        }
        verdict.findings += sift(diagnostics.map { d in
            PreflightFinding(step: "validate", code: d["code"]?.stringValue ?? "CONTRACT_MISMATCH",
                             message: plugin.context.redact(d["message"]?.stringValue ?? ""), remediation: d["remediation"]?.stringValue ?? "",
                             field: d["field"]?.stringValue, severity: d["severity"]?.stringValue == "warning" ? .warning : .error)
        })
        if !verdict.ok { return verdict }
        verdict.stepsPassed.append("validate")

        // 6. Engine health, cached with its age.
        let health = await health(of: plugin, config: spec.config, maxAge: policy.healthTTLSeconds)
        if health.status == "offline" {
            let refusal = Self.healthRefusal(health, manifest: manifest, age: Int(now.timeIntervalSince(health.checkedAt)))
            return refuse("health", refusal.code, refusal.message, refusal.remediation)
        }
        verdict.stepsPassed.append("health")

        // 7. Cost estimate: the ledger's hook (the credits work reserves it).
        let estimate = plugin.hasExtension(SY_EXTENSION_ESTIMATE)
            ? await callExtension(plugin, SY_EXTENSION_ESTIMATE, request, jobID: nil)
            : nil
        if let estimate, estimate.failure != nil, let error = estimate.answer?["error"], error.objectValue != nil {
            return refuse("estimate", error["code"]?.stringValue ?? "PLUGIN_CRASHED", error["message"]?.stringValue ?? "", error["remediation"]?.stringValue ?? "")
        }
        if let estimate, estimate.isOK, let doc = estimate.answer, let amount = doc["amount_minor"]?.intValue {
            verdict.estimate = CostEstimateInfo(amountMinor: amount, currency: doc["currency"]?.stringValue ?? "USD", basis: doc["basis"]?.stringValue ?? "")
        }
        // The price rule (price files, then the manifest) follows the inputs that change the price.
        let prices = ledger?.prices ?? PriceBook(directories: [])
        do {
            if let ledger {
                if let quote = try ledger.quote(manifest: manifest, capability: spec.capability, inputs: spec.inputs, config: spec.config, pluginEstimate: verdict.estimate) {
                    verdict.estimate = CostEstimateInfo(amountMinor: quote.amountMinor, currency: quote.currency, basis: quote.basis)
                    if let finding = ledger.fundsFinding(engine: manifest.id, scope: spec.billing, quote: quote) { verdict.findings.append(finding); return verdict }
                }
            } else if let rule = try prices.rule(for: manifest, capability: spec.capability, model: model?.id) {
                let (cost, basis) = rule.estimate(inputs: spec.inputs, config: spec.config, capability: spec.capability)
                guard let amount = PriceQuote.minorChecked(cost, margin: 0) else { throw JobLedger.unpriceable(manifest.id, spec.capability, basis) }
                verdict.estimate = CostEstimateInfo(amountMinor: amount, currency: rule.currency, basis: basis + " (\(rule.source))")
            }
        } catch let error as YardError {
            return refuse("estimate", error.code.rawValue, error.message, error.remediation, field: error.field)
        } catch {
            return refuse("estimate", "PRICING_INVALID", "\(error)", "Fix the engine's price rule.")
        }
        verdict.stepsPassed.append("estimate")
        return verdict
    }

    /// The catalog's file rules (x-media-types, x-max-bytes) for inputs that
    /// are artifacts in this host's store, whose type and size it knows. URL
    /// inputs are the provider's to check: fetching them here would spend time
    /// and bandwidth before the job is even accepted.
    func fileFindings(_ inputs: [String: JSONValue], schema: JSONValue) -> [PreflightFinding] {
        var findings: [PreflightFinding] = []
        func check(_ value: JSONValue, rules: JSONValue, field: String) {
            guard let handle = value["artifact"]?.stringValue else { return }
            guard let digest = ArtifactDirectory.digest(ofHandle: handle) else {
                let refusal = ArtifactDirectory.invalidHandle(handle, field: field)
                findings.append(PreflightFinding(step: "schema", code: refusal.code.rawValue, message: "\(field): \(refusal.message)",
                                                 remediation: refusal.remediation, field: field, severity: .error))
                return
            }
            let file = artifacts.path(for: digest)
            guard let size = (try? FileManager.default.attributesOfItem(atPath: file.path))?[.size] as? Int else {
                findings.append(PreflightFinding(step: "schema", code: "CONTRACT_MISMATCH", message: "\(field) names artifact \(handle.prefix(19))…, which is not in this host's store.",
                                                 remediation: "Pass the file itself (--input name=@file), or an artifact this host produced.", field: field, severity: .error))
                return
            }
            if let limit = rules["x-max-bytes"]?.intValue, size > limit {
                findings.append(PreflightFinding(step: "schema", code: "CONTRACT_MISMATCH", message: "\(field) is \(size) bytes; at most \(limit) are accepted.",
                                                 remediation: "Compress or shorten the file.", field: field, severity: .error))
            }
            if let allowed = rules["x-media-types"]?.arrayValue?.compactMap(\.stringValue), let type = value["media_type"]?.stringValue, !allowed.contains(type) {
                findings.append(PreflightFinding(step: "schema", code: "CONTRACT_MISMATCH", message: "\(field) is \(type); accepted: \(allowed.joined(separator: ", ")).",
                                                 remediation: "Convert the file to one of the accepted types.", field: field, severity: .error))
            }
        }
        for (name, rules) in schema["properties"]?.objectValue ?? [:] {
            guard let value = inputs[name] else { continue }
            if rules["x-media-types"] != nil || rules["x-max-bytes"] != nil {
                check(value, rules: rules, field: "$.inputs.\(name)")
            } else if let items = rules["items"], items["x-media-types"] != nil || items["x-max-bytes"] != nil {
                for (i, item) in (value.arrayValue ?? []).enumerated() { check(item, rules: items, field: "$.inputs.\(name)[\(i)]") }
            }
        }
        return findings
    }

    static func identityInputs(in limits: JSONValue?) -> [String] {
        limits?["properties"]?.objectValue?.filter { $0.value["x-identity"]?.boolValue == true }.map(\.key) ?? []
    }

    /// What a health check of `plugin` with `config` is cached under: the
    /// plugin and version, a digest of the effective configuration and a
    /// one-way fingerprint of the secrets the plugin declares. Change any of
    /// them (another --config, a new key) and the old answer no longer applies.
    public func healthCacheKey(_ plugin: LoadedPlugin, config: [String: JSONValue]) -> (key: String, configDigest: String, secretFingerprint: String) {
        let configDigest = SHA256.hash(data: JSONValue.object(config).serialized()).map { String(format: "%02x", $0) }.joined()
        var material = Data()
        for secret in plugin.manifest.secrets.sorted(by: { $0.name < $1.name }) {
            guard let value = secrets.value(of: secret.name) else { continue }
            // A digest of each value, never the value: the row may be read by anyone who can read the store.
            let digest = SHA256.hash(data: Data(value.utf8)).map { String(format: "%02x", $0) }.joined()
            material.append(Data("\(secret.name)=\(digest)\n".utf8))
        }
        let fingerprint = String(SHA256.hash(data: material).map { String(format: "%02x", $0) }.joined().prefix(24))
        let digest = String(configDigest.prefix(32))
        return (EngineHealthRecord.key(pluginID: plugin.manifest.id, version: plugin.manifest.version, configDigest: digest, secretFingerprint: fingerprint),
                digest, fingerprint)
    }

    /// The engine's health with this effective configuration and these
    /// secrets, from the cache when a check of exactly that is younger than
    /// `maxAge` seconds. With `balance`, the plugin's sy.balance/1 answer is
    /// fetched in the same check (and a cached check without one is redone).
    public func health(of plugin: LoadedPlugin, config: [String: JSONValue], maxAge: Double, balance: Bool = false) async -> EngineHealthRecord {
        let (key, configDigest, fingerprint) = healthCacheKey(plugin, config: config)
        let wantsBalance = balance && plugin.hasExtension(SY_EXTENSION_BALANCE)
        if let cached = try? store.health(cacheKey: key), now.timeIntervalSince(cached.checkedAt) < maxAge, !wantsBalance || cached.balanceJSON != nil {
            return cached
        }
        let result = await call(plugin, .health, ["config": .object(config)] as JSONValue, jobID: nil)
        var balanceText: String?
        if wantsBalance {
            let answer = await callExtension(plugin, SY_EXTENSION_BALANCE, ["config": .object(config)] as JSONValue, jobID: nil)
            let doc: JSONValue = answer?.answer ?? ["error": ["code": "PLUGIN_INTERNAL", "message": "balance returned no document"]]
            balanceText = text(doc).map(plugin.context.redact)
        }
        let answer = result.answer
        let details = answer?["details"]
        let error = answer?["error"]
        let record = EngineHealthRecord(pluginID: plugin.manifest.id,
                                        status: result.isOK ? (answer?["status"]?.stringValue ?? "offline") : "offline",
                                        message: answer?["message"]?.stringValue.map(plugin.context.redact)
                                            ?? error?["message"]?.stringValue.map(plugin.context.redact),
                                        checkedAt: now,
                                        code: result.failure?.code ?? details?["code"]?.stringValue ?? error?["code"]?.stringValue,
                                        pluginVersion: plugin.manifest.version, configDigest: configDigest, secretFingerprint: fingerprint,
                                        balanceJSON: balanceText)
        try? store.saveHealth(record)
        return record
    }

    /// The pre-flight refusal for an engine that is not healthy, worded by why.
    public static func healthRefusal(_ health: EngineHealthRecord, manifest: PluginManifest, age: Int) -> (code: String, message: String, remediation: String) {
        let said = health.message.map { ": \($0)" } ?? ""
        let checked = "(checked \(age) s ago)"
        let secretNames = manifest.secrets.filter(\.required).map(\.name)
        let setSecrets = secretNames.map { "`yard secrets set \($0)`" }.joined(separator: " / ")
        switch health.code ?? "ENGINE_OFFLINE" {
        case "AUTH_FAILED":
            return ("AUTH_FAILED", "\(manifest.id) refused the credentials\(said) \(checked).",
                    "Check \(secretNames.isEmpty ? "the engine's credentials" : secretNames.joined(separator: ", ")) (\(setSecrets.isEmpty ? "`yard secrets list`" : setSecrets)), then `yard engines test \(manifest.id)`.")
        case "AUTH_MISSING":
            return ("AUTH_MISSING", "\(manifest.id) has no credentials to use\(said) \(checked).",
                    "Set them (\(setSecrets.isEmpty ? "`yard secrets set NAME`" : setSecrets)), then `yard engines test \(manifest.id)`.")
        case "DEPENDENCY_MISSING":
            return ("DEPENDENCY_MISSING", "\(manifest.id) is missing a program it needs\(said) \(checked).",
                    "Install the program with the command above, then `yard engines test \(manifest.id)`.")
        case "CONFIG_INVALID":
            return ("CONFIG_INVALID", "\(manifest.id)'s configuration does not work\(said) \(checked).",
                    "Fix --config or $YARD_HOME/config/\(manifest.id).json, then `yard engines test \(manifest.id)`.")
        case let code:
            return (code, "\(manifest.id) reports offline\(said) \(checked).",
                    "Check the engine's service or deployment (its URL in --config or $YARD_HOME/config/\(manifest.id).json); `yard engines test \(manifest.id)` checks it again with the same configuration.")
        }
    }

    // MARK: submit

    public struct Refusal: Error, Sendable {
        public var verdict: PreflightVerdict
    }

    /// Validates, records and submits a job. Returns the stored row (already
    /// polled to completion only for engines that finish during submit).
    public func start(_ spec: JobSpec) async throws -> JobRecord {
        let (job, claim) = try await startClaimed(spec)
        claim?.release(removingFile: true)
        return job
    }

    /// `start`, for a caller that goes on to drive the job itself: the claim
    /// on the job ($YARD_HOME/claims/ID.lock) stays held by the returned lock,
    /// so the store's driver leaves the job alone until the caller releases
    /// it (or ends). nil when the job existed already or the claim could not be taken.
    public func startClaimed(_ spec: JobSpec) async throws -> (job: JobRecord, claim: StoreLock?) {
        let verdict = await preflight(spec)
        guard verdict.ok else { throw Refusal(verdict: verdict) }
        let plugin = try self.plugin(spec.pluginID)
        let spec = Self.withModel(verdict.model, spec)
        let inputs = JSONValue.object(spec.inputs)
        let inputHash = SHA256.hash(data: JSONValue.object(["engine": .string(plugin.manifest.id), "capability": .string(spec.capability), "inputs": inputs]).serialized())
            .map { String(format: "%02x", $0) }.joined()
        let timeout = plugin.manifest.capabilities.first { $0.id == spec.capability }?.timeoutSeconds.map(Double.init) ?? policy.jobTimeoutSeconds
        let id = "job_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
        // Held until the ref is stored: a driver in another process waits for it
        // instead of reconciling a job that is being submitted right now.
        let claim = StoreLock.acquire(paths.claimFile(String(id)), note: "\(getpid())")
        let created = now
        let record = JobRecord(
            id: String(id), idempotencyKey: spec.idempotencyKey ?? "auto-\(id)", pluginID: plugin.manifest.id, pluginVersion: plugin.manifest.version,
            capability: spec.capability, inputsJSON: String(decoding: inputs.serialized(), as: UTF8.self), inputHash: inputHash,
            configJSON: String(decoding: JSONValue.object(spec.config).serialized(), as: UTF8.self), phase: .submitting, refJSON: nil,
            attempt: 1, progress: 0, message: nil, outputsJSON: nil, errorJSON: nil, createdAt: created, updatedAt: created,
            submittedAt: nil, finishedAt: nil, nextPollAt: nil, pollCount: 0, consecutiveErrors: 0, cancelRequested: false,
            cancelOutcomeJSON: nil, deadlineAt: created.addingTimeInterval(min(timeout, policy.jobTimeoutSeconds)), estimateMinor: verdict.estimate?.amountMinor)
        let inserted: (JobRecord, created: Bool)
        do {
            inserted = try ledger?.insertReserving(record, spec: spec, manifest: plugin.manifest, estimate: verdict.estimate) ?? store.insertJob(record)
        } catch {
            claim?.release(removingFile: true)
            throw error
        }
        let (stored, isNew) = inserted
        if !isNew {
            claim?.release(removingFile: true)
            if stored.inputHash != inputHash {
                throw YardError("IDEMPOTENCY_CONFLICT", "Idempotency key \(stored.idempotencyKey) already names job \(stored.id), with other inputs.",
                                remediation: "Use a new key for a new job, or the same inputs to get the existing job back.", field: "idempotency_key")
            }
            return (stored, nil)
        }
        do {
            return (try await submit(stored, plugin: plugin), claim)
        } catch {
            claim?.release(removingFile: true)
            throw error
        }
    }

    /// The `job` member of a job's requests (docs/abi.md, Common members).
    func jobDocument(_ job: JobRecord) -> JSONValue {
        ["id": .string(job.id), "idempotency_key": .string(job.idempotencyKey), "attempt": .number(Double(job.attempt)), "capability": .string(job.capability)]
    }

    /// The request of poll and cancel for a stored job.
    func refRequest(_ job: JobRecord) -> JSONValue {
        ["ref": parse(job.refJSON), "config": parse(job.configJSON), "job": jobDocument(job)]
    }

    /// The request of submit and reconcile for a stored job.
    func jobRequest(_ job: JobRecord) -> JSONValue {
        ["capability": .string(job.capability), "inputs": parse(job.inputsJSON), "config": parse(job.configJSON), "job": jobDocument(job)]
    }

    /// A stored JSON column; null when absent or unreadable.
    func parse(_ json: String?) -> JSONValue {
        json.flatMap { try? JSONValue(parsing: $0) } ?? .null
    }

    /// A document as stored in a JSON column (sorted keys); nil for null or absent.
    func text(_ value: JSONValue?) -> String? {
        guard let value, !value.isNull else { return nil }
        return String(decoding: value.serialized(), as: UTF8.self)
    }

    func text(_ object: [String: Any]?) -> String? { object.flatMap { text(jsonValue($0)) } }

    func submit(_ job: JobRecord, plugin: LoadedPlugin) async throws -> JobRecord {
        let document = jobRequest(job)
        return try await batchingWrites(job.id) { try await submitSteps(job, document: document, plugin: plugin) }
    }

    private func submitSteps(_ job: JobRecord, document: JSONValue, plugin: LoadedPlugin) async throws -> JobRecord {
        var attempt = 0
        while true {
            let result = await call(plugin, .submit, document, jobID: job.id)
            FaultInjection.point("after-submit")
            if let failure = result.failure, failure.mayHaveReachedProvider {
                return try await submitUnconfirmed(job, plugin: plugin, result: result)
            }
            let doc = result.answer ?? [:]
            if result.isOK, let ref = doc["ref"], !ref.isNull {
                let delay = clampPoll(doc["next_poll_after_ms"]?.intValue)
                let refText = text(ref).map(plugin.context.redact)
                let when = now
                let queued = try commit(job.id) { row in
                    row.refJSON = refText
                    row.phase = .queued
                    row.submittedAt = when
                    row.nextPollAt = when.addingTimeInterval(Double(delay) / 1000)
                }
                FaultInjection.point("after-ref-stored")
                return queued
            }
            if result.isOK, let finished = doc["result"], finished.objectValue != nil {
                let submittedAt = now
                try commit(job.id) { $0.submittedAt = submittedAt }
                return try await apply(answer: finished, to: job.id, plugin: plugin)
            }
            let error = doc["error"].flatMap { $0.objectValue != nil ? $0 : nil }
                ?? ["code": "PLUGIN_INTERNAL", "message": .string("submit returned status \(result.status) without an error document"), "retryable": false, "charged": "unknown"]
            let charged = error["charged"]?.stringValue ?? "unknown"
            if error["retryable"]?.boolValue == true, charged == "no", attempt < 3 {
                attempt += 1
                event(job.id, kind: "retry", message: "submit failed (\(error["code"]?.stringValue ?? "?")), retrying with the same idempotency key", data: text(error))
                try await sleep(ms: backoffMs(attempt, retryAfter: error["retry_after_ms"]?.intValue))
                continue
            }
            let phase: JobPhase = charged == "no" ? .failed : .needsAttention
            let errorText = text(error).map(plugin.context.redact)
            let finishedAt = now
            return try commit(job.id) { row in
                row.phase = phase
                row.errorJSON = errorText
                row.finishedAt = finishedAt
                if phase == .needsAttention {
                    row.message = "The submit failed in a way that leaves open whether the provider started the job. Look for it in the provider's dashboard before running it again with a new --idempotency-key."
                }
            }
        }
    }

    func clampPoll(_ ms: Int?) -> Int { min(max(ms ?? 1000, policy.minPollMs), policy.maxPollMs) }

    /// Exponential backoff with full jitter, or the provider's Retry-After.
    func backoffMs(_ attempt: Int, retryAfter: Int?) -> Int {
        if let retryAfter, retryAfter > 0 { return min(retryAfter, policy.maxPollMs) }
        let cap = min(policy.maxPollMs, policy.baseBackoffMs << min(attempt, 16))
        return Int.random(in: cap / 2...max(cap / 2, cap))
    }

    // MARK: poll

    /// Polls a job to a terminal phase, following the engine's schedule.
    public func drive(_ jobID: String, onUpdate: @escaping @Sendable (JobUpdate) -> Void = { _ in }) async throws -> JobRecord {
        guard var job = try store.job(id: jobID) else {
            throw YardError.jobNotFound(jobID)
        }
        let plugin = try self.plugin(job.pluginID)
        // Another process is submitting this job right now: wait for its ref rather than guess.
        while job.phase == .submitting, StoreLock.isHeld(paths.claimFile(jobID)) {
            try await sleep(ms: 200)
            job = try store.job(id: jobID) ?? job
        }
        if job.phase == .submitting { job = try await reconcile(job, plugin: plugin) }
        onUpdate(JobUpdate(job: job, note: nil))
        while !job.phase.isTerminal {
            if job.cancelRequested { return try await cancel(jobID) }
            if let deadline = job.deadlineAt, now > deadline {
                job = try await stopAtDeadline(job, plugin: plugin)
                break
            }
            let wait = (job.nextPollAt ?? now).timeIntervalSince(now)
            if wait > 0 { try await sleep(ms: Int((wait * 1000).rounded(.up))) }
            let polling = job
            let (next, parked) = try await batchingWrites(jobID) { () async throws -> (JobRecord, Bool) in
                let result = await call(plugin, .poll, refRequest(polling), jobID: jobID)
                if let parked = try quarantineIfRepeated(result, job: polling, plugin: plugin, during: "polling") { return (parked, true) }
                if result.isOK, let doc = result.answer {
                    if ["succeeded", "failed", "cancelled"].contains(doc["state"]?.stringValue ?? "") { FaultInjection.point("before-final-store") }
                    return (try await apply(answer: doc, to: jobID, plugin: plugin), false)
                }
                return (try recordPollError(result, job: polling, plugin: plugin), false)
            }
            job = next
            onUpdate(JobUpdate(job: job, note: nil))
            if parked { break }
        }
        return job
    }

    /// Cancels a job that ran past its deadline and fails it with
    /// ENGINE_TIMEOUT, keeping what the provider said about billing and
    /// usage: a job cancelled in the queue was not billed, one cancelled while
    /// running is settled from the time it used.
    func stopAtDeadline(_ job: JobRecord, plugin: LoadedPlugin) async throws -> JobRecord {
        let result = await call(plugin, .cancel, refRequest(job), jobID: job.id)
        let answer = result.isOK ? result.answer : nil
        let charged = answer?["charged"]?.stringValue ?? "unknown"
        let usageText = answer?["usage"].flatMap { $0.objectValue != nil ? text($0) : nil }
        let outcomeText = answer.flatMap { text($0) }
        event(job.id, kind: "cancel", message: "deadline passed; provider answered \(answer?["outcome"]?.stringValue ?? "nothing (cancel failed)")", data: outcomeText)
        if answer?["outcome"]?.stringValue == "already_finished" {
            // It ended just now: record how it really ended, not a timeout.
            let polled = await call(plugin, .poll, refRequest(job), jobID: job.id)
            if polled.isOK, let doc = polled.answer, ["succeeded", "failed", "cancelled"].contains(doc["state"]?.stringValue ?? "") {
                return try await apply(answer: doc, to: job.id, plugin: plugin)
            }
        }
        let error: JSONValue = ["charged": .string(charged), "code": "ENGINE_TIMEOUT", "message": "The job ran past its deadline and was cancelled at the provider.",
                                "remediation": "Raise the timeout or try a faster engine.", "retryable": true]
        let errorText = text(error)
        let finishedAt = now
        return try commit(job.id) { row in
            guard !row.phase.isTerminal else { return }
            row.phase = .failed
            row.finishedAt = finishedAt
            row.errorJSON = errorText
            if let outcomeText { row.cancelOutcomeJSON = outcomeText }
            if let usageText { row.usageJSON = usageText }
        }
    }

    func recordPollError(_ result: PluginCallResult, job: JobRecord, plugin: LoadedPlugin) throws -> JobRecord {
        let error = result.answer?["error"].flatMap { $0.objectValue != nil ? $0 : nil }
            ?? ["code": "PLUGIN_INTERNAL", "message": .string("poll returned status \(result.status)"), "retryable": true, "charged": "unknown"]
        let retryable = error["retryable"]?.boolValue ?? false
        let errors = job.consecutiveErrors + 1
        let errorText = text(error).map(plugin.context.redact)
        let code = error["code"]?.stringValue ?? "?"
        let line = "\(code): \(plugin.context.redact(error["message"]?.stringValue ?? ""))"
        event(job.id, kind: "poll_error", message: line, data: errorText)
        logger.warning("poll failed", metadata: ["job": "\(job.id)", "engine": "\(plugin.manifest.id)", "error": "\(line)", "attempt": "\(errors)"])
        if retryable && errors <= policy.maxConsecutiveErrors {
            let delay = backoffMs(errors, retryAfter: error["retry_after_ms"]?.intValue)
            let when = now.addingTimeInterval(Double(delay) / 1000)
            return try commit(job.id) { row in
                row.consecutiveErrors = errors
                row.nextPollAt = when
            }
        }
        let finishedAt = now
        return try commit(job.id) { row in
            row.phase = .failed
            row.consecutiveErrors = errors
            row.errorJSON = errorText
            row.finishedAt = finishedAt
        }
    }

    /// Applies a poll answer. A non-terminal state never overrides a terminal
    /// one, and progress never goes backwards, so late updates cannot regress a job.
    /// Succeeded outputs are harvested, then held to the catalog's output
    /// contract: a job whose outputs break it fails OUTPUT_CONTRACT_VIOLATION
    /// (charged: it ran), and its outputs never reach the next step.
    func apply(pollDocument doc: [String: Any], to jobID: String, plugin: LoadedPlugin) async throws -> JobRecord {
        try await apply(answer: jsonValue(doc), to: jobID, plugin: plugin)
    }

    /// The poll answer as the SDK writes it (PollResult): state, progress,
    /// message, outputs, error, usage, next_poll_after_ms.
    func apply(answer doc: JSONValue, to jobID: String, plugin: LoadedPlugin) async throws -> JobRecord {
        let state = doc["state"]?.stringValue ?? ""
        var harvestedText: String?
        let usageText = doc["usage"]?.objectValue.flatMap { $0.isEmpty ? nil : text(.object($0)) }
        if state == "succeeded", let outputs = doc["outputs"]?.objectValue {
            let job = try store.job(id: jobID)
            if job?.phase.isTerminal == true, let job { return job }
            let harvested = await harvest(await materializeModel(outputs, jobID: jobID, plugin: plugin), jobID: jobID, plugin: plugin)
            if let failure = Self.harvestFailure(harvested) {
                return try recordHarvestFailure(failure, jobID: jobID, plugin: plugin)
            }
            if let refusal = artifactHandleRefusal(in: harvested) {
                return try recordOutputRefusal(refusal, jobID: jobID, plugin: plugin)
            }
            if let job {
                let declared = plugin.manifest.capabilities.first { $0.id == job.capability }
                let narrower = declared?.outputs.flatMap { try? compiledSchema("outputs:\(plugin.manifest.id):\(job.capability)", $0) }
                let violations = OutputContract(catalog: catalog, artifacts: artifacts).violations(.object(harvested), capability: job.capability, declared: declared,
                                                                                                compiled: narrower)
                if !violations.isEmpty {
                    return try recordContractViolation(violations, outputs: harvested, job: job, plugin: plugin, usage: usageText)
                }
            }
            harvestedText = text(.object(harvested)).map(plugin.context.redact)
        }
        let outputsText = harvestedText
        let errorText = text(doc["error"]).map(plugin.context.redact)
        let message = doc["message"]?.stringValue.map(plugin.context.redact)
        let delay = clampPoll(doc["next_poll_after_ms"]?.intValue)
        let when = now
        let progress = doc["progress"]?.doubleValue
        return try commit(jobID) { row in
            guard !row.phase.isTerminal else { return }
            row.pollCount += 1
            row.consecutiveErrors = 0
            if let usageText { row.usageJSON = usageText }
            // A progress message ("running on a worker") says nothing once the job has ended.
            if let message { row.message = message } else if ["succeeded", "failed", "cancelled"].contains(state) { row.message = nil }
            if let progress { row.progress = max(row.progress ?? 0, min(progress, 1)) }
            switch state {
            case "queued": if row.phase != .running { row.phase = .queued }
            case "running": row.phase = .running
            case "succeeded":
                row.phase = .succeeded
                row.progress = 1
                row.outputsJSON = outputsText ?? "{}"
                row.finishedAt = when
            case "failed":
                row.phase = .failed
                row.errorJSON = errorText ?? #"{"code":"ENGINE_ERROR","message":"The engine reported failure without details."}"#
                row.finishedAt = when
            case "cancelled":
                row.phase = .cancelled
                // What the provider said about billing a cancel it reported itself.
                if let errorText { row.errorJSON = errorText }
                row.finishedAt = when
            default:
                row.consecutiveErrors += 1
            }
            row.nextPollAt = when.addingTimeInterval(Double(delay) / 1000)
        }
    }

    /// Fails a finished job whose outputs broke the contract. The outputs are
    /// not stored (nothing may pass them on); a shortened copy goes to the
    /// job's events so the plugin's author can see what came back.
    func recordContractViolation(_ violations: [OutputContract.Violation], outputs: [String: JSONValue], job: JobRecord, plugin: LoadedPlugin, usage: String?) throws -> JobRecord {
        let error = OutputContract.error(engine: plugin.manifest.id, capability: job.capability, violations: violations)
        let errorText = text(error).map(plugin.context.redact)
        let sample = text(Self.shortened(.object(outputs))).map(plugin.context.redact)
        event(job.id, kind: "output_contract", message: plugin.context.redact(error["message"] as? String ?? ""), data: sample)
        logger.error("outputs break the catalog contract", metadata: ["job": "\(job.id)", "engine": "\(plugin.manifest.id)", "capability": "\(job.capability)",
                                                                      "field": "\(violations.first?.field ?? "$")"])
        let when = now
        return try commit(job.id) { row in
            guard !row.phase.isTerminal else { return }
            row.pollCount += 1
            row.phase = .failed
            row.progress = 1
            row.errorJSON = errorText
            if let usage { row.usageJSON = usage }
            row.finishedAt = when
        }
    }

    /// A copy for logs: long strings cut (inline media bytes never reach an event), at most 50 items per list.
    static func shortened(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let s) where s.count > 200: return .string(String(s.prefix(120)) + "… (\(s.count) characters)")
        case .array(let items): return .array(items.prefix(50).map(shortened))
        case .object(let members): return .object(members.mapValues(shortened))
        default: return value
        }
    }

    /// Downloads every {"url": …} file of the outputs, at any depth, into the
    /// artifact store before the provider's retention ends (a `data:` URL is
    /// stored from its own bytes); the row then names artifacts, not URLs.
    func harvest(_ outputs: [String: JSONValue], jobID: String, plugin: LoadedPlugin) async -> [String: JSONValue] {
        var result: [String: JSONValue] = [:]
        for (key, value) in outputs { result[key] = await harvestValue(value, jobID: jobID, plugin: plugin, depth: 0) }
        return result
    }

    func harvestValue(_ value: JSONValue, jobID: String, plugin: LoadedPlugin, depth: Int) async -> JSONValue {
        guard depth < 32 else { return value }
        switch value {
        case .object(let object):
            if object["url"]?.stringValue != nil, object["artifact"] == nil { return .object(await harvestOne(object, jobID: jobID, plugin: plugin)) }
            var copy: [String: JSONValue] = [:]
            for (key, member) in object { copy[key] = await harvestValue(member, jobID: jobID, plugin: plugin, depth: depth + 1) }
            return .object(copy)
        case .array(let array):
            var items: [JSONValue] = []
            for item in array { items.append(await harvestValue(item, jobID: jobID, plugin: plugin, depth: depth + 1)) }
            return .array(items)
        default:
            return value
        }
    }

    func harvestOne(_ object: [String: JSONValue], jobID: String, plugin: LoadedPlugin) async -> [String: JSONValue] {
        guard let url = object["url"]?.stringValue else { return object }
        var copy = object
        copy.removeValue(forKey: "content_type")
        let declared = (object["media_type"]?.stringValue ?? object["content_type"]?.stringValue).map(MediaSniffer.normalize)
        do {
            let result: ArtifactDownloader.Result
            if url.hasPrefix("data:") {
                result = try storeDataURL(url, mediaType: declared)
            } else {
                let context = plugin.context
                result = try await downloader.download(url: url, mediaType: declared, expectedSHA256: object["sha256"]?.stringValue, expectedSize: object["size"]?.intValue,
                                                       isAllowed: { context.isAllowed($0) })
            }
            recordArtifact(jobID: jobID, ArtifactRecord(sha256: result.sha256, size: result.size, mediaType: MediaSniffer.normalize(result.mediaType), jobID: jobID,
                                                     sourceURL: url.hasPrefix("data:") ? nil : url, createdAt: Date()))
            copy.removeValue(forKey: "url")
            copy.removeValue(forKey: "sha256")
            copy["artifact"] = .string("sha256:\(result.sha256)")
            copy["size"] = .number(Double(result.size))
            var type = MediaSniffer.normalize(result.mediaType)
            // A CDN that labels everything octet-stream: the bytes say what the file is.
            if type == "application/octet-stream" || type == "binary/octet-stream",
               let head = FileHandle(forReadingAtPath: artifacts.path(for: result.sha256).path).map({ h in defer { try? h.close() }; return (try? h.read(upToCount: 64)) ?? Data() }),
               let sniffed = MediaSniffer.sniff(head) { type = sniffed }
            copy["media_type"] = .string(type)
        } catch let error as YardError {
            copy["harvest_error"] = .string("\(error.code.rawValue): \(error.message)")
        } catch {
            copy["harvest_error"] = .string("download failed: \(error)")
        }
        return copy
    }

    /// A `data:` URL's bytes, stored as they are.
    func storeDataURL(_ url: String, mediaType: String?) throws -> ArtifactDownloader.Result {
        guard let comma = url.firstIndex(of: ","), url[..<comma].hasSuffix(";base64"),
              let bytes = Data(base64Encoded: String(url[url.index(after: comma)...]), options: .ignoreUnknownCharacters) else {
            throw YardError("OUTPUT_CONTRACT_VIOLATION", "An output is a data: URL that is not base64.", remediation: "Report this to the engine's author.")
        }
        let declared = String(url.dropFirst(5).prefix { $0 != ";" && $0 != "," })
        let type = mediaType ?? (declared.isEmpty ? "application/octet-stream" : MediaSniffer.normalize(declared))
        let digest = try artifacts.put(bytes, mediaType: type)
        return ArtifactDownloader.Result(sha256: digest, size: bytes.count, mediaType: type)
    }

    /// The first harvest error among the outputs, at any depth, if any.
    static func harvestFailure(_ outputs: [String: JSONValue]) -> String? {
        func find(_ value: JSONValue, depth: Int) -> String? {
            guard depth < 32 else { return nil }
            if let object = value.objectValue {
                if let error = object["harvest_error"]?.stringValue { return error }
                for member in object.values { if let error = find(member, depth: depth + 1) { return error } }
            }
            for item in value.arrayValue ?? [] { if let error = find(item, depth: depth + 1) { return error } }
            return nil
        }
        return find(.object(outputs), depth: 0)
    }

    /// An expired result fails the job (the provider billed it, the output is
    /// gone); anything else is retried on the poll schedule while retention lasts.
    func recordHarvestFailure(_ failure: String, jobID: String, plugin: LoadedPlugin) throws -> JobRecord {
        // Gone at the provider, or a file the outputs name in a form no retry can fetch: the job fails now.
        let broken = failure.hasPrefix("OUTPUT_CONTRACT_VIOLATION")
        let expired = failure.hasPrefix("RESULT_EXPIRED") || broken
        let error: JSONValue = ["code": .string(broken ? "OUTPUT_CONTRACT_VIOLATION" : expired ? "RESULT_EXPIRED" : "HARVEST_FAILED"), "message": .string(failure),
                                "remediation": .string(broken ? "Report this to \(plugin.manifest.id)'s author; the job ran and its charge stands."
                                    : expired ? "The provider no longer keeps the result; run the job again." : "Check the network and the engine's allow-list, then `yard jobs resume`."),
                                "retryable": .bool(!expired), "charged": "yes", "engine": .string(plugin.manifest.id)]
        event(jobID, kind: "harvest_error", message: plugin.context.redact(failure), data: nil)
        logger.warning("output download failed", metadata: ["job": "\(jobID)", "error": "\(plugin.context.redact(failure))"])
        guard let job = try store.job(id: jobID) else { throw YardError.jobNotFound(jobID) }
        if !expired && job.consecutiveErrors < policy.maxConsecutiveErrors {
            let when = now.addingTimeInterval(Double(backoffMs(job.consecutiveErrors + 1, retryAfter: nil)) / 1000)
            return try commit(jobID) { row in
                row.consecutiveErrors += 1
                row.nextPollAt = when
            }
        }
        let errorText = text(error).map(plugin.context.redact)
        let finishedAt = now
        return try commit(jobID) { row in
            guard !row.phase.isTerminal else { return }
            row.phase = .failed
            row.errorJSON = errorText
            row.finishedAt = finishedAt
        }
    }

    // MARK: recovery

    /// A job left in `submitting` after a crash: the provider may or may not
    /// have it. Ask the plugin (sy.reconcile/1); without an answer, park it.
    func reconcile(_ job: JobRecord, plugin: LoadedPlugin) async throws -> JobRecord {
        if let answer = await callExtension(plugin, SY_EXTENSION_RECONCILE, jobRequest(job), jobID: job.id), answer.isOK, let doc = answer.answer {
            if let ref = doc["ref"], !ref.isNull {
                let refText = text(ref)
                let when = now
                event(job.id, kind: "reconciled", message: "found the job at the provider by its idempotency key", data: refText)
                return try commit(job.id) { row in
                    row.refJSON = refText
                    row.phase = .queued
                    row.submittedAt = row.submittedAt ?? when
                    row.nextPollAt = when
                }
            }
            event(job.id, kind: "reconciled", message: "the provider never received the job; submitting it now", data: nil)
            return try await submit(job, plugin: plugin)
        }
        logger.error("job needs attention: submit unconfirmed after a crash", metadata: ["job": "\(job.id)", "engine": "\(plugin.manifest.id)"])
        return try commit(job.id) { row in
            row.phase = .needsAttention
            row.message = "The host stopped while submitting, and \(plugin.manifest.id) cannot tell whether the provider received the job. It was not resubmitted, to avoid paying twice. Look for it in the provider's dashboard: if it is there, let it finish or cancel it there; if not, run the job again with a new --idempotency-key."
            row.errorJSON = #"{"charged":"unknown","code":"SUBMIT_UNCONFIRMED","message":"Submission not confirmed after a crash.","remediation":"Check the provider, then re-run with a new idempotency key if it has no such job.","retryable":false}"#
        }
    }

    // MARK: parked jobs

    /// When a parked job's window ends: by then a job the provider had
    /// received would have run past its deadline and its result retention,
    /// so a provider that never reported it never ran it for us. A job that
    /// never reached the provider is refunded then, if reconcile could not
    /// prove it sooner.
    public func parkedWindowEnd(_ job: JobRecord, manifest: PluginManifest?) -> Date {
        let timeout = manifest?.capabilities.first { $0.id == job.capability }?.timeoutSeconds.map(Double.init) ?? policy.jobTimeoutSeconds
        let deadline = job.deadlineAt ?? job.createdAt.addingTimeInterval(timeout)
        return deadline.addingTimeInterval(Double(manifest?.resultRetentionSeconds ?? 0))
    }

    /// Settles a parked job by hand (`yard jobs resolve`), with an audit event naming who did it.
    @discardableResult
    public func resolveParked(_ jobID: String, _ resolution: ParkedResolution, actor: String, note: String? = nil) throws -> JobRecord {
        let what: String
        switch resolution {
        case .notSubmitted: what = "resolved by \(actor): the provider never received the job"
        case .submitted(let ref): what = "resolved by \(actor): the provider has the job as \(ref)"
        }
        return try store.resolveParked(jobID: jobID, resolution, audit: what + (note.map { " (\($0))" } ?? ""), at: now)
    }

    /// Looks again at every parked job: reconcile finds it at the provider
    /// (it is queued and polled), or proves it absent (refunded); without an
    /// answer, a job whose window has passed is refunded. Returns the jobs it
    /// settled or re-opened.
    public func sweepParked() async -> [JobRecord] {
        guard let sqlite = store as? SQLiteJobStore, let parked = try? sqlite.parkedJobs() else { return [] }
        var changed: [JobRecord] = []
        for job in parked {
            let plugin = try? self.plugin(job.pluginID)
            if let plugin, plugin.hasExtension(SY_EXTENSION_RECONCILE) {
                if let answer = await callExtension(plugin, SY_EXTENSION_RECONCILE, jobRequest(job), jobID: job.id), answer.isOK, let doc = answer.answer, doc["ref"] != nil {
                    let resolution: ParkedResolution
                    if let ref = doc["ref"], !ref.isNull, let refText = text(ref).map(plugin.context.redact) {
                        resolution = .submitted(ref: refText)
                    } else {
                        resolution = .notSubmitted
                    }
                    if let resolved = try? resolveParked(job.id, resolution, actor: "reconcile") { changed.append(resolved) }
                    continue
                }
            }
            if now > parkedWindowEnd(job, manifest: plugin?.manifest) {
                if let resolved = try? store.resolveParked(jobID: job.id, .notSubmitted,
                                                           audit: "window passed (deadline and result retention) with no sign the provider received the job: refunded", at: now) {
                    changed.append(resolved)
                }
            }
        }
        return changed
    }

    /// Resumes every unfinished job, concurrently, until each is terminal;
    /// parked jobs are looked at again first (sweepParked).
    /// Failures are isolated per job: one job whose plugin cannot load or
    /// whose store update fails is reported (logged, an event on the job) and
    /// never cancels the others' resumes. Returns the jobs in their state when
    /// their drive ended.
    public func resumeAll(onUpdate: @escaping @Sendable (JobUpdate) -> Void = { _ in }) async throws -> [JobRecord] {
        let swept = await sweepParked()
        let unfinished = try store.unfinishedJobs()
        return await withTaskGroup(of: JobRecord?.self) { group in
            for job in unfinished {
                group.addTask {
                    do { return try await self.drive(job.id, onUpdate: onUpdate) } catch {
                        let reason = (error as? YardError).map { "\($0.code.rawValue): \($0.message)" } ?? "\(error)"
                        self.logger.error("resume failed for one job; the others go on", metadata: ["job": "\(job.id)", "engine": "\(job.pluginID)", "error": "\(reason)"])
                        try? self.store.appendEvent(jobID: job.id, kind: "resume_error", message: "resume failed: \(reason)", data: nil)
                        return (try? self.store.job(id: job.id)) ?? job
                    }
                }
            }
            var finished: [JobRecord] = swept.filter { $0.phase.isTerminal }
            for await job in group { if let job { finished.append(job) } }
            // A job parked just now whose window has already passed is settled in the same pass.
            let late = await self.sweepParked()
            for settled in late {
                if let i = finished.firstIndex(where: { $0.id == settled.id }) { finished[i] = settled } else { finished.append(settled) }
            }
            return finished
        }
    }

    // MARK: cancel

    /// Cancels at the provider and records the truthful outcome.
    public func cancel(_ jobID: String) async throws -> JobRecord {
        guard let job = try store.job(id: jobID) else {
            throw YardError.jobNotFound(jobID)
        }
        if job.phase.isTerminal { return job }
        try commit(jobID) { $0.cancelRequested = true }
        guard job.refJSON != nil else {
            return try commit(jobID) { row in
                row.phase = .needsAttention
                row.message = "Cancelled while submitting: the provider may have received the job."
                row.cancelOutcomeJSON = #"{"charged":"unknown","outcome":"unknown"}"#
            }
        }
        let plugin = try self.plugin(job.pluginID)
        let result = await call(plugin, .cancel, refRequest(job), jobID: jobID)
        guard result.isOK else {
            // The provider did not confirm: the job may still be running (and billing),
            // so it must not be shown as cancelled.
            let error = result.answer?["error"]
            let reason = plugin.context.redact(error?["message"]?.stringValue ?? "cancel failed (status \(result.status))")
            event(jobID, kind: "cancel", message: "cancel failed: \(reason)", data: text(result.answer))
            throw YardError("CANCEL_FAILED", "\(job.pluginID) could not cancel job \(jobID): \(reason)",
                            remediation: "The job is still \(job.phase.rawValue) at the provider; run `yard jobs cancel \(jobID)` again, or stop it in the provider's console.")
        }
        let outcome = result.answer?["outcome"]?.stringValue ?? "unknown"
        let outcomeText = text(result.answer ?? ["outcome": "unknown", "charged": "unknown"])
        event(jobID, kind: "cancel", message: "provider answered \(outcome)", data: outcomeText)
        if outcome == "already_finished" {
            let polled = await call(plugin, .poll, refRequest(job), jobID: jobID)
            if polled.isOK, let doc = polled.answer { return try await apply(answer: doc, to: jobID, plugin: plugin) }
        }
        let usageText = result.answer?["usage"].flatMap { $0.objectValue != nil ? text($0) : nil }
        let finishedAt = now
        return try commit(jobID) { row in
            guard !row.phase.isTerminal else { return }
            row.phase = .cancelled
            row.message = nil
            row.cancelOutcomeJSON = outcomeText
            if let usageText { row.usageJSON = usageText }
            row.finishedAt = finishedAt
        }
    }
}

/// Job log lines from plugins go to the job's event stream (already redacted).
/// A line logged during a job's step is held with the step's other writes (JobWriteBatch).
struct StoreLogSink: HostLogSink {
    let store: any JobStore
    var batch: JobWriteBatch?
    func record(pluginID: String, jobID: String?, level: Int32, message: String) {
        guard let jobID, !jobID.isEmpty else { return }
        let names = ["debug", "info", "warning", "error"]
        let line = "[\(names[Int(max(0, min(level, 3)))])] \(message)"
        if let batch, batch.hold(event: .init(kind: "log", message: line, data: nil, at: Date()), jobID: jobID) { return }
        try? store.appendEvent(jobID: jobID, kind: "log", message: line, data: nil)
    }
}

/// Artifacts written by plugins are indexed in the store too.
/// An artifact stored during a job's step is indexed with the step's other
/// writes (JobWriteBatch); the file itself is in place before put returns.
struct RecordingArtifactSink: ArtifactSink {
    let directory: ArtifactDirectory
    let store: any JobStore
    var batch: JobWriteBatch?
    func put(_ data: Data, mediaType: String) throws -> String { try put(data, mediaType: mediaType, jobID: nil) }
    func put(_ data: Data, mediaType: String, jobID: String?) throws -> String {
        let digest = try directory.put(data, mediaType: mediaType)
        let record = ArtifactRecord(sha256: digest, size: data.count, mediaType: mediaType, jobID: nil, sourceURL: nil, createdAt: Date())
        if let batch, let jobID, batch.hold(artifact: record, jobID: jobID) { return digest }
        try? store.recordArtifact(record)
        return digest
    }
    func read(sha256: String) throws -> Data? { try directory.read(sha256: sha256) }
}

/// Named crash points for the durability tests. YARD_FAULT=NAME makes the
/// process die (SIGKILL) there: after-submit (the provider accepted the job,
/// its ref is not stored yet — the worst moment), after-ref-stored (queued),
/// before-final-store (the provider finished, the host has not recorded it).
public enum FaultInjection {
    static let active = ProcessInfo.processInfo.environment["YARD_FAULT"]

    public static func point(_ name: String) {
        guard let active, active == name else { return }
        kill(getpid(), SIGKILL)
    }
}

/// Carries a value that is not Sendable across one hop to the worker pool and
/// back; the value is never shared while it is in flight.
struct Unchecked<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
