import Foundation

/// What every HTTP adapter needs to read a provider's answer the same way:
/// which statuses are a success, how long Retry-After asks to wait (RFC 9110
/// §10.2.3: delta-seconds or an HTTP-date), and the stable error code a
/// status means when the provider says nothing more specific.
public enum HTTPStatusClass {
    /// 2xx: the request did what it asked.
    public static let success = 200..<300

    public static func isSuccess(_ status: Int) -> Bool { success.contains(status) }
}

public enum RetryAfter {
    /// The wait a Retry-After value asks for, in milliseconds: delta-seconds
    /// ("120"; a fractional "1.5", as some providers send, is honoured) or an
    /// HTTP-date in any of the three forms RFC 9110 §5.6.7 accepts
    /// (IMF-fixdate, obsolete RFC 850, asctime), measured from `now`. A date
    /// already past asks for no wait (0). nil when the value is neither.
    public static func milliseconds(_ value: String, now: Date) -> Int? {
        let text = value.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return nil }
        if let seconds = Double(text) {
            guard seconds.isFinite, seconds >= 0 else { return nil }
            return Int(min(seconds, 86_400 * 365) * 1000)
        }
        guard let date = httpDate(text) else { return nil }
        return max(0, Int((date.timeIntervalSince(now) * 1000).rounded(.up)))
    }

    /// An HTTP-date (always GMT); nil for anything else.
    public static func httpDate(_ text: String) -> Date? {
        for format in ["EEE, dd MMM yyyy HH:mm:ss 'GMT'", "EEEE, dd-MMM-yy HH:mm:ss 'GMT'", "EEE MMM d HH:mm:ss yyyy"] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            // asctime pads a one-digit day with a space: "Sun Nov  6 08:49:37 1994".
            let normalized = format.hasPrefix("EEE MMM") ? text.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") : text
            if let date = formatter.date(from: normalized) { return date }
        }
        return nil
    }
}

extension HTTPResponse {
    /// A 2xx answer.
    public var isSuccess: Bool { HTTPStatusClass.isSuccess(status) }

    /// The wait the provider's Retry-After header asks for, in milliseconds
    /// (see RetryAfter.milliseconds); nil without a readable header.
    public func retryAfterMs(now: Date = Date()) -> Int? {
        headers["retry-after"].flatMap { RetryAfter.milliseconds($0, now: now) }
    }
}

extension PluginError {
    /// The default reading of a non-2xx status, for the cases an adapter does
    /// not map from the provider's own error body: the stable code, whether
    /// the host may retry, and what was charged. `submitting` makes a 5xx or a
    /// timeout ambiguous (the provider may have created the job), so it is
    /// charged "unknown" there and "no" elsewhere. `retryAfterMs` is the
    /// provider's Retry-After; 429 and 503 fall back to `defaultRetryAfterMs`.
    public static func forHTTPStatus(_ status: Int, provider: String, detail: String, submitting: Bool = false,
                                     retryAfterMs: Int? = nil, defaultRetryAfterMs: Int = 1000) -> PluginError {
        let said = detail.isEmpty ? "" : ": \(detail)"
        switch status {
        case 400, 413, 415, 422:
            return PluginError(code: "CONTRACT_MISMATCH", message: "\(provider) rejected the request (HTTP \(status))\(said)",
                               remediation: "Fix the inputs the provider names, then run again.", field: "$.inputs")
        case 401, 403:
            return PluginError(code: "AUTH_FAILED", message: "\(provider) refused the credentials (HTTP \(status))\(said)",
                               remediation: "Check the engine's API key (`yard secrets list`), then `yard engines test`.")
        case 402:
            return PluginError(code: "INSUFFICIENT_FUNDS", message: "\(provider) needs payment (HTTP 402)\(said)",
                               remediation: "Top up the account at the provider, then run again.")
        case 404, 410:
            return PluginError(code: "RESULT_EXPIRED", message: "\(provider) no longer knows this request (HTTP \(status))\(said)",
                               remediation: "Run the job again.", charged: .unknown)
        case 408:
            return PluginError(code: "ENGINE_TIMEOUT", message: "\(provider) timed out reading the request (HTTP 408)\(said)",
                               remediation: "Retried automatically.", retryable: true, charged: submitting ? .unknown : .no)
        case 429:
            return PluginError(code: "RATE_LIMITED", message: "\(provider) rate limit reached (HTTP 429)\(said)",
                               remediation: "The host retries after the delay the provider asked for.", retryable: true, charged: .no,
                               retryAfterMs: retryAfterMs ?? defaultRetryAfterMs)
        case 500...599:
            return PluginError(code: "ENGINE_UNAVAILABLE", message: "\(provider) answered HTTP \(status)\(said)",
                               remediation: "Retried automatically; check the provider's status page.", retryable: true,
                               charged: submitting ? .unknown : .no, retryAfterMs: status == 503 ? (retryAfterMs ?? defaultRetryAfterMs) : retryAfterMs)
        default:
            return PluginError(code: "ENGINE_ERROR", message: "Unexpected answer from \(provider) (HTTP \(status))\(said)",
                               remediation: "Report this with the job id.", charged: submitting ? .unknown : .no)
        }
    }
}
