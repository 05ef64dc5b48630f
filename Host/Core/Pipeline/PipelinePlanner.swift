import Foundation
import SwitchyardJSON

/// `yard plan`: checks a pipeline end to end before anything runs or is spent —
/// the given inputs against the declared ones and the consent rule, every
/// step's inputs against the outputs that feed them (types and media types),
/// then each step's engines through the job engine's pre-flight, in preference
/// order, until one passes. Later steps are pre-flighted with stand-ins for
/// outputs that do not exist yet.
public struct PipelinePlanner: Sendable {
    public let engine: JobEngine
    public let configs: EngineConfigs

    public init(engine: JobEngine, configs: EngineConfigs) {
        self.engine = engine
        self.configs = configs
    }

    /// Defaults applied, declared types checked, consent enforced.
    public static func prepareInputs(_ definition: PipelineDefinition, given: [String: JSONValue]) -> (values: [String: JSONValue], findings: [PlanFinding]) {
        var values: [String: JSONValue] = [:]
        var findings: [PlanFinding] = []
        for name in given.keys.sorted() where definition.inputs[name] == nil {
            findings.append(PlanFinding(step: nil, code: "INPUT_UNKNOWN", message: "\(definition.id) has no input \(name)." + NameSuggestion.sentence(for: name, among: Array(definition.inputs.keys)),
                                        remediation: "Use one of \(definition.inputs.keys.sorted().joined(separator: ", ")).", field: "--input \(name)"))
        }
        for (name, input) in definition.inputs.sorted(by: { $0.key < $1.key }) {
            guard let value = given[name] ?? input.defaultValue, !value.isNull else {
                if input.required {
                    findings.append(PlanFinding(step: nil, code: "INPUT_MISSING", message: "\(definition.id) needs the input \(name)\(input.description.isEmpty ? "" : " (\(input.description))").",
                                                remediation: input.kind == .file ? "Pass --input \(name)=@path/to/file." : "Pass --input \(name)=VALUE.", field: "--input \(name)"))
                }
                continue
            }
            if let problem = Self.kindProblem(value, input) {
                findings.append(PlanFinding(step: nil, code: "INPUT_INVALID", message: "input \(name): \(problem)",
                                            remediation: input.kind == .file ? "Pass --input \(name)=@path/to/file." : "Pass a \(input.kind.rawValue) for \(name).", field: "--input \(name)"))
                continue
            }
            values[name] = value
        }
        if let used = definition.identityInputs.first(where: { values[$0] != nil }), values["consent_given"]?.boolValue != true {
            findings.append(PlanFinding(step: nil, code: "CONSENT_MISSING", message: "\(used) carries a real person's likeness or voice, and consent_given is not true.",
                                        remediation: "Confirm you have the person's consent and pass --input consent_given=true.", field: "--input consent_given"))
        }
        return (values, findings)
    }

    static func kindProblem(_ value: JSONValue, _ input: PipelineInput) -> String? {
        switch input.kind {
        case .file:
            guard value["artifact"]?.stringValue != nil || value["url"]?.stringValue != nil else { return "expected a file (an artifact or a URL)." }
            if let type = value["media_type"]?.stringValue, !input.mediaTypes.isEmpty, !input.mediaTypes.contains(type) {
                return "the file is \(type); accepted: \(input.mediaTypes.joined(separator: ", "))."
            }
        case .string: if value.stringValue == nil { return "expected text." }
        case .number: if value.doubleValue == nil { return "expected a number." }
        case .integer: if !value.isInteger { return "expected a whole number." }
        case .boolean: if value.boolValue == nil { return "expected true or false." }
        case .array: if value.arrayValue == nil { return "expected a list." }
        case .object: if value.objectValue == nil { return "expected a mapping." }
        }
        return nil
    }

    /// A small file in the artifact store stands in for step outputs during planning.
    func placeholderFile(_ mediaType: String) -> JSONValue {
        let bytes = Data("switchyard plan: stand-in for a step output that does not exist yet\n".utf8)
        let digest = (try? engine.artifacts.put(bytes, mediaType: "text/plain")) ?? String(repeating: "0", count: 64)
        return .object(["artifact": .string("sha256:\(digest)"), "media_type": .string(mediaType), "size": .number(Double(bytes.count))])
    }

    /// `billing` is whose credits and budgets the run would use: the funds checks are that account's.
    public func plan(_ definition: PipelineDefinition, inputs given: [String: JSONValue], quality: String? = nil, billing: BillingScope? = nil) async -> PipelinePlan {
        let level = quality ?? definition.defaultQuality
        var (inputs, findings) = Self.prepareInputs(definition, given: given)
        if !PipelineDefinition.qualityLevels.contains(level) {
            findings.append(PlanFinding(step: nil, code: "USAGE", message: "quality \(level) is not low, standard or pro.", remediation: "Pass --quality low|standard|pro.", field: "--quality"))
        }
        let scope = PipelineScope(inputs: inputs, quality: level)
        var skipped = Set<String>()
        var steps: [StepPlan] = []
        var missing: [MissingSecret] = []
        var unhealthy: [UnhealthyEngine] = []
        var total = 0, currency: String?
        // An engine found offline or unreachable is probed once per plan, not once per step.
        var offline: [String: EngineAttempt] = [:]

        for step in definition.steps {
            var plan = StepPlan(name: step.name, capability: step.capability, dependsOn: step.dependencies.sorted(), condition: step.when?.description,
                                runs: .yes, engine: nil, attempts: [], estimate: nil, inputs: [:])
            if let when = step.when {
                if when.dependsOnSteps { plan.runs = .conditional } else if !when.evaluate(in: scope) { plan.runs = .no }
            }
            // A reference whose every alternative is a skipped step has no value.
            let references = step.inputs.values.flatMap { (try? PipelineTemplate.references(in: $0)) ?? [] }
            if plan.runs == .yes, references.contains(where: { r in r.alternatives.allSatisfy { path in
                if case .step(let name, _) = path.root { return skipped.contains(name) } else { return false } } }) {
                plan.runs = .conditional
            }
            guard let entry = engine.catalog.entries[step.capability] else {
                findings.append(PlanFinding(step: step.name, code: "CAPABILITY_UNCATALOGUED", message: "\(step.capability) is not in the capability catalog.",
                                            remediation: "Use a capability from Registry/capabilities (yard plugin list shows who offers what).", field: "$.steps.\(step.name).capability"))
                steps.append(plan)
                continue
            }
            if plan.runs == .no {
                skipped.insert(step.name)
                steps.append(plan)
                continue
            }
            for (index, choice) in step.engines.enumerated() {
                var fit = StepTypeFit(definition: definition, catalog: engine.catalog, scope: scope, skipped: skipped, placeholderFile: placeholderFile)
                var resolved: [String: JSONValue] = [:]
                let schema = entry.input.document
                for (key, template) in step.inputTemplate(quality: level, engine: choice).sorted(by: { $0.key < $1.key }) {
                    let (property, known) = StepTypeFit.propertySchema(key, of: schema)
                    if !known {
                        fit.findings.append(PlanFinding(step: step.name, code: "UNKNOWN_INPUT", message: "\(step.capability) has no input \(key).",
                                                        remediation: "Use one of \(schema["properties"]?.objectValue?.keys.sorted().joined(separator: ", ") ?? "its inputs").",
                                                        field: "$.steps.\(step.name).inputs.\(key)"))
                    }
                    if let value = fit.walk(template, schema: property, root: schema, step: step.name, field: "$.steps.\(step.name).inputs.\(key)") {
                        resolved[key] = value
                    }
                }
                // Type problems are the file's, not the engine's: report them once.
                if index == 0 { findings += fit.findings } else { findings += fit.findings.filter { !findings.contains($0) } }
                if index == 0 { plan.inputs = resolved }
                guard !fit.findings.contains(where: { $0.severity == .error }) else { continue }
                if plan.engine != nil { continue }

                let config: [String: JSONValue]
                do { config = try configs.config(for: choice.engine, overrides: choice.config) } catch let error as YardError {
                    plan.attempts.append(EngineAttempt(engine: choice.engine, ok: false, code: error.code.rawValue, message: error.message, remediation: error.remediation))
                    continue
                } catch { continue }
                if let known = offline[choice.engine] {
                    plan.attempts.append(known)
                    continue
                }
                // Inputs an earlier step will supply are stand-ins here: pre-flight sets
                // findings on them aside and still checks secrets, config and health.
                let deferred = fit.deferredFields.map { $0.replacingOccurrences(of: "$.steps.\(step.name).inputs", with: "$.inputs") }
                var spec = JobSpec(pluginID: choice.engine, capability: step.capability, inputs: resolved, config: config)
                spec.billing = billing
                spec.deferredFields = deferred
                let verdict = await engine.preflight(spec)
                if let first = verdict.findings.first(where: { $0.severity == .error }) {
                    plan.attempts.append(EngineAttempt(engine: choice.engine, ok: false, code: first.code, message: first.message, remediation: first.remediation))
                    if first.code == "AUTH_MISSING" { missing.append(MissingSecret(engine: choice.engine, secret: first.field ?? "?", step: step.name)) }
                    if first.step == "health" { unhealthy.append(UnhealthyEngine(engine: choice.engine, code: first.code, message: first.message)) }
                    if first.step == "health" || ["ENGINE_OFFLINE", "ENGINE_UNREACHABLE", "ENGINE_UNAVAILABLE"].contains(first.code) {
                        offline[choice.engine] = plan.attempts.last
                    }
                    continue
                }
                // What the producers' output schemas still tell about those inputs.
                let judged = judgeDeferred(step: step, engineID: choice.engine, fields: deferred, fit: fit, verdict: verdict, planned: steps, entry: entry)
                if let (field, reason) = judged.never.first {
                    plan.attempts.append(EngineAttempt(engine: choice.engine, ok: false, code: "CONTRACT_MISMATCH", message: "\(field): \(reason), so it can never run this step.",
                                                       remediation: "Prefer another engine for \(step.name), or feed \(field) from an output that fits."))
                    continue
                }
                plan.attempts.append(EngineAttempt(engine: choice.engine, ok: true, checkedWhenRun: judged.atRun.isEmpty ? nil : judged.atRun.map { "\($0.0): \($0.1)" }))
                plan.engine = choice.engine
                plan.inputs = resolved
                plan.estimate = verdict.estimate
                if let estimate = verdict.estimate {
                    total += estimate.amountMinor
                    currency = currency ?? estimate.currency
                }
            }
            if plan.engine == nil && !findings.contains(where: { $0.step == step.name && $0.severity == .error }) {
                findings.append(PlanFinding(step: step.name, code: "NO_ENGINE", message: "No engine in \(step.name)'s preference list can run \(step.capability): "
                                            + plan.attempts.map { "\($0.engine): \($0.code ?? "?")" }.joined(separator: "; ") + ".",
                                            remediation: plan.attempts.compactMap(\.remediation).first ?? "Install an engine that offers \(step.capability).",
                                            field: "$.steps.\(step.name).engines", severity: plan.runs == .yes ? .error : .warning))
            }
            steps.append(plan)
        }
        let structural = findings.filter { $0.severity == .error && $0.code != "NO_ENGINE" }
        let valid = structural.isEmpty
        let ready = valid && !findings.contains { $0.code == "NO_ENGINE" && $0.severity == .error }
        return PipelinePlan(pipeline: definition.id, title: definition.title, quality: level, valid: valid, ready: ready, findings: findings, steps: steps,
                            missingSecrets: Array(Set(missing)).sorted { ($0.step, $0.engine) < ($1.step, $1.engine) },
                            unhealthyEngines: Array(Set(unhealthy)).sorted { $0.engine < $1.engine },
                            estimate: CostEstimateInfo(amountMinor: total, currency: currency ?? "USD", basis: "sum of the chosen engines' estimates"))
    }
}

extension PipelinePlanner {
    /// Each input an earlier step supplies: never fits (the engine can never take
    /// what the producer makes), or checked when the step runs; fields that
    /// always fit are not listed.
    func judgeDeferred(step: PipelineStep, engineID: String, fields: [String], fit: StepTypeFit, verdict: PreflightVerdict, planned: [StepPlan],
                       entry: CapabilityCatalog.Entry) -> (never: [(String, String)], atRun: [(String, String)]) {
        var never: [(String, String)] = [], atRun: [(String, String)] = []
        let manifest = try? engine.plugin(engineID).manifest
        let declared = manifest?.capabilities.first { $0.id == step.capability }
        let model = declared?.models?.first { $0.id == verdict.model }
        var seen = Set<String>()
        for field in fields where seen.insert(field).inserted {
            let name = String(field.dropFirst("$.inputs.".count))
            guard let source = fit.deferredSources["$.steps.\(step.name).inputs" + field.dropFirst("$.inputs".count)] else {
                atRun.append((name, "made by an earlier step; checked when the step runs"))
                continue
            }
            var producer = [StepTypeFit.dereference(source.schema, root: source.root)]
            // The producing engine's own promise (plugin.json `outputs`) narrows the catalog's.
            if let producerEngine = planned.first(where: { $0.name == source.step })?.engine,
               let producerCapability = planned.first(where: { $0.name == source.step })?.capability,
               let outputs = (try? engine.plugin(producerEngine))?.manifest.capabilities.first(where: { $0.id == producerCapability })?.outputs,
               let narrowed = DeferredFit.schema(at: source.members, in: outputs, root: outputs) {
                producer.append(StepTypeFit.dereference(narrowed, root: outputs))
            }
            let segments = DeferredFit.segments(ofInputField: field)
            var consumer: [JSONValue] = []
            let catalogDocument = entry.input.document
            if let property = DeferredFit.schema(at: segments, in: catalogDocument, root: catalogDocument) { consumer.append(StepTypeFit.dereference(property, root: catalogDocument)) }
            for limits in [declared?.limits, model?.limits].compactMap({ $0 }) {
                if let property = DeferredFit.schema(at: segments, in: limits, root: limits) { consumer.append(StepTypeFit.dereference(property, root: limits)) }
            }
            switch DeferredFit.judge(producer: producer, producerRoot: .null, consumer: consumer, consumerRoot: .null, source: source.reference, engine: engineID) {
            case .fits: break
            case .never(let reason): never.append((name, reason))
            case .atRun(let reason): atRun.append((name, "\(reason); checked when the step runs"))
            }
        }
        return (never, atRun)
    }
}

/// Engine configuration: $YARD_HOME/config/ENGINE.json, with overrides on top
/// (a step's `engines: [{engine, config}]`, or `yard run --config`).
public struct EngineConfigs: Sendable {
    public let paths: YardPaths

    public init(paths: YardPaths) { self.paths = paths }

    public func config(for engine: String, overrides: [String: JSONValue] = [:]) throws -> [String: JSONValue] {
        var merged: [String: JSONValue] = [:]
        let file = paths.home.appendingPathComponent("config/\(engine).json")
        if let data = FileManager.default.contents(atPath: file.path) {
            guard let object = (try? JSONValue(parsing: data))?.objectValue else {
                throw YardError("CONFIG_INVALID", "\(file.path) is not a JSON object.", remediation: "Fix or remove the file.", field: file.path)
            }
            merged = object
        }
        merged.merge(overrides) { _, new in new }
        return merged
    }
}
