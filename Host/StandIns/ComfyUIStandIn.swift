import Foundation
import SwitchyardHost

/// A local ComfyUI server on loopback (PROVIDERS.md: ComfyUI), following what a
/// real server answered (Tests/Fixtures/comfyui): `/prompt` with its 400 bodies
/// (no_prompt, invalid_prompt, prompt_no_outputs, prompt_outputs_failed_validation
/// with per-node errors), `/queue`, `/interrupt`, `/history`, `/view`,
/// `/upload/image` (multipart), `/object_info`, `/system_stats`, each also under
/// `/api`. No auth, as ComfyUI has none.
///
/// One prompt executes at a time, node by node, in dependency order.
/// Execution moves with the clock, never with requests: one tick each
/// `msPerTick` milliseconds (wall time by default; with a VirtualClock only
/// `step()` and `advance(ms:)` move it), a KSampler taking a tick per
/// `samplerStepsPerTick` steps. An interrupt lands only between nodes.
/// Output nodes write real PNGs whose size follows the graph
/// (EmptyLatentImage, LoadImage, ImageScale, upscale models).
///
/// Like a fresh server it has no model files: every loader's choice list is
/// empty until a test (or `yard standin comfyui --with-models`) installs some.
/// Error answers are those of a real 0.3.64 server
/// (Tests/Fixtures/comfyui/real_responses_0.3.64.txt): a link to a missing
/// node is `exception_during_validation` (KeyError), invalid JSON is 500
/// text/plain, `/view` with a bad type is 400, JSON is
/// `application/json; charset=utf-8`.
///
/// Faults: `restart()` (queue and history are in memory: both are wiped, files
/// stay), missing node classes, missing model files (empty choice lists, as
/// on a server without weights), 5xx, malformed JSON, dropped connections
/// (also after a prompt was accepted), a paused queue, slow nodes, a node that
/// raises during execution.
public final class ComfyUIStandIn: ProviderStandIn, @unchecked Sendable {
    public struct Faults: Sendable {
        /// Node classes the server does not have (a custom node that is not installed).
        public var missingNodeClasses: Set<String> = []
        /// Nothing leaves the queue: the server is busy with someone else's work.
        public var paused = false
        /// Ticks each node takes (a slow GPU).
        public var ticksPerNode = 1
        /// Milliseconds one tick of execution takes.
        public var msPerTick: Int64 = 2
        /// Sampler steps done per tick.
        public var samplerStepsPerTick = 10
        /// Executing a node of this class raises (execution_error), e.g. out of memory.
        public var failOnClass: String?
        public var failureMessage = "Allocation on device: out of memory"
        /// The next N requests answer 500 (aiohttp's text body).
        public var serverErrorNext = 0
        /// The next N POST /prompt answer 500 without queueing anything.
        public var promptServerErrorNext = 0
        /// The next N JSON answers are cut off mid-document.
        public var malformedNext = 0
        /// The next N requests lose their connection before the answer is complete.
        public var dropConnectionNext = 0
        /// The next N accepted prompts are queued, and then the connection drops
        /// before the answer arrives (the client cannot know the prompt landed).
        public var dropAfterAcceptingNext = 0
        public init() {}
    }

    struct Queued {
        var number: Int
        var id: String
        var graph: [String: Any]
        var extra: [String: Any]
        var outputs: [String]
    }

    /// An image batch flowing along the graph.
    struct Frame {
        var width: Int
        var height: Int
        var count: Int
        var rgb: (UInt8, UInt8, UInt8)
    }

    struct Execution {
        var prompt: Queued
        var order: [String]
        var index = 0
        var ticksLeft = 0
        var frames: [String: Frame] = [:]
        var executed: [String] = []
        var outputs: [String: Any] = [:]
        var messages: [[Any]] = []
    }

    public var faults = Faults()
    /// Model files per folder (checkpoints, upscale_models, loras). A fresh
    /// server has none, so neither has the stand-in unless asked.
    public var models: [String: [String]] {
        get { lock.withLock { installed } }
        set { lock.withLock { installed = newValue } }
    }
    /// What `withModels: true` installs: one checkpoint and one upscaler, so sample workflows run.
    public static let sampleModels: [String: [String]] = ["checkpoints": ["v1-5-pruned-emaonly.safetensors"],
                                                          "upscale_models": ["RealESRGAN_x4plus.pth"], "loras": []]
    private var installed: [String: [String]] = [:]
    /// Clock time up to which execution has been simulated.
    private var simulatedMs: Int64?
    /// Which choice lists list which model folder.
    static let modelInputs: [String: (input: String, folder: String)] = [
        "CheckpointLoaderSimple": ("ckpt_name", "checkpoints"), "UpscaleModelLoader": ("model_name", "upscale_models"),
        "LoraLoader": ("lora_name", "loras"),
    ]

    private let lock = NSLock()
    private let catalogue: [String: Any]
    private var pending: [Queued] = []
    private var running: Execution?
    private var history: [String: [String: Any]] = [:]
    private var historyOrder: [String] = []
    private var files: [String: Data] = [:]
    private var interruptRequested = false
    private var nextNumber = 0
    private var accepted: [String] = []
    private var interrupts = 0
    private var log: [String] = []

    /// `objectInfo`: a node catalogue as `/object_info` answers it (default: the
    /// trimmed catalogue recorded from a real server, `recordedCatalogue`).
    public init(objectInfo: [String: Any]? = nil, withModels: Bool = false, clock: any AdjustableClock = WallClock()) throws {
        if withModels { installed = Self.sampleModels }
        if let objectInfo {
            catalogue = objectInfo
        } else {
            guard let object = try JSONSerialization.jsonObject(with: Self.recordedCatalogue) as? [String: Any] else {
                throw CocoaError(.fileReadCorruptFile)
            }
            catalogue = object
        }
        super.init(clock: clock)
    }

    /// The node catalogue a fresh ComfyUI 0.3.64 answered on `/object_info`,
    /// trimmed to the nodes the adapter's workflows use; compiled into the
    /// binary (Fixtures/comfyui-object_info.json), so `yard standin comfyui`
    /// works from an installed `yard` without the source tree.
    public static var recordedCatalogue: Data { Data(PackageResources.comfyui_object_info_json) }

    public var baseURL: String { server.baseURL }
    public func configure(_ change: (inout Faults) -> Void) { lock.withLock { change(&faults) } }

    /// The server restarts: queue, running prompt and history are gone (ComfyUI
    /// keeps them in memory); files in the input and output folders stay.
    public func restart() {
        lock.withLock {
            pending = []
            running = nil
            history = [:]
            historyOrder = []
            interruptRequested = false
            nextNumber = 0
        }
    }

    /// Moves time on by `ticks` ticks of execution, as if time passed on the GPU.
    public func step(_ ticks: Int = 1) {
        lock.withLock {
            catchUp()
            clock.advance(ms: Int64(ticks) * max(1, faults.msPerTick))
            catchUp()
        }
    }

    /// Runs the ticks the clock says have passed since the last look (under the lock).
    func catchUp() {
        let now = clock.nowUnixMs(), tickMs = max(1, faults.msPerTick)
        guard let from = simulatedMs else { simulatedMs = now; return }
        var at = from
        while at + tickMs <= now {
            at += tickMs
            // Nothing to run, or nothing may run: time passes without work.
            if faults.paused || (running == nil && pending.isEmpty) { at = now; break }
            tick(at: at)
        }
        simulatedMs = max(from, at)
    }

    public var pendingIDs: [String] { lock.withLock { catchUp(); return pending.map(\.id) } }
    public var runningID: String? { lock.withLock { catchUp(); return running?.prompt.id } }
    public func historyEntry(_ id: String) -> [String: Any]? { lock.withLock { catchUp(); return history[id] } }
    public func file(_ name: String, type: String = "output", subfolder: String = "") -> Data? {
        lock.withLock { files[Self.fileKey(type, subfolder, name)] }
    }
    public var inputFileNames: [String] { lock.withLock { names(of: "input") } }
    /// "METHOD /path" of every request, in order.
    public var requestLog: [String] { lock.withLock { log } }
    public var interruptCount: Int { lock.withLock { interrupts } }
    /// How many `/prompt` requests the server accepted for `id`.
    public func submissions(of id: String) -> Int { lock.withLock { accepted.filter { $0 == id }.count } }
    /// Prompt ids `/prompt` accepted, in order (a repeat shows up twice).
    public var acceptedPrompts: [String] { lock.withLock { accepted } }

    // MARK: routing

    override func handle(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        lock.lock()
        defer { lock.unlock() }
        log.append("\(request.method) \(request.path)")
        catchUp()
        if faults.dropConnectionNext > 0 {
            faults.dropConnectionNext -= 1
            return .init(status: 200, headers: ["content-type": "application/json"], droppedAfter: Data(#"{"prompt_id": "#.utf8))
        }
        if faults.serverErrorNext > 0 {
            faults.serverErrorNext -= 1
            return .init(status: 500, headers: ["content-type": "text/plain; charset=utf-8"],
                         body: Data("500 Internal Server Error\n\nServer got itself in trouble".utf8))
        }
        var path = request.path
        if path == "/api" || path.hasPrefix("/api/") { path = String(path.dropFirst(4)) }
        let parts = path.split(separator: "/").map(String.init)
        var answer: ScriptedHTTPServer.Response
        switch (request.method, parts.first ?? "") {
        case ("POST", "prompt") where faults.promptServerErrorNext > 0:
            faults.promptServerErrorNext -= 1
            return .init(status: 500, headers: ["content-type": "text/plain; charset=utf-8"], body: Data("500 Internal Server Error\n\nServer got itself in trouble".utf8))
        case ("POST", "prompt"): answer = prompt(request)
        case ("GET", "prompt"): answer = .json(["exec_info": ["queue_remaining": pending.count + (running == nil ? 0 : 1)]])
        case ("GET", "queue"): answer = .json(["queue_running": running.map { [item($0.prompt)] } ?? [], "queue_pending": pending.map(item)])
        case ("POST", "queue"): answer = editQueue(request)
        case ("POST", "interrupt"): answer = interrupt(request)
        case ("GET", "history") where parts.count == 2: answer = .json(history[parts[1]].map { [parts[1]: $0] } ?? [:])
        case ("GET", "history"): answer = .json(Dictionary(uniqueKeysWithValues: historyOrder.suffix(maxItems(request) ?? historyOrder.count).compactMap { id in history[id].map { (id, $0) } }))
        case ("POST", "history"): answer = editHistory(request)
        case ("GET", "view"): return view(request)
        case ("POST", "upload") where parts.count == 2 && parts[1] == "image": answer = upload(request)
        case ("GET", "object_info") where parts.count == 2: answer = .json(objectInfo().filter { $0.key == parts[1] })
        case ("GET", "object_info"): answer = .json(objectInfo())
        case ("GET", "system_stats"): answer = .json(systemStats())
        case ("GET", "embeddings"): answer = .json([String]())
        case ("GET", "models") where parts.count == 1: answer = .json(["checkpoints", "loras", "upscale_models", "vae", "embeddings"])
        case ("GET", "models") where parts.count == 2:
            answer = ["checkpoints", "loras", "upscale_models", "vae", "embeddings"].contains(parts[1])
                ? .json(installed[parts[1]] ?? []) : .init(status: 404, headers: ["content-type": "text/plain; charset=utf-8"], body: Data("404: Not Found".utf8))
        default: answer = .init(status: 404, headers: ["content-type": "text/plain; charset=utf-8"], body: Data("404: Not Found".utf8))
        }
        if answer.headers["content-type"] == "application/json" {
            // aiohttp's json_response, as the recorded server sent it.
            answer.headers["content-type"] = "application/json; charset=utf-8"
            if faults.malformedNext > 0, case .bytes(let body) = answer.body {
                faults.malformedNext -= 1
                answer.body = .bytes(body.prefix(max(1, body.count / 2)))
            }
        }
        return answer
    }

    static func fileKey(_ type: String, _ subfolder: String, _ name: String) -> String { "\(type)/\(subfolder)/\(name)" }

    func names(of type: String) -> [String] {
        files.keys.filter { $0.hasPrefix(type + "/") }.map { key in
            let rest = key.dropFirst(type.count + 1)
            let slash = rest.lastIndex(of: "/") ?? rest.startIndex
            let subfolder = String(rest[rest.startIndex..<slash]), name = String(rest[rest.index(after: slash)...])
            return subfolder.isEmpty ? name : "\(subfolder)/\(name)"
        }.sorted()
    }

    func item(_ queued: Queued) -> [Any] { [queued.number, queued.id, queued.graph, queued.extra, queued.outputs] }

    func body(_ request: ScriptedHTTPServer.Request) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: request.body)) as? [String: Any]
    }

    func maxItems(_ request: ScriptedHTTPServer.Request) -> Int? {
        URLComponents(string: "?" + request.query)?.queryItems?.first { $0.name == "max_items" }?.value.flatMap(Int.init)
    }

    /// The catalogue as this server has it: missing classes removed, model and
    /// input-file choice lists filled from what is installed.
    func objectInfo() -> [String: Any] {
        var info = catalogue
        for name in faults.missingNodeClasses { info.removeValue(forKey: name) }
        func setChoices(_ node: String, _ input: String, _ choices: [String]) {
            guard var spec = info[node] as? [String: Any], var inputs = spec["input"] as? [String: Any],
                  var required = inputs["required"] as? [String: Any], var entry = required[input] as? [Any], !entry.isEmpty else { return }
            if entry[0] is [Any] {
                entry[0] = choices
            } else if entry.count > 1, var options = entry[1] as? [String: Any] {
                options["options"] = choices
                entry[1] = options
            }
            required[input] = entry
            inputs["required"] = required
            spec["input"] = inputs
            info[node] = spec
        }
        for (node, target) in Self.modelInputs { setChoices(node, target.input, installed[target.folder] ?? []) }
        setChoices("LoadImage", "image", names(of: "input"))
        return info
    }

    func systemStats() -> [String: Any] {
        ["system": ["os": "posix", "ram_total": 16_624_349_184, "ram_free": 12_031_205_376, "comfyui_version": "0.3.64",
                    "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95", "required_templates_version": "0.1.95",
                    "python_version": "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]", "pytorch_version": "2.15.0+cpu",
                    "embedded_python": false, "argv": ["main.py", "--cpu", "--listen", "127.0.0.1"]],
         "devices": [["name": "cpu", "type": "cpu", "index": NSNull(), "vram_total": 16_624_349_184, "vram_free": 12_031_205_376,
                      "torch_vram_total": 16_624_349_184, "torch_vram_free": 12_031_205_376]]]
    }

    // MARK: /prompt

    static func failure(_ type: String, _ message: String, details: String = "", nodeErrors: [String: Any] = [:]) -> ScriptedHTTPServer.Response {
        .json(["error": ["type": type, "message": message, "details": details, "extra_info": [String: Any]()], "node_errors": nodeErrors], status: 400)
    }

    func prompt(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        guard let body = body(request) else {
            // aiohttp's handler raised on the JSON: the recorded server answered 500 text/plain.
            return .init(status: 500, headers: ["content-type": "text/plain; charset=utf-8"], body: Data("500 Internal Server Error\n\nServer got itself in trouble".utf8))
        }
        guard let graph = body["prompt"] as? [String: Any] else {
            return Self.failure("no_prompt", "No prompt provided", details: "No prompt provided")
        }
        let info = objectInfo()
        var outputs: [String] = []
        for (id, value) in graph.sorted(by: { $0.key < $1.key }) {
            guard let node = value as? [String: Any], let type = node["class_type"] as? String else {
                return Self.failure("invalid_prompt", "Cannot execute because a node is missing the class_type property.", details: "Node ID '#\(id)'")
            }
            guard let spec = info[type] as? [String: Any] else {
                return Self.failure("invalid_prompt", "Cannot execute because node \(type) does not exist.", details: "Node ID '#\(id)'")
            }
            if spec["output_node"] as? Bool == true { outputs.append(id) }
        }
        if outputs.isEmpty { return Self.failure("prompt_no_outputs", "Prompt has no outputs") }
        var nodeErrors: [String: [String: Any]] = [:]
        var good: [String] = []
        for output in outputs {
            var failed: [String: [[String: Any]]] = [:]
            var visited: Set<String> = []
            validate(output, graph: graph, info: info, errors: &failed, visited: &visited)
            if failed.isEmpty { good.append(output); continue }
            for (node, errors) in failed {
                var entry = nodeErrors[node] ?? ["errors": errors, "dependent_outputs": [String](),
                                                 "class_type": (graph[node] as? [String: Any])?["class_type"] ?? ""]
                entry["dependent_outputs"] = ((entry["dependent_outputs"] as? [String]) ?? []) + [output]
                nodeErrors[node] = entry
            }
        }
        if good.isEmpty {
            // Only the output nodes' own reasons make the top-level details (ComfyUI's validate_prompt).
            let reasons = outputs.flatMap { output in ((nodeErrors[output]?["errors"] as? [[String: Any]]) ?? []).map { "\($0["message"] ?? ""): \($0["details"] ?? "")" } }
            return Self.failure("prompt_outputs_failed_validation", "Prompt outputs failed validation", details: reasons.joined(separator: "\n"), nodeErrors: nodeErrors)
        }
        let id = (body["prompt_id"] as? String) ?? UUID().uuidString.lowercased()
        let number = (body["front"] as? Bool == true) ? -nextNumber : nextNumber
        nextNumber += 1
        var extra = (body["extra_data"] as? [String: Any]) ?? [:]
        if let client = body["client_id"] as? String { extra["client_id"] = client }
        pending.append(Queued(number: number, id: id, graph: graph, extra: extra, outputs: good))
        pending.sort { $0.number < $1.number }
        accepted.append(id)
        if faults.dropAfterAcceptingNext > 0 {
            faults.dropAfterAcceptingNext -= 1
            return .init(status: 200, headers: ["content-type": "application/json"], droppedAfter: Data(#"{"prompt_id": ""#.utf8))
        }
        return .json(["prompt_id": id, "number": number, "node_errors": nodeErrors])
    }

    /// ComfyUI's validate_inputs for one node and, through its links, the nodes it depends on.
    func validate(_ id: String, graph: [String: Any], info: [String: Any], errors: inout [String: [[String: Any]]], visited: inout Set<String>) {
        guard visited.insert(id).inserted, let node = graph[id] as? [String: Any], let type = node["class_type"] as? String,
              let spec = info[type] as? [String: Any] else { return }
        let inputs = (node["inputs"] as? [String: Any]) ?? [:]
        let required = ((spec["input"] as? [String: Any])?["required"] as? [String: Any]) ?? [:]
        let order = (((spec["input_order"] as? [String: Any])?["required"] as? [String]) ?? required.keys.sorted())
        var found: [[String: Any]] = []
        func error(_ kind: String, _ message: String, _ details: String, _ extra: [String: Any]) {
            found.append(["type": kind, "message": message, "details": details, "extra_info": extra])
        }
        for name in order {
            guard let config = required[name] as? [Any], let kind = config.first else { continue }
            let options = config.count > 1 ? (config[1] as? [String: Any]) ?? [:] : [:]
            guard let value = inputs[name] else {
                error("required_input_missing", "Required input is missing", name, ["input_name": name])
                continue
            }
            if let link = value as? [Any] {
                guard link.count == 2, let source = link[0] as? String, let slot = link[1] as? Int else {
                    error("bad_linked_input", "Bad linked input, must be a length-2 list of [string, int]", name, ["input_name": name, "input_config": config, "received_value": value])
                    continue
                }
                guard let sourceNode = graph[source] as? [String: Any], let sourceType = sourceNode["class_type"] as? String,
                      let sourceSpec = info[sourceType] as? [String: Any] else {
                    // The real server looks the node up with prompt[id] and raises KeyError, caught as an exception.
                    error("exception_during_validation", "Exception when validating node", "'\(source)'",
                          ["exception_type": "KeyError", "traceback": [
                              "  File \"COMFYUI/execution.py\", line 1010, in validate_prompt\n    m = await validate_inputs(prompt_id, prompt, o, validated)\n        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n",
                              "  File \"COMFYUI/execution.py\", line 788, in validate_inputs\n    o_class_type = prompt[o_id]['class_type']\n                   ~~~~~~^^^^^^\n",
                          ]])
                    continue
                }
                let produced = (sourceSpec["output"] as? [String]) ?? []
                if let expected = kind as? String, slot < produced.count, produced[slot] != expected, expected != "*" {
                    error("return_type_mismatch", "Return type mismatch between linked nodes", "\(name), received_type(\(produced[slot])) mismatch input_type(\(expected))",
                          ["input_name": name, "input_config": config, "received_type": produced[slot], "linked_node": link])
                }
                validate(source, graph: graph, info: info, errors: &errors, visited: &visited)
                continue
            }
            let extra: [String: Any] = ["input_name": name, "input_config": config, "received_value": value]
            switch kind {
            case let kind as String where kind == "INT" || kind == "FLOAT":
                guard let number = (value as? NSNumber)?.doubleValue ?? (value as? String).flatMap(kind == "INT" ? { Int($0).map(Double.init) } : Double.init) else {
                    // Python's own conversion error, as the real server quotes it.
                    let reason = kind == "INT" ? "invalid literal for int() with base 10: '\(value)'" : "could not convert string to float: '\(value)'"
                    var withReason = extra
                    withReason["exception_message"] = reason
                    error("invalid_input_type", "Failed to convert an input value to a \(kind) value", "\(name), \(value), \(reason)", withReason)
                    continue
                }
                let shown = kind == "INT" ? String(Int(number)) : String(number)
                if let min = (options["min"] as? NSNumber)?.doubleValue, number < min {
                    error("value_smaller_than_min", "Value \(shown) smaller than min of \(options["min"] ?? min)", name, extra)
                }
                if let max = (options["max"] as? NSNumber)?.doubleValue, number > max {
                    error("value_bigger_than_max", "Value \(shown) bigger than max of \(options["max"] ?? max)", name, extra)
                }
            case let choices as [Any] where type == "LoadImage" && name == "image":
                // LoadImage checks the file itself (VALIDATE_INPUTS), not its choice list.
                let names = choices.compactMap { $0 as? String }
                if !names.contains("\(value)") {
                    error("custom_validation_failed", "Custom validation failed for node", "\(name) - Invalid image file: \(value)", extra)
                }
            case let choices as [Any]:
                checkChoice(choices, value, name, extra, error)
            case let kind as String where kind == "COMBO":
                checkChoice((options["options"] as? [Any]) ?? [], value, name, extra, error)
            default:
                break
            }
        }
        if !found.isEmpty { errors[id] = found }
    }

    func checkChoice(_ choices: [Any], _ value: Any, _ name: String, _ extra: [String: Any], _ error: (String, String, String, [String: Any]) -> Void) {
        let names = choices.map { "\($0)" }
        if !names.contains("\(value)") {
            error("value_not_in_list", "Value not in list", "\(name): '\(value)' not in [\(names.map { "'\($0)'" }.joined(separator: ", "))]", extra)
        }
    }

    // MARK: queue, interrupt, history

    func editQueue(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        let body = body(request) ?? [:]
        if body["clear"] as? Bool == true { pending = [] }
        if let ids = body["delete"] as? [String] { pending.removeAll { ids.contains($0.id) } }
        return .init(status: 200)
    }

    /// Since ComfyUI 0.3.4x a body may name the prompt to interrupt; another
    /// prompt running is left alone.
    func interrupt(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        interrupts += 1
        if let target = body(request)?["prompt_id"] as? String, running?.prompt.id != target { return .init(status: 200) }
        if running != nil { interruptRequested = true }
        return .init(status: 200)
    }

    func editHistory(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        let body = body(request) ?? [:]
        if body["clear"] as? Bool == true { history = [:]; historyOrder = [] }
        for id in (body["delete"] as? [String]) ?? [] { history.removeValue(forKey: id); historyOrder.removeAll { $0 == id } }
        return .init(status: 200)
    }

    // MARK: files

    func view(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        let items = URLComponents(string: "?" + request.query)?.queryItems ?? []
        func param(_ name: String) -> String? { items.first { $0.name == name }?.value }
        guard let name = param("filename"), !name.isEmpty else { return .init(status: 404) }
        if name.hasPrefix("/") || name.contains("..") { return .init(status: 400) }
        if let type = param("type"), !["output", "input", "temp"].contains(type) { return .init(status: 400) }
        guard let data = files[Self.fileKey(param("type") ?? "output", param("subfolder") ?? "", name)] else { return .init(status: 404) }
        return .init(status: 200, headers: ["content-type": Self.mediaType(name), "content-disposition": "filename=\"\(name)\""], body: data)
    }

    static func mediaType(_ name: String) -> String {
        switch (name as NSString).pathExtension.lowercased() {
        case "png": return "image/png"
        case "jpg", "jpeg": return "image/jpeg"
        case "webp": return "image/webp"
        case "mp4": return "video/mp4"
        default: return "application/octet-stream"
        }
    }

    /// ComfyUI's image_upload: an existing name gets " (1)" unless overwrite is
    /// set or the bytes are identical.
    func upload(_ request: ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Response {
        let parts = Multipart.parse(request.body, contentType: request.headers["content-type"] ?? "")
        guard let image = parts.first(where: { $0.name == "image" }), let original = image.filename, !original.isEmpty else {
            return .init(status: 400)
        }
        func field(_ name: String) -> String? { parts.first { $0.name == name }.map { String(decoding: $0.data, as: UTF8.self) } }
        let type = field("type").flatMap { ["input", "temp", "output"].contains($0) ? $0 : nil } ?? "input"
        let subfolder = field("subfolder") ?? ""
        var name = original
        if !["true", "1"].contains(field("overwrite") ?? "") {
            let stem = (original as NSString).deletingPathExtension, ext = (original as NSString).pathExtension
            var i = 1
            while let existing = files[Self.fileKey(type, subfolder, name)], existing != image.data {
                name = "\(stem) (\(i))" + (ext.isEmpty ? "" : ".\(ext)")
                i += 1
            }
        }
        files[Self.fileKey(type, subfolder, name)] = image.data
        return .json(["name": name, "subfolder": subfolder, "type": type])
    }

    // MARK: execution

    /// Nodes the outputs need, dependencies first (ComfyUI runs nothing else).
    func executionOrder(_ prompt: Queued) -> [String] {
        var order: [String] = []
        var seen: Set<String> = []
        func visit(_ id: String) {
            guard seen.insert(id).inserted, let node = prompt.graph[id] as? [String: Any] else { return }
            for value in ((node["inputs"] as? [String: Any]) ?? [:]).sorted(by: { $0.key < $1.key }).map(\.value) {
                if let link = value as? [Any], link.count == 2, let source = link[0] as? String { visit(source) }
            }
            order.append(id)
        }
        for output in prompt.outputs.sorted() { visit(output) }
        return order
    }

    func message(_ kind: String, _ data: [String: Any], _ execution: inout Execution) {
        var data = data
        data["prompt_id"] = execution.prompt.id
        data["timestamp"] = tickTime ?? clock.nowUnixMs()
        execution.messages.append([kind, data])
    }

    /// The clock time of the tick being simulated (message timestamps).
    private var tickTime: Int64?

    func tick(at time: Int64) {
        tickTime = time
        defer { tickTime = nil }
        guard !faults.paused else { return }
        guard var execution = running else {
            guard !pending.isEmpty else { return }
            let next = pending.removeFirst()
            interruptRequested = false
            var started = Execution(prompt: next, order: executionOrder(next))
            message("execution_start", [:], &started)
            message("execution_cached", ["nodes": [String]()], &started)
            running = started
            return
        }
        if execution.ticksLeft == 0 {
            if execution.index == execution.order.count {
                message("execution_success", [:], &execution)
                return finish(execution, status: "success")
            }
            let id = execution.order[execution.index]
            let type = nodeType(id, execution)
            if interruptRequested {
                message("execution_interrupted", ["node_id": id, "node_type": type, "executed": execution.executed], &execution)
                return finish(execution, status: "error")
            }
            let steps = (((execution.prompt.graph[id] as? [String: Any])?["inputs"] as? [String: Any])?["steps"] as? NSNumber)?.intValue ?? 1
            execution.ticksLeft = max(1, faults.ticksPerNode) * (type == "KSampler" ? max(1, (steps + faults.samplerStepsPerTick - 1) / max(1, faults.samplerStepsPerTick)) : 1)
        }
        execution.ticksLeft -= 1
        if execution.ticksLeft == 0 {
            let id = execution.order[execution.index]
            let type = nodeType(id, execution)
            if type == faults.failOnClass {
                message("execution_error", ["node_id": id, "node_type": type, "executed": execution.executed, "exception_message": faults.failureMessage,
                                            "exception_type": "torch.OutOfMemoryError",
                                            "traceback": ["  File \"COMFYUI/execution.py\", line 496, in execute\n    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, hidden_inputs=hidden_inputs)\n",
                                                          "  File \"COMFYUI/execution.py\", line 315, in get_output_data\n    return_values = await _async_map_node_over_list(prompt_id, unique_id, obj, input_data_all, obj.FUNCTION, allow_interrupt=True, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, hidden_inputs=hidden_inputs)\n"],
                                            "current_inputs": [String: Any](), "current_outputs": execution.executed], &execution)
                return finish(execution, status: "error")
            }
            run(id, &execution)
            execution.executed.append(id)
            execution.index += 1
        }
        running = execution
    }

    func nodeType(_ id: String, _ execution: Execution) -> String {
        ((execution.prompt.graph[id] as? [String: Any])?["class_type"] as? String) ?? ""
    }

    func finish(_ execution: Execution, status: String) {
        var meta: [String: Any] = [:]
        for id in execution.outputs.keys { meta[id] = ["node_id": id, "display_node": id, "parent_node": NSNull(), "real_node_id": id] }
        history[execution.prompt.id] = ["prompt": item(execution.prompt), "outputs": execution.outputs,
                                        "status": ["status_str": status, "completed": status == "success", "messages": execution.messages],
                                        "meta": meta]
        historyOrder.removeAll { $0 == execution.prompt.id }
        historyOrder.append(execution.prompt.id)
        running = nil
        interruptRequested = false
    }

    /// One node's effect: the image batch it produces, or the files it saves.
    func run(_ id: String, _ execution: inout Execution) {
        guard let node = execution.prompt.graph[id] as? [String: Any], let type = node["class_type"] as? String else { return }
        let inputs = (node["inputs"] as? [String: Any]) ?? [:]
        func int(_ name: String, _ fallback: Int) -> Int { (inputs[name] as? NSNumber)?.intValue ?? fallback }
        func linked(_ name: String) -> Frame? {
            guard let link = inputs[name] as? [Any], let source = link.first as? String else { return nil }
            return execution.frames[source]
        }
        func text(_ name: String) -> String {
            guard let link = inputs[name] as? [Any], let source = link.first as? String else { return "" }
            return (((execution.prompt.graph[source] as? [String: Any])?["inputs"] as? [String: Any])?["text"] as? String) ?? ""
        }
        let firstLinked = inputs.keys.sorted().compactMap(linked).first
        var frame: Frame?
        switch type {
        case "EmptyImage":
            let color = int("color", 0)
            frame = Frame(width: int("width", 512), height: int("height", 512), count: int("batch_size", 1),
                          rgb: (UInt8((color >> 16) & 255), UInt8((color >> 8) & 255), UInt8(color & 255)))
        case "EmptyLatentImage":
            frame = Frame(width: int("width", 512), height: int("height", 512), count: int("batch_size", 1), rgb: (128, 128, 128))
        case "LoadImage":
            let name = "\(inputs["image"] ?? "")"
            let slash = name.lastIndex(of: "/")
            let data = files[Self.fileKey("input", slash.map { String(name[..<$0]) } ?? "", slash.map { String(name[name.index(after: $0)...]) } ?? name)]
            let size = data.flatMap(TinyPNG.size) ?? (64, 64)
            frame = Frame(width: size.0, height: size.1, count: 1, rgb: TinyPNG.color(of: data ?? Data()))
        case "KSampler":
            var base = linked("latent_image") ?? Frame(width: 512, height: 512, count: 1, rgb: (0, 0, 0))
            base.rgb = TinyPNG.color(of: Data("\(inputs["seed"] ?? 0)|\(text("positive"))|\(text("negative"))".utf8))
            frame = base
        case "ImageInvert":
            frame = firstLinked.map { Frame(width: $0.width, height: $0.height, count: $0.count, rgb: (255 - $0.rgb.0, 255 - $0.rgb.1, 255 - $0.rgb.2)) }
        case "ImageScale":
            if var base = linked("image") {
                let w = int("width", 0), h = int("height", 0)
                (base.width, base.height) = (w == 0 ? base.width * max(h, 1) / max(base.height, 1) : w, h == 0 ? base.height * max(w, 1) / max(base.width, 1) : h)
                frame = base
            }
        case "ImageScaleBy":
            if var base = linked("image") {
                let by = (inputs["scale_by"] as? NSNumber)?.doubleValue ?? 1
                base.width = max(1, Int((Double(base.width) * by).rounded()))
                base.height = max(1, Int((Double(base.height) * by).rounded()))
                frame = base
            }
        case "ImageUpscaleWithModel":
            if var base = linked("image") {
                let model = ((execution.prompt.graph[(inputs["upscale_model"] as? [Any])?.first as? String ?? ""] as? [String: Any])?["inputs"] as? [String: Any])?["model_name"] as? String ?? ""
                let factor = model.lowercased().contains("x2") ? 2 : 4
                base.width *= factor
                base.height *= factor
                frame = base
            }
        case "SaveImage", "PreviewImage":
            guard let images = linked("images") else { break }
            let temp = type == "PreviewImage"
            var prefix = temp ? "ComfyUI_temp_\(id.filter(\.isLetter).isEmpty ? "ytkba" : id)" : "\(inputs["filename_prefix"] ?? "ComfyUI")"
            var subfolder = ""
            if let slash = prefix.lastIndex(of: "/") {
                subfolder = String(prefix[..<slash])
                prefix = String(prefix[prefix.index(after: slash)...])
            }
            let folder = temp ? "temp" : "output"
            let taken = names(of: folder).compactMap { name -> Int? in
                guard name.hasPrefix((subfolder.isEmpty ? "" : subfolder + "/") + prefix + "_") else { return nil }
                return Int(name.dropLast("_.png".count).suffix(5))
            }
            var counter = (taken.max() ?? 0) + 1
            var saved: [[String: Any]] = []
            for _ in 0..<max(1, images.count) {
                let name = "\(prefix)_\(String(format: "%05d", counter))_.png"
                files[Self.fileKey(folder, subfolder, name)] = TinyPNG.encode(width: images.width, height: images.height, rgb: images.rgb)
                saved.append(["filename": name, "subfolder": subfolder, "type": folder])
                counter += 1
            }
            execution.outputs[id] = ["images": saved]
        default:
            frame = firstLinked
        }
        if let frame { execution.frames[id] = frame }
    }
}

/// The parts of a multipart/form-data body.
enum Multipart {
    struct Part {
        var name: String
        var filename: String?
        var data: Data
    }

    static func parse(_ body: Data, contentType: String) -> [Part] {
        guard let range = contentType.range(of: "boundary=") else { return [] }
        let boundary = contentType[range.upperBound...].split(separator: ";").first.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")) } ?? ""
        guard !boundary.isEmpty else { return [] }
        let delimiter = Data("--\(boundary)".utf8)
        var parts: [Part] = []
        var cursor = body.startIndex
        guard let first = body.range(of: delimiter, in: cursor..<body.endIndex) else { return [] }
        cursor = first.upperBound
        while let next = body.range(of: delimiter, in: cursor..<body.endIndex) {
            var chunk = body[cursor..<next.lowerBound]
            if chunk.starts(with: Data("\r\n".utf8)) { chunk = chunk.dropFirst(2) }
            if chunk.suffix(2) == Data("\r\n".utf8) { chunk = chunk.dropLast(2) }
            if let split = chunk.range(of: Data("\r\n\r\n".utf8)) {
                let head = String(decoding: chunk[chunk.startIndex..<split.lowerBound], as: UTF8.self)
                let disposition = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-disposition") }.map(String.init) ?? ""
                func attribute(_ key: String) -> String? {
                    guard let r = disposition.range(of: "\(key)=\"") else { return nil }
                    return String(disposition[r.upperBound...].prefix { $0 != "\"" })
                }
                if let name = attribute("name") {
                    parts.append(Part(name: name, filename: attribute("filename"), data: Data(chunk[split.upperBound...])))
                }
            }
            cursor = next.upperBound
        }
        return parts
    }
}

/// Small real PNGs: one colour, stored (uncompressed) deflate blocks.
public enum TinyPNG {
    public static func encode(width: Int, height: Int, rgb: (UInt8, UInt8, UInt8)) -> Data {
        let key = "\(width)x\(height)/\(rgb.0).\(rgb.1).\(rgb.2)"
        if let cached = cache.lock.withLock({ cache.items[key] }) { return cached }
        // Byte arrays and pointer loops: stand-ins answer megapixel images many times a test.
        var row = [UInt8](repeating: 0, count: width * 3 + 1)
        for x in 0..<width {
            row[1 + x * 3] = rgb.0
            row[2 + x * 3] = rgb.1 &+ UInt8(truncatingIfNeeded: x / 8)
            row[3 + x * 3] = rgb.2
        }
        var raw = [UInt8]()
        raw.reserveCapacity(row.count * height)
        for _ in 0..<height { raw.append(contentsOf: row) }
        var zlib: [UInt8] = [0x78, 0x01]
        zlib.reserveCapacity(raw.count + raw.count / 65_535 * 5 + 16)
        var offset = 0
        repeat {
            let n = min(65_535, raw.count - offset)
            zlib.append(offset + n == raw.count ? 1 : 0)
            zlib.append(contentsOf: [UInt8(n & 255), UInt8(n >> 8), UInt8(~n & 255), UInt8((~n >> 8) & 255)])
            zlib.append(contentsOf: raw[offset..<offset + n])
            offset += n
        } while offset < raw.count
        zlib.append(contentsOf: bigEndian(adler32(raw)))
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ type: String, _ body: [UInt8]) {
            png.append(contentsOf: bigEndian(UInt32(body.count)))
            let typed = Array(type.utf8) + body
            png.append(contentsOf: typed)
            png.append(contentsOf: bigEndian(crc32(typed)))
        }
        chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, 2, 0, 0, 0])
        chunk("IDAT", zlib)
        chunk("IEND", [])
        let data = Data(png)
        cache.lock.withLock {
            if cache.items.count > 64 { cache.items.removeAll() }
            cache.items[key] = data
        }
        return data
    }

    final class Cache: @unchecked Sendable {
        let lock = NSLock()
        var items: [String: Data] = [:]
    }
    static let cache = Cache()

    /// Width and height from a PNG's IHDR.
    public static func size(_ data: Data) -> (Int, Int)? {
        let bytes = [UInt8](data.prefix(24))
        guard bytes.count == 24, bytes[0] == 0x89, bytes[1] == 0x50 else { return nil }
        let be = { (i: Int) in Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3]) }
        return (be(16), be(20))
    }

    static func color(of data: Data) -> (UInt8, UInt8, UInt8) {
        let sum = adler32(data)
        return (UInt8(truncatingIfNeeded: sum), UInt8(truncatingIfNeeded: sum >> 8), UInt8(truncatingIfNeeded: sum >> 16))
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8((value >> 16) & 255), UInt8((value >> 8) & 255), UInt8(value & 255)] }

    static func adler32(_ data: Data) -> UInt32 { adler32([UInt8](data)) }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        bytes.withUnsafeBufferPointer { buffer in
            // 5552 bytes keep the sums below 2^32 between reductions (zlib's NMAX).
            var i = 0
            while i < buffer.count {
                let end = min(i + 5552, buffer.count)
                while i < end {
                    a &+= UInt32(buffer[i])
                    b &+= a
                    i += 1
                }
                a %= 65_521
                b %= 65_521
            }
        }
        return b << 16 | a
    }

    static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        crcTable.withUnsafeBufferPointer { table in
            bytes.withUnsafeBufferPointer { buffer in
                for byte in buffer { c = table[Int((c ^ UInt32(byte)) & 255)] ^ (c >> 8) }
            }
        }
        return c ^ 0xFFFF_FFFF
    }
}
