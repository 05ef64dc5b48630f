import Foundation
import SwitchyardPluginSDK

// A local ComfyUI server: POST /prompt with a prompt id chosen here (derived
// from the job's idempotency key, so a job whose ref was never stored is found
// again), /history/{id} and /queue for state, /view for outputs,
// /upload/image for inputs, /queue delete or /interrupt to cancel,
// /system_stats for health. Catalog capabilities run workflow templates
// (Registry/workflows); comfy.workflow runs the caller's graph. Decisions:
// docs/adr/0005-comfyui-adapter.md.

@_cdecl("sy_plugin_entry_v1") public func syPluginEntry(_ host: UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>? { PluginExport.entry(ComfyUIAdapter.self, host: host) }

struct ComfyUIAdapter: EngineAdapter {
    static let capabilities = ["comfy.workflow", "image.generate"]

    init() {}

    var descriptor: PluginDescriptor {
        PluginDescriptor(id: "comfyui", version: "0.1.0", name: "ComfyUI (local)", capabilities: Self.capabilities,
                         extensions: [SY_EXTENSION_ESTIMATE, SY_EXTENSION_RECONCILE])
    }

    static func diagnostic(_ error: PluginError) -> Diagnostic {
        Diagnostic(code: error.code, message: error.message, remediation: error.remediation, field: error.field)
    }

    func graph(for request: JobRequest, config: ComfyUIConfig, context: HostContext) throws -> WorkflowGraph {
        if request.capability == "comfy.workflow" { return try WorkflowGraph.workflow(request.inputs, readArtifact: context.readArtifact) }
        guard let template = WorkflowTemplate.all[request.capability] else {
            throw PluginError(code: "CONTRACT_MISMATCH", message: "comfyui does not offer \(request.capability).",
                              remediation: "Use one of \(Self.capabilities.joined(separator: ", ")).", field: "$.capability")
        }
        return try WorkflowGraph.template(template, inputs: request.inputs, config: config)
    }

    /// The graph as queued under `promptID`. A template without a given seed
    /// gets one derived from the prompt id: reproducible, and reported with the result.
    func graph(for request: JobRequest, config: ComfyUIConfig, promptID: String, context: HostContext) throws -> WorkflowGraph {
        var graph = try graph(for: request, config: config, context: context)
        if graph.parameters["seed"] != nil, !graph.isBound("seed") {
            graph.setParameter("seed", .number(Double(UInt32(promptID.prefix(8), radix: 16) ?? 0)))
        }
        return graph
    }

    /// Checks the graph against the server's node catalogue. A cached catalogue
    /// that reports something missing is fetched again first, so a model
    /// installed a moment ago is not refused.
    func dependencyProblems(_ graph: WorkflowGraph, config: ComfyUIConfig, server: ComfyUIServer, context: HostContext, timeoutMs: Int) throws -> [Diagnostic] {
        var catalogue = try NodeCatalogue.load(config, server: server, context: context, timeoutMs: timeoutMs)
        var problems = catalogue.missing(in: graph)
        if !problems.isEmpty, catalogue.fromCache {
            catalogue = try NodeCatalogue.load(config, server: server, context: context, refresh: true, timeoutMs: timeoutMs)
            problems = catalogue.missing(in: graph)
        }
        return problems
    }

    /// Also asks the server (ADR 0005): a missing node class or model file is
    /// refused here, before a job row exists. The catalogue is cached in the
    /// plugin's kv; an unreachable server is left to the health step.
    func validate(_ request: JobRequest, context: HostContext) -> [Diagnostic] {
        do {
            let config = try ComfyUIConfig(request.config)
            let graph = try graph(for: request, config: config, context: context)
            return (try? dependencyProblems(graph, config: config, server: ComfyUIServer(config: config, context: context), context: context, timeoutMs: 5_000)) ?? []
        } catch let error as PluginError {
            return [Self.diagnostic(error)]
        } catch {
            return [Diagnostic(code: "CONTRACT_MISMATCH", message: "\(error)", remediation: "Check the inputs.")]
        }
    }

    /// The prompt id for a job: a UUID-shaped digest of its idempotency key and
    /// inputs, the same on every attempt and after a crash. The inputs are in it
    /// because ComfyUI's history outlives the host's store: the same key reused
    /// with other inputs (a fresh YARD_HOME) must not pick up an old result.
    func promptID(for request: JobRequest, context: HostContext) throws -> String {
        guard let job = request.job else { return UUID().uuidString.lowercased() }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let inputs = try encoder.encode(JSONValue.object(request.inputs))
        let digest = [UInt8](try context.sha256(Data("switchyard/comfyui/\(job.idempotencyKey)/\(request.capability)/".utf8) + inputs).prefix(16))
        let chars = Array(digest.map { String(format: "%02x", $0) }.joined())
        func slice(_ a: Int, _ b: Int) -> String { String(chars[a..<b]) }
        let variant = Array("89ab")[Int(digest[8] & 3)]
        return "\(slice(0, 8))-\(slice(8, 12))-5\(slice(13, 16))-\(variant)\(slice(17, 20))-\(slice(20, 32))"
    }

    func ref(_ promptID: String, request: JobRequest, graph: WorkflowGraph, context: HostContext) -> JSONValue {
        var ref: [String: JSONValue] = ["prompt_id": .string(promptID), "capability": .string(request.capability),
                                        "submitted_ms": .number(Double(context.nowUnixMs()))]
        if let outputs = graph.outputNodes { ref["output_nodes"] = .array(outputs.map { .string($0) }) }
        for name in ["seed", "model"] { if let value = graph.parameter(name) { ref[name] = value } }
        return .object(ref)
    }

    func submit(_ request: JobRequest, context: HostContext) throws -> SubmitResult {
        let config = try ComfyUIConfig(request.config)
        let server = ComfyUIServer(config: config, context: context)
        let id = try promptID(for: request, context: context)
        var graph = try graph(for: request, config: config, promptID: id, context: context)
        func accepted() -> SubmitResult { .ref(ref(id, request: request, graph: graph, context: context), nextPollAfterMs: 500) }
        // Submit again after an unconfirmed attempt: the prompt may have landed.
        if request.job != nil, try server.knows(id) {
            context.log(.info, "comfyui: prompt \(id) is already known to ComfyUI; not queueing it twice")
            return accepted()
        }
        if let first = try dependencyProblems(graph, config: config, server: server, context: context, timeoutMs: 10_000).first {
            throw PluginError(code: first.code, message: first.message, remediation: first.remediation, field: first.field)
        }
        for binding in graph.files {
            let name = try upload(binding, server: server, context: context)
            graph.set(binding.node, binding.input, .string(name), field: binding.field)
        }
        let body: JSONValue = ["prompt": .object(graph.nodes), "prompt_id": .string(id), "client_id": .string(config.clientID),
                               "extra_data": ["switchyard_job": .string(request.job?.id ?? "")]]
        let response: HTTPResponse
        do {
            response = try server.post("prompt", json: body)
        } catch let error as PluginError where error.retryable {
            // The connection broke: the prompt may or may not have been queued.
            if try server.knows(id) { return accepted() }
            throw error
        }
        if response.status == 400 { throw PromptRefusal.error(response, graph: graph) }
        guard response.isSuccess, let answer = try? response.decodeJSON([String: JSONValue].self),
              answer["prompt_id"]?.stringValue != nil else {
            if try server.knows(id) { return accepted() }
            throw response.isSuccess
                ? PluginError(code: "ENGINE_ERROR", message: "ComfyUI's /prompt answer is not the expected JSON.", remediation: "Retried automatically.", retryable: true, charged: .no)
                : ComfyUIServer.unavailable(response, "/prompt")
        }
        if let errors = answer["node_errors"]?.objectValue, !errors.isEmpty {
            context.log(.warning, "comfyui: ComfyUI queued prompt \(id) but refused some outputs: \(PromptRefusal.summary(errors, graph: graph))")
        }
        context.log(.info, "comfyui: queued prompt \(id) as number \(answer["number"]?.intValue ?? -1)")
        return accepted()
    }

    /// Puts one file input into ComfyUI's input folder under a content-derived
    /// name (a repeated upload overwrites it with the same bytes).
    func upload(_ binding: WorkflowGraph.FileBinding, server: ComfyUIServer, context: HostContext) throws -> String {
        let data: Data
        var mediaType = binding.file["media_type"]?.stringValue
        if let handle = binding.file["artifact"]?.stringValue {
            data = try context.readArtifact(handle)
        } else if let url = binding.file["url"]?.stringValue {
            let response = try context.http(HTTPRequest(method: "GET", url: url))
            guard response.isSuccess else {
                throw PluginError(code: "CONTRACT_MISMATCH", message: "Fetching the input \(url) answered HTTP \(response.status).",
                                  remediation: "Pass a reachable URL, or the file itself (--input name=@file).", field: binding.field)
            }
            data = response.body
            mediaType = mediaType ?? response.headers["content-type"]
        } else {
            throw PluginError(code: "CONTRACT_MISMATCH", message: "The file input is neither an artifact nor a URL.", remediation: "Pass --input name=@file.", field: binding.field)
        }
        let type = mediaType ?? "image/png"
        let ext = ["image/jpeg": "jpg", "image/webp": "webp", "video/mp4": "mp4", "audio/wav": "wav", "audio/mpeg": "mp3"][type] ?? "png"
        let digest = try context.sha256(data).prefix(8).map { String(format: "%02x", $0) }.joined()
        return try server.upload(data, name: "sy-\(digest).\(ext)", mediaType: type)
    }

    func poll(_ request: RefRequest, context: HostContext) throws -> PollResult {
        let config = try ComfyUIConfig(request.config)
        guard let id = request.ref["prompt_id"]?.stringValue else {
            throw PluginError(code: "INVALID_REF", message: "This ref has no ComfyUI prompt id.", remediation: "Poll refs made by the comfyui adapter.", field: "$.ref")
        }
        let server = ComfyUIServer(config: config, context: context)
        if let entry = try server.history(id) { return try finished(entry, ref: request.ref, server: server, context: context) }
        let queue = try server.queue()
        if queue.running.contains(id) {
            return PollResult(state: .running, message: "running on ComfyUI", nextPollAfterMs: 500)
        }
        if let position = queue.pending.firstIndex(of: id) {
            let ahead = position + queue.running.count
            return PollResult(state: .queued, progress: 0, message: ahead == 0 ? "next in ComfyUI's queue" : "\(ahead) prompt\(ahead == 1 ? "" : "s") ahead in ComfyUI's queue",
                              nextPollAfterMs: 1000)
        }
        // It may have finished between the two reads.
        if let entry = try server.history(id) { return try finished(entry, ref: request.ref, server: server, context: context) }
        let submitted = Int64(request.ref["submitted_ms"]?.doubleValue ?? 0)
        if context.nowUnixMs() - submitted < Int64(config.lostGraceMs) {
            return PollResult(state: .queued, message: "waiting for ComfyUI to list the prompt", nextPollAfterMs: 250)
        }
        return PollResult(state: .failed, error: PluginError(
            code: "LOST_BY_ENGINE",
            message: "ComfyUI has no record of prompt \(id): it is neither queued, running nor in the history. The server was most likely restarted (its queue and history live in memory), so the job was lost.",
            remediation: "Run the job again. Files it may have saved before the restart stay in ComfyUI's output folder.", charged: .no))
    }

    /// A history entry: collect the outputs, or report the interrupt or the error.
    func finished(_ entry: [String: JSONValue], ref: JSONValue, server: ComfyUIServer, context: HostContext) throws -> PollResult {
        let status = entry["status"]
        let messages = status?["messages"]?.arrayValue ?? []
        func message(_ kind: String) -> JSONValue? {
            messages.last { $0.arrayValue?.first?.stringValue == kind }?.arrayValue?.dropFirst().first
        }
        if let interrupted = message("execution_interrupted") {
            return PollResult(state: .cancelled, message: "interrupted in ComfyUI before node \(interrupted["node_id"]?.stringValue ?? "?") (\(interrupted["node_type"]?.stringValue ?? "?"))")
        }
        if let failure = message("execution_error") {
            let text = failure["exception_message"]?.stringValue ?? "no details"
            let memory = text.lowercased().contains("out of memory")
            return PollResult(state: .failed, error: PluginError(
                code: "ENGINE_ERROR",
                message: "ComfyUI node \(failure["node_id"]?.stringValue ?? "?") (\(failure["node_type"]?.stringValue ?? "?")) failed: \(text)",
                remediation: memory ? "Lower width, height or batch size, or free GPU memory, then run it again." : "See ComfyUI's console for the traceback; fix the node's inputs or the custom node.",
                charged: .no))
        }
        guard status?["status_str"]?.stringValue == "success" || status?["completed"]?.boolValue == true else {
            return PollResult(state: .failed, error: PluginError(code: "ENGINE_ERROR", message: "ComfyUI finished the prompt with status \(status?["status_str"]?.stringValue ?? "unknown").",
                                                                 remediation: "See ComfyUI's console.", charged: .no))
        }
        let wanted = ref["output_nodes"]?.arrayValue?.compactMap(\.stringValue)
        var files: [(node: String, file: JSONValue, width: Int?, height: Int?)] = []
        for (node, output) in (entry["outputs"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let wanted, !wanted.contains(node) { continue }
            for (_, items) in (output.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
                for item in items.arrayValue ?? [] {
                    guard let name = item["filename"]?.stringValue else { continue }
                    if wanted == nil, item["type"]?.stringValue != "output" { continue }
                    guard let data = try server.view(item) else {
                        return PollResult(state: .failed, error: PluginError(code: "RESULT_EXPIRED", message: "ComfyUI no longer has the output file \(name) of node \(node).",
                                                                             remediation: "Run the job again; Switchyard copies outputs as soon as a prompt finishes.", charged: .no))
                    }
                    let mediaType = Self.mediaType(name)
                    let handle = try context.putArtifact(data, mediaType: mediaType)
                    let size = Self.pngSize(data)
                    files.append((node, ["artifact": .string(handle.artifact), "media_type": .string(mediaType), "size": .number(Double(handle.size))], size?.0, size?.1))
                }
            }
        }
        let capability = ref["capability"]?.stringValue ?? "comfy.workflow"
        guard !files.isEmpty || capability == "comfy.workflow" else {
            return PollResult(state: .failed, error: PluginError(code: "ENGINE_ERROR", message: "ComfyUI finished without saving an image.",
                                                                 remediation: "Check the workflow template's SaveImage node.", charged: .no))
        }
        var outputs: [String: JSONValue]
        if capability == "image.generate" {
            outputs = ["images": .array(files.map { file in
                var image: [String: JSONValue] = ["file": file.file, "width": .number(Double(file.width ?? 0)), "height": .number(Double(file.height ?? 0))]
                if let seed = ref["seed"] { image["seed"] = seed }
                return .object(image)
            })]
            if let seed = ref["seed"] { outputs["seed"] = seed }
            if let model = ref["model"] { outputs["model"] = model }
        } else {
            outputs = ["files": .array(files.map { .object(["node": .string($0.node), "file": $0.file]) }),
                       "prompt_id": ref["prompt_id"] ?? .null]
        }
        return PollResult(state: .succeeded, progress: 1, outputs: outputs)
    }

    static func mediaType(_ name: String) -> String {
        ["png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif", "mp4": "video/mp4",
         "webm": "video/webm", "mov": "video/quicktime", "wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg"][
            (name as NSString).pathExtension.lowercased()] ?? "application/octet-stream"
    }

    static func pngSize(_ data: Data) -> (Int, Int)? {
        let bytes = [UInt8](data.prefix(24))
        guard bytes.count == 24, bytes[0] == 0x89, bytes[1] == 0x50, bytes[2] == 0x4E, bytes[3] == 0x47 else { return nil }
        let be = { (i: Int) in Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3]) }
        return (be(16), be(20))
    }

    static let interruptNote = "ComfyUI stops between nodes: the node running now (a sampler can take minutes) finishes first, and a prompt already on its last node may still complete."

    func cancel(_ request: RefRequest, context: HostContext) throws -> CancelResult {
        let config = try ComfyUIConfig(request.config)
        guard let id = request.ref["prompt_id"]?.stringValue else { return CancelResult(outcome: .notFound, charged: .no) }
        let server = ComfyUIServer(config: config, context: context)
        if try server.history(id) != nil { return CancelResult(outcome: .alreadyFinished, charged: .no) }
        var queue = try server.queue()
        if queue.pending.contains(id) {
            // ComfyUI answers 200 with an empty body.
            let deleted = try server.post("queue", json: ["delete": [.string(id)]])
            guard deleted.isSuccess else { throw ComfyUIServer.unavailable(deleted, "/queue") }
            queue = try server.queue()
            // It may have started between the two calls.
            if !queue.running.contains(id) { return CancelResult(outcome: .cancelledInQueue, charged: .no, message: "removed from ComfyUI's queue") }
        }
        if queue.running.contains(id) {
            let response = try server.post("interrupt", json: ["prompt_id": .string(id)])
            guard response.isSuccess else { throw ComfyUIServer.unavailable(response, "/interrupt") }
            return CancelResult(outcome: .cancelledRunning, charged: .no, message: Self.interruptNote)
        }
        if try server.history(id) != nil { return CancelResult(outcome: .alreadyFinished, charged: .no) }
        return CancelResult(outcome: .notFound, charged: .no, message: "ComfyUI has no record of this prompt (restarted?)")
    }

    func health(_ request: ConfigRequest, context: HostContext) -> HealthReport {
        do {
            let config = try ComfyUIConfig(request.config)
            let server = ComfyUIServer(config: config, context: context)
            let response = try server.get("system_stats", timeoutMs: 5_000)
            guard response.isSuccess, let stats = try? response.decodeJSON([String: JSONValue].self) else {
                return HealthReport(status: .degraded, message: "ComfyUI answered /system_stats with HTTP \(response.status)", details: ["code": "ENGINE_UNAVAILABLE"])
            }
            var details: [String: JSONValue] = ["comfyui_version": stats["system"]?["comfyui_version"] ?? .null]
            let device = stats["devices"]?.arrayValue?.first
            details["device"] = device?["name"] ?? .null
            details["vram_free"] = device?["vram_free"] ?? .null
            if let queue = try? server.queue() {
                details["queue_running"] = .number(Double(queue.running.count))
                details["queue_pending"] = .number(Double(queue.pending.count))
            }
            let version = stats["system"]?["comfyui_version"]?.stringValue ?? "unknown version"
            return HealthReport(status: .ok, message: "ComfyUI \(version) on \(device?["name"]?.stringValue ?? "an unknown device")", details: details)
        } catch let error as PluginError {
            return HealthReport(status: .offline, message: error.message, details: ["code": "ENGINE_OFFLINE"])
        } catch {
            return HealthReport(status: .offline, message: "\(error)", details: ["code": "ENGINE_OFFLINE"])
        }
    }

    func estimate(_ request: JobRequest, context: HostContext) throws -> CostEstimate {
        CostEstimate(amountMinor: 0, basis: "local ComfyUI: runs on your own machine, no credits")
    }

    /// After a crash between submit and storing the ref: the prompt id is the
    /// job's, so ask ComfyUI whether it has it. nil (never received) lets the
    /// host submit it, under the same id.
    func reconcile(_ request: JobRequest, context: HostContext) throws -> JSONValue? {
        let config = try ComfyUIConfig(request.config)
        let id = try promptID(for: request, context: context)
        let graph = try graph(for: request, config: config, promptID: id, context: context)
        guard request.job != nil, try ComfyUIServer(config: config, context: context).knows(id) else { return nil }
        return ref(id, request: request, graph: graph, context: context)
    }
}

/// ComfyUI's 400 answers to /prompt as stable codes: a node class the server
/// lacks or a model file outside its list is DEPENDENCY_MISSING; anything
/// else it refused is CONTRACT_MISMATCH naming the node and input.
enum PromptRefusal {
    static func error(_ response: HTTPResponse, graph: WorkflowGraph) -> PluginError {
        guard let answer = try? response.decodeJSON([String: JSONValue].self), let error = answer["error"] else {
            return PluginError(code: "CONTRACT_MISMATCH", message: "ComfyUI refused the prompt: \(String(decoding: response.body.prefix(300), as: UTF8.self))",
                               remediation: "Check the workflow in ComfyUI.", field: "$.inputs")
        }
        let type = error["type"]?.stringValue ?? ""
        let message = error["message"]?.stringValue ?? type
        let details = error["details"]?.stringValue ?? ""
        switch type {
        case "invalid_prompt" where message.contains("does not exist"):
            let node = details.components(separatedBy: "#").last?.trimmingCharacters(in: CharacterSet(charactersIn: "'")) ?? ""
            return PluginError(code: "DEPENDENCY_MISSING", message: "ComfyUI: \(message)",
                               remediation: "Install the custom node that provides it (ComfyUI-Manager: Install Missing Custom Nodes) and restart ComfyUI.",
                               field: graph.field(node: node))
        case "prompt_outputs_failed_validation":
            let errors = answer["node_errors"]?.objectValue ?? [:]
            guard let (node, first) = errors.sorted(by: { $0.key < $1.key }).lazy.compactMap({ id, entry in entry["errors"]?.arrayValue?.first.map { (id, $0) } }).first else {
                return PluginError(code: "CONTRACT_MISMATCH", message: "ComfyUI: \(message)", remediation: "Check the workflow in ComfyUI.", field: "$.inputs")
            }
            let input = first["extra_info"]?["input_name"]?.stringValue
            let received = first["extra_info"]?["received_value"].map(NodeCatalogue.text) ?? ""
            let missingFile = (first["type"]?.stringValue == "value_not_in_list" && NodeCatalogue.looksLikeFile(received))
                || (first["details"]?.stringValue ?? "").contains("Invalid image file")
            return PluginError(code: missingFile ? "DEPENDENCY_MISSING" : "CONTRACT_MISMATCH",
                               message: "ComfyUI refused the workflow: \(summary(errors, graph: graph))",
                               remediation: missingFile ? "Install the file on the ComfyUI server (see the node's folder), or pick one it has."
                                                        : "Fix the named input of node \(node) (\(graph.classType(node))).",
                               field: graph.field(node: node, input: input))
        case "prompt_no_outputs":
            return PluginError(code: "CONTRACT_MISMATCH", message: "The workflow has no output node (SaveImage, PreviewImage, …): ComfyUI would run nothing.",
                               remediation: "Add a SaveImage (or another output node) to the workflow.", field: "$.inputs.workflow")
        default:
            return PluginError(code: "CONTRACT_MISMATCH", message: "ComfyUI refused the prompt (\(type)): \(message) \(details)",
                               remediation: "Check the workflow in ComfyUI.", field: "$.inputs")
        }
    }

    /// "node 1 (EmptyImage) width: Value 0 smaller than min of 1; …"
    static func summary(_ errors: [String: JSONValue], graph: WorkflowGraph) -> String {
        errors.sorted { $0.key < $1.key }.flatMap { node, entry in
            (entry["errors"]?.arrayValue ?? []).map { error in
                let input = error["extra_info"]?["input_name"]?.stringValue ?? error["details"]?.stringValue ?? ""
                let detail = error["type"]?.stringValue == "value_not_in_list" ? error["details"]?.stringValue ?? "" : error["message"]?.stringValue ?? ""
                return "node \(node) (\(entry["class_type"]?.stringValue ?? graph.classType(node))) \(input): \(detail)"
            }
        }.joined(separator: "; ")
    }
}
