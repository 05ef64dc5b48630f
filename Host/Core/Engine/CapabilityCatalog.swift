import Foundation
import SwitchyardJSON

/// Registry/capabilities/*.json: the ids pipelines are written against, each
/// with input and output JSON Schemas. Adapters narrow them with `limits`.
public struct CapabilityCatalog: Sendable {
    public struct Entry: Sendable {
        public var id: String
        public var title: String
        public var input: JSONSchema
        public var output: JSONSchema?
        /// Input members annotated x-identity (a real person's face or voice).
        public var identityInputs: [String]
    }
    public var entries: [String: Entry]

    public init(entries: [String: Entry] = [:]) { self.entries = entries }

    public static func load(directory: URL?) throws -> CapabilityCatalog {
        guard let directory, let files = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else {
            return CapabilityCatalog()
        }
        var entries: [String: Entry] = [:]
        for file in files.sorted() where file.hasSuffix(".json") {
            let url = directory.appendingPathComponent(file)
            do {
                let doc = try JSONValue(parsing: Data(contentsOf: url))
                guard let id = doc["id"]?.stringValue, let input = doc["input_schema"] else {
                    throw YardError("CATALOG_INVALID", "\(file) lacks id or input_schema.", remediation: "See Registry/capabilities/README.md.")
                }
                let identity = input["properties"]?.objectValue?.filter { $0.value["x-identity"]?.boolValue == true }.map(\.key).sorted() ?? []
                entries[id] = Entry(id: id, title: doc["title"]?.stringValue ?? id, input: try JSONSchema(input),
                                    output: try doc["output_schema"].map { try JSONSchema($0) }, identityInputs: identity)
            } catch let error as YardError {
                throw error
            } catch {
                throw YardError("CATALOG_INVALID", "Registry/capabilities/\(file): \(error)", remediation: "Fix the catalog file.")
            }
        }
        return CapabilityCatalog(entries: entries)
    }
}
