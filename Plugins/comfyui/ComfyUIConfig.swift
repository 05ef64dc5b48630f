import Foundation
import SwitchyardPluginSDK

/// The engine configuration ($YARD_HOME/config/comfyui.json or --config).
/// ComfyUI has no authentication, so there is no secret.
struct ComfyUIConfig {
    static let defaultBaseURL = "http://127.0.0.1:8188"

    var baseURL: String
    /// How long the node catalogue (/object_info) stays cached in the plugin's kv.
    var objectInfoTTLMs: Int
    /// How long after submit a prompt may be missing from both /queue and
    /// /history before it counts as lost (covers a slow first listing).
    var lostGraceMs: Int
    /// Checkpoint for image.generate when the job names no model.
    var checkpoint: String?
    var clientID: String

    init(_ config: [String: JSONValue]) throws {
        let base = (config["base_url"]?.stringValue ?? Self.defaultBaseURL).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard base.hasPrefix("http://") || base.hasPrefix("https://") else {
            throw PluginError(code: "CONFIG_INVALID", message: "base_url \"\(base)\" is not an http(s) URL.",
                              remediation: "Set base_url to your ComfyUI server, e.g. \(Self.defaultBaseURL).", field: "$.config.base_url")
        }
        baseURL = base
        objectInfoTTLMs = config["object_info_ttl_ms"]?.intValue ?? 60_000
        lostGraceMs = config["lost_grace_ms"]?.intValue ?? 2_000
        checkpoint = config["checkpoint"]?.stringValue
        clientID = config["client_id"]?.stringValue ?? "switchyard"
    }

    func url(_ path: String) -> String { "\(baseURL)/\(path)" }
}
