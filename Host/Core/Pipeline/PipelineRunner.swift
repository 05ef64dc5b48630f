import Crypto
import Foundation
import Logging
import SwitchyardJSON

/// What the runner reports while it works, for progress displays.
public struct PipelineStepUpdate: Sendable {
    public var runID: String
    public var step: PipelineStepRecord
    public var job: JobRecord?

    public init(runID: String, step: PipelineStepRecord, job: JobRecord?) {
        self.runID = runID
        self.step = step
        self.job = job
    }
}

/// Runs a pipeline as a DAG of jobs through the durable JobEngine: every step
/// is a job (same write-ahead durability), independent steps run at once, a
/// step tries its engines in preference order and falls back only when the
/// failed attempt cannot have been billed (refused in pre-flight, or the
/// provider said charged "no"), finished steps are cached by what determines
/// their result, and the run's state is in the store so it can be resumed.
public final class PipelineRunner: @unchecked Sendable {
    public let engine: JobEngine
    public let store: PipelineRunStore
    public let configs: EngineConfigs
    let logger = Logger(label: "switchyard.pipeline")

    public init(engine: JobEngine, configs: EngineConfigs) throws {
        self.engine = engine
        self.configs = configs
        self.store = try PipelineRunStore(jobStore: engine.store)
    }

    // MARK: starting

    /// A fresh run id; a caller that must record something about the run
    /// before any process can drive it (who owns it) takes one first.
    public static func newRunID() -> String {
        "run_" + String(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20))
    }

    /// Records a new run (all steps pending) in one transaction. Inputs must
    /// have passed `PipelinePlanner.prepareInputs`. Every step job is billed
    /// to `billing` (nil: the ledger's default account).
    public func create(_ definition: PipelineDefinition, source: String, inputs: [String: JSONValue], quality: String?, noCache: Bool,
                       billing: BillingScope? = nil, id: String = PipelineRunner.newRunID()) throws -> PipelineRunRecord {
        let now = Date()
        let run = PipelineRunRecord(id: String(id), pipelineID: definition.id, source: source, definitionJSON: Self.text(definition.document),
                                    inputsJSON: Self.text(.object(inputs)), quality: quality ?? definition.defaultQuality, noCache: noCache,
                                    state: .running, outputsJSON: nil, errorJSON: nil, createdAt: now, updatedAt: now, finishedAt: nil,
                                    billingAccount: billing?.account,
                                    billingBudgetsJSON: billing.flatMap { $0.budgets.isEmpty ? nil : (try? JSONEncoder().encode($0.budgets)).map { String(decoding: $0, as: UTF8.self) } })
        let steps = definition.steps.enumerated().map { i, step in
            PipelineStepRecord(runID: run.id, name: step.name, position: i, capability: step.capability, state: .pending, engine: nil, engineIndex: 0,
                               round: 0, jobID: nil, cacheHit: false, attemptsJSON: "[]", outputsJSON: nil, errorJSON: nil, estimateMinor: nil,
                               startedAt: nil, finishedAt: nil)
        }
        try store.insert(run, steps: steps)
        return run
    }

    /// A failed run, re-opened: failed and blocked steps start over (with a new
    /// idempotency round); finished steps keep their outputs. A step whose job
    /// under its current key is still in flight, or succeeded, keeps its round
    /// and engine: `execute` follows that job instead of buying the step again.
    public func reopen(_ runID: String) throws -> PipelineRunRecord {
        guard let run = try store.run(id: runID) else { throw PipelineRunStore.runNotFound(runID) }
        guard run.state == .failed || run.state == .cancelled else { return run }
        for step in try store.steps(runID: runID) where [.failed, .blocked].contains(step.state) || step.state == .running {
            let existing = try engine.store.job(idempotencyKey: step.idempotencyKey)
            let follow = existing.map { !$0.phase.isTerminal || $0.phase == .succeeded } ?? false
            try store.updateStep(runID: runID, name: step.name) { row in
                row.state = .pending
                if !follow {
                    row.round += 1
                    row.engineIndex = 0
                }
                row.errorJSON = nil
                row.finishedAt = nil
            }
        }
        return try store.updateRun(id: runID) { row in
            row.state = .running
            row.errorJSON = nil
            row.finishedAt = nil
        }
    }

    public func definition(of run: PipelineRunRecord) throws -> PipelineDefinition {
        let document = try JSONValue(parsing: Data(run.definitionJSON.utf8))
        return try PipelineDefinition.parse(document, source: run.source)
    }

    // MARK: executing

    /// Executes (or continues) a run until every step is finished or a step failed.
    public func execute(_ runID: String, onUpdate: @escaping @Sendable (PipelineStepUpdate) -> Void = { _ in }) async throws -> PipelineRunRecord {
        guard let run = try store.run(id: runID) else { throw PipelineRunStore.runNotFound(runID) }
        if run.state != .running { return run }
        let definition = try self.definition(of: run)
        let inputs = (try? JSONValue(parsing: Data(run.inputsJSON.utf8)))?.objectValue ?? [:]
        var rows = Dictionary(uniqueKeysWithValues: try store.steps(runID: runID).map { ($0.name, $0) })
        var failed: PipelineStepRecord? = rows.values.first { $0.state == .failed }
        let siblingFailure = SiblingFailure(failed != nil)
        // Before anything is decided: every unfinished step whose job exists
        // (the host stopped while it ran) is followed to its end, even when a
        // sibling failed. Marking it blocked instead would leave a paid job
        // uncollected, and the next round would buy it again.
        let inFlight = try definition.steps.filter { step in
            guard let row = rows[step.name], !row.state.isFinished else { return false }
            return try engine.store.job(idempotencyKey: row.idempotencyKey) != nil
        }

        func scope() -> PipelineScope {
            var outputs: [String: [String: JSONValue]] = [:]
            for row in rows.values where row.state == .succeeded {
                outputs[row.name] = row.outputsJSON.flatMap { try? JSONValue(parsing: Data($0.utf8)) }?.objectValue ?? [:]
            }
            return PipelineScope(inputs: inputs, stepOutputs: outputs, quality: run.quality)
        }

        try await withThrowingTaskGroup(of: PipelineStepRecord.self) { group in
            var running = Set<String>()
            for step in inFlight {
                running.insert(step.name)
                let stepScope = scope()
                group.addTask { try await self.executeStep(step, run: run, scope: stepScope, siblingFailure: siblingFailure, onUpdate: onUpdate) }
            }
            while true {
                var changed = false
                if failed == nil {
                    for step in definition.steps {
                        guard let row = rows[step.name], !row.state.isFinished, !running.contains(step.name) else { continue }
                        let dependencies = step.dependencies.compactMap { rows[$0]?.state }
                        guard dependencies.allSatisfy({ $0 == .succeeded || $0 == .skipped }) else { continue }
                        if let when = step.when, !when.evaluate(in: scope()) {
                            let skipped = try store.updateStep(runID: runID, name: step.name) { r in
                                r.state = .skipped
                                r.finishedAt = Date()
                            }
                            rows[step.name] = skipped
                            onUpdate(PipelineStepUpdate(runID: runID, step: skipped, job: nil))
                            changed = true
                            continue
                        }
                        running.insert(step.name)
                        let stepScope = scope()
                        group.addTask { try await self.executeStep(step, run: run, scope: stepScope, siblingFailure: siblingFailure, onUpdate: onUpdate) }
                    }
                }
                if running.isEmpty {
                    if changed { continue }
                    break
                }
                guard let done = try await group.next() else { break }
                running.remove(done.name)
                rows[done.name] = done
                if done.state == .failed && failed == nil {
                    failed = done
                    siblingFailure.set()
                }
            }
        }

        if let failed {
            for (name, row) in rows where !row.state.isFinished {
                rows[name] = try store.updateStep(runID: runID, name: name) { r in
                    r.state = .blocked
                    r.errorJSON = Self.text(["code": "NOT_STARTED", "message": .string("not started: step \(failed.name) failed")])
                }
            }
            return try store.updateRun(id: runID) { r in
                guard r.state == .running else { return } // cancelled meanwhile: keep what the person asked for
                r.state = .failed
                r.errorJSON = failed.errorJSON
                r.finishedAt = Date()
            }
        }
        var outputs: [String: JSONValue] = [:]
        let finalScope = scope()
        for (name, template) in definition.outputs {
            if let value = try? PipelineTemplate.resolve(template, in: finalScope) { outputs[name] = value }
        }
        let outputsText = Self.text(.object(outputs))
        return try store.updateRun(id: runID) { r in
            guard r.state == .running else { return }
            r.state = .succeeded
            r.outputsJSON = outputsText
            r.finishedAt = Date()
        }
    }

    /// Cancels a run: its unfinished step jobs are cancelled at their
    /// providers, its unfinished steps and the run are marked cancelled, so no
    /// driver continues it (`yard run --resume` can still start it again).
    /// Returns the run and the cancelled jobs (with whether they may bill).
    public func cancel(_ runID: String) async throws -> (run: PipelineRunRecord, jobs: [JobRecord]) {
        guard let run = try store.run(id: runID) else { throw PipelineRunStore.runNotFound(runID) }
        guard run.state == .running else { return (run, []) }
        // Marked first, so a runner working the run elsewhere starts nothing new.
        let error: JSONValue = ["code": "CANCELLED", "message": "The run was cancelled.", "charged": "unknown"]
        var updated = try store.updateRun(id: runID) { r in
            r.state = .cancelled
            r.errorJSON = Self.text(error)
            r.finishedAt = Date()
        }
        var jobs: [JobRecord] = []
        for step in try store.steps(runID: runID) where !step.state.isFinished {
            let job = try step.jobID.flatMap { try engine.store.job(id: $0) } ?? engine.store.job(idempotencyKey: step.idempotencyKey)
            if let job, !job.phase.isTerminal { jobs.append(try await engine.cancel(job.id)) }
            try store.updateStep(runID: runID, name: step.name) { r in
                r.state = .failed
                r.errorJSON = Self.text(["code": "CANCELLED", "message": "cancelled with the run"])
                r.finishedAt = Date()
            }
        }
        updated = try store.run(id: runID) ?? updated
        return (updated, jobs)
    }

    /// Continues every run left unfinished (after a crash or a kill).
    public func resumeAll(onUpdate: @escaping @Sendable (PipelineStepUpdate) -> Void = { _ in }) async throws -> [PipelineRunRecord] {
        var finished: [PipelineRunRecord] = []
        for run in try store.unfinishedRuns() { finished.append(try await execute(run.id, onUpdate: onUpdate)) }
        return finished
    }

    // MARK: one step

    func executeStep(_ step: PipelineStep, run: PipelineRunRecord, scope: PipelineScope, siblingFailure: SiblingFailure = SiblingFailure(false),
                     onUpdate: @escaping @Sendable (PipelineStepUpdate) -> Void) async throws -> PipelineStepRecord {
        guard var row = try store.steps(runID: run.id).first(where: { $0.name == step.name }) else { throw PipelineRunStore.runNotFound(run.id) }
        var attempts = (try? JSONDecoder().decode([EngineAttempt].self, from: Data(row.attemptsJSON.utf8))) ?? []
        let attemptsText = { (list: [EngineAttempt]) in String(decoding: (try? JSONEncoder().encode(list)) ?? Data("[]".utf8), as: UTF8.self) }

        func finish(_ state: PipelineStepState, error: JSONValue? = nil, _ change: (inout PipelineStepRecord) -> Void = { _ in }) throws -> PipelineStepRecord {
            let list = attemptsText(attempts)
            let updated = try store.updateStep(runID: run.id, name: step.name) { r in
                r.state = state
                r.attemptsJSON = list
                if let error { r.errorJSON = Self.text(error) }
                r.finishedAt = Date()
                change(&r)
            }
            onUpdate(PipelineStepUpdate(runID: run.id, step: updated, job: nil))
            return updated
        }

        for index in row.engineIndex..<step.engines.count {
            let choice = step.engines[index]
            // A job under this attempt's idempotency key exists when the host
            // stopped mid-step: it is followed, before the cache or anything else.
            let attemptKey = PipelineStepRecord.idempotencyKey(runID: run.id, name: step.name, round: row.round, engineIndex: index)
            let existing = try engine.store.job(idempotencyKey: attemptKey)
            let inputs: [String: JSONValue]
            let config: [String: JSONValue]
            do {
                inputs = try PipelineTemplate.resolve(inputs: step.inputTemplate(quality: run.quality, engine: choice), in: scope)
                config = try configs.config(for: choice.engine, overrides: choice.config)
            } catch let error as PipelineReferenceError {
                return try finish(.failed, error: ["code": "REFERENCE_UNRESOLVED", "message": .string(error.message), "remediation": "Fix the step's inputs in the pipeline file."])
            } catch let error as YardError {
                return try finish(.failed, error: ["code": .string(error.code.rawValue), "message": .string(error.message), "remediation": .string(error.remediation)])
            }

            // The cache: the same engine build, capability, inputs (artifacts by
            // sha256) and seed gave these outputs before.
            let plugin: LoadedPlugin
            do { plugin = try engine.plugin(choice.engine) } catch {
                let e = (error as? YardError) ?? YardError(.pluginNotFound, "\(error)", remediation: "Run `yard plugin list`.")
                if let existing {
                    // Its job exists: another engine could pay for the step twice.
                    attempts.append(EngineAttempt(engine: choice.engine, ok: false, code: e.code.rawValue, message: e.message, remediation: e.remediation,
                                                  charged: "unknown", jobID: existing.id))
                    return try finish(.failed, error: ["code": .string(e.code.rawValue), "message": .string("\(e.message) Job \(existing.id) of this step may still be running at the provider."),
                                                       "remediation": .string(e.remediation), "charged": "unknown", "job_id": .string(existing.id)])
                }
                attempts.append(EngineAttempt(engine: choice.engine, ok: false, code: e.code.rawValue, message: e.message, remediation: e.remediation, charged: "no"))
                continue
            }
            let key = Self.cacheKey(pluginID: plugin.manifest.id, version: plugin.manifest.version, capability: step.capability, inputs: inputs, config: config,
                                    account: run.billingAccount)
            if existing == nil, siblingFailure.isSet {
                // The run fails anyway: no new job is bought for it.
                let list = attemptsText(attempts)
                return try store.updateStep(runID: run.id, name: step.name) { r in
                    r.attemptsJSON = list
                    r.engineIndex = index
                }
            }
            if existing == nil, !run.noCache, let hit = try store.cached(key: key), let outputs = try? JSONValue(parsing: Data(hit.outputsJSON.utf8)), artifactsPresent(outputs) {
                return try finish(.succeeded) { r in
                    r.engine = choice.engine
                    r.engineIndex = index
                    r.cacheHit = true
                    r.jobID = hit.jobID
                    r.outputsJSON = hit.outputsJSON
                    r.estimateMinor = 0
                    r.startedAt = r.startedAt ?? Date()
                }
            }

            // Recorded before the job exists: the index is part of its idempotency key.
            let list = attemptsText(attempts)
            row = try store.updateStep(runID: run.id, name: step.name) { r in
                r.state = .running
                r.engine = choice.engine
                r.engineIndex = index
                r.attemptsJSON = list
                r.startedAt = r.startedAt ?? Date()
            }

            var job: JobRecord
            if let existing {
                job = existing
            } else {
                do {
                    var spec = JobSpec(pluginID: choice.engine, capability: step.capability, inputs: inputs, config: config, idempotencyKey: row.idempotencyKey)
                    spec.billing = run.billing
                    job = try await engine.start(spec)
                } catch let refusal as JobEngine.Refusal {
                    let first = refusal.verdict.firstError
                    attempts.append(EngineAttempt(engine: choice.engine, ok: false, code: first?.code, message: first?.message, remediation: first?.remediation, charged: "no"))
                    logger.info("engine refused in pre-flight; trying the next", metadata: ["step": "\(step.name)", "engine": "\(choice.engine)", "code": "\(first?.code ?? "?")"])
                    continue
                } catch let error as YardError {
                    // Not a pre-flight refusal: the job may exist, so no other engine is tried.
                    attempts.append(EngineAttempt(engine: choice.engine, ok: false, code: error.code.rawValue, message: error.message, remediation: error.remediation))
                    return try finish(.failed, error: ["code": .string(error.code.rawValue), "message": .string(error.message), "remediation": .string(error.remediation)])
                }
            }
            let jobID = job.id
            let estimate = job.estimateMinor
            row = try store.updateStep(runID: run.id, name: step.name) { r in
                r.jobID = jobID
                r.estimateMinor = estimate
            }
            let current = row
            onUpdate(PipelineStepUpdate(runID: run.id, step: current, job: nil))
            if !job.phase.isTerminal {
                job = try await engine.drive(job.id) { update in onUpdate(PipelineStepUpdate(runID: run.id, step: current, job: update.job)) }
            }
            switch job.phase {
            case .succeeded:
                let outputsText = job.outputsJSON ?? "{}"
                try store.saveCache(StepCacheRecord(key: key, pluginID: plugin.manifest.id, pluginVersion: plugin.manifest.version, capability: step.capability,
                                                    outputsJSON: outputsText, jobID: job.id, createdAt: Date()))
                return try finish(.succeeded) { r in r.outputsJSON = outputsText }
            case .failed where Self.charged(job) == "no":
                let error = Self.errorObject(job)
                attempts.append(EngineAttempt(engine: choice.engine, ok: false, code: error["code"]?.stringValue, message: error["message"]?.stringValue,
                                              remediation: error["remediation"]?.stringValue, charged: "no", jobID: job.id))
                logger.info("engine failed without charge; trying the next", metadata: ["step": "\(step.name)", "engine": "\(choice.engine)"])
                continue
            default:
                // Possibly billed (or needing attention): another engine would
                // risk paying twice, so the step fails with its reason.
                var error = Self.errorObject(job)
                error["charged"] = .string(Self.charged(job))
                error["job_id"] = .string(job.id)
                if error["code"] == nil { error["code"] = .string(job.phase == .cancelled ? "CANCELLED" : "NEEDS_ATTENTION") }
                if error["message"] == nil { error["message"] = .string(job.message ?? "The job ended \(job.phase.rawValue).") }
                attempts.append(EngineAttempt(engine: choice.engine, ok: false, code: error["code"]?.stringValue, message: error["message"]?.stringValue,
                                              remediation: error["remediation"]?.stringValue, charged: Self.charged(job), jobID: job.id))
                return try finish(.failed, error: .object(error))
            }
        }
        let summary = attempts.map { "\($0.engine): \($0.code ?? "?")\($0.message.map { " (\($0))" } ?? "")" }.joined(separator: "; ")
        return try finish(.failed, error: ["code": "NO_ENGINE", "message": .string("No engine could run \(step.name) (\(step.capability)): \(summary)."),
                                           "remediation": .string(attempts.compactMap(\.remediation).first ?? "Install an engine that offers \(step.capability)."),
                                           "charged": "no"])
    }

    // MARK: helpers

    /// sha256 of the canonical (engine id, version, capability, inputs, seed,
    /// config). File inputs are artifact handles, i.e. sha256s of their bytes.
    /// A run billed to an account only reuses that account's results: another
    /// account's cached outputs are neither its to see nor its to get for free.
    public static func cacheKey(pluginID: String, version: String, capability: String, inputs: [String: JSONValue], config: [String: JSONValue],
                                account: String? = nil) -> String {
        var members: [String: JSONValue] = ["engine": .string(pluginID), "version": .string(version), "capability": .string(capability),
                                            "inputs": .object(inputs.mapValues(canonicalFiles)), "seed": inputs["seed"] ?? .null, "config": .object(config)]
        if let account { members["account"] = .string(account) }
        let document = JSONValue.object(members)
        return SHA256.hash(data: document.serialized()).map { String(format: "%02x", $0) }.joined()
    }

    /// A file is the same file whatever size or label travels with its handle.
    static func canonicalFiles(_ value: JSONValue) -> JSONValue {
        if let artifact = value["artifact"]?.stringValue { return ["artifact": .string(artifact)] }
        switch value {
        case .array(let items): return .array(items.map(canonicalFiles))
        case .object(let members): return .object(members.mapValues(canonicalFiles))
        default: return value
        }
    }

    /// Cached outputs are only good while their files are still in the store.
    func artifactsPresent(_ value: JSONValue) -> Bool {
        if let handle = value["artifact"]?.stringValue {
            guard let file = try? engine.artifacts.file(forHandle: handle) else { return false }
            return FileManager.default.fileExists(atPath: file.path)
        }
        switch value {
        case .array(let items): return items.allSatisfy(artifactsPresent)
        case .object(let members): return members.values.allSatisfy(artifactsPresent)
        default: return true
        }
    }

    static func errorObject(_ job: JobRecord) -> [String: JSONValue] {
        job.errorJSON.flatMap { try? JSONValue(parsing: Data($0.utf8)) }?.objectValue ?? [:]
    }

    /// What the job's error says about billing; a job that never reached a
    /// definite failure (needs attention, cancelled while running) may have been.
    static func charged(_ job: JobRecord) -> String {
        if job.phase == .failed, let charged = errorObject(job)["charged"]?.stringValue { return charged }
        if job.phase == .cancelled, let outcome = job.cancelOutcomeJSON.flatMap({ try? JSONValue(parsing: Data($0.utf8)) }),
           let charged = outcome["charged"]?.stringValue { return charged }
        return "unknown"
    }

    static func text(_ value: JSONValue) -> String { String(decoding: value.serialized(), as: UTF8.self) }
}

/// Set once a step of the run has failed: from then on the run's steps
/// follow the jobs they already have and buy no new ones.
final class SiblingFailure: @unchecked Sendable {
    private let lock = NSLock()
    private var failed: Bool

    init(_ failed: Bool) { self.failed = failed }
    var isSet: Bool { lock.withLock { failed } }
    func set() { lock.withLock { failed = true } }
}
