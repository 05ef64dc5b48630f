import Foundation

/// What a plugin author implements. One value serves every job, concurrently,
/// from the host's worker threads: keep no per-job state in it; whatever is
/// needed to find a job again goes into the ref returned by `submit`.
public protocol EngineAdapter: Sendable {
    init()

    /// Must equal the plugin's plugin.json (id, version, capabilities), or the
    /// host refuses to load it.
    var descriptor: PluginDescriptor { get }

    /// No network, fast. Return diagnostics rather than throwing for bad inputs.
    func validate(_ request: JobRequest, context: HostContext) -> [Diagnostic]
    func submit(_ request: JobRequest, context: HostContext) throws -> SubmitResult
    func poll(_ request: RefRequest, context: HostContext) throws -> PollResult
    /// Idempotent; truthful about whether the provider may still bill.
    func cancel(_ request: RefRequest, context: HostContext) throws -> CancelResult
    func health(_ request: ConfigRequest, context: HostContext) -> HealthReport

    // Optional extensions: declare their ids in `descriptor.extensions`.
    func estimate(_ request: JobRequest, context: HostContext) throws -> CostEstimate
    func balance(_ request: ConfigRequest, context: HostContext) throws -> CostEstimate
    func webhook(_ request: WebhookRequest, context: HostContext) throws -> WebhookUpdate
    func reconcile(_ request: JobRequest, context: HostContext) throws -> JSONValue?
}

extension EngineAdapter {
    public func estimate(_ request: JobRequest, context: HostContext) throws -> CostEstimate {
        throw PluginError.unsupported("sy.estimate/1")
    }
    public func balance(_ request: ConfigRequest, context: HostContext) throws -> CostEstimate {
        throw PluginError.unsupported("sy.balance/1")
    }
    public func webhook(_ request: WebhookRequest, context: HostContext) throws -> WebhookUpdate {
        throw PluginError.unsupported("sy.webhook/1")
    }
    public func reconcile(_ request: JobRequest, context: HostContext) throws -> JSONValue? {
        throw PluginError.unsupported("sy.reconcile/1")
    }
}

public struct PluginDescriptor: Codable, Sendable, Hashable {
    public var id: String
    public var version: String
    public var name: String
    public var capabilities: [String]
    /// Optional plugin extensions this adapter implements, e.g. "sy.estimate/1".
    public var extensions: [String]

    public init(id: String, version: String, name: String, capabilities: [String], extensions: [String] = []) {
        self.id = id
        self.version = version
        self.name = name
        self.capabilities = capabilities
        self.extensions = extensions
    }
}

public struct WebhookRequest: Codable, Sendable {
    public var headers: [String: String]
    public var bodyBase64: String
    public var config: [String: JSONValue]

    public var body: Data { Data(base64Encoded: bodyBase64) ?? Data() }

    enum CodingKeys: String, CodingKey {
        case headers, config
        case bodyBase64 = "body_base64"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        headers = try c.decodeIfPresent([String: String].self, forKey: .headers) ?? [:]
        bodyBase64 = try c.decodeIfPresent(String.self, forKey: .bodyBase64) ?? ""
        config = try c.decodeIfPresent([String: JSONValue].self, forKey: .config) ?? [:]
    }
}

public struct WebhookUpdate: Codable, Sendable {
    /// Members of the ref this delivery belongs to (e.g. {"request_id": ...}).
    public var match: [String: JSONValue]
    public var update: PollResult
    /// What makes two deliveries the same one (providers retry and duplicate
    /// them). Absent: the host uses the match and the update's state.
    public var dedupeKey: String?
    /// The delivery only says the job changed: the host polls the job with its
    /// own stored ref and applies that answer instead of `update` (for
    /// providers whose deliveries lack what mapping the outputs needs).
    public var poll: Bool?

    public init(match: [String: JSONValue], update: PollResult, dedupeKey: String? = nil, poll: Bool? = nil) {
        self.match = match
        self.update = update
        self.dedupeKey = dedupeKey
        self.poll = poll
    }

    enum CodingKeys: String, CodingKey {
        case match, update, poll
        case dedupeKey = "dedupe_key"
    }
}
