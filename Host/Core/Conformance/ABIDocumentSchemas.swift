import CPluginAPI
import Foundation
import SwitchyardJSON

/// The JSON Schemas of every PluginAPI v1 document (PluginAPI/schemas/abi-v1.schema.json,
/// compiled into the host), each definition compiled once.
public enum ABIDocumentSchemas {
    /// The schema file as shipped in PluginAPI/schemas.
    public static let document: JSONValue? = try? JSONValue(parsing: Data(PackageResources.abi_v1_schema_json))

    /// The names under `$defs`: `poll_answer`, `webhook_request`, ...
    public static var names: [String] {
        guard case .object(let root)? = document, case .object(let defs)? = root["$defs"] else { return [] }
        return defs.keys.sorted()
    }

    private static let compiled: [String: JSONSchema] = {
        guard case .object(let root)? = document, let defs = root["$defs"], case .object(let members) = defs else { return [:] }
        var schemas: [String: JSONSchema] = [:]
        for name in members.keys {
            // One definition as a schema of its own, keeping the $defs its $refs point into.
            if let schema = try? JSONSchema(.object(["$defs": defs, "$ref": .string("#/$defs/\(name)")])) { schemas[name] = schema }
        }
        return schemas
    }()

    /// The compiled definition `name`, or nil for a name the file does not define.
    public static func schema(_ name: String) -> JSONSchema? { compiled[name] }

    /// What is wrong with `document` as a `name` document; empty when it fits.
    public static func violations(_ document: Data, as name: String) -> [String] {
        guard let schema = compiled[name] else { return ["no schema named \(name) in abi-v1.schema.json"] }
        let value: JSONValue
        do { value = try JSONValue(parsing: document) } catch { return ["not JSON: \(error)"] }
        return schema.validate(value).map(\.description)
    }

    /// What is wrong with the answer of one call: an `answer` document on
    /// SY_OK, an error document on SY_E_FAILED; other statuses carry no
    /// document the ABI specifies.
    public static func violations(of result: PluginCallResult, answer: String) -> [String] {
        switch result.status {
        case SY_OK: return violations(result.document, as: answer)
        case SY_E_FAILED: return violations(result.document, as: "error_answer")
        default: return []
        }
    }
}
