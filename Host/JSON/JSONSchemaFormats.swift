import Foundation

/// The `format` values this validator asserts.
enum StringFormats {
    static let uriSchemes: Set<String> = ["http", "https", "file"]

    /// An absolute RFC 3986 URI whose scheme is http, https (both with a host) or file.
    static func isURI(_ string: String) -> Bool {
        guard hasOnlyURICharacters(string), let colon = string.firstIndex(of: ":") else { return false }
        let scheme = string[..<colon]
        guard let first = scheme.unicodeScalars.first, isASCIILetter(first),
              scheme.unicodeScalars.allSatisfy({ isASCIILetter($0) || isASCIIDigit($0) || "+-.".unicodeScalars.contains($0) }),
              uriSchemes.contains(scheme.lowercased()),
              let components = URLComponents(string: string) else { return false }
        let rest = string[string.index(after: colon)...]
        if scheme.lowercased() == "file" {
            return !rest.isEmpty && !components.percentEncodedPath.isEmpty
        }
        return rest.hasPrefix("//") && !(components.percentEncodedHost ?? "").isEmpty
    }

    /// RFC 3986 allows only unreserved and reserved ASCII characters, plus `%` starting a
    /// two-hex-digit escape. Checked here because URL parsers are more forgiving.
    private static func hasOnlyURICharacters(_ string: String) -> Bool {
        let allowedPunctuation = "-._~:/?#[]@!$&'()*+,;=".unicodeScalars
        let scalars = Array(string.unicodeScalars)
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "%" {
                guard index + 2 < scalars.count, isHexDigit(scalars[index + 1]), isHexDigit(scalars[index + 2]) else { return false }
                index += 3
                continue
            }
            guard isASCIILetter(scalar) || isASCIIDigit(scalar) || allowedPunctuation.contains(scalar) else { return false }
            index += 1
        }
        return !scalars.isEmpty
    }

    /// RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, with real calendar
    /// days and a leap second (`:60`) allowed only at 23:59 UTC.
    static func isDateTime(_ string: String) -> Bool {
        let bytes = Array(string.utf8)
        guard bytes.count >= 20 else { return false }

        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in bytes[range] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        func byte(_ index: Int, is allowed: String) -> Bool {
            index < bytes.count && allowed.utf8.contains(bytes[index])
        }

        guard let year = number(0..<4), byte(4, is: "-"), let month = number(5..<7), byte(7, is: "-"),
              let day = number(8..<10), byte(10, is: "Tt"),
              let hour = number(11..<13), byte(13, is: ":"), let minute = number(14..<16), byte(16, is: ":"),
              let second = number(17..<19) else { return false }

        var index = 19
        if byte(index, is: ".") {
            index += 1
            let fractionStart = index
            while byte(index, is: "0123456789") { index += 1 }
            guard index > fractionStart else { return false }
        }

        let offsetMinutes: Int
        if byte(index, is: "Zz") {
            offsetMinutes = 0
            index += 1
        } else if byte(index, is: "+-"), index + 6 <= bytes.count, byte(index + 3, is: ":"),
                  let offsetHour = number(index + 1..<index + 3), let offsetMinute = number(index + 4..<index + 6),
                  offsetHour <= 23, offsetMinute <= 59 {
            offsetMinutes = (bytes[index] == UInt8(ascii: "-") ? -1 : 1) * (offsetHour * 60 + offsetMinute)
            index += 6
        } else {
            return false
        }
        guard index == bytes.count else { return false }

        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
              hour <= 23, minute <= 59, second <= 60 else { return false }
        if second == 60 {
            let minutesIntoUTCDay = ((hour * 60 + minute - offsetMinutes) % 1440 + 1440) % 1440
            return minutesIntoUTCDay == 23 * 60 + 59
        }
        return true
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2:
            let isLeap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
            return isLeap ? 29 : 28
        case 4, 6, 9, 11:
            return 30
        default:
            return 31
        }
    }

    private static func isASCIILetter(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
    }

    private static func isASCIIDigit(_ scalar: Unicode.Scalar) -> Bool {
        ("0"..."9").contains(scalar)
    }

    private static func isHexDigit(_ scalar: Unicode.Scalar) -> Bool {
        isASCIIDigit(scalar) || ("a"..."f").contains(scalar) || ("A"..."F").contains(scalar)
    }
}
