import Foundation
import XCTest
@testable import SwitchyardJSON

final class JSONSchemaFormatTests: XCTestCase {
    private func formatViolations(_ format: String, _ value: String) throws -> [SchemaViolation] {
        try violations(of: .string(value), against: ["format": .string(format)])
    }

    // MARK: uri

    func testURIAcceptsHTTPHTTPSAndFileURIs() throws {
        let accepted = [
            "https://example.com", "http://example.com/a/b?c=d&e=f#frag", "HTTPS://EXAMPLE.COM/",
            "https://user:pw@example.com:8443/p%20q", "http://[::1]:8080/", "http://127.0.0.1/x",
            "file:///tmp/input.png", "file://host/share/file.wav", "file:/tmp/x",
        ]
        for uri in accepted {
            XCTAssertEqual(try formatViolations("uri", uri), [], uri)
        }
    }

    func testURIRejectsOtherSchemes() throws {
        for uri in ["ftp://example.com/x", "mailto:a@example.com", "data:text/plain,hi", "urn:isbn:123"] {
            XCTAssertEqual(try formatViolations("uri", uri).map(\.keyword), ["format"], uri)
        }
    }

    func testURIRejectsRelativeReferencesAndMissingHosts() throws {
        for uri in ["/tmp/x", "example.com/x", "//example.com", "https:example.com", "https://", "http:///path", "file:", ""] {
            XCTAssertEqual(try formatViolations("uri", uri).map(\.keyword), ["format"], uri)
        }
    }

    func testURIRejectsCharactersOutsideRFC3986() throws {
        for uri in ["https://example.com/a b", "https://exa mple.com", "https://example.com/é", "https://example.com/<x>",
                    "https://example.com/%zz", "https://example.com/%4", "https://example.com/\\x"] {
            XCTAssertEqual(try formatViolations("uri", uri).map(\.keyword), ["format"], uri)
        }
    }

    func testURIViolationMessageNamesValueAndSchemes() throws {
        let violation = try formatViolations("uri", "ftp://x").first
        XCTAssertEqual(violation, SchemaViolation(
            path: "$", keyword: "format", message: #""ftp://x" is not a valid URI with an http, https or file scheme"#))
    }

    // MARK: date-time

    func testDateTimeAcceptsRFC3339Forms() throws {
        let accepted = [
            "2024-05-01T12:30:00Z", "2024-05-01t12:30:00z", "2024-05-01T12:30:00.123456Z",
            "2024-05-01T12:30:00+02:00", "2024-05-01T12:30:00-11:30", "2024-02-29T00:00:00Z",
            "2000-02-29T23:59:59Z", "1998-12-31T23:59:60Z", "1998-12-31T15:59:60.123-08:00",
        ]
        for text in accepted {
            XCTAssertEqual(try formatViolations("date-time", text), [], text)
        }
    }

    func testDateTimeRejectsMissingPartsAndOtherISO8601Forms() throws {
        let rejected = [
            "2024-05-01", "2024-05-01T12:30Z", "2024-05-01T12:30:00", "2024-05-01 12:30:00Z",
            "20240501T123000Z", "2024-05-01T12:30:00.Z", "2024-05-01T12:30:00+0200", "2024-05-01T12:30:00+02",
            "2024-W18-3T12:30:00Z", "2024-05-01T12:30:00Z ", " 2024-05-01T12:30:00Z",
        ]
        for text in rejected {
            XCTAssertEqual(try formatViolations("date-time", text).map(\.keyword), ["format"], text)
        }
    }

    func testDateTimeRejectsOutOfRangeFields() throws {
        let rejected = [
            "2024-13-01T00:00:00Z", "2024-00-01T00:00:00Z", "2024-04-31T00:00:00Z", "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z", "2024-05-01T24:00:00Z", "2024-05-01T12:60:00Z", "2024-05-01T12:00:61Z",
            "2024-05-01T12:00:00+24:00", "2024-05-01T12:00:00+01:60",
        ]
        for text in rejected {
            XCTAssertEqual(try formatViolations("date-time", text).map(\.keyword), ["format"], text)
        }
    }

    func testDateTimeAllowsLeapSecondOnlyAtTheLastUTCMinute() throws {
        XCTAssertEqual(try formatViolations("date-time", "1998-12-31T23:58:60Z").map(\.keyword), ["format"])
        XCTAssertEqual(try formatViolations("date-time", "1998-12-31T22:59:60Z").map(\.keyword), ["format"])
        XCTAssertEqual(try formatViolations("date-time", "1998-12-31T23:59:60+01:00").map(\.keyword), ["format"])
    }

    func testDateTimeRejectsNonASCIIDigits() throws {
        XCTAssertEqual(try formatViolations("date-time", "2024-05-0১T12:30:00Z").map(\.keyword), ["format"])
    }

    func testDateTimeViolationMessageNamesTheValue() throws {
        XCTAssertEqual(
            try formatViolations("date-time", "yesterday").first?.message,
            #""yesterday" is not a valid RFC 3339 date-time such as 2024-05-01T12:30:00Z"#)
    }

    // MARK: other formats

    func testUnknownFormatsAreIgnored() throws {
        XCTAssertEqual(try formatViolations("email", "not an email"), [])
        XCTAssertEqual(try formatViolations("date", "never"), [])
    }

    func testFormatIgnoresNonStrings() throws {
        XCTAssertEqual(try violations(of: 42, against: ["format": "uri"]), [])
    }
}
