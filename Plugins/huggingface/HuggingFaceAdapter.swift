import Foundation
import SwitchyardPluginSDK

// Hugging Face: text-to-image through the inference router
// (POST {router}/hf-inference/models/{model}, {"inputs", "parameters"},
// image bytes out), and model.download's resolution through the Hub API
// (whoami, /api/models/{repo}/revision/{rev}, /tree/{commit}). The bytes of
// model files are the host's to move (docs/adr/0007): this plugin returns a
// verified plan (URLs, sizes, digests), it does no I/O of its own.

@_cdecl("sy_plugin_entry_v1") public func syPluginEntry(_ host: UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>? { PluginExport.entry(HuggingFaceAdapter.self, host: host) }

struct HuggingFaceAdapter: EngineAdapter {
    static let defaultImageModel = "black-forest-labs/FLUX.1-schnell"

    init() {}

    var descriptor: PluginDescriptor {
        PluginDescriptor(id: "huggingface", version: "0.1.0", name: "Hugging Face", capabilities: ["image.generate", "model.download"])
    }

    struct Config {
        var hubURL: String
        var routerURL: String
        var imageModel: String

        init(_ config: [String: JSONValue]) {
            func base(_ key: String, _ fallback: String) -> String {
                (config[key]?.stringValue ?? fallback).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            }
            hubURL = base("hub_url", "https://huggingface.co")
            routerURL = base("router_url", "https://router.huggingface.co")
            imageModel = config["models"]?["image.generate"]?.stringValue ?? HuggingFaceAdapter.defaultImageModel
        }
    }

    func token(_ context: HostContext) throws -> String? {
        try context.secret("HF_TOKEN").flatMap { $0.isEmpty ? nil : $0 }
    }

    func headers(_ context: HostContext, required: Bool) throws -> [String: String] {
        var headers = ["accept": "application/json", "user-agent": "switchyard-huggingface/0.1.0"]
        if let token = try token(context) {
            headers["authorization"] = "Bearer \(token)"
        } else if required {
            throw PluginError(code: "AUTH_MISSING", message: "HF_TOKEN is not set; the inference router needs a token.",
                              remediation: "Create a token with \"Make calls to Inference Providers\" at huggingface.co/settings/tokens, then `yard secrets set HF_TOKEN`.",
                              field: "HF_TOKEN")
        }
        return headers
    }

    func validate(_ request: JobRequest, context: HostContext) -> [Diagnostic] {
        switch request.capability {
        case "image.generate":
            if let model = request.inputs["model"]?.stringValue, model.split(separator: "/").count != 2 {
                return [Diagnostic(code: "CONTRACT_MISMATCH", message: "model must be a Hub repo id (owner/name), not \(model).",
                                   remediation: "Use e.g. \(Self.defaultImageModel).", field: "$.inputs.model")]
            }
        case "model.download":
            if request.inputs["vendor"]?.stringValue.map({ $0 != "huggingface" }) == true {
                return [Diagnostic(code: "CONTRACT_MISMATCH", message: "The huggingface engine downloads from the Hugging Face Hub only.",
                                   remediation: "Use `yard models pull civitai:VERSION_ID` for Civitai.", field: "$.inputs.vendor")]
            }
        default: break
        }
        return []
    }

    // MARK: errors

    /// The Hub's and the router's refusals, told apart: not logged in (401),
    /// access not granted (403, gated), missing (404), credits (402), rate limit (429).
    func failure(_ response: HTTPResponse, repo: String, field: String) -> PluginError {
        let body = (try? response.decodeJSON([String: JSONValue].self)) ?? [:]
        let text = response.headers["x-error-message"] ?? body["error"]?.stringValue ?? String(decoding: response.body.prefix(300), as: UTF8.self)
        let code = response.headers["x-error-code"]
        switch response.status {
        case 400, 422:
            return PluginError(code: "CONTRACT_MISMATCH", message: "Hugging Face rejected the input: \(text)", remediation: "Fix the input and run again.", field: "$.inputs")
        case 401 where text.contains("Invalid credentials") || text.contains("valid Hugging Face token"):
            return PluginError(code: "AUTH_FAILED", message: "Hugging Face refused HF_TOKEN: \(text)",
                               remediation: "Create a new token at huggingface.co/settings/tokens and `yard secrets set HF_TOKEN`.", field: "HF_TOKEN")
        case 401:
            let why = code == "GatedRepo" ? "is gated and needs a logged-in user" : "is private or does not exist"
            return PluginError(code: "AUTH_MISSING", message: "\(repo) \(why): \(text)",
                               remediation: "Accept the licence on https://huggingface.co/\(repo) if it is gated, then `yard secrets set HF_TOKEN`; otherwise check the repo id.", field: "HF_TOKEN")
        case 402:
            return PluginError(code: "INSUFFICIENT_FUNDS", message: "Hugging Face: \(text)", remediation: "Add credits or a PRO plan at huggingface.co/settings/billing.")
        case 403:
            return PluginError(code: "ACCESS_NOT_GRANTED", message: "Your account has not been granted access to \(repo): \(text)",
                               remediation: "Open https://huggingface.co/\(repo), accept the licence or request access, then run again.", field: field)
        case 404 where code == "RevisionNotFound":
            return PluginError(code: "REVISION_NOT_FOUND", message: "\(repo) has no such revision: \(text)", remediation: "Use a branch, tag or commit of the repo.", field: "$.inputs.revision")
        case 404:
            return PluginError(code: "MODEL_NOT_FOUND", message: "Hugging Face has no \(repo) visible to this account: \(text)",
                               remediation: "Check the repo id (owner/name as in the model page's URL).", field: field)
        case 429:
            return PluginError(code: "RATE_LIMITED", message: "Hugging Face rate-limited the request.", remediation: "The host retries after Retry-After.",
                               retryable: true, charged: .no, retryAfterMs: response.retryAfterMs() ?? 1000)
        default:
            return PluginError(code: "ENGINE_UNAVAILABLE", message: "Hugging Face answered HTTP \(response.status): \(text)",
                               remediation: "Retried automatically; check status.huggingface.co.", retryable: response.status >= 500, charged: .no)
        }
    }

    // MARK: jobs

    func submit(_ request: JobRequest, context: HostContext) throws -> SubmitResult {
        switch request.capability {
        case "image.generate":
            let result = try generate(request.inputs, config: Config(request.config), context: context)
            if result.state.isTerminal { return .finished(result) }
            return .ref(["capability": "image.generate", "inputs": .object(request.inputs)], nextPollAfterMs: result.nextPollAfterMs)
        case "model.download":
            // A ref, not a finished result: if the host's transfer fails it polls
            // again, gets the same plan back, and resumes the .part files.
            let plan = try resolve(request.inputs, config: Config(request.config), context: context)
            return .ref(["capability": "model.download", "plan": .object(plan.outputs ?? [:])], nextPollAfterMs: 10)
        default:
            throw PluginError.unsupported(request.capability)
        }
    }

    /// A generate ref waits for a loading model: each poll asks again. A
    /// download ref hands the resolved plan to the host, as often as it asks.
    func poll(_ request: RefRequest, context: HostContext) throws -> PollResult {
        if request.ref["capability"]?.stringValue == "model.download", let plan = request.ref["plan"]?.objectValue {
            return PollResult(state: .succeeded, progress: 1, outputs: plan)
        }
        guard request.ref["capability"]?.stringValue == "image.generate", let inputs = request.ref["inputs"]?.objectValue else {
            if let result = request.ref["result"], result != .null { return PollResult(state: .succeeded, progress: 1) }
            throw PluginError(code: "INVALID_REF", message: "This ref was not made by the huggingface adapter.", remediation: "Poll refs this adapter returned.", field: "$.ref")
        }
        return try generate(inputs, config: Config(request.config), context: context)
    }

    func cancel(_ request: RefRequest, context: HostContext) throws -> CancelResult {
        // Nothing runs at Hugging Face between polls: a waiting job just stops asking.
        if ["image.generate", "model.download"].contains(request.ref["capability"]?.stringValue ?? "") {
            return CancelResult(outcome: .cancelledInQueue, charged: .no)
        }
        return CancelResult(outcome: .alreadyFinished, charged: .yes, message: "the request had already finished (and was billed) at Hugging Face")
    }

    func generate(_ inputs: [String: JSONValue], config: Config, context: HostContext) throws -> PollResult {
        let model = inputs["model"]?.stringValue ?? config.imageModel
        var parameters: [String: JSONValue] = [:]
        for (from, to) in [("negative_prompt", "negative_prompt"), ("width", "width"), ("height", "height"), ("steps", "num_inference_steps"),
                           ("guidance_scale", "guidance_scale"), ("seed", "seed")] {
            if let value = inputs[from] { parameters[to] = value }
        }
        // The inference API takes pixels: a catalog aspect ratio is sent as about a megapixel of it.
        if let ratio = inputs["aspect_ratio"]?.stringValue, let (w, h) = Self.aspectSizes[ratio] {
            parameters["width"] = .number(Double(w))
            parameters["height"] = .number(Double(h))
        }
        let body: [String: JSONValue] = ["inputs": inputs["prompt"] ?? "", "parameters": .object(parameters)]
        var headers = try self.headers(context, required: true)
        headers["content-type"] = "application/json"
        headers["accept"] = "image/png"
        let response = try context.http(HTTPRequest(method: "POST", url: "\(config.routerURL)/hf-inference/models/\(model)", headers: headers,
                                                    bodyData: try JSONEncoder().encode(body), timeoutMs: 120_000))
        if response.status == 503, let doc = try? response.decodeJSON([String: JSONValue].self), let estimate = doc["estimated_time"]?.doubleValue {
            context.log(.info, "\(model) is loading at Hugging Face (about \(Int(estimate.rounded(.up))) s)")
            return PollResult(state: .queued, progress: 0, message: "model loading, about \(Int(estimate.rounded(.up))) s",
                              nextPollAfterMs: max(100, min(Int(estimate * 1000), 30_000)))
        }
        guard response.isSuccess else { throw failure(response, repo: model, field: "$.inputs.model") }
        let type = response.headers["content-type"]?.split(separator: ";").first.map(String.init) ?? "image/png"
        guard type.hasPrefix("image/"), !response.body.isEmpty else {
            throw PluginError(code: "ENGINE_ERROR", message: "\(model) answered \(type), not an image.",
                              remediation: "Pick a text-to-image model (pipeline tag text-to-image).", field: "$.inputs.model")
        }
        let handle = try context.putArtifact(response.body, mediaType: type)
        let size = Self.pngSize(response.body) ?? { let f = MediaProbe.facts(response.body); return f.width.flatMap { w in f.height.map { (w, $0) } } }()
        let file: [String: JSONValue] = ["artifact": .string(handle.artifact), "media_type": .string(type), "size": .number(Double(handle.size))]
        var image: [String: JSONValue] = ["file": .object(file),
                                          "width": .number(Double(size?.0 ?? inputs["width"]?.intValue ?? 1024)),
                                          "height": .number(Double(size?.1 ?? inputs["height"]?.intValue ?? 1024))]
        if let seed = inputs["seed"] { image["seed"] = seed }
        var outputs: [String: JSONValue] = ["images": [.object(image)], "model": .string(model)]
        if let seed = inputs["seed"] { outputs["seed"] = seed }
        return PollResult(state: .succeeded, progress: 1, outputs: outputs)
    }

    /// The catalog's aspect ratios at about a megapixel, sides multiples of 64.
    static let aspectSizes: [String: (Int, Int)] = ["1:1": (1024, 1024), "16:9": (1344, 768), "9:16": (768, 1344), "4:3": (1152, 896),
                                                    "3:4": (896, 1152), "21:9": (1536, 640)]

    /// Width and height from a PNG's IHDR chunk.
    static func pngSize(_ data: Data) -> (Int, Int)? {
        let bytes = [UInt8](data.prefix(24))
        guard bytes.count == 24, bytes[0] == 0x89, bytes[1] == 0x50, bytes[12...15].elementsEqual("IHDR".utf8) else { return nil }
        func be32(_ i: Int) -> Int { bytes[i..<(i + 4)].reduce(0) { $0 << 8 | Int($1) } }
        return (be32(16), be32(20))
    }

    // MARK: model.download

    /// Resolves a repo revision to its commit and the files to fetch, with
    /// their sizes and LFS sha256, checking the token and access on the way.
    func resolve(_ inputs: [String: JSONValue], config: Config, context: HostContext) throws -> PollResult {
        guard let repo = inputs["repo"]?.stringValue else {
            throw PluginError(code: "CONTRACT_MISMATCH", message: "repo is required.", remediation: "Pass --input repo=owner/name.", field: "$.inputs.repo")
        }
        let headers = try self.headers(context, required: false)
        if headers["authorization"] != nil {
            let who = try context.http(HTTPRequest(method: "GET", url: "\(config.hubURL)/api/whoami-v2", headers: headers))
            guard who.status == 200 else { throw failure(who, repo: repo, field: "HF_TOKEN") }
        }
        let revision = inputs["revision"]?.stringValue ?? "main"
        let encoded = revision.addingPercentEncoding(withAllowedCharacters: CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))) ?? revision
        let info = try context.http(HTTPRequest(method: "GET", url: "\(config.hubURL)/api/models/\(repo)/revision/\(encoded)", headers: headers))
        let model = (try? info.decodeJSON([String: JSONValue].self)) ?? [:]
        guard info.status == 200, let sha = model["sha"]?.stringValue else {
            throw failure(info, repo: repo, field: "$.inputs.repo")
        }
        // Listings come in pages of 1000 entries; a Link header names the next one.
        var entries: [JSONValue] = []
        var next: String? = "\(config.hubURL)/api/models/\(repo)/tree/\(sha)?recursive=true"
        while let url = next {
            let tree = try context.http(HTTPRequest(method: "GET", url: url, headers: headers))
            guard tree.status == 200, let page = try? tree.decodeJSON([JSONValue].self) else { throw failure(tree, repo: repo, field: "$.inputs.repo") }
            entries += page
            next = tree.headers["link"].flatMap { link in
                link.split(separator: ",").first { $0.contains("rel=\"next\"") }.flatMap { part -> String? in
                    guard let open = part.firstIndex(of: "<"), let close = part.firstIndex(of: ">"), open < close else { return nil }
                    return String(part[part.index(after: open)..<close])
                }
            }
        }
        let patterns = inputs["files"]?.arrayValue?.compactMap(\.stringValue) ?? []
        var files: [JSONValue] = []
        var total = 0
        for entry in entries where entry["type"]?.stringValue == "file" {
            guard let path = entry["path"]?.stringValue, patterns.isEmpty || patterns.contains(where: { fnmatch($0, path, 0) == 0 }) else { continue }
            let size = entry["lfs"]?["size"]?.intValue ?? entry["size"]?.intValue ?? 0
            let encoded = path.split(separator: "/").map { String($0).addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? String($0) }.joined(separator: "/")
            var file: [String: JSONValue] = ["path": .string(path), "size": .number(Double(size)), "url": .string("\(config.hubURL)/\(repo)/resolve/\(sha)/\(encoded)")]
            if let sha256 = entry["lfs"]?["oid"]?.stringValue { file["sha256"] = .string(sha256.lowercased()) }
            else if let oid = entry["oid"]?.stringValue { file["git_oid"] = .string(oid) }
            files.append(.object(file))
            total += size
        }
        // The listing of a gated repo is public; its files are not. One HEAD on
        // /resolve/ (a 302 to the CDN is fine: redirects are not followed) tells.
        if let first = files.first?["path"]?.stringValue {
            let head = try context.http(HTTPRequest(method: "HEAD", url: "\(config.hubURL)/\(repo)/resolve/\(sha)/\(first)", headers: headers))
            guard (200..<400).contains(head.status) else { throw failure(head, repo: repo, field: "$.inputs.repo") }
        }
        guard !files.isEmpty else {
            throw PluginError(code: "FILE_NOT_FOUND", message: "\(repo)@\(revision) has no file matching \(patterns.joined(separator: ", ")).",
                              remediation: "Check the patterns against the repo's Files tab.", field: "$.inputs.files")
        }
        // A plan for the host, which moves the bytes and answers with the absolute directory
        // (docs/adr/0007); `path` is relative to the host's model root until then.
        var outputs: [String: JSONValue] = ["path": .string("huggingface/\(repo)/\(sha)"), "revision": .string(sha), "files": .array(files),
                                            "total_bytes": .number(Double(total)), "vendor": "huggingface", "repo": .string(repo),
                                            "tags": model["tags"] ?? .array([])]
        if headers["authorization"] != nil { outputs["auth_secret"] = "HF_TOKEN" }
        if let tag = model["pipeline_tag"] { outputs["pipeline_tag"] = tag }
        if let license = model["cardData"]?["license"] { outputs["license"] = license }
        return PollResult(state: .succeeded, progress: 1, message: "resolved \(files.count) files at \(sha.prefix(12))", outputs: outputs)
    }

    func health(_ request: ConfigRequest, context: HostContext) -> HealthReport {
        let config = Config(request.config)
        do {
            // Public repos need no token; only image.generate does (checked at submit).
            guard try token(context) != nil else {
                return HealthReport(status: .degraded, message: "HF_TOKEN is not set: public repos only, no inference", details: ["code": "AUTH_MISSING"])
            }
            let headers = try self.headers(context, required: true)
            let who = try context.http(HTTPRequest(method: "GET", url: "\(config.hubURL)/api/whoami-v2", headers: headers, timeoutMs: 10_000))
            if who.status == 429 || who.status >= 500 {
                return HealthReport(status: .degraded, message: "the Hub answered HTTP \(who.status) to whoami", details: ["code": who.status == 429 ? "RATE_LIMITED" : "ENGINE_UNAVAILABLE"])
            }
            guard who.status == 200 else {
                let error = failure(who, repo: "", field: "HF_TOKEN")
                return HealthReport(status: .offline, message: error.message, details: ["code": .string(error.code)])
            }
            let name = (try? who.decodeJSON([String: JSONValue].self))?["name"]?.stringValue ?? "?"
            return HealthReport(status: .ok, message: "token of \(name)")
        } catch let error as PluginError {
            return HealthReport(status: .offline, message: error.message, details: ["code": .string(error.code)])
        } catch {
            return HealthReport(status: .offline, message: "\(error)")
        }
    }
}
