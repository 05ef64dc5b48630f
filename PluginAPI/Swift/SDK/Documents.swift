import Foundation

// The JSON documents of the v1 job model (docs/abi.md). Member names are the
// wire names, so they are spelled out in CodingKeys rather than derived by a
// key strategy: a strategy would also rewrite the keys of user inputs.

/// The job a call serves: stable across retries of the same attempt.
public struct JobInfo: Codable, Sendable, Hashable {
    public var id: String
    public var idempotencyKey: String
    public var attempt: Int
    /// The capability the job runs (hosts from 1.0 on send it): poll and
    /// cancel can map a provider's answer even from a ref that lacks it, such
    /// as one a user entered by hand (`yard jobs resolve --submitted`).
    public var capability: String?

    public init(id: String, idempotencyKey: String, attempt: Int, capability: String? = nil) {
        self.id = id
        self.idempotencyKey = idempotencyKey
        self.attempt = attempt
        self.capability = capability
    }

    enum CodingKeys: String, CodingKey {
        case id, attempt, capability
        case idempotencyKey = "idempotency_key"
    }
}

/// Request of validate, submit and estimate.
public struct JobRequest: Codable, Sendable {
    public var capability: String
    public var inputs: [String: JSONValue]
    public var config: [String: JSONValue]
    public var job: JobInfo?

    public init(capability: String, inputs: [String: JSONValue], config: [String: JSONValue] = [:], job: JobInfo? = nil) {
        self.capability = capability
        self.inputs = inputs
        self.config = config
        self.job = job
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        capability = try c.decode(String.self, forKey: .capability)
        inputs = try c.decodeIfPresent([String: JSONValue].self, forKey: .inputs) ?? [:]
        config = try c.decodeIfPresent([String: JSONValue].self, forKey: .config) ?? [:]
        job = try c.decodeIfPresent(JobInfo.self, forKey: .job)
    }
}

/// Request of poll and cancel: the ref the plugin returned from submit.
public struct RefRequest: Codable, Sendable {
    public var ref: JSONValue
    public var config: [String: JSONValue]
    public var job: JobInfo?

    public init(ref: JSONValue, config: [String: JSONValue] = [:], job: JobInfo? = nil) {
        self.ref = ref
        self.config = config
        self.job = job
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ref = try c.decode(JSONValue.self, forKey: .ref)
        config = try c.decodeIfPresent([String: JSONValue].self, forKey: .config) ?? [:]
        job = try c.decodeIfPresent(JobInfo.self, forKey: .job)
    }
}

/// Request of health and balance.
public struct ConfigRequest: Codable, Sendable {
    public var config: [String: JSONValue]

    public init(config: [String: JSONValue] = [:]) { self.config = config }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        config = try c.decodeIfPresent([String: JSONValue].self, forKey: .config) ?? [:]
    }
}

/// One finding of validate. `field` is a JSON path such as `$.inputs.duration`.
public struct Diagnostic: Codable, Sendable, Hashable {
    public enum Severity: String, Codable, Sendable { case error, warning }
    public var code: String
    public var message: String
    public var remediation: String
    public var field: String?
    public var severity: Severity

    public init(code: String, message: String, remediation: String, field: String? = nil, severity: Severity = .error) {
        self.code = code
        self.message = message
        self.remediation = remediation
        self.field = field
        self.severity = severity
    }
}

/// Whether a provider may bill for something that did not succeed.
public enum Charged: String, Codable, Sendable { case no, yes, unknown }

/// A failure with a stable code (AUTH_FAILED, RATE_LIMITED, ...), what to do
/// about it, and whether the provider may have billed for it.
public struct PluginError: Error, Codable, Sendable, Hashable {
    public var code: String
    public var message: String
    public var remediation: String
    public var field: String?
    public var retryable: Bool
    public var charged: Charged
    /// Milliseconds to wait before retrying, when the provider said (Retry-After).
    public var retryAfterMs: Int?

    public init(code: String, message: String, remediation: String, field: String? = nil,
                retryable: Bool = false, charged: Charged = .no, retryAfterMs: Int? = nil) {
        self.code = code
        self.message = message
        self.remediation = remediation
        self.field = field
        self.retryable = retryable
        self.charged = charged
        self.retryAfterMs = retryAfterMs
    }

    enum CodingKeys: String, CodingKey {
        case code, message, remediation, field, retryable, charged
        case retryAfterMs = "retry_after_ms"
    }

    public static func unsupported(_ what: String) -> PluginError {
        PluginError(code: "UNSUPPORTED", message: "\(what) is not supported by this plugin.",
                    remediation: "Check the plugin's capabilities with `yard plugin info`.")
    }
}

public enum JobState: String, Codable, Sendable {
    case queued, running, succeeded, failed, cancelled

    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// What a job used, as the provider measured it. The host's ledger settles
/// usage × price, on every terminal state: report it on failed, cancelled
/// and timed-out answers too whenever the provider gives it (a GPU that ran
/// for 5 ms before failing is billed 5 ms). Leave out what was not measured;
/// never fill a member in from the request.
public struct Usage: Codable, Sendable, Hashable {
    /// Execution time the provider bills, in milliseconds (RunPod `executionTime`, a Modal call's duration).
    public var executionMs: Int?
    /// Seconds of video rendered (Kling `task_result.videos[].duration`).
    public var videoSeconds: Double?
    /// Images produced.
    public var images: Int?
    /// Megapixels produced, for providers that bill by output resolution.
    public var megapixels: Double?
    /// The provider's own billing units (Kling resource-pack units, fal billable units).
    public var units: Double?
    /// The quality mode billed, where it changes the price (Kling std | pro).
    public var mode: String?
    /// The GPU type billed, where the provider says.
    public var gpu: String?

    public init(executionMs: Int? = nil, videoSeconds: Double? = nil, images: Int? = nil, megapixels: Double? = nil,
                units: Double? = nil, mode: String? = nil, gpu: String? = nil) {
        self.executionMs = executionMs
        self.videoSeconds = videoSeconds
        self.images = images
        self.megapixels = megapixels
        self.units = units
        self.mode = mode
        self.gpu = gpu
    }

    enum CodingKeys: String, CodingKey {
        case images, megapixels, units, mode, gpu
        case executionMs = "execution_ms"
        case videoSeconds = "video_seconds"
    }
}

/// Answer of poll (and the immediate result of a local submit).
public struct PollResult: Codable, Sendable {
    public var state: JobState
    public var progress: Double?
    public var message: String?
    public var outputs: [String: JSONValue]?
    public var error: PluginError?
    public var nextPollAfterMs: Int?
    /// What the job used so far, as the provider measured it (see `Usage`).
    /// Kept apart from `outputs`, which are the catalog's outputs only and go
    /// on to the next step.
    public var usage: Usage?

    public init(state: JobState, progress: Double? = nil, message: String? = nil,
                outputs: [String: JSONValue]? = nil, error: PluginError? = nil, nextPollAfterMs: Int? = nil, usage: Usage? = nil) {
        self.state = state
        self.progress = progress
        self.message = message
        self.outputs = outputs
        self.error = error
        self.nextPollAfterMs = nextPollAfterMs
        self.usage = usage
    }

    enum CodingKeys: String, CodingKey {
        case state, progress, message, outputs, error, usage
        case nextPollAfterMs = "next_poll_after_ms"
    }
}

/// Answer of submit: a ref to poll, or a result for work finished in the call.
public enum SubmitResult: Sendable {
    case ref(JSONValue, nextPollAfterMs: Int? = nil)
    case finished(PollResult)
}

public struct CancelResult: Codable, Sendable {
    public enum Outcome: String, Codable, Sendable {
        case cancelledInQueue = "cancelled_in_queue"
        case cancelledRunning = "cancelled_running"
        case alreadyFinished = "already_finished"
        case notFound = "not_found"
    }
    public var outcome: Outcome
    public var charged: Charged
    public var message: String?
    /// What the job had used when it stopped (RunPod reports `executionTime` for a cancelled job).
    public var usage: Usage?

    public init(outcome: Outcome, charged: Charged, message: String? = nil, usage: Usage? = nil) {
        self.outcome = outcome
        self.charged = charged
        self.message = message
        self.usage = usage
    }
}

public struct HealthReport: Codable, Sendable {
    public enum Status: String, Codable, Sendable { case ok, degraded, offline }
    public var status: Status
    public var message: String?
    public var details: [String: JSONValue]?

    public init(status: Status, message: String? = nil, details: [String: JSONValue]? = nil) {
        self.status = status
        self.message = message
        self.details = details
    }
}

/// An estimate (sy.estimate/1) or an account balance (sy.balance/1). A
/// balance kept in the provider's own units rather than money (Kling
/// resource packs) sets `quantity` and `unit`, with amountMinor 0.
public struct CostEstimate: Codable, Sendable {
    public var amountMinor: Int
    public var currency: String
    public var basis: String
    public var quantity: Double?
    public var unit: String?

    public init(amountMinor: Int, currency: String = "USD", basis: String, quantity: Double? = nil, unit: String? = nil) {
        self.amountMinor = amountMinor
        self.currency = currency
        self.basis = basis
        self.quantity = quantity
        self.unit = unit
    }

    enum CodingKeys: String, CodingKey {
        case currency, basis, quantity, unit
        case amountMinor = "amount_minor"
    }
}
