import Foundation
import SwitchyardJSON

/// A problem `yard plan` found, with the step and field it concerns.
public struct PlanFinding: Codable, Sendable, Hashable {
    public var step: String?
    public var code: String
    public var message: String
    public var remediation: String
    public var field: String?
    public var severity: PreflightFinding.Severity

    public init(step: String?, code: String, message: String, remediation: String, field: String? = nil, severity: PreflightFinding.Severity = .error) {
        self.step = step
        self.code = code
        self.message = message
        self.remediation = remediation
        self.field = field
        self.severity = severity
    }
}

/// One engine of a step's preference list as the plan judged it.
public struct EngineAttempt: Codable, Sendable, Hashable {
    public var engine: String
    public var ok: Bool
    public var code: String?
    public var message: String?
    public var remediation: String?
    /// For a failed run attempt: "no", "yes" or "unknown" (may the provider bill?).
    public var charged: String?
    public var jobID: String?
    /// For an engine the plan accepts: inputs an earlier step supplies whose fit
    /// only the run can tell ("duration_seconds: … checked when the step runs").
    public var checkedWhenRun: [String]?

    enum CodingKeys: String, CodingKey {
        case engine, ok, code, message, remediation, charged
        case jobID = "job_id"
        case checkedWhenRun = "checked_when_run"
    }

    public init(engine: String, ok: Bool, code: String? = nil, message: String? = nil, remediation: String? = nil, charged: String? = nil, jobID: String? = nil,
                checkedWhenRun: [String]? = nil) {
        self.engine = engine
        self.ok = ok
        self.code = code
        self.message = message
        self.remediation = remediation
        self.charged = charged
        self.jobID = jobID
        self.checkedWhenRun = checkedWhenRun
    }
}

public struct StepPlan: Codable, Sendable {
    public enum Runs: String, Codable, Sendable { case yes, no, conditional }
    public var name: String
    public var capability: String
    public var dependsOn: [String]
    public var condition: String?
    public var runs: Runs
    public var engine: String?
    public var attempts: [EngineAttempt]
    public var estimate: CostEstimateInfo?
    public var inputs: [String: JSONValue]

    enum CodingKeys: String, CodingKey {
        case name, capability, condition, runs, engine, attempts, estimate, inputs
        case dependsOn = "depends_on"
    }
}

public struct MissingSecret: Codable, Sendable, Hashable {
    public var engine: String
    public var secret: String
    public var step: String
}

public struct UnhealthyEngine: Codable, Sendable, Hashable {
    public var engine: String
    public var code: String
    public var message: String
}

/// Everything `yard plan` knows before anything runs or is spent.
public struct PipelinePlan: Codable, Sendable {
    public var pipeline: String
    public var title: String
    public var quality: String
    /// The file is well formed, its inputs are given and fit, and every step's
    /// inputs fit the outputs that feed them.
    public var valid: Bool
    /// Valid, and every step that may run has an engine that passed pre-flight.
    public var ready: Bool
    public var findings: [PlanFinding]
    public var steps: [StepPlan]
    public var missingSecrets: [MissingSecret]
    public var unhealthyEngines: [UnhealthyEngine]
    public var estimate: CostEstimateInfo?

    enum CodingKeys: String, CodingKey {
        case pipeline, title, quality, valid, ready, findings, steps, estimate
        case missingSecrets = "missing_secrets"
        case unhealthyEngines = "unhealthy_engines"
    }
}
