import Foundation
import SwitchyardJSON

/// What a value is, as far as connecting steps is concerned: a file with its
/// possible media types, or a JSON type.
struct ValueShape: Equatable, CustomStringConvertible {
    enum Kind: String { case file, string, number, integer, boolean, array, object, unknown }
    var kind: Kind
    var mediaTypes: [String]

    var description: String { kind == .file && !mediaTypes.isEmpty ? "file (\(mediaTypes.joined(separator: ", ")))" : kind.rawValue }

    /// The shape a catalog schema property describes (`$ref` to `#/$defs/file` is a file).
    init(schema: JSONValue, root: JSONValue) {
        mediaTypes = schema["x-media-types"]?.arrayValue?.compactMap(\.stringValue) ?? []
        if let ref = schema["$ref"]?.stringValue {
            if ref.hasSuffix("/file") { kind = .file; return }
            let name = String(ref.split(separator: "/").last ?? "")
            if let target = root["$defs"]?[name] { self = ValueShape(schema: target, root: root); return }
        }
        if !mediaTypes.isEmpty { kind = .file; return }
        if let type = schema["type"]?.stringValue, let k = Kind(rawValue: type) { kind = k; return }
        if let first = (schema["enum"]?.arrayValue ?? schema["const"].map { [$0] })?.first {
            switch first {
            case .string: kind = .string
            case .number: kind = first.isInteger ? .integer : .number
            case .bool: kind = .boolean
            default: kind = .unknown
            }
            return
        }
        kind = .unknown
    }

    init(kind: Kind, mediaTypes: [String] = []) {
        self.kind = kind
        self.mediaTypes = mediaTypes
    }

    init(input: PipelineInput) {
        kind = Kind(rawValue: input.kind.rawValue) ?? .unknown
        mediaTypes = input.mediaTypes
    }
}

/// Walks a step's input template together with the capability's input schema:
/// checks that every reference's producer fits the property it feeds (file into
/// file with overlapping x-media-types, number into number, …) and builds the
/// inputs for pre-flight, with stand-in values for outputs not produced yet.
struct StepTypeFit {
    let definition: PipelineDefinition
    let catalog: CapabilityCatalog
    let scope: PipelineScope
    let skipped: Set<String>
    /// Builds a stand-in for a file a step has not produced yet.
    let placeholderFile: (String) -> JSONValue

    var findings: [PlanFinding] = []
    /// Fields whose values are stand-ins: pre-flight findings on them are not real.
    var deferredFields: [String] = []
    /// For each deferred field fed by one step output, that output's schema (what the plan can still check).
    var deferredSources: [String: DeferredFit.Source] = [:]

    init(definition: PipelineDefinition, catalog: CapabilityCatalog, scope: PipelineScope, skipped: Set<String>, placeholderFile: @escaping (String) -> JSONValue) {
        self.definition = definition
        self.catalog = catalog
        self.scope = scope
        self.skipped = skipped
        self.placeholderFile = placeholderFile
    }

    /// The producer's shape for one reference path.
    func shape(of path: ReferencePath, step: String, field: String) -> (ValueShape?, PlanFinding?) {
        switch path.root {
        case .quality: return (ValueShape(kind: .string), nil)
        case .input(let name):
            return (definition.inputs[name].map(ValueShape.init(input:)), nil)
        case .step(let producer, let members):
            guard let producerStep = definition.step(producer) else { return (nil, nil) }
            guard let entry = catalog.entries[producerStep.capability], let output = entry.output else { return (nil, nil) }
            let properties = output.document["properties"]?.objectValue ?? [:]
            guard let property = properties[members[0]] else {
                return (nil, PlanFinding(step: step, code: "UNKNOWN_OUTPUT",
                                         message: "\(field) uses steps.\(producer).outputs.\(members[0]), but \(producerStep.capability) has no output \(members[0]).",
                                         remediation: "Use one of \(properties.keys.sorted().joined(separator: ", ")).", field: field))
            }
            // Deeper paths (images.0.file) follow items and properties.
            var schema = property
            for member in members.dropFirst() {
                schema = Self.dereference(schema, root: output.document)
                guard let next = Int(member) != nil ? schema["items"] : schema["properties"]?[member] else {
                    return (nil, PlanFinding(step: step, code: "UNKNOWN_OUTPUT", message: "\(field) uses steps.\(producer).outputs.\(members.joined(separator: ".")), which \(producerStep.capability)'s outputs do not have.",
                                             remediation: "Check the output's structure in Registry/capabilities/\(producerStep.capability).json.", field: field))
                }
                schema = next
            }
            return (ValueShape(schema: schema, root: output.document), nil)
        }
    }

    /// A local `$ref` other than the file shape, followed once.
    static func dereference(_ schema: JSONValue, root: JSONValue) -> JSONValue {
        guard let ref = schema["$ref"]?.stringValue, !ref.hasSuffix("/file"), let name = ref.split(separator: "/").last,
              let target = root["$defs"]?[String(name)] else { return schema }
        return target
    }

    /// Producer → consumer compatibility.
    func compare(_ producer: ValueShape, _ consumer: ValueShape, reference: String, step: String, field: String) -> PlanFinding? {
        if producer.kind == .unknown || consumer.kind == .unknown { return nil }
        let numeric: Set<ValueShape.Kind> = [.number, .integer]
        if producer.kind == consumer.kind || (numeric.contains(producer.kind) && consumer.kind == .number) {
            guard producer.kind == .file, !producer.mediaTypes.isEmpty, !consumer.mediaTypes.isEmpty else { return nil }
            let common = producer.mediaTypes.filter(consumer.mediaTypes.contains)
            if common.isEmpty {
                return PlanFinding(step: step, code: "TYPE_MISMATCH",
                                   message: "\(field) accepts \(consumer), but \(reference) is \(producer).",
                                   remediation: "Feed \(field) from an output of a matching media type, or add a conversion step.", field: field)
            }
            if common.count < producer.mediaTypes.count {
                return PlanFinding(step: step, code: "MEDIA_TYPE_MAY_MISMATCH",
                                   message: "\(reference) may be \(producer.mediaTypes.filter { !consumer.mediaTypes.contains($0) }.joined(separator: ", ")), which \(field) does not accept.",
                                   remediation: "Prefer engines that produce \(common.joined(separator: ", ")) for the producing step.", field: field, severity: .warning)
            }
            return nil
        }
        if producer.kind == .number && consumer.kind == .integer {
            return PlanFinding(step: step, code: "TYPE_MAY_MISMATCH", message: "\(field) takes an integer; \(reference) is a number that may have a fraction.",
                               remediation: "Make sure the producer yields whole numbers.", field: field, severity: .warning)
        }
        return PlanFinding(step: step, code: "TYPE_MISMATCH", message: "\(field) takes \(consumer), but \(reference) is \(producer).",
                           remediation: "Feed \(field) from an output of type \(consumer.kind.rawValue).", field: field)
    }

    /// A stand-in value for an output that does not exist yet, shaped for the consumer.
    func placeholder(producer: ValueShape, consumerSchema: JSONValue?, consumer: ValueShape) -> JSONValue {
        if producer.kind == .file || consumer.kind == .file {
            let type = producer.mediaTypes.first(where: consumer.mediaTypes.contains) ?? consumer.mediaTypes.first ?? producer.mediaTypes.first ?? "application/octet-stream"
            return placeholderFile(type)
        }
        let schema = consumerSchema ?? .null
        if let first = schema["enum"]?.arrayValue?.first { return first }
        if let constant = schema["const"] { return constant }
        switch consumer.kind == .unknown ? producer.kind : consumer.kind {
        case .number, .integer:
            var value = schema["minimum"]?.doubleValue ?? schema["exclusiveMinimum"].flatMap(\.doubleValue).map { $0 + 1 } ?? 1
            if let max = schema["maximum"]?.doubleValue { value = min(value, max) }
            return .number(consumer.kind == .integer ? value.rounded(.up) : value)
        case .boolean: return .bool(true)
        case .array: return .array([])
        case .object: return .object([:])
        default: return .string(String(repeating: "x", count: max(1, schema["minLength"]?.intValue ?? 1)))
        }
    }

    /// The catalog schema of input member `key` of `capability` (nil when open or unknown).
    static func propertySchema(_ key: String, of document: JSONValue) -> (JSONValue?, known: Bool) {
        if let property = document["properties"]?[key] { return (property, true) }
        return (nil, document["additionalProperties"]?.boolValue != false)
    }

    /// Walks one input value. Returns the value for pre-flight (nil = absent).
    mutating func walk(_ template: JSONValue, schema: JSONValue?, root: JSONValue, step: String, field: String) -> JSONValue? {
        let consumer = schema.map { ValueShape(schema: $0, root: root) } ?? ValueShape(kind: .unknown)
        if let reference = PipelineTemplate.wholeReference(template) {
            var value: JSONValue?
            for path in reference.alternatives {
                let (producerShape, problem) = shape(of: path, step: step, field: field)
                if let problem { findings.append(problem); continue }
                if let producerShape, let mismatch = compare(producerShape, consumer, reference: "${\(path)}", step: step, field: field) {
                    findings.append(mismatch)
                }
                guard value == nil else { continue }
                switch path.root {
                case .step(let producer, let members) where !skipped.contains(producer):
                    value = placeholder(producer: producerShape ?? ValueShape(kind: .unknown), consumerSchema: schema, consumer: consumer)
                    deferredFields.append(field)
                    if let producerStep = definition.step(producer), let output = catalog.entries[producerStep.capability]?.output,
                       let property = DeferredFit.schema(at: members, in: output.document, root: output.document) {
                        deferredSources[field] = DeferredFit.Source(step: producer, reference: "steps.\(producer).outputs.\(members.joined(separator: "."))",
                                                                    members: members, schema: property, root: output.document)
                    }
                case .step: break
                default: value = scope.value(of: PipelineReference(path: path))
                }
            }
            return value
        }
        switch template {
        case .string(let text):
            guard text.contains("${") else { return template }
            if consumer.kind != .unknown && consumer.kind != .string {
                findings.append(PlanFinding(step: step, code: "TYPE_MISMATCH", message: "\(field) takes \(consumer), but \"\(text)\" is text.",
                                            remediation: "Use a single ${…} reference for non-text inputs.", field: field))
            }
            let references = (try? PipelineTemplate.references(in: template)) ?? []
            if references.contains(where: { !$0.stepDependencies.isEmpty }) { deferredFields.append(field) }
            var planningScope = scope
            for name in Set(references.flatMap(\.stepDependencies)) where !skipped.contains(name) && planningScope.stepOutputs[name] == nil {
                planningScope.stepOutputs[name] = [:]
            }
            return (try? PipelineTemplate.resolve(template, in: planningScope)) ?? template
        case .array(let items):
            let itemSchema = schema.map { Self.dereference($0, root: root) }?["items"]
            return .array(items.enumerated().compactMap { i, item in walk(item, schema: itemSchema, root: root, step: step, field: "\(field)[\(i)]") })
        case .object(let members):
            var result: [String: JSONValue] = [:]
            for (key, value) in members {
                if let v = walk(value, schema: schema.map { Self.dereference($0, root: root) }?["properties"]?[key], root: root, step: step, field: "\(field).\(key)") { result[key] = v }
            }
            return .object(result)
        default:
            return template
        }
    }
}

extension PipelineReference {
    init(path: ReferencePath) { alternatives = [path] }
}
