import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardHost

/// The context of every request `yard serve` answers: the token it was
/// made with (set by `APIGate`) and a way to close the connection after the
/// response (so an unread body is never drained).
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel
    public var token: APIToken?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    public func closeAfterResponse() {
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }

    /// The request's token, when its scope includes `scope`.
    public func require(_ scope: TokenScope) throws -> APIToken {
        guard let token else {
            throw APIError("AUTH_REQUIRED", "This endpoint needs an API token.", remediation: "Send `Authorization: Bearer TOKEN`; create one with `yard tokens create --account ACCOUNT --scope \(scope.rawValue)`.")
        }
        guard token.scope >= scope else {
            throw APIError("SCOPE_INSUFFICIENT", "Token \(token.id) has scope \(token.scope.rawValue); this needs \(scope.rawValue).",
                           remediation: "Use a token created with `--scope \(scope.rawValue)`.")
        }
        return token
    }
}

/// Requests per second per token: a token bucket of `burst` requests that
/// refills at `perSecond`. Each token has its own bucket, so one busy client
/// cannot starve another account's.
public final class TokenRateLimiter: @unchecked Sendable {
    public let perSecond: Double
    public let burst: Double
    private let lock = NSLock()
    private var buckets: [String: (tokens: Double, at: ContinuousClock.Instant)] = [:]

    public init(perSecond: Double, burst: Double) {
        self.perSecond = perSecond
        self.burst = max(1, burst)
    }

    /// nil when the request may go ahead; otherwise the seconds to wait.
    public func admit(_ key: String, now: ContinuousClock.Instant = .now) -> Double? {
        guard perSecond > 0 else { return nil }
        return lock.withLock {
            var bucket = buckets[key] ?? (tokens: burst, at: now)
            let elapsed = Double((now - bucket.at).components.seconds) + Double((now - bucket.at).components.attoseconds) / 1e18
            bucket.tokens = min(burst, bucket.tokens + elapsed * perSecond)
            bucket.at = now
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                buckets[key] = bucket
                return nil
            }
            buckets[key] = bucket
            return (1 - bucket.tokens) / perSecond
        }
    }
}

/// Authentication, the per-token rate limit, the request size limit, and
/// every error as `{"error":{…}}`. Put on /api/v1 and /metrics.
public struct APIGate: RouterMiddleware {
    public typealias Context = APIRequestContext
    let store: APIStore
    let limiter: TokenRateLimiter
    let maxBodyBytes: Int

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBodyBytes {
            context.closeAfterResponse()
            throw APIError("REQUEST_TOO_LARGE", "The request body is \(length) bytes; this server takes at most \(maxBodyBytes).",
                           remediation: "Send a smaller body, or start `yard serve` with a larger --max-body-bytes.")
        }
        if let authorization = request.headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer", let token = try store.authenticate(String(parts[1])) else {
                var error = APIError("TOKEN_INVALID", "The bearer token is unknown or revoked.", remediation: "Create a token with `yard tokens create`; `yard tokens list` shows live ones.")
                error.headers[.wwwAuthenticate] = "Bearer"
                throw error
            }
            if let wait = limiter.admit(token.id) {
                var error = APIError("RATE_LIMITED", "Token \(token.id) sent more than \(Int(limiter.perSecond)) requests per second.",
                                     remediation: "Wait \(String(format: "%.2f", wait)) s (Retry-After) and send fewer requests, or raise --rate-limit.")
                error.headers[.retryAfter] = "\(Int(wait.rounded(.up)))"
                throw error
            }
            context.token = token
        }
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let refusal as JobEngine.Refusal {
            throw APIError.preflight(refusal.verdict)
        } catch let error as HTTPError {
            throw APIError(error.status == .notFound ? "ROUTE_NOT_FOUND" : "USAGE", error.body ?? "\(request.method) \(request.uri.path) is not part of this API.",
                           remediation: "See /openapi.json for the routes.", status: Int(error.status.code))
        } catch is NIOTooManyBytesError {
            context.closeAfterResponse()
            throw APIError("REQUEST_TOO_LARGE", "The request body is larger than \(maxBodyBytes) bytes.", remediation: "Send a smaller body, or raise --max-body-bytes.")
        } catch {
            throw APIError(YardError.describing(error))
        }
    }
}

extension APIError {
    /// A pre-flight that failed: the first error finding's code, with every finding kept.
    static func preflight(_ verdict: PreflightVerdict) -> APIError {
        let first = verdict.findings.first { $0.severity == .error }
        let error = YardError(.init(rawValue: first?.code ?? "PREFLIGHT_FAILED"), first?.message ?? "The job did not pass pre-flight.",
                              remediation: first?.remediation ?? "Fix the inputs and try again.", field: first?.field)
        return APIError(error, status: APIErrorStatus.table[error.code.rawValue] ?? 422)
    }
}
