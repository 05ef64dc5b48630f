import Foundation

/// Why a document is not JSON, and where.
public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Byte offset from the start of the input, 0-based.
    public var offset: Int
    /// 1-based line of `offset`.
    public var line: Int
    /// 1-based column of `offset`, counted in bytes.
    public var column: Int
    public var message: String

    public init(offset: Int, line: Int, column: Int, message: String) {
        self.offset = offset
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "line \(line), column \(column): \(message)" }
}

extension JSONValue {
    /// Parses strict RFC 8259 JSON text encoded as UTF-8.
    ///
    /// Stricter than `JSONSerialization` where leniency would make one document mean two
    /// things: duplicate member names, unpaired surrogate escapes, invalid UTF-8 and numbers
    /// outside the `Double` range are errors. A leading UTF-8 byte order mark is skipped.
    /// Nesting deeper than 512 levels is rejected rather than risking the stack.
    public init(parsing data: Data) throws(JSONParseError) {
        var parser = JSONParser(bytes: [UInt8](data))
        self = try parser.parseDocument()
    }

    /// Parses JSON text held in a string.
    public init(parsing text: String) throws(JSONParseError) {
        var parser = JSONParser(bytes: Array(text.utf8))
        self = try parser.parseDocument()
    }
}

struct JSONParser {
    static let maximumDepth = 512

    /// An array or object whose members are still being read. The parser keeps these on
    /// an explicit stack instead of recursing, so nesting costs heap, never thread stack.
    private enum OpenContainer {
        case array([JSONValue])
        case object([String: JSONValue], pendingKey: String)
    }

    private let bytes: [UInt8]
    private var index = 0

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        var open: [OpenContainer] = []

        while true {
            // Read one value; an opened non-empty container instead loops to read its first member.
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input, expected a value") }
            var value: JSONValue
            switch bytes[index] {
            case UInt8(ascii: "["):
                guard open.count < Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth) levels") }
                index += 1
                skipWhitespace()
                if peek(UInt8(ascii: "]")) {
                    index += 1
                    value = .array([])
                } else {
                    open.append(.array([]))
                    continue
                }
            case UInt8(ascii: "{"):
                guard open.count < Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth) levels") }
                index += 1
                skipWhitespace()
                if peek(UInt8(ascii: "}")) {
                    index += 1
                    value = .object([:])
                } else {
                    open.append(.object([:], pendingKey: try parseMemberName(existing: [:])))
                    continue
                }
            case UInt8(ascii: "\""): value = .string(try parseString())
            case UInt8(ascii: "t"): value = try parseLiteral("true", .bool(true))
            case UInt8(ascii: "f"): value = try parseLiteral("false", .bool(false))
            case UInt8(ascii: "n"): value = try parseLiteral("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): value = try parseNumber()
            default: throw error("unexpected \(describeByte(at: index)), expected a value")
            }

            // Hand the finished value to its container, closing every container that ends here.
            while true {
                guard let container = open.popLast() else {
                    skipWhitespace()
                    guard index == bytes.count else { throw error("unexpected \(describeByte(at: index)) after the JSON value") }
                    return value
                }
                skipWhitespace()
                switch container {
                case .array(var elements):
                    elements.append(value)
                    if peek(UInt8(ascii: ",")) {
                        index += 1
                        open.append(.array(elements))
                    } else if peek(UInt8(ascii: "]")) {
                        index += 1
                        value = .array(elements)
                        continue
                    } else {
                        throw unexpected("',' or ']'")
                    }
                case .object(var members, let key):
                    members[key] = value
                    if peek(UInt8(ascii: ",")) {
                        index += 1
                        open.append(.object(members, pendingKey: try parseMemberName(existing: members)))
                    } else if peek(UInt8(ascii: "}")) {
                        index += 1
                        value = .object(members)
                        continue
                    } else {
                        throw unexpected("',' or '}'")
                    }
                }
                // A ',' reopened the container: its next member's value comes next.
                break
            }
        }
    }

    /// Reads `"name" :`, leaving the index at the member's value.
    private mutating func parseMemberName(existing members: [String: JSONValue]) throws(JSONParseError) -> String {
        skipWhitespace()
        guard peek(UInt8(ascii: "\"")) else { throw unexpected("a member name in double quotes") }
        let keyOffset = index
        let key = try parseString()
        guard members[key] == nil else {
            throw error("duplicate member name \(CanonicalJSON.quoted(key))", at: keyOffset)
        }
        skipWhitespace()
        guard peek(UInt8(ascii: ":")) else { throw unexpected("':' after a member name") }
        index += 1
        return key
    }

    private mutating func parseLiteral(_ word: String, _ value: JSONValue) throws(JSONParseError) -> JSONValue {
        let expected = Array(word.utf8)
        guard bytes[index...].starts(with: expected) else { throw error("invalid literal, expected '\(word)'") }
        index += expected.count
        return value
    }

    // MARK: Strings

    private mutating func parseString() throws(JSONParseError) -> String {
        let start = index
        index += 1
        var buffer: [UInt8] = []
        while true {
            guard index < bytes.count else { throw error("unterminated string", at: start) }
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let string = String(validating: buffer, as: UTF8.self) else {
                    throw error("string is not valid UTF-8", at: start)
                }
                return string
            case UInt8(ascii: "\\"):
                try parseEscape(into: &buffer)
            case 0x00..<0x20:
                throw error("control character U+\(hex4(UInt32(byte))) must be escaped inside a string")
            default:
                buffer.append(byte)
                index += 1
            }
        }
    }

    private mutating func parseEscape(into buffer: inout [UInt8]) throws(JSONParseError) {
        let escapeStart = index
        index += 1
        guard index < bytes.count else { throw error("unterminated escape sequence", at: escapeStart) }
        let code = bytes[index]
        index += 1
        switch code {
        case UInt8(ascii: "\""): buffer.append(0x22)
        case UInt8(ascii: "\\"): buffer.append(0x5C)
        case UInt8(ascii: "/"): buffer.append(0x2F)
        case UInt8(ascii: "b"): buffer.append(0x08)
        case UInt8(ascii: "f"): buffer.append(0x0C)
        case UInt8(ascii: "n"): buffer.append(0x0A)
        case UInt8(ascii: "r"): buffer.append(0x0D)
        case UInt8(ascii: "t"): buffer.append(0x09)
        case UInt8(ascii: "u"):
            let first = try parseHex4(escapeStart: escapeStart)
            var scalarValue = first
            if (0xD800...0xDBFF).contains(first) {
                guard bytes[index...].starts(with: [UInt8(ascii: "\\"), UInt8(ascii: "u")]) else {
                    throw error("unpaired high surrogate \\u\(hex4(first))", at: escapeStart)
                }
                let lowStart = index
                index += 2
                let second = try parseHex4(escapeStart: lowStart)
                guard (0xDC00...0xDFFF).contains(second) else {
                    throw error("unpaired high surrogate \\u\(hex4(first))", at: escapeStart)
                }
                scalarValue = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(first) {
                throw error("unpaired low surrogate \\u\(hex4(first))", at: escapeStart)
            }
            guard let scalar = Unicode.Scalar(scalarValue) else {
                throw error("invalid Unicode escape", at: escapeStart)
            }
            buffer.append(contentsOf: String(Character(scalar)).utf8)
        default:
            throw error("invalid escape sequence '\\\(printable(code))'", at: escapeStart)
        }
    }

    private mutating func parseHex4(escapeStart: Int) throws(JSONParseError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("truncated \\u escape", at: escapeStart) }
        var value: UInt32 = 0
        for byte in bytes[index..<index + 4] {
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid hex digit in \\u escape", at: escapeStart)
            }
            value = value << 4 | UInt32(nibble)
        }
        index += 4
        return value
    }

    // MARK: Numbers

    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = index
        if peek(UInt8(ascii: "-")) { index += 1 }
        if peek(UInt8(ascii: "0")) {
            index += 1
            if peekDigit() { throw error("leading zeros are not allowed in numbers", at: start) }
        } else if peekDigit() {
            skipDigits()
        } else {
            throw error("invalid number: expected a digit", at: start)
        }
        if peek(UInt8(ascii: ".")) {
            index += 1
            guard peekDigit() else { throw error("invalid number: expected a digit after '.'", at: start) }
            skipDigits()
        }
        if peek(UInt8(ascii: "e")) || peek(UInt8(ascii: "E")) {
            index += 1
            if peek(UInt8(ascii: "+")) || peek(UInt8(ascii: "-")) { index += 1 }
            guard peekDigit() else { throw error("invalid number: expected a digit in the exponent", at: start) }
            skipDigits()
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        // Double(String) rounds correctly, so every integer up to 2^53 comes back exact.
        guard let number = Double(text), number.isFinite else {
            throw error("number \(text) is outside the range of a 64-bit double", at: start)
        }
        return .number(number)
    }

    private func peekDigit() -> Bool {
        index < bytes.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index])
    }

    private mutating func skipDigits() {
        while peekDigit() { index += 1 }
    }

    // MARK: Helpers

    private func peek(_ byte: UInt8) -> Bool {
        index < bytes.count && bytes[index] == byte
    }

    private func unexpected(_ what: String) -> JSONParseError {
        error(index < bytes.count
            ? "unexpected \(describeByte(at: index)), expected \(what)"
            : "unexpected end of input, expected \(what)")
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private func describeByte(at offset: Int) -> String {
        guard offset < bytes.count else { return "end of input" }
        return "character '\(printable(bytes[offset]))'"
    }

    private func printable(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16, uppercase: true)
    }

    private func hex4(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    private func error(_ message: String, at offset: Int? = nil) -> JSONParseError {
        let position = min(offset ?? index, bytes.count)
        var line = 1
        var lineStart = 0
        for (i, byte) in bytes[..<position].enumerated() where byte == 0x0A {
            line += 1
            lineStart = i + 1
        }
        return JSONParseError(offset: position, line: line, column: position - lineStart + 1, message: message)
    }
}
