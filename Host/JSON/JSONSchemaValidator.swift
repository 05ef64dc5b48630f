import Foundation

/// Instance locations, JSONPath style (`$`, `$.inputs.duration`, `$.images[2].url`).
enum InstancePath {
    static let root = "$"

    static func member(_ base: String, _ name: String) -> String {
        isShorthandName(name) ? base + "." + name : base + "[" + singleQuoted(name) + "]"
    }

    static func element(_ base: String, _ index: Int) -> String {
        base + "[" + String(index) + "]"
    }

    /// RFC 9535 member-name shorthand, restricted to ASCII so paths stay unambiguous to read.
    private static func isShorthandName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.isASCII,
              first == "_" || first.properties.isAlphabetic else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
    }

    /// RFC 9535 normalized-path string escaping.
    private static func singleQuoted(_ name: String) -> String {
        var result = "'"
        for scalar in name.unicodeScalars {
            switch scalar {
            case "'": result += "\\'"
            case "\\": result += "\\\\"
            case "\u{08}": result += "\\b"
            case "\u{0C}": result += "\\f"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "'"
    }
}

/// Renders values and types for messages.
enum Describe {
    static let maximumLength = 60

    /// Compact canonical JSON, cut short with "…" when long. Large values are never
    /// serialized whole: the cost stays proportional to the shown prefix.
    static func value(_ value: JSONValue) -> String {
        var output: [UInt8] = []
        let complete = CanonicalJSON.write(value, into: &output, byteLimit: maximumLength * 4)
        let text = String(decoding: output, as: UTF8.self)
        guard !complete || text.count > maximumLength else { return text }
        return String(text.prefix(maximumLength - 1)) + "…"
    }

    static func number(_ number: Double) -> String {
        CanonicalJSON.formatNumber(number)
    }

    static func typeName(of value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "boolean"
        case .number: value.isInteger ? "integer" : "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    static func list(_ words: [String], conjunction: String) -> String {
        switch words.count {
        case 0: ""
        case 1: words[0]
        case 2: words[0] + " " + conjunction + " " + words[1]
        default: words.dropLast().joined(separator: ", ") + " " + conjunction + " " + (words.last ?? "")
        }
    }

    static func count(_ count: Int, _ noun: String) -> String {
        "\(count) \(noun)\(count == 1 ? "" : "s")"
    }
}

/// Caps the subschema applications of one `validate` or `applyingDefaults` call.
///
/// Depth limits alone do not bound the work: `anyOf`/`oneOf` re-evaluate their branches, so
/// a recursive schema with several failing branches costs exponential time in the depth of
/// the value. Shared by reference between an evaluator and the fail-fast copies it makes.
final class EvaluationBudget {
    static let defaultSteps = 1_000_000

    let limit: Int
    private(set) var remaining: Int

    init(steps: Int = EvaluationBudget.defaultSteps) {
        limit = steps
        remaining = steps
    }

    var isExhausted: Bool { remaining <= 0 }

    /// Takes one step; false once the budget is spent.
    func spend() -> Bool {
        guard remaining > 0 else { return false }
        remaining -= 1
        return true
    }
}

struct SchemaEvaluator {
    /// Nested subschema applications allowed before giving up: far beyond any real catalog
    /// document, and shallow enough for a thread with a 1 MiB stack even in debug builds.
    static let maximumDepth = 256

    let references: [String: SchemaNode]
    /// Stop at the first violation; used where only validity matters (`not`, `if`, `anyOf`, `oneOf`).
    let failFast: Bool
    let budget: EvaluationBudget

    private var fastFailing: SchemaEvaluator {
        SchemaEvaluator(references: references, failFast: true, budget: budget)
    }

    /// Evaluates from the root. A spent budget discards whatever was found (`anyOf` and
    /// `oneOf` verdicts reached without finishing their branches are unreliable) and
    /// reports a single `complexity` violation instead.
    func evaluateRoot(_ node: SchemaNode, _ instance: JSONValue) -> [SchemaViolation] {
        var violations: [SchemaViolation] = []
        evaluate(node, instance, at: InstancePath.root, depth: 0, into: &violations)
        guard !budget.isExhausted else { return [Violation.complexity(limit: budget.limit)] }
        return violations
    }

    // The recursive path below only decides; every message is built in `Violation`, so
    // string-building temporaries never sit in the frames that recursion stacks up.

    func evaluate(_ node: SchemaNode, _ instance: JSONValue, at path: String, depth: Int, into violations: inout [SchemaViolation]) {
        guard budget.spend() else {
            violations.append(Violation.budgetSpent(path))
            return
        }
        guard depth < Self.maximumDepth else {
            violations.append(Violation.depth(path, limit: Self.maximumDepth))
            return
        }
        switch node {
        case .constant(true):
            return
        case .constant(false):
            violations.append(Violation.falseSchema(path, instance))
        case .rules(let rules):
            evaluate(rules, instance, at: path, depth: depth, into: &violations)
        }
    }

    private func evaluate(_ rules: SchemaRules, _ instance: JSONValue, at path: String, depth: Int, into violations: inout [SchemaViolation]) {
        let start = violations.count

        if let ref = rules.ref {
            if let target = references[ref] {
                evaluate(target, instance, at: path, depth: depth + 1, into: &violations)
            } else {
                violations.append(Violation.unresolved(path, ref))
            }
            if failFast && violations.count > start { return }
        }

        checkGeneric(rules, instance, at: path, into: &violations)
        if failFast && violations.count > start { return }

        switch instance {
        case .number(let number):
            checkNumber(rules, number, at: path, into: &violations)
        case .string(let string):
            checkString(rules, string, at: path, into: &violations)
        case .array(let elements):
            checkArray(rules, elements, at: path, depth: depth, into: &violations)
        case .object(let members):
            checkObject(rules, members, at: path, depth: depth, into: &violations)
        case .null, .bool:
            break
        }
        if failFast && violations.count > start { return }

        checkApplicators(rules, instance, at: path, depth: depth, into: &violations)
    }

    // MARK: Any type

    private func checkGeneric(_ rules: SchemaRules, _ instance: JSONValue, at path: String, into violations: inout [SchemaViolation]) {
        if let types = rules.types, !types.contains(where: { Self.matches(instance, $0) }) {
            violations.append(Violation.type(path, instance, types))
        }
        if let options = rules.enumValues {
            let key = instance.serialized()
            if !options.contains(where: { $0.key == key }) {
                violations.append(Violation.enumeration(path, instance, options))
            }
        }
        if let constant = rules.constValue, constant.key != instance.serialized() {
            violations.append(Violation.constant(path, instance, constant.value))
        }
    }

    static func matches(_ instance: JSONValue, _ type: JSONType) -> Bool {
        switch (type, instance) {
        case (.null, .null), (.boolean, .bool), (.number, .number), (.string, .string), (.array, .array), (.object, .object):
            true
        case (.integer, _):
            instance.isInteger
        default:
            false
        }
    }

    // MARK: Numbers

    private func checkNumber(_ rules: SchemaRules, _ number: Double, at path: String, into violations: inout [SchemaViolation]) {
        if let minimum = rules.minimum, number < minimum {
            violations.append(Violation.number(path, "minimum", number, "is less than the minimum of", minimum))
        }
        if let maximum = rules.maximum, number > maximum {
            violations.append(Violation.number(path, "maximum", number, "is greater than the maximum of", maximum))
        }
        if let bound = rules.exclusiveMinimum, number <= bound {
            violations.append(Violation.number(path, "exclusiveMinimum", number, "must be greater than", bound))
        }
        if let bound = rules.exclusiveMaximum, number >= bound {
            violations.append(Violation.number(path, "exclusiveMaximum", number, "must be less than", bound))
        }
        if let divisor = rules.multipleOf, !Self.isMultiple(number, of: divisor) {
            violations.append(Violation.number(path, "multipleOf", number, "is not a multiple of", divisor))
        }
    }

    /// Binary doubles cannot hold most decimal fractions (0.3 / 0.1 = 2.9999999999999996),
    /// so the quotient may be a few units in the last place away from an integer and still
    /// count. An infinite quotient means "not a multiple" rather than a crash.
    static func isMultiple(_ number: Double, of divisor: Double) -> Bool {
        let quotient = number / divisor
        guard quotient.isFinite else { return false }
        let nearest = quotient.rounded()
        return abs(quotient - nearest) <= 4 * nearest.magnitude.ulp
    }

    // MARK: Strings

    private func checkString(_ rules: SchemaRules, _ string: String, at path: String, into violations: inout [SchemaViolation]) {
        if rules.minLength != nil || rules.maxLength != nil {
            // JSON Schema counts code points, not grapheme clusters: "e\u{301}" has length 2.
            let length = string.unicodeScalars.count
            if let minimum = rules.minLength, length < minimum {
                violations.append(Violation.length(path, "minLength", string, length, "fewer than the minimum of", minimum))
            }
            if let maximum = rules.maxLength, length > maximum {
                violations.append(Violation.length(path, "maxLength", string, length, "more than the maximum of", maximum))
            }
        }
        if let pattern = rules.pattern {
            let range = NSRange(string.startIndex..<string.endIndex, in: string)
            if pattern.regex.firstMatch(in: string, options: [], range: range) == nil {
                violations.append(Violation.pattern(path, string, pattern.source))
            }
        }
        switch rules.format {
        case .uri where !StringFormats.isURI(string):
            violations.append(Violation.format(path, string, "is not a valid URI with an http, https or file scheme"))
        case .dateTime where !StringFormats.isDateTime(string):
            violations.append(Violation.format(path, string, "is not a valid RFC 3339 date-time such as 2024-05-01T12:30:00Z"))
        default:
            break
        }
    }

    // MARK: Arrays

    private func checkArray(_ rules: SchemaRules, _ elements: [JSONValue], at path: String, depth: Int, into violations: inout [SchemaViolation]) {
        let start = violations.count
        if let minimum = rules.minItems, elements.count < minimum {
            violations.append(Violation.count(path, "minItems", elements.count, "fewer than the minimum of", minimum))
        }
        if let maximum = rules.maxItems, elements.count > maximum {
            violations.append(Violation.count(path, "maxItems", elements.count, "more than the maximum of", maximum))
        }
        if rules.uniqueItems {
            var firstIndexByKey: [Data: Int] = [:]
            for (index, element) in elements.enumerated() {
                let key = element.serialized()
                if let earlier = firstIndexByKey[key] {
                    violations.append(Violation.duplicate(path, earlier, index, element))
                    break
                }
                firstIndexByKey[key] = index
            }
        }
        if failFast && violations.count > start { return }
        if let items = rules.items {
            for (index, element) in elements.enumerated() {
                evaluate(items, element, at: InstancePath.element(path, index), depth: depth + 1, into: &violations)
                if failFast && violations.count > start { return }
            }
        }
    }

    // MARK: Objects

    private func checkObject(_ rules: SchemaRules, _ members: [String: JSONValue], at path: String, depth: Int, into violations: inout [SchemaViolation]) {
        let start = violations.count
        for name in rules.required where members[name] == nil {
            violations.append(Violation.missing(path, name))
        }
        if failFast && violations.count > start { return }
        for property in rules.properties {
            guard let value = members[property.name] else { continue }
            evaluate(property.schema, value, at: InstancePath.member(path, property.name), depth: depth + 1, into: &violations)
            if failFast && violations.count > start { return }
        }
        guard let additional = rules.additionalProperties else { return }
        for name in members.keys.sorted() where !rules.propertyNames.contains(name) {
            if case .constant(false) = additional {
                violations.append(Violation.notAllowed(path, name))
            } else if let value = members[name] {
                evaluate(additional, value, at: InstancePath.member(path, name), depth: depth + 1, into: &violations)
            }
            if failFast && violations.count > start { return }
        }
    }

    // MARK: Applicators

    private func checkApplicators(_ rules: SchemaRules, _ instance: JSONValue, at path: String, depth: Int, into violations: inout [SchemaViolation]) {
        let start = violations.count
        for subschema in rules.allOf {
            evaluate(subschema, instance, at: path, depth: depth + 1, into: &violations)
            if failFast && violations.count > start { return }
        }
        if let alternatives = rules.anyOf,
           !alternatives.contains(where: { isValid(instance, against: $0, at: path, depth: depth + 1) }) {
            violations.append(summarize("anyOf", alternatives, instance, at: path, depth: depth))
            if failFast { return }
        }
        if let alternatives = rules.oneOf {
            var matching: [Int] = []
            for index in alternatives.indices where isValid(instance, against: alternatives[index], at: path, depth: depth + 1) {
                matching.append(index)
                // Two matches already decide a fail-fast verdict.
                if failFast && matching.count > 1 { break }
            }
            if matching.isEmpty {
                violations.append(summarize("oneOf", alternatives, instance, at: path, depth: depth))
            } else if matching.count > 1 {
                violations.append(Violation.severalMatch(path, instance, matching))
            }
            if failFast && violations.count > start { return }
        }
        if let forbidden = rules.not, isValid(instance, against: forbidden, at: path, depth: depth + 1) {
            violations.append(Violation.not(path, instance))
            if failFast { return }
        }
        if let condition = rules.ifSchema {
            let branch = isValid(instance, against: condition, at: path, depth: depth + 1) ? rules.thenSchema : rules.elseSchema
            if let branch {
                evaluate(branch, instance, at: path, depth: depth + 1, into: &violations)
            }
        }
    }

    private func isValid(_ instance: JSONValue, against node: SchemaNode, at path: String, depth: Int) -> Bool {
        var violations: [SchemaViolation] = []
        fastFailing.evaluate(node, instance, at: path, depth: depth, into: &violations)
        return violations.isEmpty
    }

    /// One violation for a failed `anyOf`/`oneOf`, pointing at the alternative that came
    /// closest, so the reader learns what to fix without wading through every branch.
    private func summarize(
        _ keyword: String, _ alternatives: [SchemaNode], _ instance: JSONValue, at path: String, depth: Int
    ) -> SchemaViolation {
        // A fail-fast caller only counts violations; it never reads the message.
        guard !failFast else { return SchemaViolation(path: path, keyword: keyword, message: "") }
        var closest: (index: Int, score: Int, first: SchemaViolation)?
        for (index, alternative) in alternatives.enumerated() {
            var branchViolations: [SchemaViolation] = []
            evaluate(alternative, instance, at: path, depth: depth + 1, into: &branchViolations)
            guard let first = branchViolations.first else { continue }
            // A branch rejecting the value's very type or identity is a worse fit than one
            // that only disagrees about details, however many those are.
            let rejectsOutright = branchViolations.contains {
                $0.path == path && ["type", "const", "enum", "false"].contains($0.keyword)
            }
            let score = branchViolations.count + (rejectsOutright ? 1_000 : 0)
            if closest.map({ score < $0.score }) ?? true {
                closest = (index, score, first)
            }
        }
        return Violation.noneMatch(path, keyword, instance, alternatives.count, closest: closest.map { ($0.index, $0.first) })
    }
}

/// Builds each violation's sentence.
enum Violation {
    @inline(never)
    static func type(_ path: String, _ instance: JSONValue, _ types: [JSONType]) -> SchemaViolation {
        let expected = Describe.list(types.map(\.rawValue), conjunction: "or")
        return SchemaViolation(
            path: path, keyword: "type",
            message: "expected \(expected), got \(Describe.typeName(of: instance)) \(Describe.value(instance))")
    }

    @inline(never)
    static func enumeration(_ path: String, _ instance: JSONValue, _ options: [ComparableValue]) -> SchemaViolation {
        let allowed = options.prefix(8).map { Describe.value($0.value) }
        let listed = allowed.joined(separator: ", ") + (options.count > 8 ? ", …" : "")
        return SchemaViolation(
            path: path, keyword: "enum", message: "\(Describe.value(instance)) is not one of the allowed values: \(listed)")
    }

    @inline(never)
    static func constant(_ path: String, _ instance: JSONValue, _ expected: JSONValue) -> SchemaViolation {
        SchemaViolation(
            path: path, keyword: "const",
            message: "\(Describe.value(instance)) is not the required value \(Describe.value(expected))")
    }

    @inline(never)
    static func number(_ path: String, _ keyword: String, _ number: Double, _ relation: String, _ bound: Double) -> SchemaViolation {
        SchemaViolation(path: path, keyword: keyword, message: "\(Describe.number(number)) \(relation) \(Describe.number(bound))")
    }

    @inline(never)
    static func length(_ path: String, _ keyword: String, _ string: String, _ length: Int, _ relation: String, _ bound: Int) -> SchemaViolation {
        SchemaViolation(
            path: path, keyword: keyword,
            message: "\(Describe.value(.string(string))) has \(Describe.count(length, "character")), \(relation) \(bound)")
    }

    @inline(never)
    static func pattern(_ path: String, _ string: String, _ source: String) -> SchemaViolation {
        SchemaViolation(
            path: path, keyword: "pattern",
            message: "\(Describe.value(.string(string))) does not match the pattern \(CanonicalJSON.quoted(source))")
    }

    @inline(never)
    static func format(_ path: String, _ string: String, _ expectation: String) -> SchemaViolation {
        SchemaViolation(path: path, keyword: "format", message: "\(Describe.value(.string(string))) \(expectation)")
    }

    @inline(never)
    static func count(_ path: String, _ keyword: String, _ count: Int, _ relation: String, _ bound: Int) -> SchemaViolation {
        SchemaViolation(path: path, keyword: keyword, message: "array has \(Describe.count(count, "item")), \(relation) \(bound)")
    }

    @inline(never)
    static func duplicate(_ path: String, _ earlier: Int, _ later: Int, _ element: JSONValue) -> SchemaViolation {
        SchemaViolation(
            path: path, keyword: "uniqueItems",
            message: "items at index \(earlier) and \(later) are both \(Describe.value(element)), but items must be unique")
    }

    @inline(never)
    static func missing(_ path: String, _ name: String) -> SchemaViolation {
        SchemaViolation(
            path: InstancePath.member(path, name), keyword: "required",
            message: "required property \(CanonicalJSON.quoted(name)) is missing")
    }

    @inline(never)
    static func notAllowed(_ path: String, _ name: String) -> SchemaViolation {
        SchemaViolation(
            path: InstancePath.member(path, name), keyword: "additionalProperties",
            message: "property \(CanonicalJSON.quoted(name)) is not allowed")
    }

    @inline(never)
    static func noneMatch(
        _ path: String, _ keyword: String, _ instance: JSONValue, _ count: Int, closest: (index: Int, first: SchemaViolation)?
    ) -> SchemaViolation {
        var message = "\(Describe.value(instance)) matches none of the \(count) alternatives in \(keyword)"
        if let closest {
            let location = closest.first.path == path ? "" : "\(closest.first.path): "
            message += "; closest is alternative \(closest.index): \(location)\(closest.first.message)"
        }
        return SchemaViolation(path: path, keyword: keyword, message: message)
    }

    @inline(never)
    static func severalMatch(_ path: String, _ instance: JSONValue, _ matching: [Int]) -> SchemaViolation {
        SchemaViolation(
            path: path, keyword: "oneOf",
            message: "\(Describe.value(instance)) matches the alternatives at indices "
                + Describe.list(matching.map(String.init), conjunction: "and") + " of oneOf, but must match exactly one")
    }

    @inline(never)
    static func not(_ path: String, _ instance: JSONValue) -> SchemaViolation {
        SchemaViolation(path: path, keyword: "not", message: "\(Describe.value(instance)) must not match the schema given in 'not'")
    }

    @inline(never)
    static func falseSchema(_ path: String, _ instance: JSONValue) -> SchemaViolation {
        SchemaViolation(path: path, keyword: "false", message: "\(Describe.value(instance)) is not allowed here")
    }

    @inline(never)
    static func unresolved(_ path: String, _ ref: String) -> SchemaViolation {
        SchemaViolation(path: path, keyword: "$ref", message: "reference \(ref) could not be resolved")
    }

    @inline(never)
    static func depth(_ path: String, limit: Int) -> SchemaViolation {
        SchemaViolation(
            path: path, keyword: "depth",
            message: "schema evaluation nested deeper than \(limit) levels here; the value was not checked")
    }

    /// Placeholder while a spent budget unwinds; `evaluateRoot` replaces the whole result.
    @inline(never)
    static func budgetSpent(_ path: String) -> SchemaViolation {
        SchemaViolation(path: path, keyword: "complexity", message: "")
    }

    @inline(never)
    static func complexity(limit: Int) -> SchemaViolation {
        SchemaViolation(
            path: InstancePath.root, keyword: "complexity",
            message: "validation gave up after \(limit) schema evaluations; the value is too complex to check against this schema")
    }
}
