import Foundation

extension JSONValue {
    /// Compact JSON text: no insignificant whitespace, UTF-8.
    ///
    /// With `sortedKeys` (the default) the output is canonical and deterministic, so it
    /// can be hashed. It follows RFC 8785 (JSON Canonicalization Scheme):
    /// - object members sorted by the UTF-16 code units of their names;
    /// - strings escape only `"`, `\` and U+0000...U+001F (using `\b \t \n \f \r` where
    ///   they exist, `\u00xx` with lowercase hex otherwise); everything else is literal UTF-8;
    /// - numbers use the ECMAScript `Number.prototype.toString` form: shortest digits that
    ///   round-trip, integers without a fraction (`5`, never `5.0`), `-0` as `0`, and
    ///   exponent notation only below 1e-6 or from 1e21 (`1e+21`, `5e-324`).
    ///
    /// JSON cannot express NaN or infinity; such numbers (which the parser never
    /// produces) are written as `null`.
    ///
    /// Without `sortedKeys`, members follow dictionary order, which varies between runs.
    public func serialized(sortedKeys: Bool = true) -> Data {
        var output: [UInt8] = []
        output.reserveCapacity(128)
        CanonicalJSON.write(self, sortedKeys: sortedKeys, into: &output)
        return Data(output)
    }
}

enum CanonicalJSON {
    static func write(_ value: JSONValue, sortedKeys: Bool, into output: inout [UInt8]) {
        switch value {
        case .null:
            output.append(contentsOf: "null".utf8)
        case .bool(let flag):
            output.append(contentsOf: (flag ? "true" : "false").utf8)
        case .number(let number):
            output.append(contentsOf: formatNumber(number).utf8)
        case .string(let string):
            writeString(string, into: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                write(element, sortedKeys: sortedKeys, into: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            let keys = sortedKeys ? members.keys.sorted(by: utf16Precedes) : Array(members.keys)
            for (position, key) in keys.enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                writeString(key, into: &output)
                output.append(UInt8(ascii: ":"))
                write(members[key] ?? .null, sortedKeys: sortedKeys, into: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// Like `write`, but stops once `output` holds more than `byteLimit` bytes, possibly
    /// mid-token. Returns whether the value was written completely. Keys are sorted.
    @discardableResult
    static func write(_ value: JSONValue, into output: inout [UInt8], byteLimit: Int) -> Bool {
        guard output.count <= byteLimit else { return false }
        switch value {
        case .null, .bool, .number:
            write(value, sortedKeys: true, into: &output)
        case .string(let string):
            // Bounded by the string's own prefix so a huge string is not escaped whole.
            let prefix = string.unicodeScalars.prefix(byteLimit - output.count + 1)
            var scalars = String.UnicodeScalarView()
            scalars.append(contentsOf: prefix)
            writeString(String(scalars), into: &output)
            if prefix.count < string.unicodeScalars.count { return false }
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                guard write(element, into: &output, byteLimit: byteLimit) else { return false }
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            for (position, key) in members.keys.sorted(by: utf16Precedes).enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                writeString(key, into: &output)
                output.append(UInt8(ascii: ":"))
                guard output.count <= byteLimit,
                      write(members[key] ?? .null, into: &output, byteLimit: byteLimit) else { return false }
            }
            output.append(UInt8(ascii: "}"))
        }
        return output.count <= byteLimit
    }

    /// RFC 8785 §3.2.3 orders member names by UTF-16 code units, not by scalars.
    static func utf16Precedes(_ lhs: String, _ rhs: String) -> Bool {
        lhs.utf16.lexicographicallyPrecedes(rhs.utf16)
    }

    static func writeString(_ string: String, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): output.append(contentsOf: "\\\\".utf8)
            case 0x08: output.append(contentsOf: "\\b".utf8)
            case 0x09: output.append(contentsOf: "\\t".utf8)
            case 0x0A: output.append(contentsOf: "\\n".utf8)
            case 0x0C: output.append(contentsOf: "\\f".utf8)
            case 0x0D: output.append(contentsOf: "\\r".utf8)
            case 0x00..<0x20:
                output.append(contentsOf: "\\u00".utf8)
                output.append(hexDigit(byte >> 4))
                output.append(hexDigit(byte & 0x0F))
            default:
                output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    /// A string as a JSON string literal, for messages.
    static func quoted(_ string: String) -> String {
        var output: [UInt8] = []
        writeString(string, into: &output)
        return String(decoding: output, as: UTF8.self)
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    /// ECMAScript Number::toString, built on Swift's shortest round-trip digits.
    static func formatNumber(_ number: Double) -> String {
        guard number.isFinite else { return "null" }
        if number == 0 { return "0" }
        // Below 2^53 the shortest round-trip digits of an integer are the integer itself.
        if let integer = Int64(exactly: number), integer.magnitude <= 1 << 53 {
            return String(integer)
        }

        let (digits, pointPosition) = shortestDigits(of: number.magnitude)
        let k = digits.count
        let n = pointPosition
        var result = number < 0 ? "-" : ""
        if k <= n && n <= 21 {
            result += digits + String(repeating: "0", count: n - k)
        } else if 0 < n && n <= 21 {
            result += digits.prefix(n) + "." + digits.dropFirst(n)
        } else if -6 < n && n <= 0 {
            result += "0." + String(repeating: "0", count: -n) + digits
        } else {
            let exponent = n - 1
            let sign = exponent < 0 ? "-" : "+"
            let mantissa = k == 1 ? digits : digits.prefix(1) + "." + digits.dropFirst(1)
            result += mantissa + "e" + sign + String(exponent.magnitude)
        }
        return result
    }

    /// The significant decimal digits `d1...dk` (no leading or trailing zeros) and the
    /// position `n` of the decimal point, such that `value = 0.d1...dk × 10^n`.
    ///
    /// Swift's `description` yields the shortest digit string that round-trips (and the
    /// closest such string when several exist), which is exactly what ECMAScript asks for;
    /// only its layout differs, so this re-reads it.
    private static func shortestDigits(of value: Double) -> (digits: String, pointPosition: Int) {
        let text = value.description
        let parts = text.split(separator: "e", maxSplits: 1)
        let mantissa = parts.first ?? Substring(text)
        let exponent = parts.count > 1 ? Int(parts[1]) ?? 0 : 0

        var digits = Array(mantissa.filter { $0 != "." })
        var pointPosition = (mantissa.firstIndex(of: ".").map { mantissa.distance(from: mantissa.startIndex, to: $0) }
            ?? mantissa.count) + exponent
        while digits.first == "0" {
            digits.removeFirst()
            pointPosition -= 1
        }
        while digits.last == "0" {
            digits.removeLast()
        }
        return (String(digits), pointPosition)
    }
}
