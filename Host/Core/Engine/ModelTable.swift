import Foundation
import SwitchyardJSON

extension JobEngine {
    /// The model a job runs on, from its capability's model table: `inputs.model`,
    /// else `config.models[capability]`, else the entry marked default (else the
    /// first). A capability without a table has no model to choose.
    static func chooseModel(_ declared: PluginManifest.Capability, _ spec: JobSpec) -> Result<PluginManifest.Capability.Model?, PreflightFinding> {
        guard let table = declared.models, !table.isEmpty else { return .success(nil) }
        let fromInputs = spec.inputs["model"]?.stringValue
        let wanted = fromInputs ?? spec.config["models"]?[spec.capability]?.stringValue
        guard let wanted else { return .success(table.first { $0.default == true } ?? table[0]) }
        if let model = table.first(where: { $0.id == wanted }) { return .success(model) }
        return .failure(PreflightFinding(
            step: "limits", code: "CONTRACT_MISMATCH",
            message: "\(spec.pluginID) has no model \(wanted) for \(spec.capability).",
            remediation: "Use one of \(table.map(\.id).joined(separator: ", ")) (`yard plugin info \(spec.pluginID)` lists them).",
            field: fromInputs != nil ? "$.inputs.model" : "$.config.models.\(spec.capability)", severity: .error))
    }

    /// The spec with the chosen model written where the plugin reads it: config.models[capability].
    static func withModel(_ model: String?, _ spec: JobSpec) -> JobSpec {
        guard let model else { return spec }
        var spec = spec
        var models = spec.config["models"]?.objectValue ?? [:]
        models[spec.capability] = .string(model)
        spec.config["models"] = .object(models)
        return spec
    }
}

extension PreflightFinding: Error {}
