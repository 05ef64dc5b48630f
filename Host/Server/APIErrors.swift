import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardHost
import SwitchyardJSON

/// The one table from the CLI's error codes to HTTP statuses. A code that is
/// not listed falls back on its suffix (…_NOT_FOUND 404, …_INVALID 400), then
/// on 422: the request was understood and refused.
public enum APIErrorStatus {
    public static let table: [String: Int] = [
        // the request itself
        "USAGE": 400, "NAME_INVALID": 400, "CONFIG_INVALID": 400, "INPUT_INVALID": 400, "ARTIFACT_HANDLE_INVALID": 400,
        "DOCUMENT_TOO_DEEP": 400, "DOCUMENT_ALIAS_LIMIT": 400, "PATH_OUTSIDE_ROOT": 400, "CURSOR_INVALID": 400,
        "BODY_INVALID": 400, "IDEMPOTENCY_KEY_INVALID": 400, "RANGE_INVALID": 416,
        "AUTH_REQUIRED": 401, "TOKEN_INVALID": 401,
        "SCOPE_INSUFFICIENT": 403, "ACCESS_NOT_GRANTED": 403, "NETWORK_DENIED": 403,
        "DOCUMENT_TOO_LARGE": 413, "REQUEST_TOO_LARGE": 413, "WEBHOOK_TOO_LARGE": 413, "ARTIFACT_TOO_LARGE": 413, "PACKAGE_TOO_LARGE": 413,
        "WEBHOOK_TIMEOUT": 408,
        "IDEMPOTENCY_CONFLICT": 409, "JOB_NOT_PARKED": 409, "JOB_FINISHED": 409, "CANCEL_FAILED": 409,
        "RATE_LIMITED": 429,
        // not here
        "JOB_NOT_FOUND": 404, "RUN_NOT_FOUND": 404, "ARTIFACT_NOT_FOUND": 404, "PLUGIN_NOT_FOUND": 404, "PRESET_NOT_FOUND": 404,
        "PIPELINE_NOT_FOUND": 404, "CAPABILITY_NOT_FOUND": 404, "SECRET_NOT_FOUND": 404, "ACCOUNT_NOT_FOUND": 404,
        "MODEL_NOT_FOUND": 404, "ROUTE_NOT_FOUND": 404, "BUDGET_NOT_FOUND": 404, "FILE_NOT_FOUND": 404, "REVISION_NOT_FOUND": 404,
        "BILLING_NOT_CONFIGURED": 404, "WEBHOOK_UNSUPPORTED": 404,
        "WEBHOOK_EVENT_UNKNOWN": 400, "WEBHOOK_ENDPOINT_LIMIT": 409,
        "METHOD_NOT_ALLOWED": 405,
        // refused on its merits
        "INSUFFICIENT_FUNDS": 402, "BUDGET_EXCEEDED": 402,
        "PREFLIGHT_FAILED": 422, "CURRENCY_MISMATCH": 422, "PIPELINE_INVALID": 422, "AUTH_MISSING": 422, "AUTH_FAILED": 422,
        // engines and the host
        "ENGINE_UNREACHABLE": 502, "ENGINE_ERROR": 502, "PLUGIN_CRASHED": 502, "PLUGIN_TIMEOUT": 504, "ENGINE_TIMEOUT": 504,
        "ENGINE_UNAVAILABLE": 503, "STORE_UNSUPPORTED": 503, "NOT_READY": 503,
        "INTERNAL": 500, "IO_FAILED": 500, "LEDGER_UNBALANCED": 500,
    ]

    public static func status(for code: String) -> Int {
        if let status = table[code] { return status }
        if code.hasSuffix("_NOT_FOUND") { return 404 }
        if code.hasSuffix("_INVALID") { return 400 }
        return 422
    }
}

/// A refusal on its way out: the YardError as `{"error":{…}}` with the
/// status the table gives its code (or `status` when set).
public struct APIError: HTTPResponseError {
    public var error: YardError
    public var statusOverride: Int?
    public var headers: HTTPFields = [:]

    public init(_ error: YardError, status: Int? = nil) {
        self.error = error
        self.statusOverride = status
    }

    public init(_ code: YardError.Code, _ message: String, remediation: String, field: String? = nil, status: Int? = nil) {
        self.init(YardError(code, message, remediation: remediation, field: field), status: status)
    }

    public var status: HTTPResponse.Status { .init(code: statusOverride ?? APIErrorStatus.status(for: error.code.rawValue)) }

    public static func document(_ error: YardError) -> JSONValue {
        var body: [String: JSONValue] = ["code": .string(error.code.rawValue), "message": .string(error.message), "remediation": .string(error.remediation)]
        body["field"] = error.field.map(JSONValue.string) ?? .null
        return .object(["error": .object(body)])
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = JSONResponse.make(Self.document(error), status: Int(status.code))
        for field in headers { response.headers.append(field) }
        return response
    }
}

/// JSON bodies: sorted keys, ISO 8601 dates, as the CLI's --json prints them.
public enum JSONResponse {
    public static func make(_ value: JSONValue, status: Int = 200, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: value.serialized())))
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(timestamp(date))
        }
        return encoder
    }()

    /// An Encodable value (a plan, a balance) as a JSON value.
    public static func value(_ encodable: some Encodable) -> JSONValue {
        guard let data = try? encoder.encode(encodable), let value = try? JSONValue(parsing: data) else { return .null }
        return value
    }

    /// Stored JSON text (inputs, outputs, errors) as a value; null when absent or unreadable.
    public static func parsed(_ text: String?) -> JSONValue {
        guard let text, let value = try? JSONValue(parsing: Data(text.utf8)) else { return .null }
        return value
    }

    /// A value, so one is shared by every request: building an
    /// ISO8601DateFormatter per timestamp (four per job view) was a large
    /// part of a job list's cost in the load check.
    static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    public static func timestamp(_ date: Date) -> String {
        timestampStyle.format(date)
    }

    public static func time(_ date: Date?) -> JSONValue { date.map { JSONValue.string(timestamp($0)) } ?? .null }
}
