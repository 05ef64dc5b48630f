import Foundation
import SwitchyardJSON
import Yams

/// A pipeline file: named steps, each a catalog capability with inputs that may
/// reference the pipeline's inputs and earlier steps' outputs, an engine
/// preference list, quality levels and an optional condition. Written in YAML
/// or JSON (the same document either way); see docs/adr/0010-pipelines.md.
public struct PipelineDefinition: Sendable {
    public static let qualityLevels = ["low", "standard", "pro"]

    public var id: String
    public var title: String
    public var description: String
    public var inputs: [String: PipelineInput]
    /// In file order, so plans and summaries read like the file.
    public var steps: [PipelineStep]
    public var outputs: [String: JSONValue]
    public var defaultQuality: String
    public var safety: [String]
    /// Inputs carrying a real person's face or voice: present ⇒ `consent_given` must be true.
    public var identityInputs: [String]
    public var failureModes: [FailureMode]
    /// Inputs for `yard presets show` and the preset tests; "@samples/x" names a file in Registry/samples.
    public var exampleInputs: [String: JSONValue]
    /// The document as parsed, stored with each run so a resumed run follows the
    /// file it started with even if the file changed since.
    public var document: JSONValue

    public struct FailureMode: Sendable, Codable, Hashable {
        public var code: String
        public var cause: String
        public var remediation: String
    }

    public func step(_ name: String) -> PipelineStep? { steps.first { $0.name == name } }

    /// Steps in an order where every step comes after the steps it depends on.
    public var topologicalOrder: [PipelineStep] {
        var done = Set<String>(), order: [PipelineStep] = []
        while order.count < steps.count {
            guard let next = steps.first(where: { !done.contains($0.name) && $0.dependencies.isSubset(of: done) }) else { break }
            done.insert(next.name)
            order.append(next)
        }
        return order
    }
}

/// A declared pipeline input.
public struct PipelineInput: Sendable, Hashable {
    public enum Kind: String, Sendable, CaseIterable { case file, string, number, integer, boolean, object, array }
    public var name: String
    public var kind: Kind
    public var required: Bool
    public var defaultValue: JSONValue?
    public var mediaTypes: [String]
    public var description: String
}

/// One engine in a step's preference list, with what that engine needs on top
/// of the step's inputs (a model name, a provider-specific option).
public struct EngineChoice: Sendable, Hashable {
    public var engine: String
    public var inputs: [String: JSONValue]
    public var config: [String: JSONValue]
    /// Per quality level, inputs only this engine takes (Kling's `mode: pro`).
    public var quality: [String: [String: JSONValue]] = [:]
}

public struct PipelineStep: Sendable {
    public var name: String
    public var capability: String
    public var engines: [EngineChoice]
    /// Input templates: any string may hold `${…}` references.
    public var inputs: [String: JSONValue]
    /// Per quality level, inputs merged over `inputs`.
    public var quality: [String: [String: JSONValue]]
    public var when: PipelineCondition?
    public var after: [String]
    public var description: String
    /// Steps whose outputs this one references, plus `after`.
    public var dependencies: Set<String>

    /// The inputs for one engine at one quality level, still holding references:
    /// the step's inputs, its quality level, then the engine entry's inputs and
    /// its quality level, each over the one before. A `null` in an engine entry
    /// drops the input for that engine (a knob it cannot take: `{engine: kling,
    /// inputs: {fps: null}}`), so no engine is refused for the preset's own settings.
    public func inputTemplate(quality level: String, engine: EngineChoice) -> [String: JSONValue] {
        var merged = inputs
        merged.merge(quality[level] ?? [:]) { _, new in new }
        merged.merge(engine.inputs) { _, new in new }
        merged.merge(engine.quality[level] ?? [:]) { _, new in new }
        return merged.filter { $0.value != .null }
    }
}

extension PipelineDefinition {
    /// Reads a pipeline file (`.yaml`, `.yml` or `.json`; YAML is a superset, so
    /// any other extension is read as YAML).
    public static func load(_ url: URL) throws -> PipelineDefinition {
        if let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber {
            try DocumentLimits.pipeline.checkSize(size.intValue, source: url.lastPathComponent, field: "FILE")
        }
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw YardError("PIPELINE_NOT_FOUND", "Cannot read the pipeline file \(url.path).",
                            remediation: "Check the path, or name a preset from `yard presets list`.", field: "FILE")
        }
        let text = String(decoding: data, as: UTF8.self)
        if url.pathExtension.lowercased() == "json" {
            do { return try parse(try DocumentLimits.pipeline.parseJSON(data, source: url.lastPathComponent), source: url.lastPathComponent) } catch let error as JSONParseError {
                throw invalid(url.lastPathComponent, "is not valid JSON: \(error)", "Fix the JSON syntax.", field: "$")
            }
        }
        return try parse(yaml: text, source: url.lastPathComponent)
    }

    /// YAML keeps the order of a mapping, which JSON objects here do not: steps
    /// written as a mapping are shown in file order.
    public static func parse(yaml text: String, source: String) throws -> PipelineDefinition {
        let document = try parseYAML(text, source: source)
        let order = ((try? Yams.compose(yaml: text))?["steps"]?.mapping?.keys).map { Array($0.compactMap(\.string)) }
        return try parse(document, source: source, stepOrder: order)
    }

    static func parseYAML(_ text: String, source: String) throws -> JSONValue {
        let loaded: Any?
        try BoundedYAML.check(text, source: source, limits: .pipeline)
        do { loaded = try Yams.load(yaml: text) } catch {
            throw invalid(source, "is not valid YAML: \(error)", "Fix the YAML syntax (quote strings that hold ${…} inside [ ] or { }).", field: "$")
        }
        return yamlValue(loaded as Any)
    }

    static func yamlValue(_ object: Any) -> JSONValue {
        switch object {
        case is NSNull: return .null
        case let b as Bool: return .bool(b)
        case let i as Int: return .number(Double(i))
        case let d as Double: return .number(d)
        case let s as String: return .string(s)
        case let a as [Any]: return .array(a.map(yamlValue))
        case let o as [String: Any]: return .object(o.mapValues(yamlValue))
        case let o as [AnyHashable: Any]:
            return .object(Dictionary(o.map { ("\($0.key)", yamlValue($0.value)) }, uniquingKeysWith: { a, _ in a }))
        case let date as Date: return .string(ISO8601DateFormatter().string(from: date))
        default: return object is Optional<Any> ? .null : .string("\(object)")
        }
    }

    static func invalid(_ source: String, _ message: String, _ fix: String, field: String) -> YardError {
        YardError("PIPELINE_INVALID", "\(source): \(message)", remediation: fix, field: field)
    }

    static let namePattern = try! NSRegularExpression(pattern: "^[a-z][a-z0-9_]{0,63}$")

    static func isName(_ s: String) -> Bool {
        namePattern.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    /// Checks the document's structure: names, references to declared inputs and
    /// existing steps, quality levels, conditions, and that the steps form a DAG.
    public static func parse(_ document: JSONValue, source: String, stepOrder: [String]? = nil) throws -> PipelineDefinition {
        func fail(_ field: String, _ message: String, _ fix: String) -> YardError { invalid(source, message, fix, field: field) }
        guard let root = document.objectValue else { throw fail("$", "a pipeline must be a mapping at the top level.", "Start the file with `id:` and `steps:`.") }
        let known: Set<String> = ["pipeline", "id", "title", "description", "inputs", "steps", "outputs", "quality", "safety", "consent",
                                  "failure_modes", "example_inputs"]
        for key in root.keys where !known.contains(key) {
            throw fail("$.\(key)", "unknown member \(key).", "Use only \(known.sorted().joined(separator: ", ")).")
        }
        if let version = root["pipeline"], version.intValue != 1 {
            throw fail("$.pipeline", "pipeline format \(version) is not understood by this host (it reads 1).", "Write `pipeline: 1`.")
        }
        guard let id = root["id"]?.stringValue, PluginManifest.matches(PluginManifest.idPattern, id) else {
            throw fail("$.id", "id must be 1-64 lower-case letters, digits, '.', '_' or '-'.", "Write e.g. `id: ugc-product-clip`.")
        }

        var inputs: [String: PipelineInput] = [:]
        for (name, spec) in root["inputs"]?.objectValue ?? [:] {
            let field = "$.inputs.\(name)"
            guard isName(name) else { throw fail(field, "input name \(name) must be snake_case.", "Rename it, e.g. product_image.") }
            let object = spec.objectValue ?? ["type": spec]
            guard let kind = PipelineInput.Kind(rawValue: object["type"]?.stringValue ?? "string") else {
                throw fail(field + ".type", "type must be one of \(PipelineInput.Kind.allCases.map(\.rawValue).joined(separator: ", ")).", "Fix the type.")
            }
            inputs[name] = PipelineInput(name: name, kind: kind, required: object["required"]?.boolValue ?? false, defaultValue: object["default"],
                                         mediaTypes: object["media_types"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                                         description: object["description"]?.stringValue ?? "")
        }

        let defaultQuality = root["quality"]?.stringValue ?? "standard"
        guard qualityLevels.contains(defaultQuality) else {
            throw fail("$.quality", "quality \(defaultQuality) is not one of \(qualityLevels.joined(separator: ", ")).", "Write low, standard or pro.")
        }

        func levels(_ value: JSONValue?, field: String) throws -> [String: [String: JSONValue]] {
            var levels: [String: [String: JSONValue]] = [:]
            for (level, overrides) in value?.objectValue ?? [:] {
                guard Self.qualityLevels.contains(level), let map = overrides.objectValue else {
                    throw fail("\(field).\(level)", "quality levels are low, standard and pro, each a mapping of inputs.", "Fix the level.")
                }
                levels[level] = map
            }
            return levels
        }

        guard let stepDocs = root["steps"] else { throw fail("$.steps", "a pipeline needs steps.", "Add `steps:` with at least one step.") }
        // Steps as a mapping (YAML's natural form) or a list of {name: …, …}.
        var stepList: [(String, JSONValue)] = []
        if let list = stepDocs.arrayValue {
            for (i, item) in list.enumerated() {
                guard let name = item["name"]?.stringValue else { throw fail("$.steps[\(i)].name", "every step needs a name.", "Add `name:`.") }
                stepList.append((name, item))
            }
        } else if let map = stepDocs.objectValue {
            let order = (stepOrder ?? []).filter { map[$0] != nil } + map.keys.sorted().filter { !(stepOrder ?? []).contains($0) }
            stepList = order.compactMap { key in map[key].map { (key, $0) } }
        } else {
            throw fail("$.steps", "steps must be a list or a mapping.", "Write each step under `steps:`.")
        }
        guard !stepList.isEmpty else { throw fail("$.steps", "a pipeline needs at least one step.", "Add a step.") }

        let stepNames = Set(stepList.map(\.0))
        guard stepNames.count == stepList.count else { throw fail("$.steps", "two steps share a name.", "Name each step once.") }
        var steps: [PipelineStep] = []
        for (name, doc) in stepList {
            let field = "$.steps.\(name)"
            guard isName(name) else { throw fail(field, "step name \(name) must be snake_case.", "Rename it, e.g. speech.") }
            guard let object = doc.objectValue else { throw fail(field, "a step must be a mapping.", "Give it capability:, engines: and inputs:.") }
            let allowed: Set<String> = ["name", "capability", "engines", "inputs", "quality", "when", "after", "description"]
            for key in object.keys where !allowed.contains(key) {
                throw fail("\(field).\(key)", "unknown member \(key).", "Use only \(allowed.sorted().joined(separator: ", ")).")
            }
            guard let capability = object["capability"]?.stringValue, PluginManifest.matches(PluginManifest.capabilityPattern, capability) else {
                throw fail("\(field).capability", "each step names a catalog capability (area.action).", "Write e.g. `capability: audio.speech`.")
            }
            var engines: [EngineChoice] = []
            for (i, entry) in (object["engines"]?.arrayValue ?? []).enumerated() {
                if let id = entry.stringValue {
                    engines.append(EngineChoice(engine: id, inputs: [:], config: [:]))
                } else if let id = entry["engine"]?.stringValue {
                    engines.append(EngineChoice(engine: id, inputs: entry["inputs"]?.objectValue ?? [:], config: entry["config"]?.objectValue ?? [:],
                                                quality: try levels(entry["quality"], field: "\(field).engines[\(i)].quality")))
                } else {
                    throw fail("\(field).engines[\(i)]", "an engine is an id or {engine: id, inputs: …, config: …, quality: …}.", "Write e.g. `- local-media`.")
                }
            }
            guard !engines.isEmpty else {
                throw fail("\(field).engines", "a step needs at least one engine in its preference list.", "Add `engines: [ENGINE]`; `yard plugin list` shows what offers \(capability).")
            }
            let quality = try levels(object["quality"], field: "\(field).quality")
            let after = object["after"]?.arrayValue?.compactMap(\.stringValue) ?? object["after"]?.stringValue.map { [$0] } ?? []
            let when: PipelineCondition?
            do { when = try object["when"].map { try PipelineCondition(parsing: $0) } } catch let error as PipelineReferenceError {
                throw fail("\(field).when", error.message, "Write e.g. `when: ${inputs.audio}` or `when: ${inputs.mode} == fast`.")
            }
            let templateInputs = object["inputs"]?.objectValue ?? [:]
            var references: [PipelineReference] = when?.references ?? []
            do {
                let engineValues = engines.flatMap { Array($0.inputs.values) + $0.quality.values.flatMap { Array($0.values) } }
                for value in Array(templateInputs.values) + engineValues + quality.values.flatMap({ Array($0.values) }) {
                    references += try PipelineTemplate.references(in: value)
                }
            } catch let error as PipelineReferenceError {
                throw fail("\(field).inputs", error.message, "References look like ${inputs.NAME} or ${steps.STEP.outputs.NAME}.")
            }
            var dependencies = Set(after)
            for reference in references {
                for path in reference.alternatives {
                    switch path.root {
                    case .input(let input) where inputs[input] == nil:
                        throw fail("\(field).inputs", "${inputs.\(input)} refers to an input the pipeline does not declare.", "Declare it under `inputs:` or fix the name.")
                    case .step(let other, _) where !stepNames.contains(other):
                        throw fail("\(field).inputs", "${steps.\(other)…} refers to a step that does not exist.", "Use one of \(stepNames.sorted().joined(separator: ", ")).")
                    case .step(let other, _) where other == name:
                        throw fail("\(field).inputs", "step \(name) refers to its own outputs.", "Refer to an earlier step.")
                    case .step(let other, _): dependencies.insert(other)
                    default: break
                    }
                }
            }
            for other in after where !stepNames.contains(other) {
                throw fail("\(field).after", "after names \(other), which is not a step.", "Use one of \(stepNames.sorted().joined(separator: ", ")).")
            }
            steps.append(PipelineStep(name: name, capability: capability, engines: engines, inputs: templateInputs, quality: quality, when: when,
                                      after: after, description: object["description"]?.stringValue ?? "", dependencies: dependencies))
        }

        var outputs: [String: JSONValue] = [:]
        for (name, value) in root["outputs"]?.objectValue ?? [:] {
            // An output name becomes a file name in --output-dir.
            guard SafePath.isPlainComponent(name), !name.hasPrefix(".") else {
                throw fail("$.outputs.\(SafePath.shown(name))", "the output name \"\(SafePath.shown(name))\" is not a plain file name.",
                           "Name outputs with letters, digits, '-' and '_' (the name becomes a file in --output-dir).")
            }
            let refs: [PipelineReference]
            do { refs = try PipelineTemplate.references(in: value) } catch let error as PipelineReferenceError {
                throw fail("$.outputs.\(name)", error.message, "Write e.g. `video: ${steps.export.outputs.video}`.")
            }
            for path in refs.flatMap(\.alternatives) {
                if case .step(let other, _) = path.root, !stepNames.contains(other) {
                    throw fail("$.outputs.\(name)", "refers to step \(other), which does not exist.", "Use one of \(stepNames.sorted().joined(separator: ", ")).")
                }
            }
            outputs[name] = value
        }

        let identity = root["consent"]?["identity_inputs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        for name in identity where inputs[name] == nil {
            throw fail("$.consent.identity_inputs", "\(name) is not a declared input.", "List declared inputs only.")
        }
        if !identity.isEmpty, inputs["consent_given"]?.kind != .boolean {
            throw fail("$.inputs.consent_given", "a pipeline with identity inputs must declare a boolean consent_given input.",
                       "Add `consent_given: {type: boolean}` under inputs.")
        }
        var failureModes: [FailureMode] = []
        for (i, mode) in (root["failure_modes"]?.arrayValue ?? []).enumerated() {
            guard let code = mode["code"]?.stringValue, let remediation = mode["remediation"]?.stringValue else {
                throw fail("$.failure_modes[\(i)]", "a failure mode needs code and remediation.", "Write {code: AUTH_MISSING, cause: …, remediation: …}.")
            }
            failureModes.append(FailureMode(code: code, cause: mode["cause"]?.stringValue ?? "", remediation: remediation))
        }

        var definition = PipelineDefinition(
            id: id, title: root["title"]?.stringValue ?? id, description: root["description"]?.stringValue ?? "", inputs: inputs, steps: steps,
            outputs: outputs, defaultQuality: defaultQuality, safety: root["safety"]?.arrayValue?.compactMap(\.stringValue) ?? [],
            identityInputs: identity, failureModes: failureModes, exampleInputs: root["example_inputs"]?.objectValue ?? [:], document: document)
        let ordered = definition.topologicalOrder
        if ordered.count < steps.count {
            let stuck = steps.map(\.name).filter { name in !ordered.contains { $0.name == name } }
            throw fail("$.steps", "the steps \(stuck.joined(separator: ", ")) depend on each other in a cycle.", "Break the cycle: a step can only use outputs of steps that do not need it.")
        }
        // File order where the file gives one; dependencies always first.
        definition.steps = ordered
        return definition
    }

}

extension PipelineDefinition {
    /// The same pipeline with `preferences` (step → engine) put first in those
    /// steps' engine lists (`yard plan|run --prefer STEP=ENGINE`). An engine
    /// the list names keeps its entry (and the preset's mapping of knobs for
    /// it); another is added in front as a bare id. The document changes too,
    /// so a resumed run follows the same order.
    public func preferring(_ preferences: [String: String]) throws -> PipelineDefinition {
        guard !preferences.isEmpty else { return self }
        guard var root = document.objectValue, let stepsDoc = root["steps"] else { return self }
        func reorder(_ entries: JSONValue?, engine: String) -> JSONValue {
            let list = entries?.arrayValue ?? []
            let named = { (entry: JSONValue) in (entry.stringValue ?? entry["engine"]?.stringValue) == engine }
            return .array([list.first(where: named) ?? .string(engine)] + list.filter { !named($0) })
        }
        for (name, engine) in preferences.sorted(by: { $0.key < $1.key }) {
            guard step(name) != nil else {
                throw YardError(.usage, "\(id) has no step \(name) (--prefer \(name)=\(engine)).",
                                remediation: "Use one of \(steps.map(\.name).joined(separator: ", ")).", field: "--prefer")
            }
            guard PluginManifest.matches(PluginManifest.idPattern, engine) else {
                throw YardError(.usage, "\(engine) is not an engine id (--prefer \(name)=\(engine)).", remediation: "`yard plugin list` shows the engine ids.", field: "--prefer")
            }
        }
        if var map = stepsDoc.objectValue {
            for (name, engine) in preferences {
                guard var step = map[name]?.objectValue else { continue }
                step["engines"] = reorder(step["engines"], engine: engine)
                map[name] = .object(step)
            }
            root["steps"] = .object(map)
        } else if let list = stepsDoc.arrayValue {
            root["steps"] = .array(list.map { item in
                guard let name = item["name"]?.stringValue, let engine = preferences[name], var step = item.objectValue else { return item }
                step["engines"] = reorder(step["engines"], engine: engine)
                return .object(step)
            })
        }
        return try Self.parse(.object(root), source: id, stepOrder: steps.map(\.name))
    }

    /// `STEP=ENGINE` pairs as the command line gives them.
    public static func preferences(_ pairs: [String]) throws -> [String: String] {
        var result: [String: String] = [:]
        for pair in pairs {
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw YardError(.usage, "--prefer takes STEP=ENGINE, got \(pair).", remediation: "Write e.g. --prefer motion=kling.", field: "--prefer")
            }
            result[parts[0]] = parts[1]
        }
        return result
    }
}
