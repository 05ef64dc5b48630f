import Foundation
import SwitchyardJSON

public struct PipelineReferenceError: Error, Sendable {
    public var message: String
}

/// One path a reference can name: `inputs.NAME`, `steps.STEP.outputs.NAME[.member…]` or `quality`.
public struct ReferencePath: Sendable, Hashable, CustomStringConvertible {
    public enum Root: Sendable, Hashable {
        case input(String)
        /// Step name and the path inside its outputs (at least one member).
        case step(String, [String])
        case quality
    }
    public var root: Root

    public var description: String {
        switch root {
        case .input(let name): return "inputs.\(name)"
        case .step(let step, let path): return "steps.\(step).outputs.\(path.joined(separator: "."))"
        case .quality: return "quality"
        }
    }

    init(parsing text: String) throws {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        switch parts.first {
        case "inputs" where parts.count == 2 && !parts[1].isEmpty: root = .input(parts[1])
        case "steps" where parts.count >= 4 && parts[2] == "outputs" && !parts[1].isEmpty && parts[3...].allSatisfy({ !$0.isEmpty }):
            root = .step(parts[1], Array(parts[3...]))
        case "quality" where parts.count == 1: root = .quality
        default:
            throw PipelineReferenceError(message: "${\(text)} is not a reference; write ${inputs.NAME}, ${steps.STEP.outputs.NAME} or ${quality}.")
        }
    }
}

/// `${a ?? b}`: the first alternative that has a value (a skipped step's
/// outputs and an absent optional input have none).
public struct PipelineReference: Sendable, Hashable, CustomStringConvertible {
    public var alternatives: [ReferencePath]
    public var description: String { "${" + alternatives.map(\.description).joined(separator: " ?? ") + "}" }

    init(parsing body: String) throws {
        alternatives = try body.components(separatedBy: "??").map { try ReferencePath(parsing: $0) }
    }

    public var stepDependencies: [String] {
        alternatives.compactMap { if case .step(let name, _) = $0.root { return name } else { return nil } }
    }
}

/// What references resolve against while a pipeline runs (or is planned).
public struct PipelineScope: Sendable {
    public var inputs: [String: JSONValue]
    /// Outputs of finished steps; a skipped step has no entry.
    public var stepOutputs: [String: [String: JSONValue]]
    public var quality: String

    public init(inputs: [String: JSONValue], stepOutputs: [String: [String: JSONValue]] = [:], quality: String) {
        self.inputs = inputs
        self.stepOutputs = stepOutputs
        self.quality = quality
    }

    public func value(of reference: PipelineReference) -> JSONValue? {
        for path in reference.alternatives {
            if let value = value(of: path), !value.isNull { return value }
        }
        return nil
    }

    func value(of path: ReferencePath) -> JSONValue? {
        switch path.root {
        case .input(let name): return inputs[name]
        case .quality: return .string(quality)
        case .step(let step, let members):
            var current: JSONValue? = stepOutputs[step].map { .object($0) }
            for member in members {
                if let index = Int(member), let items = current?.arrayValue { current = index < items.count ? items[index] : nil } else { current = current?[member] }
            }
            return current
        }
    }
}

/// Strings in step inputs may hold `${…}` references. A string that is exactly
/// one reference becomes the referenced value, typed (a file stays a file); a
/// reference inside longer text is interpolated. `$${` writes a literal `${`.
public enum PipelineTemplate {
    enum Segment: Equatable {
        case literal(String)
        case reference(PipelineReference)
    }

    static func segments(_ text: String) throws -> [Segment] {
        var segments: [Segment] = []
        var literal = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            if rest[..<start.lowerBound].hasSuffix("$") {
                literal += rest[..<rest.index(before: start.lowerBound)] + "${"
                rest = rest[start.upperBound...]
                continue
            }
            literal += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                throw PipelineReferenceError(message: "\"\(text)\" opens ${ without a closing }.")
            }
            if !literal.isEmpty { segments.append(.literal(literal)); literal = "" }
            segments.append(.reference(try PipelineReference(parsing: String(rest[start.upperBound..<end]))))
            rest = rest[rest.index(after: end)...]
        }
        literal += rest
        if !literal.isEmpty { segments.append(.literal(literal)) }
        return segments
    }

    public static func references(in value: JSONValue) throws -> [PipelineReference] {
        switch value {
        case .string(let s): return try segments(s).compactMap { if case .reference(let r) = $0 { return r } else { return nil } }
        case .array(let items): return try items.flatMap(references(in:))
        case .object(let members): return try members.values.flatMap(references(in:))
        default: return []
        }
    }

    /// The reference a value consists of entirely, if it is one.
    public static func wholeReference(_ value: JSONValue) -> PipelineReference? {
        guard let s = value.stringValue, let segments = try? segments(s), segments.count == 1, case .reference(let r) = segments[0] else { return nil }
        return r
    }

    /// The value with references replaced; nil when it is a whole reference that has no value.
    public static func resolve(_ value: JSONValue, in scope: PipelineScope) throws -> JSONValue? {
        switch value {
        case .string(let s):
            let parts = try segments(s)
            if parts.count == 1, case .reference(let r) = parts[0] { return scope.value(of: r) }
            var text = ""
            for part in parts {
                switch part {
                case .literal(let l): text += l
                case .reference(let r):
                    switch scope.value(of: r) {
                    case nil, .null?: break
                    case .string(let v)?: text += v
                    case .number(let n)?: text += n.rounded() == n && abs(n) < 1e15 ? String(Int(n)) : String(n)
                    case .bool(let b)?: text += b ? "true" : "false"
                    default: throw PipelineReferenceError(message: "\(r) is a file or a structure; it cannot be written inside text \"\(s)\".")
                    }
                }
            }
            return .string(text)
        case .array(let items): return .array(try items.compactMap { try resolve($0, in: scope) })
        case .object(let members): return .object(try members.compactMapValues { try resolve($0, in: scope) })
        default: return value
        }
    }

    public static func resolve(inputs: [String: JSONValue], in scope: PipelineScope) throws -> [String: JSONValue] {
        try inputs.compactMapValues { try resolve($0, in: scope) }
    }
}

/// `when:` — `${ref}` (has a value that is not false, 0, "" or empty),
/// `!${ref}`, or `${ref} == literal` / `!=`.
public struct PipelineCondition: Sendable, CustomStringConvertible {
    enum Operand: Sendable {
        case reference(PipelineReference)
        case literal(JSONValue)
    }
    var negate: Bool
    var left: Operand
    var comparison: (equal: Bool, right: Operand)?
    public let description: String

    init(parsing value: JSONValue) throws {
        if let b = value.boolValue {
            negate = false; left = .literal(.bool(b)); comparison = nil; description = "\(b)"
            return
        }
        guard var text = value.stringValue?.trimmingCharacters(in: .whitespaces), !text.isEmpty else {
            throw PipelineReferenceError(message: "when must be a condition such as ${inputs.audio}.")
        }
        description = text
        negate = false
        if text.hasPrefix("!") { negate = true; text = String(text.dropFirst()).trimmingCharacters(in: .whitespaces) }
        else if text.hasPrefix("not ") { negate = true; text = String(text.dropFirst(4)).trimmingCharacters(in: .whitespaces) }
        for (op, equal) in [(" == ", true), (" != ", false)] {
            if let range = text.range(of: op) {
                left = try Self.operand(String(text[..<range.lowerBound]))
                comparison = (equal, try Self.operand(String(text[range.upperBound...])))
                return
            }
        }
        left = try Self.operand(text)
        comparison = nil
    }

    static func operand(_ raw: String) throws -> Operand {
        let text = raw.trimmingCharacters(in: .whitespaces)
        if text.contains("${") {
            guard let r = PipelineTemplate.wholeReference(.string(text)) else {
                throw PipelineReferenceError(message: "\(text) must be a single ${…} reference or a literal.")
            }
            return .reference(r)
        }
        if let parsed = try? JSONValue(parsing: text), parsed.objectValue == nil, parsed.arrayValue == nil { return .literal(parsed) }
        return .literal(.string(text))
    }

    public var references: [PipelineReference] {
        var result: [PipelineReference] = []
        if case .reference(let r) = left { result.append(r) }
        if let comparison, case .reference(let r) = comparison.right { result.append(r) }
        return result
    }

    /// Whether the condition can be decided from the pipeline's inputs alone.
    public var dependsOnSteps: Bool { references.contains { !$0.stepDependencies.isEmpty } }

    public func evaluate(in scope: PipelineScope) -> Bool {
        func value(_ operand: Operand) -> JSONValue? {
            switch operand {
            case .reference(let r): return scope.value(of: r)
            case .literal(let v): return v
            }
        }
        let result: Bool
        if let comparison {
            let l = value(left), r = value(comparison.right)
            result = (l == r) == comparison.equal
        } else {
            result = Self.truthy(value(left))
        }
        return negate ? !result : result
    }

    static func truthy(_ value: JSONValue?) -> Bool {
        switch value {
        case nil, .null?: return false
        case .bool(let b)?: return b
        case .number(let n)?: return n != 0
        case .string(let s)?: return !s.isEmpty
        case .array(let a)?: return !a.isEmpty
        case .object?: return true
        }
    }
}
