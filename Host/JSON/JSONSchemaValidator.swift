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

    /// Compact JSON, cut short with "…" when long.
    static func value(_ value: JSONValue) -> String {
        let text = value.description
        guard text.count > maximumLength else { return text }
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

struct SchemaEvaluator {
    /// Nested subschema applications allowed before giving up. Well past any real catalog
    /// document, and low enough to stay far from the stack limit of a secondary thread.
    static let maximumDepth = 256

    let references: [String: SchemaNode]
    /// Stop at the first violation; used where only validity matters (`not`, `if`, `anyOf`, `oneOf`).
    let failFast: Bool

    private var fastFailing: SchemaEvaluator {
        SchemaEvaluator(references: references, failFast: true)
    }

    func evaluate(_ node: SchemaNode, _ instance: JSONValue, at path: String, depth: Int, into violations: inout [SchemaViolation]) {
        guard depth < Self.maximumDepth else {
            violations.append(SchemaViolation(
                path: path, keyword: "depth",
                message: "schema evaluation nested deeper than \(Self.maximumDepth) levels here; the value was not checked"))
            return
        }
        switch node {
        case .constant(true):
            return
        case .constant(false):
            violations.append(SchemaViolation(path: path, keyword: "false", message: "\(Describe.value(instance)) is not allowed here"))
        case .rules(let rules):
            evaluate(rules, instance, at: path, depth: depth, into: &violations)
        }
    }

    private func evaluate(_ rules: SchemaRules, _ instance: JSONValue, at path: String, depth: Int, into violations: inout [SchemaViolation]) {
        let start = violations.count
        var shouldStop: Bool { failFast && violations.count > start }

        if let ref = rules.ref {
            if let target = references[ref] {
                evaluate(target, instance, at: path, depth: depth + 1, into: &violations)
            } else {
                violations.append(SchemaViolation(path: path, keyword: "$ref", message: "reference \(ref) could not be resolved"))
            }
            if shouldStop { return }
        }

        checkGeneric(rules, instance, at: path, into: &violations)
        if shouldStop { return }

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
        if shouldStop { return }

        checkApplicators(rules, instance, at: path, depth: depth, into: &violations)
    }

    // MARK: Any type

    private func checkGeneric(_ rules: SchemaRules, _ instance: JSONValue, at path: String, into violations: inout [SchemaViolation]) {
        if let types = rules.types, !types.contains(where: { Self.matches(instance, $0) }) {
            let expected = Describe.list(types.map(\.rawValue), conjunction: "or")
            violations.append(SchemaViolation(
                path: path, keyword: "type",
                message: "expected \(expected), got \(Describe.typeName(of: instance)) \(Describe.value(instance))"))
        }
        if let options = rules.enumValues {
            let key = instance.serialized()
            if !options.contains(where: { $0.key == key }) {
                let allowed = options.map { Describe.value($0.value) }
                let listed = allowed.count <= 8 ? allowed.joined(separator: ", ") : allowed.prefix(8).joined(separator: ", ") + ", …"
                violations.append(SchemaViolation(
                    path: path, keyword: "enum",
                    message: "\(Describe.value(instance)) is not one of the allowed values: \(listed)"))
            }
        }
        if let constant = rules.constValue, constant.key != instance.serialized() {
            violations.append(SchemaViolation(
                path: path, keyword: "const",
                message: "\(Describe.value(instance)) is not the required value \(Describe.value(constant.value))"))
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
        let shown = Describe.number(number)
        if let minimum = rules.minimum, number < minimum {
            violations.append(SchemaViolation(
                path: path, keyword: "minimum", message: "\(shown) is less than the minimum of \(Describe.number(minimum))"))
        }
        if let maximum = rules.maximum, number > maximum {
            violations.append(SchemaViolation(
                path: path, keyword: "maximum", message: "\(shown) is greater than the maximum of \(Describe.number(maximum))"))
        }
        if let bound = rules.exclusiveMinimum, number <= bound {
            violations.append(SchemaViolation(
                path: path, keyword: "exclusiveMinimum", message: "\(shown) must be greater than \(Describe.number(bound))"))
        }
        if let bound = rules.exclusiveMaximum, number >= bound {
            violations.append(SchemaViolation(
                path: path, keyword: "exclusiveMaximum", message: "\(shown) must be less than \(Describe.number(bound))"))
        }
        if let divisor = rules.multipleOf, !Self.isMultiple(number, of: divisor) {
            violations.append(SchemaViolation(
                path: path, keyword: "multipleOf", message: "\(shown) is not a multiple of \(Describe.number(divisor))"))
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
                violations.append(SchemaViolation(
                    path: path, keyword: "minLength",
                    message: "\(Describe.value(.string(string))) has \(Describe.count(length, "character")), fewer than the minimum of \(minimum)"))
            }
            if let maximum = rules.maxLength, length > maximum {
                violations.append(SchemaViolation(
                    path: path, keyword: "maxLength",
                    message: "\(Describe.value(.string(string))) has \(Describe.count(length, "character")), more than the maximum of \(maximum)"))
            }
        }
        if let pattern = rules.pattern {
            let range = NSRange(string.startIndex..<string.endIndex, in: string)
            if pattern.regex.firstMatch(in: string, options: [], range: range) == nil {
                violations.append(SchemaViolation(
                    path: path, keyword: "pattern",
                    message: "\(Describe.value(.string(string))) does not match the pattern \(CanonicalJSON.quoted(pattern.source))"))
            }
        }
        switch rules.format {
        case .uri where !StringFormats.isURI(string):
            violations.append(SchemaViolation(
                path: path, keyword: "format",
                message: "\(Describe.value(.string(string))) is not a valid URI with an http, https or file scheme"))
        case .dateTime where !StringFormats.isDateTime(string):
            violations.append(SchemaViolation(
                path: path, keyword: "format",
                message: "\(Describe.value(.string(string))) is not a valid RFC 3339 date-time such as 2024-05-01T12:30:00Z"))
        default:
            break
        }
    }

    // MARK: Arrays

    private func checkArray(_ rules: SchemaRules, _ elements: [JSONValue], at path: String, depth: Int, into violations: inout [SchemaViolation]) {
        if let minimum = rules.minItems, elements.count < minimum {
            violations.append(SchemaViolation(
                path: path, keyword: "minItems",
                message: "array has \(Describe.count(elements.count, "item")), fewer than the minimum of \(minimum)"))
        }
        if let maximum = rules.maxItems, elements.count > maximum {
            violations.append(SchemaViolation(
                path: path, keyword: "maxItems",
                message: "array has \(Describe.count(elements.count, "item")), more than the maximum of \(maximum)"))
        }
        if rules.uniqueItems {
            var firstIndexByKey: [Data: Int] = [:]
            for (index, element) in elements.enumerated() {
                let key = element.serialized()
                if let earlier = firstIndexByKey[key] {
                    violations.append(SchemaViolation(
                        path: path, keyword: "uniqueItems",
                        message: "items at index \(earlier) and \(index) are both \(Describe.value(element)), but items must be unique"))
                    break
                }
                firstIndexByKey[key] = index
            }
        }
        if failFast && !violations.isEmpty { return }
        if let items = rules.items {
            for (index, element) in elements.enumerated() {
                evaluate(items, element, at: InstancePath.element(path, index), depth: depth + 1, into: &violations)
                if failFast && !violations.isEmpty { return }
            }
        }
    }

    // MARK: Objects

    private func checkObject(_ rules: SchemaRules, _ members: [String: JSONValue], at path: String, depth: Int, into violations: inout [SchemaViolation]) {
        for name in rules.required where members[name] == nil {
            violations.append(SchemaViolation(
                path: InstancePath.member(path, name), keyword: "required",
                message: "required property \(CanonicalJSON.quoted(name)) is missing"))
        }
        if failFast && !violations.isEmpty { return }
        for property in rules.properties {
            guard let value = members[property.name] else { continue }
            evaluate(property.schema, value, at: InstancePath.member(path, property.name), depth: depth + 1, into: &violations)
            if failFast && !violations.isEmpty { return }
        }
        guard let additional = rules.additionalProperties else { return }
        for name in members.keys.sorted() where !rules.propertyNames.contains(name) {
            let memberPath = InstancePath.member(path, name)
            if case .constant(false) = additional {
                violations.append(SchemaViolation(
                    path: memberPath, keyword: "additionalProperties",
                    message: "property \(CanonicalJSON.quoted(name)) is not allowed"))
            } else if let value = members[name] {
                evaluate(additional, value, at: memberPath, depth: depth + 1, into: &violations)
            }
            if failFast && !violations.isEmpty { return }
        }
    }

    // MARK: Applicators

    private func checkApplicators(_ rules: SchemaRules, _ instance: JSONValue, at path: String, depth: Int, into violations: inout [SchemaViolation]) {
        for subschema in rules.allOf {
            evaluate(subschema, instance, at: path, depth: depth + 1, into: &violations)
            if failFast && !violations.isEmpty { return }
        }
        if let alternatives = rules.anyOf,
           !alternatives.contains(where: { isValid(instance, against: $0, at: path, depth: depth + 1) }) {
            violations.append(summarize(
                "anyOf", alternatives, instance, at: path, depth: depth,
                lead: "\(Describe.value(instance)) matches none of the \(alternatives.count) alternatives in anyOf"))
            if failFast { return }
        }
        if let alternatives = rules.oneOf {
            let matching = alternatives.indices.filter { isValid(instance, against: alternatives[$0], at: path, depth: depth + 1) }
            if matching.isEmpty {
                violations.append(summarize(
                    "oneOf", alternatives, instance, at: path, depth: depth,
                    lead: "\(Describe.value(instance)) matches none of the \(alternatives.count) alternatives in oneOf"))
            } else if matching.count > 1 {
                violations.append(SchemaViolation(
                    path: path, keyword: "oneOf",
                    message: "\(Describe.value(instance)) matches the alternatives at indices "
                        + Describe.list(matching.map(String.init), conjunction: "and") + " of oneOf, but must match exactly one"))
            }
            if failFast && !violations.isEmpty { return }
        }
        if let forbidden = rules.not, isValid(instance, against: forbidden, at: path, depth: depth + 1) {
            violations.append(SchemaViolation(
                path: path, keyword: "not", message: "\(Describe.value(instance)) must not match the schema given in 'not'"))
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
        _ keyword: String, _ alternatives: [SchemaNode], _ instance: JSONValue,
        at path: String, depth: Int, lead: String
    ) -> SchemaViolation {
        guard !failFast else { return SchemaViolation(path: path, keyword: keyword, message: lead) }
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
        guard let closest else { return SchemaViolation(path: path, keyword: keyword, message: lead) }
        let location = closest.first.path == path ? "" : "\(closest.first.path): "
        return SchemaViolation(
            path: path, keyword: keyword,
            message: "\(lead); closest is alternative \(closest.index): \(location)\(closest.first.message)")
    }
}
