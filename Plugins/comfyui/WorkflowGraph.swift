import Foundation
import SwitchyardPluginSDK

/// An API-format graph ready to queue, with what the job bound into it.
struct WorkflowGraph {
    /// A file input to upload to ComfyUI's input folder before the graph runs.
    struct FileBinding {
        var node: String
        var input: String
        var file: JSONValue
        var field: String
    }

    var nodes: [String: JSONValue]
    var files: [FileBinding] = []
    /// Output nodes whose files the job collects (nil: every file of type "output").
    var outputNodes: [String]?
    /// Where a node input came from in the job's inputs, for errors that name the right field.
    var fields: [String: String] = [:]
    /// The graph came from a template rather than the caller.
    var fromTemplate = false
    /// The template's parameters: which node inputs each job input fills.
    var parameters: [String: [WorkflowTemplate.Target]] = [:]

    /// A template parameter's current value in the graph (the first input it fills).
    func parameter(_ name: String) -> JSONValue? {
        guard let target = parameters[name]?.first else { return nil }
        return nodes[target.node]?["inputs"]?[target.input]
    }

    func isBound(_ name: String) -> Bool {
        guard let target = parameters[name]?.first else { return false }
        return fields["\(target.node)/\(target.input)"] != nil
    }

    mutating func setParameter(_ name: String, _ value: JSONValue) {
        for target in parameters[name] ?? [] { set(target.node, target.input, value, field: "$.inputs.\(name)") }
    }

    func field(node: String, input: String? = nil) -> String {
        if let input, let bound = fields["\(node)/\(input)"] { return bound }
        if fromTemplate {
            let name = parameters.first { $0.value.contains { $0.node == node && (input == nil || $0.input == input) } }?.key
            return name.map { "$.inputs.\($0)" } ?? "$.inputs"
        }
        return "$.inputs.workflow.\(node)" + (input.map { ".inputs.\($0)" } ?? "")
    }

    func classType(_ node: String) -> String { nodes[node]?["class_type"]?.stringValue ?? "?" }

    mutating func set(_ node: String, _ input: String, _ value: JSONValue, field: String) {
        guard case .object(var object) = nodes[node] else { return }
        var inputs = object["inputs"]?.objectValue ?? [:]
        inputs[input] = value
        object["inputs"] = .object(inputs)
        nodes[node] = .object(object)
        fields["\(node)/\(input)"] = field
    }

    static func contractError(_ message: String, _ remediation: String, field: String) -> PluginError {
        PluginError(code: "CONTRACT_MISMATCH", message: message, remediation: remediation, field: field)
    }

    static func isFile(_ value: JSONValue) -> Bool { value["artifact"] != nil || value["url"] != nil }

    /// comfy.workflow: the caller's graph, its bindings and output nodes. The
    /// graph may come as a file in the host's store (`--input workflow=@workflow_api.json`).
    static func workflow(_ inputs: [String: JSONValue], readArtifact: (String) throws -> Data) throws -> WorkflowGraph {
        var given = inputs["workflow"]?.objectValue
        if let handle = given?["artifact"]?.stringValue {
            let data = try readArtifact(handle)
            guard let object = (try? JSONDecoder().decode(JSONValue.self, from: data))?.objectValue else {
                throw contractError("The workflow file is not a JSON object.", "Pass the file ComfyUI's Workflow → Export (API) writes.", field: "$.inputs.workflow")
            }
            given = object
        }
        guard let nodes = given, !nodes.isEmpty else {
            throw contractError("comfy.workflow needs a workflow: the graph in ComfyUI's API format.",
                                "In ComfyUI use Workflow → Export (API) and pass that JSON as the workflow input.", field: "$.inputs.workflow")
        }
        if nodes["nodes"]?.arrayValue != nil, nodes["links"] != nil {
            throw contractError("The workflow is in ComfyUI's UI format (nodes and links), not its API format.",
                                "In ComfyUI use Workflow → Export (API), and pass that file instead.", field: "$.inputs.workflow")
        }
        for (id, node) in nodes.sorted(by: { $0.key < $1.key }) {
            guard node["class_type"]?.stringValue?.isEmpty == false, node["inputs"]?.objectValue != nil || node["inputs"] == nil else {
                throw contractError("Workflow node \(id) has no class_type (or its inputs are not an object).",
                                    "Each node must be {\"class_type\": …, \"inputs\": {…}}, as Export (API) writes it.", field: "$.inputs.workflow.\(id)")
            }
        }
        var graph = WorkflowGraph(nodes: nodes)
        for (i, binding) in (inputs["inputs"]?.arrayValue ?? []).enumerated() {
            let field = "$.inputs.inputs[\(i)]"
            guard let node = binding["node"]?.stringValue, let input = binding["input"]?.stringValue, let value = binding["value"] else {
                throw contractError("Binding \(i) needs node, input and value.", "Write {\"node\": \"6\", \"input\": \"text\", \"value\": \"…\"}.", field: field)
            }
            guard nodes[node] != nil else {
                throw contractError("Binding \(i) names node \(node), which is not in the workflow.",
                                    "Use a node id from the workflow (\(nodes.keys.sorted().prefix(12).joined(separator: ", "))).", field: field + ".node")
            }
            if isFile(value) {
                graph.files.append(FileBinding(node: node, input: input, file: value, field: field + ".value"))
                graph.fields["\(node)/\(input)"] = field + ".value"
            } else {
                graph.set(node, input, value, field: field + ".value")
            }
        }
        if let outputs = inputs["output_nodes"]?.arrayValue?.compactMap(\.stringValue) {
            for id in outputs where nodes[id] == nil {
                throw contractError("output_nodes names node \(id), which is not in the workflow.", "List output nodes of the workflow (e.g. its SaveImage).",
                                    field: "$.inputs.output_nodes")
            }
            graph.outputNodes = outputs
        }
        return graph
    }

    /// A catalog capability: its template from Registry/workflows with the
    /// job's inputs written into the nodes the template's parameters name.
    static func template(_ template: WorkflowTemplate, inputs: [String: JSONValue], config: ComfyUIConfig) throws -> WorkflowGraph {
        var graph = WorkflowGraph(nodes: template.workflow, outputNodes: template.outputs, fromTemplate: true, parameters: template.parameters)
        var values = inputs
        if let ratio = values.removeValue(forKey: "aspect_ratio")?.stringValue, let size = Self.sizes[ratio] {
            values["width"] = .number(Double(size.0))
            values["height"] = .number(Double(size.1))
        }
        values.removeValue(forKey: "output_format")
        if values["model"] == nil, let checkpoint = config.checkpoint, template.parameters["model"] != nil { values["model"] = .string(checkpoint) }
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            guard let targets = template.parameters[name] else {
                throw contractError("The \(template.capability) workflow has no place for input \(name).",
                                    "Leave \(name) out, or run your own graph with comfy.workflow.", field: "$.inputs.\(name)")
            }
            for target in targets {
                if isFile(value) {
                    graph.files.append(FileBinding(node: target.node, input: target.input, file: value, field: "$.inputs.\(name)"))
                    graph.fields["\(target.node)/\(target.input)"] = "$.inputs.\(name)"
                } else {
                    graph.set(target.node, target.input, value, field: "$.inputs.\(name)")
                }
            }
        }
        return graph
    }

    /// aspect_ratio as a size Stable Diffusion 1.5 handles (about 512², multiples of 8).
    static let sizes: [String: (Int, Int)] = ["1:1": (512, 512), "16:9": (912, 512), "9:16": (512, 912), "4:3": (680, 512),
                                              "3:4": (512, 680), "21:9": (1192, 512)]
}

/// A workflow template (Registry/workflows/<capability>.json, compiled into the plugin).
struct WorkflowTemplate: Decodable {
    struct Target: Decodable {
        var node: String
        var input: String
    }

    var capability: String
    var workflow: [String: JSONValue]
    var parameters: [String: [Target]]
    var outputs: [String]

    static let all: [String: WorkflowTemplate] = {
        var templates: [String: WorkflowTemplate] = [:]
        for bytes in [PackageResources.image_generate_json] {
            if let template = try? JSONDecoder().decode(WorkflowTemplate.self, from: Data(bytes)) { templates[template.capability] = template }
        }
        return templates
    }()
}
