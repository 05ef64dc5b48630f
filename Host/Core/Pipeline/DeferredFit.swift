import Foundation
import SwitchyardJSON

/// What `yard plan` can say about an input that an earlier step's output will
/// supply: the producer's output schema (the catalog's, narrowed by the
/// producing engine's declared outputs) against everything the consumer
/// accepts (the catalog's input schema, the engine's limits, its model's
/// limits). A value every producer output satisfies fits; one no output can
/// satisfy never fits; anything else only the run can tell.
enum DeferredFit: Equatable {
    case fits
    case never(String)
    case atRun(String)

    /// Where an earlier step's output feeds an input.
    struct Source {
        var step: String
        var reference: String
        var members: [String]
        /// The producer's output property, and the document its `$ref`s resolve in.
        var schema: JSONValue
        var root: JSONValue
    }

    /// The schema of the member at `path` (`images.0.file`, or an input path's segments) inside `schema`.
    static func schema(at path: [String], in schema: JSONValue, root: JSONValue) -> JSONValue? {
        var current = schema
        for member in path {
            current = StepTypeFit.dereference(current, root: root)
            guard let next = Int(member) != nil ? current["items"] : current["properties"]?[member] else { return nil }
            current = next
        }
        return current
    }

    /// `$.inputs.clips[0]` → ["clips", "0"].
    static func segments(ofInputField field: String) -> [String] {
        var text = field.hasPrefix("$.inputs") ? String(field.dropFirst("$.inputs".count)) : field
        text = text.replacingOccurrences(of: "[", with: ".").replacingOccurrences(of: "]", with: "")
        return text.split(separator: ".").map(String.init)
    }

    /// The facts a set of schemas states about a value (all must hold).
    struct Facts {
        var types: Set<String>?
        var values: [JSONValue]?
        var lower: Double?
        var lowerOpen = false
        var upper: Double?
        var upperOpen = false
        var mediaTypes: [String]?
        var other: [String] = []

        init(_ schemas: [JSONValue], root: JSONValue?) {
            for raw in schemas {
                let s = root.map { StepTypeFit.dereference(raw, root: $0) } ?? raw
                if let type = s["type"]?.stringValue {
                    // An integer is a number too.
                    let set: Set<String> = type == "number" ? ["number", "integer"] : [type]
                    types = types.map { $0.intersection(set) } ?? set
                }
                if let list = s["enum"]?.arrayValue ?? s["const"].map({ [$0] }) {
                    values = values.map { current in current.filter { v in list.contains { Self.equal($0, v) } } } ?? list
                }
                if let m = s["minimum"]?.doubleValue, lower.map({ m > $0 }) ?? true { lower = m; lowerOpen = false }
                if let m = s["exclusiveMinimum"]?.doubleValue, lower.map({ m >= $0 }) ?? true { lower = m; lowerOpen = true }
                if let m = s["maximum"]?.doubleValue, upper.map({ m < $0 }) ?? true { upper = m; upperOpen = false }
                if let m = s["exclusiveMaximum"]?.doubleValue, upper.map({ m <= $0 }) ?? true { upper = m; upperOpen = true }
                if let media = s["x-media-types"]?.arrayValue?.compactMap(\.stringValue) {
                    mediaTypes = mediaTypes.map { current in current.filter(media.contains) } ?? media
                }
                for key in ["pattern", "multipleOf", "minLength", "maxLength", "format", "not", "anyOf", "oneOf", "allOf", "if"] where s[key] != nil {
                    other.append(key)
                }
            }
        }

        static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
            if let x = a.doubleValue, let y = b.doubleValue { return x == y }
            return a == b
        }

        func admits(_ value: JSONValue) -> Bool {
            if let values, !values.contains(where: { Self.equal($0, value) }) { return false }
            guard let n = value.doubleValue else { return true }
            if let lower, lowerOpen ? n <= lower : n < lower { return false }
            if let upper, upperOpen ? n >= upper : n > upper { return false }
            return true
        }

        var rangeText: String {
            if let values { return values.map { $0.stringValue ?? String(decoding: $0.serialized(), as: UTF8.self) }.joined(separator: " or ") }
            var parts: [String] = []
            if let lower { parts.append("\(lowerOpen ? ">" : "≥") \(Self.number(lower))") }
            if let upper { parts.append("\(upperOpen ? "<" : "≤") \(Self.number(upper))") }
            if let mediaTypes { parts.append(mediaTypes.joined(separator: ", ")) }
            return parts.isEmpty ? "any value" : parts.joined(separator: " and ")
        }

        static func number(_ d: Double) -> String { d.rounded() == d && abs(d) < 1e15 ? String(Int(d)) : String(d) }
    }

    /// Judges producer against consumer.
    static func judge(producer: [JSONValue], producerRoot: JSONValue, consumer: [JSONValue], consumerRoot: JSONValue, source: String, engine: String) -> DeferredFit {
        let p = Facts(producer, root: producerRoot), c = Facts(consumer, root: consumerRoot)
        let what = "\(source) gives \(p.rangeText); \(engine) takes \(c.rangeText)"
        if let pt = p.types, let ct = c.types, pt.intersection(ct).isEmpty { return .never(what) }
        if let pm = p.mediaTypes, let cm = c.mediaTypes {
            let common = pm.filter(cm.contains)
            if common.isEmpty { return .never(what) }
            if common.count < pm.count { return .atRun("\(what): the file's type is known when the step runs") }
        }
        if let values = p.values {
            let admitted = values.filter(c.admits)
            if admitted.isEmpty { return .never(what) }
            if admitted.count < values.count { return .atRun(what) }
            return c.other.isEmpty ? .fits : .atRun(what)
        }
        if let allowed = c.values {
            // The consumer takes a few values; can the producer's range yield any of them?
            if !allowed.contains(where: { v in v.doubleValue.map { n in p.admitsNumber(n) } ?? true }) { return .never(what) }
            return .atRun(what)
        }
        if p.within(c) { return c.other.isEmpty || c.other == p.other ? .fits : .atRun(what) }
        if p.disjoint(c) { return .never(what) }
        return .atRun(what)
    }
}

extension DeferredFit.Facts {
    func admitsNumber(_ n: Double) -> Bool {
        if let lower, lowerOpen ? n <= lower : n < lower { return false }
        if let upper, upperOpen ? n >= upper : n > upper { return false }
        return true
    }

    /// Every value within self's bounds is within other's.
    func within(_ other: DeferredFit.Facts) -> Bool {
        if let ol = other.lower {
            guard let l = lower, l > ol || (l == ol && (lowerOpen || !other.lowerOpen)) else { return false }
        }
        if let ou = other.upper {
            guard let u = upper, u < ou || (u == ou && (upperOpen || !other.upperOpen)) else { return false }
        }
        return true
    }

    /// No value is within both.
    func disjoint(_ other: DeferredFit.Facts) -> Bool {
        if let u = upper, let ol = other.lower, u < ol || (u == ol && (upperOpen || other.lowerOpen)) { return true }
        if let l = lower, let ou = other.upper, l > ou || (l == ou && (lowerOpen || other.upperOpen)) { return true }
        return false
    }
}
