import Foundation
import SwitchyardPluginSDK

/// What a ComfyUI server can run, condensed from `/object_info`: its node
/// classes and, per class, the choice lists of its inputs (model files, input
/// images, enums). A server without weights answers empty model lists, so a
/// workflow's missing model shows up as a value outside its list.
struct NodeCatalogue {
    var classes: [String: [String: [String]]]
    var fetchedMs: Int64
    var fromCache: Bool

    static func kvKey(_ config: ComfyUIConfig) -> String { "object_info:\(config.baseURL)" }

    /// The catalogue from the plugin's kv while it is younger than the TTL,
    /// else fetched from the server (and cached).
    static func load(_ config: ComfyUIConfig, server: ComfyUIServer, context: HostContext, refresh: Bool = false, timeoutMs: Int = 10_000) throws -> NodeCatalogue {
        let key = kvKey(config)
        if !refresh, let cached = try? context.kvGet(key), let doc = try? JSONDecoder().decode(Cached.self, from: cached),
           context.nowUnixMs() - doc.fetchedMs < Int64(config.objectInfoTTLMs) {
            return NodeCatalogue(classes: doc.classes, fetchedMs: doc.fetchedMs, fromCache: true)
        }
        let info = try server.json(try server.get("object_info", timeoutMs: timeoutMs), what: "/object_info")
        var classes: [String: [String: [String]]] = [:]
        for (name, spec) in info {
            var choices: [String: [String]] = [:]
            for group in ["required", "optional"] {
                for (input, entry) in spec["input"]?[group]?.objectValue ?? [:] {
                    if let list = Self.choices(entry) { choices[input] = list }
                }
            }
            classes[name] = choices
        }
        let now = context.nowUnixMs()
        if let data = try? JSONEncoder().encode(Cached(fetchedMs: now, classes: classes)) {
            try? context.kvPut(key, data, ttlMs: Int64(config.objectInfoTTLMs))
        }
        return NodeCatalogue(classes: classes, fetchedMs: now, fromCache: false)
    }

    struct Cached: Codable {
        var fetchedMs: Int64
        var classes: [String: [String: [String]]]
    }

    /// An input's choices: `[[a, b], {…}]` (classic combo) or `["COMBO", {"options": [a, b]}]`.
    static func choices(_ entry: JSONValue) -> [String]? {
        guard let parts = entry.arrayValue, let head = parts.first else { return nil }
        if let list = head.arrayValue { return list.map(Self.text) }
        if head.stringValue == "COMBO", parts.count > 1, let options = parts[1]["options"]?.arrayValue { return options.map(Self.text) }
        return nil
    }

    static func text(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): return s
        case .number(let n): return n.rounded() == n ? String(Int(n)) : String(n)
        case .bool(let b): return String(b)
        default: return ""
        }
    }

    static let fileExtensions: Set<String> = ["safetensors", "ckpt", "pt", "pth", "bin", "gguf", "onnx", "sft", "pkl", "png", "jpg", "jpeg",
                                              "webp", "gif", "mp4", "webm", "mov", "wav", "mp3", "flac", "ogg", "json", "yaml"]

    static func looksLikeFile(_ value: String) -> Bool { fileExtensions.contains((value as NSString).pathExtension.lowercased()) }

    /// Where ComfyUI looks for a loader's files, for the remediation.
    static func folder(for classType: String) -> String {
        let name = classType.lowercased()
        for (needle, folder) in [("upscale", "upscale_models"), ("lora", "loras"), ("controlnet", "controlnet"), ("vae", "vae"),
                                 ("unet", "diffusion_models"), ("clip", "text_encoders"), ("checkpoint", "checkpoints"), ("loadimage", "input")] where name.contains(needle) {
            return folder
        }
        return "models/…"
    }

    /// Node classes and files the graph needs that this server lacks, as
    /// DEPENDENCY_MISSING diagnostics naming them. Inputs bound to uploads are
    /// skipped: those files arrive with the job.
    func missing(in graph: WorkflowGraph) -> [Diagnostic] {
        var found: [Diagnostic] = []
        let uploaded = Set(graph.files.map { "\($0.node)/\($0.input)" })
        for (id, node) in graph.nodes.sorted(by: { $0.key < $1.key }) {
            let type = graph.classType(id)
            guard let inputs = classes[type] else {
                found.append(Diagnostic(code: "DEPENDENCY_MISSING",
                                        message: "Node \(id) needs the node class \(type), which this ComfyUI server does not have.",
                                        remediation: "Install the custom node that provides \(type) (ComfyUI-Manager: Install Missing Custom Nodes) and restart ComfyUI.",
                                        field: graph.field(node: id)))
                continue
            }
            for (input, value) in (node["inputs"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
                guard let choices = inputs[input], !uploaded.contains("\(id)/\(input)"), value.arrayValue == nil else { continue }
                let chosen = Self.text(value)
                guard !choices.contains(chosen), Self.looksLikeFile(chosen) else { continue }
                let folder = Self.folder(for: type)
                let offered = choices.isEmpty ? "it has none" : "it has \(choices.prefix(5).joined(separator: ", "))\(choices.count > 5 ? ", …" : "")"
                let fix = folder == "input"
                    ? "Pass the file with the job (a binding whose value is a file), so Switchyard uploads it, or copy \(chosen) into ComfyUI's input folder."
                    : "Put \(chosen) into ComfyUI's \(folder) folder and refresh ComfyUI (or pick an installed file)."
                found.append(Diagnostic(code: "DEPENDENCY_MISSING",
                                        message: "Node \(id) (\(type)) needs the file \(chosen) for \(input), which this ComfyUI server does not have (\(offered)).",
                                        remediation: fix, field: graph.field(node: id, input: input)))
            }
        }
        return found
    }
}
