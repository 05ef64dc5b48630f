import Foundation

/// Removes credentials from text before it is stored or shown (job rows,
/// events, logs, `yard doctor`). Three layers, because truncation and
/// re-encoding defeat a plain search for the whole value:
///
/// 1. every known value (declared secrets, header values the plugin sent,
///    tokens the host signed for it), replaced by a marker naming it;
/// 2. any run of 8 or more leading characters of a known value of 12 or more
///    (what a body cut at N bytes leaves of a key at its end);
/// 3. credential shapes whatever their origin: JWTs, and the token after
///    `Bearer` or `Basic` (as an authorization header carries it).
public struct Redactor: Sendable {
    public struct Value: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// Values shorter than this are not searched for (they would match ordinary text).
    public static let minimumLength = 4
    /// A fragment this long of a value this long is a leak.
    public static let fragmentLength = 8
    public static let fragmentOfValuesFrom = 12

    public var values: [Value]

    public init(values: [Value]) {
        // Longest first, so a value containing another is replaced whole.
        self.values = values.filter { $0.value.count >= Self.minimumLength }.sorted { $0.value.count > $1.value.count }
    }

    public func redact(_ text: String) -> String {
        var text = text
        for item in values where text.contains(item.value) {
            text = text.replacingOccurrences(of: item.value, with: "[REDACTED:\(item.name)]")
        }
        for item in values where item.value.count >= Self.fragmentOfValuesFrom {
            text = Self.redactPrefixes(of: item, in: text)
        }
        return Self.redactShapes(text)
    }

    /// Replaces every occurrence of the value's first 8+ characters (extended
    /// as far as the text keeps matching the value).
    static func redactPrefixes(of item: Value, in text: String) -> String {
        let value = Array(item.value.unicodeScalars)
        let head = String(String.UnicodeScalarView(value.prefix(fragmentLength)))
        guard text.contains(head) else { return text }
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            var length = 0
            while length < value.count, i + length < scalars.count, scalars[i + length] == value[length] { length += 1 }
            if length >= fragmentLength {
                out.append(contentsOf: "[REDACTED:\(item.name)]".unicodeScalars)
                i += length
            } else {
                out.append(scalars[i])
                i += 1
            }
        }
        return String(out)
    }

    nonisolated(unsafe) static let jwt = try! NSRegularExpression(pattern: #"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}"#)
    nonisolated(unsafe) static let scheme = try! NSRegularExpression(pattern: #"(?i)\b(bearer|basic)(\s+|%20)(?!\[REDACTED)([A-Za-z0-9._~+/=:-]{12,})"#)

    static func redactShapes(_ text: String) -> String {
        // A plain search first: most text holds neither, and compiling a pattern per call cost more than the rest of redaction.
        guard text.contains("eyJ") || text.range(of: "bearer", options: .caseInsensitive) != nil
              || text.range(of: "basic", options: .caseInsensitive) != nil else { return text }
        let range = NSRange(text.startIndex..., in: text)
        var result = jwt.stringByReplacingMatches(in: text, range: range, withTemplate: "[REDACTED:JWT]")
        result = scheme.stringByReplacingMatches(in: result, range: NSRange(result.startIndex..., in: result), withTemplate: "$1$2[REDACTED]")
        return result
    }

    /// Header names whose values are credentials wherever they are sent.
    public static func isCredentialHeader(_ name: String) -> Bool {
        let name = name.lowercased()
        if ["authorization", "proxy-authorization", "cookie", "set-cookie"].contains(name) { return true }
        // Idempotency keys name a request; they are not credentials (and refs quote them).
        if name.contains("idempotency") { return false }
        return ["key", "token", "secret", "auth", "signature", "password"].contains { name.contains($0) }
    }

    /// The credential inside an authorization-style header value: the value
    /// itself and, for "Scheme credential", the credential alone.
    public static func credentials(inHeaderValue value: String) -> [String] {
        let parts = value.split(separator: " ", maxSplits: 1).map(String.init)
        if parts.count == 2, parts[0].count <= 10, parts[0].allSatisfy(\.isLetter) { return [value, parts[1]] }
        return [value]
    }
}
