import Foundation
import SwitchyardJSON
import Logging

extension JobEngine {
    /// The first artifact handle in a plugin's outputs that is not
    /// "sha256:" + 64 lowercase hex, or that names nothing in this host's
    /// store. Outputs are hostile input: a handle like
    /// "sha256:../../../../etc/passwd" would otherwise become a path when the
    /// output is copied to --output-dir or fed to the next step.
    func artifactHandleRefusal(in outputs: [String: JSONValue]) -> YardError? {
        func check(_ value: JSONValue, field: String) -> YardError? {
            if let object = value.objectValue {
                if let handle = object["artifact"] {
                    guard let text = handle.stringValue, let digest = ArtifactDirectory.digest(ofHandle: text) else {
                        return ArtifactDirectory.invalidHandle(String(decoding: handle.serialized(), as: UTF8.self), field: field)
                    }
                    guard FileManager.default.fileExists(atPath: artifacts.path(for: digest).path) else {
                        return YardError(.artifactHandleInvalid, "\(field) names artifact sha256:\(digest.prefix(12))…, which is not in this host's store.",
                                         remediation: "A plugin's outputs may only name artifacts it stored through sy.artifacts/1; report this to its author.", field: field)
                    }
                }
                for (key, member) in object where key != "artifact" {
                    if let refusal = check(member, field: "\(field).\(key)") { return refusal }
                }
            } else if let array = value.arrayValue {
                for (i, item) in array.enumerated() {
                    if let refusal = check(item, field: "\(field)[\(i)]") { return refusal }
                }
            }
            return nil
        }
        for (key, value) in outputs.sorted(by: { $0.key < $1.key }) {
            if let refusal = check(value, field: "$.outputs.\(key)") { return refusal }
        }
        return nil
    }

    /// Fails a job whose finished outputs were refused. The provider did the
    /// work, so the charge is unknown rather than no.
    func recordOutputRefusal(_ refusal: YardError, jobID: String, plugin: LoadedPlugin) throws -> JobRecord {
        let message = plugin.context.redact(refusal.message)
        let error: JSONValue = ["code": .string(refusal.code.rawValue), "message": .string(message), "remediation": .string(refusal.remediation),
                                "field": .string(refusal.field ?? "$.outputs"), "retryable": false, "charged": "unknown"]
        event(jobID, kind: "output_refused", message: "\(refusal.code.rawValue): \(message)", data: nil)
        logger.warning("outputs refused", metadata: ["job": "\(jobID)", "engine": "\(plugin.manifest.id)", "code": "\(refusal.code.rawValue)"])
        let errorText = text(error)
        let when = now
        return try commit(jobID) { row in
            guard !row.phase.isTerminal else { return }
            row.phase = .failed
            row.errorJSON = errorText
            row.finishedAt = when
        }
    }
}
