import Foundation
import SwitchyardJSON

extension JobEngine {
    /// The model a job runs on, from its capability's model table: `inputs.model`,
    /// else `config.models[capability]`, else the entry marked default (else the
    /// first). A capability without a table has no model to choose.
    /// The models a job may run on, in the order to try them: the one the
    /// inputs or config name, else the default first and then the rest (the
    /// first whose limits accept the inputs is used, so `face_image` finds the
    /// model that animates photos without the job naming it).
    static func chooseModel(_ declared: PluginManifest.Capability, _ spec: JobSpec) -> Result<[PluginManifest.Capability.Model], PreflightFinding> {
        guard let table = declared.models, !table.isEmpty else { return .success([]) }
        let fromInputs = spec.inputs["model"]?.stringValue
        let wanted = fromInputs ?? spec.config["models"]?[spec.capability]?.stringValue
        guard let wanted else {
            let first = table.first { $0.default == true } ?? table[0]
            return .success([first] + table.filter { $0 != first })
        }
        if let model = table.first(where: { $0.id == wanted }) { return .success([model]) }
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
