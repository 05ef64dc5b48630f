import Foundation

// MARK: - Compiled form

enum SchemaNode: Sendable {
    /// The boolean schemas: `true` accepts everything, `false` nothing.
    case constant(Bool)
    case rules(SchemaRules)
}

enum JSONType: String, Sendable, CaseIterable {
    case null, boolean, object, array, number, string, integer
}

enum StringFormat: String, Sendable {
    case uri
    case dateTime = "date-time"
}

struct PropertyRule: Sendable {
    let name: String
    let schema: SchemaNode
}

/// `NSRegularExpression` is immutable once built and documented as safe to use from
/// several threads at once, which is what the unchecked conformance relies on.
struct CompiledPattern: @unchecked Sendable {
    let source: String
    let regex: NSRegularExpression
}

struct ComparableValue: Sendable {
    let value: JSONValue
    /// Canonical serialization: the equality JSON Schema asks for (1 == 1.0, scalar-exact strings).
    let key: Data

    init(_ value: JSONValue) {
        self.value = value
        self.key = value.serialized()
    }
}

/// Mutable while the compiler fills it in; frozen into `SchemaRules`.
struct SchemaRulesDraft {
    var types: [JSONType]?
    var enumValues: [ComparableValue]?
    var constValue: ComparableValue?

    /// Sorted by name so violations come out in a stable order.
    var properties: [PropertyRule] = []
    var propertyNames: Set<String> = []
    var required: [String] = []
    var additionalProperties: SchemaNode?

    var items: SchemaNode?
    var minItems: Int?
    var maxItems: Int?
    var uniqueItems = false

    var minimum: Double?
    var maximum: Double?
    var exclusiveMinimum: Double?
    var exclusiveMaximum: Double?
    var multipleOf: Double?

    var minLength: Int?
    var maxLength: Int?
    var pattern: CompiledPattern?
    var format: StringFormat?

    var allOf: [SchemaNode] = []
    var anyOf: [SchemaNode]?
    var oneOf: [SchemaNode]?
    var not: SchemaNode?
    var ifSchema: SchemaNode?
    var thenSchema: SchemaNode?
    var elseSchema: SchemaNode?

    /// Canonical pointer (`#/$defs/name`) into `JSONSchema.references`.
    var ref: String?
    var defaultValue: JSONValue?
}

/// The keywords of one object schema. A class so that evaluation passes a reference
/// around instead of copying thirty fields into every stack frame.
final class SchemaRules: Sendable {
    // Field meanings are documented on `SchemaRulesDraft`.
    let types: [JSONType]?
    let enumValues: [ComparableValue]?
    let constValue: ComparableValue?
    let properties: [PropertyRule]
    let propertyNames: Set<String>
    let required: [String]
    let additionalProperties: SchemaNode?
    let items: SchemaNode?
    let minItems: Int?
    let maxItems: Int?
    let uniqueItems: Bool
    let minimum: Double?
    let maximum: Double?
    let exclusiveMinimum: Double?
    let exclusiveMaximum: Double?
    let multipleOf: Double?
    let minLength: Int?
    let maxLength: Int?
    let pattern: CompiledPattern?
    let format: StringFormat?
    let allOf: [SchemaNode]
    let anyOf: [SchemaNode]?
    let oneOf: [SchemaNode]?
    let not: SchemaNode?
    let ifSchema: SchemaNode?
    let thenSchema: SchemaNode?
    let elseSchema: SchemaNode?
    let ref: String?
    let defaultValue: JSONValue?

    init(_ draft: SchemaRulesDraft) {
        types = draft.types
        enumValues = draft.enumValues
        constValue = draft.constValue
        properties = draft.properties
        propertyNames = draft.propertyNames
        required = draft.required
        additionalProperties = draft.additionalProperties
        items = draft.items
        minItems = draft.minItems
        maxItems = draft.maxItems
        uniqueItems = draft.uniqueItems
        minimum = draft.minimum
        maximum = draft.maximum
        exclusiveMinimum = draft.exclusiveMinimum
        exclusiveMaximum = draft.exclusiveMaximum
        multipleOf = draft.multipleOf
        minLength = draft.minLength
        maxLength = draft.maxLength
        pattern = draft.pattern
        format = draft.format
        allOf = draft.allOf
        anyOf = draft.anyOf
        oneOf = draft.oneOf
        not = draft.not
        ifSchema = draft.ifSchema
        thenSchema = draft.thenSchema
        elseSchema = draft.elseSchema
        ref = draft.ref
        defaultValue = draft.defaultValue
    }
}

// MARK: - Schema pointers

/// JSON pointers (RFC 6901) written as URI fragments: `#`, `#/properties/a~1b`.
enum SchemaPointer {
    static let root = "#"

    static func appending(_ pointer: String, _ token: String) -> String {
        pointer + "/" + token.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }

    static func appending(_ pointer: String, _ index: Int) -> String {
        pointer + "/" + String(index)
    }
}

// MARK: - Keyword catalogue

enum SchemaKeywords {
    static let supported: Set<String> = [
        "type", "enum", "const", "properties", "required", "additionalProperties", "items",
        "minItems", "maxItems", "uniqueItems", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern", "format",
        "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "$ref", "$defs", "definitions",
    ]

    static let ignored: Set<String> = ["default", "title", "description", "examples", "$schema", "$id", "$comment"]

    /// Standard keywords this validator does not implement. Accepting them silently would
    /// validate less than the schema author meant, so they are rejected with a clearer
    /// message than a typo gets.
    static let standardButUnsupported: Set<String> = [
        "patternProperties", "propertyNames", "minProperties", "maxProperties", "dependentRequired",
        "dependentSchemas", "dependencies", "contains", "minContains", "maxContains", "prefixItems",
        "additionalItems", "unevaluatedItems", "unevaluatedProperties", "$anchor", "$dynamicRef",
        "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor", "$vocabulary", "contentEncoding",
        "contentMediaType", "contentSchema", "deprecated", "readOnly", "writeOnly",
    ]

    static func isExtension(_ keyword: String) -> Bool {
        keyword.hasPrefix("x-")
    }

    /// The closest known word within two edits, for "did you mean" hints.
    static func suggestion(for word: String, among candidates: some Sequence<String>) -> String? {
        var best: (word: String, distance: Int)?
        for candidate in candidates {
            let distance = editDistance(word.lowercased(), candidate.lowercased())
            if distance <= 2, distance < word.count, best.map({ distance < $0.distance }) ?? true {
                best = (candidate, distance)
            }
        }
        return best?.word
    }

    private static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.unicodeScalars)
        let b = Array(b.unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

// MARK: - Compiler

struct SchemaCompiler {
    let document: JSONValue
    /// Canonical pointers referenced so far and not yet compiled, in discovery order.
    private var pendingReferences: [String] = []
    private var knownReferences: [String: JSONValue] = [:]

    init(document: JSONValue) {
        self.document = document
    }

    mutating func compile(_ schema: JSONValue, at path: String) throws(JSONSchemaError) -> SchemaNode {
        switch schema {
        case .bool(let flag):
            return .constant(flag)
        case .object(let keywords):
            var rules = SchemaRulesDraft()
            for keyword in keywords.keys.sorted() {
                guard let value = keywords[keyword] else { continue }
                try compileKeyword(keyword, value, at: SchemaPointer.appending(path, keyword), into: &rules)
            }
            return .rules(SchemaRules(rules))
        default:
            throw JSONSchemaError(
                kind: .notASchema, path: path,
                message: "a schema must be an object or a boolean, not \(Describe.typeName(of: schema)) \(Describe.value(schema))")
        }
    }

    /// Compiles the target of every `$ref` met so far, following `$ref`s inside targets too.
    mutating func compileReferences() throws(JSONSchemaError) -> [String: SchemaNode] {
        var compiled: [String: SchemaNode] = [:]
        while let pointer = pendingReferences.first {
            pendingReferences.removeFirst()
            guard let target = knownReferences[pointer] else { continue }
            compiled[pointer] = try compile(target, at: pointer)
        }
        return compiled
    }

    private mutating func compileKeyword(
        _ keyword: String, _ value: JSONValue, at path: String, into rules: inout SchemaRulesDraft
    ) throws(JSONSchemaError) {
        switch keyword {
        case "type":
            rules.types = try compileType(value, at: path)
        case "enum":
            guard case .array(let options) = value else { throw invalid(path, "'enum' must be an array of allowed values") }
            rules.enumValues = options.map(ComparableValue.init)
        case "const":
            rules.constValue = ComparableValue(value)
        case "properties":
            guard case .object(let members) = value else {
                throw invalid(path, "'properties' must be an object mapping property names to schemas")
            }
            for name in members.keys.sorted() {
                guard let subschema = members[name] else { continue }
                rules.properties.append(PropertyRule(name: name, schema: try compile(subschema, at: SchemaPointer.appending(path, name))))
            }
            rules.propertyNames = Set(members.keys)
        case "required":
            rules.required = try compileRequired(value, at: path)
        case "additionalProperties":
            rules.additionalProperties = try compile(value, at: path)
        case "items":
            if case .array = value {
                throw invalid(path, "'items' must be a single schema; the array (tuple) form is not supported")
            }
            rules.items = try compile(value, at: path)
        case "minItems":
            rules.minItems = try nonNegativeInteger(value, keyword, at: path)
        case "maxItems":
            rules.maxItems = try nonNegativeInteger(value, keyword, at: path)
        case "uniqueItems":
            guard case .bool(let flag) = value else { throw invalid(path, "'uniqueItems' must be true or false") }
            rules.uniqueItems = flag
        case "minimum":
            rules.minimum = try number(value, keyword, at: path)
        case "maximum":
            rules.maximum = try number(value, keyword, at: path)
        case "exclusiveMinimum", "exclusiveMaximum":
            if case .bool = value {
                throw invalid(path, "'\(keyword)' must be a number (the boolean form is from draft 4)")
            }
            let bound = try number(value, keyword, at: path)
            if keyword == "exclusiveMinimum" { rules.exclusiveMinimum = bound } else { rules.exclusiveMaximum = bound }
        case "multipleOf":
            let divisor = try number(value, keyword, at: path)
            guard divisor > 0 else { throw invalid(path, "'multipleOf' must be greater than 0, not \(Describe.value(value))") }
            rules.multipleOf = divisor
        case "minLength":
            rules.minLength = try nonNegativeInteger(value, keyword, at: path)
        case "maxLength":
            rules.maxLength = try nonNegativeInteger(value, keyword, at: path)
        case "pattern":
            rules.pattern = try compilePattern(value, at: path)
        case "format":
            guard case .string(let name) = value else { throw invalid(path, "'format' must be a string") }
            rules.format = StringFormat(rawValue: name)
        case "allOf":
            rules.allOf = try schemaArray(value, keyword, at: path)
        case "anyOf":
            rules.anyOf = try schemaArray(value, keyword, at: path)
        case "oneOf":
            rules.oneOf = try schemaArray(value, keyword, at: path)
        case "not":
            rules.not = try compile(value, at: path)
        case "if":
            rules.ifSchema = try compile(value, at: path)
        case "then":
            rules.thenSchema = try compile(value, at: path)
        case "else":
            rules.elseSchema = try compile(value, at: path)
        case "$ref":
            rules.ref = try registerReference(value, at: path)
        case "$defs", "definitions":
            guard case .object(let definitions) = value else {
                throw invalid(path, "'\(keyword)' must be an object mapping names to schemas")
            }
            // Compiled for their errors only; uses go through `$ref`.
            for name in definitions.keys.sorted() {
                guard let definition = definitions[name] else { continue }
                _ = try compile(definition, at: SchemaPointer.appending(path, name))
            }
        case "default":
            rules.defaultValue = value
        default:
            guard !SchemaKeywords.ignored.contains(keyword), !SchemaKeywords.isExtension(keyword) else { return }
            if SchemaKeywords.standardButUnsupported.contains(keyword) {
                throw JSONSchemaError(
                    kind: .unknownKeyword, path: path,
                    message: "keyword '\(keyword)' is part of JSON Schema but not supported by this validator")
            }
            var message = "unknown keyword '\(keyword)'"
            let known = SchemaKeywords.supported.union(SchemaKeywords.ignored)
            if let hint = SchemaKeywords.suggestion(for: keyword, among: known.sorted()) {
                message += " (did you mean '\(hint)'?)"
            } else {
                message += " (annotations of your own must start with 'x-')"
            }
            throw JSONSchemaError(kind: .unknownKeyword, path: path, message: message)
        }
    }

    // MARK: Keyword values

    private func compileType(_ value: JSONValue, at path: String) throws(JSONSchemaError) -> [JSONType] {
        switch value {
        case .string(let name):
            return [try typeName(name, at: path)]
        case .array(let names) where !names.isEmpty:
            var types: [JSONType] = []
            for (position, element) in names.enumerated() {
                let elementPath = SchemaPointer.appending(path, position)
                guard case .string(let name) = element else {
                    throw invalid(elementPath, "each entry of 'type' must be a type name, not \(Describe.value(element))")
                }
                let type = try typeName(name, at: elementPath)
                guard !types.contains(type) else { throw invalid(elementPath, "type '\(name)' is listed twice") }
                types.append(type)
            }
            return types
        default:
            throw invalid(path, "'type' must be a type name or a non-empty array of type names")
        }
    }

    private func typeName(_ name: String, at path: String) throws(JSONSchemaError) -> JSONType {
        if let type = JSONType(rawValue: name) { return type }
        var message = "unknown type '\(name)'"
        if let hint = SchemaKeywords.suggestion(for: name, among: JSONType.allCases.map(\.rawValue)) {
            message += " (did you mean '\(hint)'?)"
        } else {
            message += "; expected one of " + JSONType.allCases.map(\.rawValue).joined(separator: ", ")
        }
        throw invalid(path, message)
    }

    private func compileRequired(_ value: JSONValue, at path: String) throws(JSONSchemaError) -> [String] {
        guard case .array(let entries) = value else { throw invalid(path, "'required' must be an array of property names") }
        var names: [String] = []
        for (position, entry) in entries.enumerated() {
            let entryPath = SchemaPointer.appending(path, position)
            guard case .string(let name) = entry else {
                throw invalid(entryPath, "'required' must contain only strings, found \(Describe.value(entry))")
            }
            guard !names.contains(name) else { throw invalid(entryPath, "property '\(name)' is listed twice in 'required'") }
            names.append(name)
        }
        return names
    }

    private func compilePattern(_ value: JSONValue, at path: String) throws(JSONSchemaError) -> CompiledPattern {
        guard case .string(let source) = value else { throw invalid(path, "'pattern' must be a regular expression string") }
        do {
            return CompiledPattern(source: source, regex: try NSRegularExpression(pattern: source))
        } catch {
            throw JSONSchemaError(kind: .invalidPattern, path: path, message: "'pattern' \(CanonicalJSON.quoted(source)) is not a valid regular expression")
        }
    }

    private mutating func schemaArray(_ value: JSONValue, _ keyword: String, at path: String) throws(JSONSchemaError) -> [SchemaNode] {
        guard case .array(let subschemas) = value, !subschemas.isEmpty else {
            throw invalid(path, "'\(keyword)' must be a non-empty array of schemas")
        }
        var nodes: [SchemaNode] = []
        for (position, subschema) in subschemas.enumerated() {
            nodes.append(try compile(subschema, at: SchemaPointer.appending(path, position)))
        }
        return nodes
    }

    private func number(_ value: JSONValue, _ keyword: String, at path: String) throws(JSONSchemaError) -> Double {
        guard case .number(let number) = value, number.isFinite else {
            throw invalid(path, "'\(keyword)' must be a number, not \(Describe.value(value))")
        }
        return number
    }

    private func nonNegativeInteger(_ value: JSONValue, _ keyword: String, at path: String) throws(JSONSchemaError) -> Int {
        guard let integer = value.intValue, integer >= 0 else {
            throw invalid(path, "'\(keyword)' must be a non-negative integer, not \(Describe.value(value))")
        }
        return integer
    }

    private func invalid(_ path: String, _ message: String) -> JSONSchemaError {
        JSONSchemaError(kind: .invalidKeywordValue, path: path, message: message)
    }

    // MARK: References

    /// Resolves a `$ref` against the document and queues its target for compilation.
    /// Returns the canonical pointer, so `#/%24defs/a` and `#/$defs/a` share one target.
    private mutating func registerReference(_ value: JSONValue, at path: String) throws(JSONSchemaError) -> String {
        guard case .string(let reference) = value else { throw invalid(path, "'$ref' must be a string") }
        guard reference == "#" || reference.hasPrefix("#/") else {
            throw JSONSchemaError(
                kind: .unsupportedReference, path: path,
                message: "'$ref' \(CanonicalJSON.quoted(reference)) is not supported; only local JSON pointers such as '#/$defs/name' are")
        }
        var canonical = SchemaPointer.root
        var target = document
        let rawTokens = reference == "#" ? [] : reference.dropFirst(2).split(separator: "/", omittingEmptySubsequences: false)
        for rawToken in rawTokens {
            guard let token = Self.unescapePointerToken(String(rawToken)) else {
                throw JSONSchemaError(
                    kind: .unsupportedReference, path: path,
                    message: "'$ref' \(CanonicalJSON.quoted(reference)) is not a valid JSON pointer")
            }
            let next: JSONValue?
            switch target {
            case .object(let members):
                next = members[token]
            case .array(let elements):
                let isIndex = !token.isEmpty && token.allSatisfy(\.isASCII) && token.allSatisfy(\.isNumber)
                    && (token == "0" || !token.hasPrefix("0"))
                next = isIndex ? Int(token).flatMap { elements.indices.contains($0) ? elements[$0] : nil } : nil
            default:
                next = nil
            }
            guard let resolved = next else {
                throw JSONSchemaError(
                    kind: .unresolvedReference, path: path,
                    message: "'$ref' \(CanonicalJSON.quoted(reference)) does not point at anything in this schema")
            }
            target = resolved
            canonical = SchemaPointer.appending(canonical, token)
        }
        switch target {
        case .object, .bool: break
        default:
            throw JSONSchemaError(
                kind: .unresolvedReference, path: path,
                message: "'$ref' \(CanonicalJSON.quoted(reference)) points at \(Describe.typeName(of: target)), not a schema")
        }
        if knownReferences[canonical] == nil {
            knownReferences[canonical] = target
            pendingReferences.append(canonical)
        }
        return canonical
    }

    /// RFC 6901 token inside a URI fragment: percent-decoding first, then `~1` → `/`, `~0` → `~`.
    private static func unescapePointerToken(_ raw: String) -> String? {
        guard let decoded = raw.removingPercentEncoding else { return nil }
        var result = ""
        var iterator = decoded.makeIterator()
        while let character = iterator.next() {
            guard character == "~" else {
                result.append(character)
                continue
            }
            switch iterator.next() {
            case "0": result.append("~")
            case "1": result.append("/")
            default: return nil
            }
        }
        return result
    }

    // MARK: Reference cycles

    /// Rejects `$ref` loops that never descend into the instance, e.g. `a: {$ref: b}`,
    /// `b: {allOf: [{$ref: a}]}`. Loops through `properties`, `items` or
    /// `additionalProperties` are legitimate recursion (trees) and stay allowed.
    static func rejectReferenceCycles(root: SchemaNode, references: [String: SchemaNode]) throws(JSONSchemaError) {
        var edges: [String: [String]] = [:]
        for (pointer, node) in references {
            var targets: [String] = []
            collectInPlaceReferences(node, into: &targets)
            edges[pointer] = targets
        }

        enum Mark { case visiting, done }
        var marks: [String: Mark] = [:]
        var stack: [String] = []

        func visit(_ pointer: String) -> [String]? {
            switch marks[pointer] {
            case .done: return nil
            case .visiting:
                let start = stack.firstIndex(of: pointer) ?? 0
                return Array(stack[start...]) + [pointer]
            case nil: break
            }
            marks[pointer] = .visiting
            stack.append(pointer)
            for next in edges[pointer] ?? [] {
                if let cycle = visit(next) { return cycle }
            }
            stack.removeLast()
            marks[pointer] = .done
            return nil
        }

        for pointer in references.keys.sorted() {
            if let cycle = visit(pointer) {
                throw JSONSchemaError(
                    kind: .referenceCycle, path: cycle[0],
                    message: "'$ref' cycle " + cycle.joined(separator: " → ")
                        + " never descends into the instance, so validation could not terminate")
            }
        }
    }

    /// `$ref`s reachable from `node` through keywords that apply to the same instance location.
    private static func collectInPlaceReferences(_ node: SchemaNode, into targets: inout [String]) {
        guard case .rules(let rules) = node else { return }
        if let ref = rules.ref { targets.append(ref) }
        var inPlace: [SchemaNode] = rules.allOf + (rules.anyOf ?? []) + (rules.oneOf ?? [])
        inPlace += [rules.not, rules.ifSchema, rules.thenSchema, rules.elseSchema].compactMap { $0 }
        for subschema in inPlace {
            collectInPlaceReferences(subschema, into: &targets)
        }
    }
}
