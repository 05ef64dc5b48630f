import Foundation
import SwitchyardJSON

/// What a job asks for, before anything is stored or spent.
public struct JobSpec: Sendable {
    public var pluginID: String
    public var capability: String
    public var inputs: [String: JSONValue]
    public var config: [String: JSONValue]
    /// Same key, same job: a repeated submit returns the existing job instead of paying twice.
    public var idempotencyKey: String?
    /// Whose credits and budgets pay for the job (nil: the default account).
    public var billing: BillingScope?
    /// Input fields (`$.inputs.duration_seconds`) holding stand-ins for outputs
    /// of earlier pipeline steps, as `yard plan` builds them: findings on these
    /// are set aside in the verdict's `deferred` (only the run knows the
    /// value), and every other check still runs.
    public var deferredFields: [String] = []

    public init(pluginID: String, capability: String, inputs: [String: JSONValue], config: [String: JSONValue] = [:], idempotencyKey: String? = nil) {
        self.pluginID = pluginID
        self.capability = capability
        self.inputs = inputs
        self.config = config
        self.idempotencyKey = idempotencyKey
    }
}

/// One finding of the pre-flight checks.
public struct PreflightFinding: Codable, Sendable, Hashable {
    public enum Severity: String, Codable, Sendable { case error, warning, info }
    public var step: String
    public var code: String
    public var message: String
    public var remediation: String
    public var field: String?
    public var severity: Severity
}

/// The whole verdict, in the order of ARCHITECTURE.md: declared capability →
/// schema and limits → consent → secrets and hosts → plugin validate →
/// engine health → cost estimate. Cheap checks first; the first failing step
/// stops the rest (a later step would only repeat the noise), except that
/// every schema violation of one step is reported together.
public struct PreflightVerdict: Codable, Sendable {
    public var pluginID: String
    public var pluginVersion: String?
    public var capability: String
    public var findings: [PreflightFinding]
    public var stepsPassed: [String]
    public var estimate: CostEstimateInfo?
    /// The model the job runs on, from the capability's model table (if it has one).
    public var model: String?
    /// Findings on `JobSpec.deferredFields`: about stand-in values, so not a verdict on the job.
    public var deferred: [PreflightFinding] = []

    public var ok: Bool { !findings.contains { $0.severity == .error } }
    public var firstError: PreflightFinding? { findings.first { $0.severity == .error } }

    enum CodingKeys: String, CodingKey {
        case ok, capability, findings, estimate, model, deferred
        case pluginID = "plugin_id"
        case pluginVersion = "plugin_version"
        case stepsPassed = "steps_passed"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(ok, forKey: .ok)
        try c.encode(pluginID, forKey: .pluginID)
        try c.encodeIfPresent(pluginVersion, forKey: .pluginVersion)
        try c.encode(capability, forKey: .capability)
        try c.encode(findings, forKey: .findings)
        try c.encode(stepsPassed, forKey: .stepsPassed)
        try c.encodeIfPresent(estimate, forKey: .estimate)
        try c.encodeIfPresent(model, forKey: .model)
        if !deferred.isEmpty { try c.encode(deferred, forKey: .deferred) }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        pluginID = try c.decode(String.self, forKey: .pluginID)
        pluginVersion = try c.decodeIfPresent(String.self, forKey: .pluginVersion)
        capability = try c.decode(String.self, forKey: .capability)
        findings = try c.decode([PreflightFinding].self, forKey: .findings)
        stepsPassed = try c.decode([String].self, forKey: .stepsPassed)
        estimate = try c.decodeIfPresent(CostEstimateInfo.self, forKey: .estimate)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        deferred = try c.decodeIfPresent([PreflightFinding].self, forKey: .deferred) ?? []
    }

    init(pluginID: String, capability: String) {
        self.pluginID = pluginID
        self.capability = capability
        findings = []
        stepsPassed = []
    }
}

public struct CostEstimateInfo: Codable, Sendable, Hashable {
    public var amountMinor: Int
    public var currency: String
    public var basis: String

    enum CodingKeys: String, CodingKey {
        case currency, basis
        case amountMinor = "amount_minor"
    }
}

/// Maps schema violations on `inputs` to findings with a `$.inputs…` path.
func schemaFindings(_ violations: [SchemaViolation], step: String, source: String, schema: JSONValue? = nil) -> [PreflightFinding] {
    let known = schema?["properties"]?.objectValue.map { Array($0.keys) } ?? []
    return violations.map { v in
        let field = v.path == "$" ? "$.inputs" : "$.inputs" + v.path.dropFirst()
        var message = "\(source): \(v.message)"
        var remediation = "Fix \(field) (see `yard plugin info` for the engine's limits)."
        // A mistyped input name: say which one was meant.
        if v.keyword == "additionalProperties", v.path.hasPrefix("$."), !v.path.dropFirst(2).contains(".") {
            let name = String(v.path.dropFirst(2))
            let hint = NameSuggestion.sentence(for: name, among: known)
            message += hint
            remediation = hint.isEmpty ? "Remove the input \(name); accepted: \(known.sorted().joined(separator: ", "))." : "Rename the input \(name)."
        }
        return PreflightFinding(step: step, code: "CONTRACT_MISMATCH", message: message, remediation: remediation, field: field, severity: .error)
    }
}
