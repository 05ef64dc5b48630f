import Foundation
import SwitchyardPluginSDK

// fal's queue API: submit to queue.fal.run/{owner}/{app}[/{subpath}], then
// follow the status/response/cancel URLs the submit returned (the subpath is
// on submit only). Auth `Authorization: Key <FAL_KEY>`. Local file inputs
// (artifacts) are uploaded through the storage token flow first.

@_cdecl("sy_plugin_entry_v1") public func syPluginEntry(_ host: UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>? { PluginExport.entry(FalAdapter.self, host: host) }

struct FalAdapter: EngineAdapter {
    /// Which fal app serves each catalog capability when the host names none.
    /// The host picks from the manifest's model table (with its limits and
    /// prices) and passes the choice as config.models[capability].
    static let models: [String: String] = [
        "image.generate": "fal-ai/flux/dev",
        "image.edit": "fal-ai/flux-pro/kontext",
        "image.upscale": "fal-ai/clarity-upscaler",
        "video.from_image": "fal-ai/kling-video/v1.6/standard/image-to-video",
        "video.lipsync": "fal-ai/sync-lipsync",
        "audio.speech": "fal-ai/playai/tts/v3",
    ]

    /// fal's own sizes for the catalog's aspect ratios (image_size); 21:9 has
    /// no preset there, so it is sent as pixels (both sides multiples of 16).
    static let imageSizes: [String: JSONValue] = [
        "1:1": "square_hd", "16:9": "landscape_16_9", "9:16": "portrait_16_9", "4:3": "landscape_4_3", "3:4": "portrait_4_3",
        "21:9": ["width": 1344, "height": 576],
    ]

    /// PlayAI needs a voice; this one when the job names none.
    static let defaultPlayAIVoice = "Jennifer (English (US)/American)"

    /// The fal app's input for a job: catalog names become the app's names
    /// (`steps` → `num_inference_steps`, `image` → `image_url`, `duration_seconds`
    /// → `duration` "5"). Files are already fal CDN URLs. What the app does not
    /// take never gets here: the manifest's limits refuse it in pre-flight.
    static func appInput(capability: String, model: String, inputs: [String: JSONValue]) -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        func copy(_ from: String, _ to: String? = nil) { if let v = inputs[from] { out[to ?? from] = v } }
        switch capability {
        case "image.generate", "image.edit":
            copy("prompt"); copy("seed"); copy("num_images"); copy("guidance_scale"); copy("output_format")
            copy("steps", "num_inference_steps")
            if let w = inputs["width"], let h = inputs["height"] { out["image_size"] = ["width": w, "height": h] }
            if let ratio = inputs["aspect_ratio"]?.stringValue {
                // Kontext takes the ratio itself; the FLUX text-to-image apps take an image_size.
                if capability == "image.edit" { out["aspect_ratio"] = .string(ratio) } else { out["image_size"] = imageSizes[ratio] }
            }
            if capability == "image.edit" {
                if model.hasSuffix("/multi") {
                    out["image_urls"] = .array([inputs["image"], inputs["reference_face"]].compactMap { $0 })
                } else {
                    copy("image", "image_url")
                }
            }
        case "image.upscale":
            copy("image", "image_url")
            if model.contains("esrgan") {
                copy("scale"); copy("face_enhance", "face"); copy("output_format")
            } else {
                copy("scale", "upscale_factor")
            }
        case "video.from_image":
            copy("image", "image_url"); copy("prompt"); copy("negative_prompt"); copy("cfg_scale")
            if let seconds = inputs["duration_seconds"]?.doubleValue, model.contains("kling") { out["duration"] = .string(seconds >= 10 ? "10" : "5") }
            if model.contains("kling") { copy("end_image", "tail_image_url") }
        case "video.lipsync":
            if model.contains("sadtalker") {
                copy("face_image", "source_image_url"); copy("audio", "driven_audio_url")
            } else {
                copy("face_video", "video_url"); copy("audio", "audio_url"); copy("sync_mode")
            }
        case "audio.speech":
            if model.contains("playai") {
                copy("text", "input")
                out["voice"] = inputs["voice"] ?? .string(defaultPlayAIVoice)
                out["response_format"] = "url"
            } else {
                copy("text", "prompt"); copy("voice"); copy("speed")
            }
        default:
            out = inputs
        }
        return out
    }

    /// fal's answers as catalog outputs, per capability. fal names every file
    /// as `{url, content_type, width?, height?, …}`; sizes and durations it does
    /// not report are read from the files. With no capability (a webhook
    /// delivery names none), the answer's own shape says which it is.
    static func outputMap(capability: String?, answer: JSONValue) -> OutputMap {
        let kind = capability ?? (answer["images"] != nil ? "image.generate" : answer["image"] != nil ? "image.upscale"
                                  : answer["video"] != nil ? "video.from_image" : answer["audio"] != nil ? "audio.speech" : "")
        switch kind {
        case "image.generate", "image.edit":
            return OutputMap(["images": ["$each": "$.images", "$map": ["file": ["$file": "$"], "width": "$.width", "height": "$.height"]],
                              "seed": "$.seed"])
        case "image.upscale":
            return OutputMap(["image": ["$file": "$.image"], "width": "$.image.width", "height": "$.image.height"])
        case "video.from_image", "video.from_text", "video.lipsync":
            return OutputMap(["video": ["$file": "$.video"], "seed": "$.seed"])
        case "audio.speech":
            return OutputMap(["audio": ["$file": "$.audio"], "duration_seconds": ["$number": "$.audio.duration"]])
        default:
            return OutputMap([:])
        }
    }

    init() {}

    var descriptor: PluginDescriptor {
        PluginDescriptor(id: "fal", version: "0.1.0", name: "fal queue", capabilities: Self.models.keys.sorted(),
                         extensions: [SY_EXTENSION_WEBHOOK, SY_EXTENSION_BALANCE])
    }

    struct Config {
        var queueURL: String
        var restURL: String
        var model: String
        /// Where fal should POST the result (`?fal_webhook=`); polling goes on regardless.
        var webhookURL: String?

        init(_ config: [String: JSONValue], capability: String) throws {
            webhookURL = config["webhook_url"]?.stringValue
            queueURL = (config["queue_url"]?.stringValue ?? "https://queue.fal.run").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            restURL = (config["rest_url"]?.stringValue ?? "https://rest.fal.ai").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            guard let model = config["models"]?[capability]?.stringValue ?? FalAdapter.models[capability] else {
                throw PluginError(code: "CONTRACT_MISMATCH", message: "No fal model is configured for \(capability).",
                                  remediation: "Set config.models.\(capability) to a fal app id such as fal-ai/flux/dev.", field: "$.config.models")
            }
            self.model = model
        }
    }

    func key(_ context: HostContext) throws -> [String: String] {
        guard let key = try context.secret("FAL_KEY") else {
            throw PluginError(code: "AUTH_MISSING", message: "FAL_KEY is not set.", remediation: "Run `yard secrets set FAL_KEY`.")
        }
        return ["authorization": "Key \(key)", "content-type": "application/json", "accept": "application/json"]
    }

    func validate(_ request: JobRequest, context: HostContext) -> [Diagnostic] {
        do { _ = try Config(request.config, capability: request.capability) } catch let error as PluginError {
            return [Diagnostic(code: error.code, message: error.message, remediation: error.remediation, field: error.field)]
        } catch { return [] }
        return []
    }

    /// fal's error answers, mapped to stable codes.
    func failure(_ response: HTTPResponse) -> PluginError {
        let body = (try? response.decodeJSON([String: JSONValue].self)) ?? [:]
        let detail = body["detail"]
        let text = detail?.stringValue ?? String(decoding: response.body.prefix(300), as: UTF8.self)
        let errorType = response.headers["x-fal-error-type"] ?? body["error_type"]?.stringValue
        switch response.status {
        case 401:
            return PluginError(code: "AUTH_FAILED", message: "fal refused the key: \(text)", remediation: "Check FAL_KEY (`yard secrets set FAL_KEY`); it looks like id:secret.")
        case 403 where text.contains("Exhausted balance") || text.contains("User is locked"):
            return PluginError(code: "INSUFFICIENT_FUNDS", message: "fal locked the account: \(text)",
                               remediation: "Top up your fal balance at fal.ai/dashboard/billing, then run again.")
        case 403:
            return PluginError(code: "AUTH_FAILED", message: "fal refused access: \(text)", remediation: "Check that the key may use this model.")
        case 422:
            let first = detail?.arrayValue?.first
            let path = (first?["loc"]?.arrayValue ?? []).compactMap(\.stringValue).filter { $0 != "body" }
            return PluginError(code: "CONTRACT_MISMATCH", message: "fal rejected the input: \(first?["msg"]?.stringValue ?? text)",
                               remediation: "Fix the input named in field.", field: "$.inputs" + path.map { ".\($0)" }.joined())
        case 404:
            return PluginError(code: "RESULT_EXPIRED", message: "fal no longer keeps this request's result: \(text)",
                               remediation: "Run the job again; Switchyard downloads results as soon as they finish.", charged: .unknown)
        case 429:
            return PluginError(code: "RATE_LIMITED", message: "Over fal's concurrency limit.", remediation: "The host retries later.",
                               retryable: true, charged: .no, retryAfterMs: response.retryAfterMs() ?? 1000)
        default:
            let retryable = errorType.map { $0.hasPrefix("runner_") || $0 == "request_timeout" || $0 == "startup_timeout" } ?? (response.status >= 500)
            let code = errorType == "request_timeout" || errorType == "startup_timeout" ? "ENGINE_TIMEOUT" : "ENGINE_UNAVAILABLE"
            return PluginError(code: code, message: "fal answered HTTP \(response.status)\(errorType.map { " (\($0))" } ?? ""): \(text)",
                               remediation: retryable ? "Retried automatically." : "Check the request and fal's status page.", retryable: retryable, charged: .no)
        }
    }

    /// Replaces artifact inputs with fal CDN URLs through the storage token flow.
    func uploadArtifacts(_ inputs: [String: JSONValue], config: Config, context: HostContext) throws -> [String: JSONValue] {
        var token: (String, String, String)?
        func upload(_ handle: String, mediaType: String?) throws -> JSONValue {
            if token == nil {
                let answer = try context.http(HTTPRequest(method: "POST", url: "\(config.restURL)/storage/auth/token?storage_type=fal-cdn-v3",
                                                          headers: try key(context), body: "{}"))
                guard answer.isSuccess, let doc = try? answer.decodeJSON([String: JSONValue].self),
                      let t = doc["token"]?.stringValue, let type = doc["token_type"]?.stringValue, let base = doc["base_url"]?.stringValue else {
                    throw failure(answer)
                }
                token = (t, type, base)
            }
            guard let (t, type, base) = token else { throw PluginError.unsupported("upload") }
            let bytes = try context.readArtifact(handle)
            let answer = try context.http(HTTPRequest(method: "POST", url: "\(base)/files/upload",
                                                      headers: ["authorization": "\(type) \(t)", "x-fal-file-name": String(handle.suffix(16)),
                                                                "content-type": mediaType ?? "application/octet-stream"], bodyData: bytes))
            guard answer.isSuccess, let url = (try? answer.decodeJSON([String: JSONValue].self))?["access_url"]?.stringValue else {
                throw failure(answer)
            }
            return .string(url)
        }
        // fal apps take files as URL strings: artifacts are uploaded, {"url"} files sent as their URL.
        return try inputs.mapValues { value in
            if let handle = value["artifact"]?.stringValue { return try upload(handle, mediaType: value["media_type"]?.stringValue) }
            if let url = value["url"]?.stringValue, value.objectValue?.count ?? 0 <= 2 { return .string(url) }
            return value
        }
    }

    func submit(_ request: JobRequest, context: HostContext) throws -> SubmitResult {
        let config = try Config(request.config, capability: request.capability)
        // `model` chose the fal app (the host resolved it into config.models); it is not an input of the app.
        var inputs = request.inputs
        inputs.removeValue(forKey: "model")
        inputs = try uploadArtifacts(inputs, config: config, context: context)
        inputs = Self.appInput(capability: request.capability, model: config.model, inputs: inputs)
        var url = "\(config.queueURL)/\(config.model)"
        if let webhook = config.webhookURL, var parts = URLComponents(string: url) {
            parts.queryItems = [URLQueryItem(name: "fal_webhook", value: webhook)]
            url = parts.string ?? url
        }
        let response = try context.http(HTTPRequest(method: "POST", url: url, headers: try key(context),
                                                    bodyData: try JSONEncoder().encode(inputs)))
        guard response.isSuccess else { throw failure(response) }
        guard let answer = try? response.decodeJSON([String: JSONValue].self), let id = answer["request_id"]?.stringValue,
              let statusURL = answer["status_url"]?.stringValue, let responseURL = answer["response_url"]?.stringValue else {
            throw PluginError(code: "ENGINE_ERROR", message: "fal's submit answer lacks request_id or its URLs.", remediation: "Report this.", charged: .unknown)
        }
        return .ref(["request_id": .string(id), "status_url": .string(statusURL), "response_url": .string(responseURL),
                     "cancel_url": answer["cancel_url"] ?? .string("\(responseURL)/cancel"), "capability": .string(request.capability),
                     "model": .string(config.model)], nextPollAfterMs: 500)
    }

    func poll(_ request: RefRequest, context: HostContext) throws -> PollResult {
        guard let statusURL = request.ref["status_url"]?.stringValue, let responseURL = request.ref["response_url"]?.stringValue else {
            throw PluginError(code: "INVALID_REF", message: "This ref has no fal URLs.", remediation: "Poll refs made by the fal adapter.", field: "$.ref")
        }
        let headers = try key(context)
        let response = try context.http(HTTPRequest(method: "GET", url: statusURL + "?logs=1", headers: headers))
        if response.status == 404 {
            return PollResult(state: .failed, error: PluginError(code: "RESULT_EXPIRED", message: "fal no longer knows this request.",
                                                                 remediation: "Run the job again.", charged: .unknown))
        }
        guard response.isSuccess else { throw failure(response) }
        guard let status = try? response.decodeJSON([String: JSONValue].self) else {
            throw PluginError(code: "ENGINE_ERROR", message: "fal's status answer is not JSON.", remediation: "Retried automatically.", retryable: true)
        }
        switch status["status"]?.stringValue {
        case "IN_QUEUE":
            return PollResult(state: .queued, progress: 0, message: "queue position \(status["queue_position"]?.intValue ?? 0)", nextPollAfterMs: 1000)
        case "IN_PROGRESS":
            let last = status["logs"]?.arrayValue?.last?["message"]?.stringValue
            return PollResult(state: .running, progress: 0.5, message: last.map { context.log(.info, "fal: \($0)"); return $0 } ?? "running", nextPollAfterMs: 1000)
        case "COMPLETED":
            if status["error_type"]?.stringValue == "request_cancelled" { return PollResult(state: .cancelled, message: "cancelled at fal") }
            let result = try context.http(HTTPRequest(method: "GET", url: responseURL, headers: headers))
            guard result.isSuccess else {
                let error = failure(result)
                return PollResult(state: .failed, error: PluginError(code: error.code, message: error.message, remediation: error.remediation,
                                                                     field: error.field, retryable: false, charged: .unknown))
            }
            guard let output = try? result.decodeJSON([String: JSONValue].self) else {
                throw PluginError(code: "ENGINE_ERROR", message: "fal's result is not JSON.", remediation: "Retried automatically.", retryable: true)
            }
            let answer = JSONValue.object(output)
            return PollResult(state: .succeeded, progress: 1, outputs: try Self.outputMap(capability: request.ref["capability"]?.stringValue, answer: answer).apply(to: answer, context: context), usage: Self.usage(output))
        default:
            throw PluginError(code: "ENGINE_ERROR", message: "fal answered an unknown status.", remediation: "Retried automatically.", retryable: true)
        }
    }

    /// What fal bills an image model by: the images it returned and their
    /// megapixels (fal prices per image or per megapixel of output). Other
    /// outputs are billed per second of video or per request, which the
    /// price rule takes from the inputs.
    static func usage(_ output: [String: JSONValue]) -> Usage? {
        let images = output["images"]?.arrayValue ?? output["image"].map { [$0] } ?? []
        guard !images.isEmpty else { return nil }
        var megapixels = 0.0
        var sized = true
        for image in images {
            if let w = image["width"]?.doubleValue, let h = image["height"]?.doubleValue, w > 0, h > 0 { megapixels += w * h / 1_000_000 } else { sized = false }
        }
        return Usage(images: images.count, megapixels: sized ? megapixels : nil)
    }

    func cancel(_ request: RefRequest, context: HostContext) throws -> CancelResult {
        guard let cancelURL = request.ref["cancel_url"]?.stringValue, let statusURL = request.ref["status_url"]?.stringValue else {
            return CancelResult(outcome: .notFound, charged: .no)
        }
        let headers = try key(context)
        let before = (try? context.http(HTTPRequest(method: "GET", url: statusURL, headers: headers))).flatMap { try? $0.decodeJSON([String: JSONValue].self) }
        let wasQueued = before?["status"]?.stringValue == "IN_QUEUE"
        let response = try context.http(HTTPRequest(method: "PUT", url: cancelURL, headers: headers))
        switch response.status {
        case HTTPStatusClass.success:
            // A queued request never ran; a running one may still finish and be billed.
            return wasQueued ? CancelResult(outcome: .cancelledInQueue, charged: .no)
                             : CancelResult(outcome: .cancelledRunning, charged: .unknown, message: "fal may finish and bill a request that was already running")
        case 400: return CancelResult(outcome: .alreadyFinished, charged: .yes)
        case 404: return CancelResult(outcome: .notFound, charged: .unknown)
        default: throw failure(response)
        }
    }

    /// One cheap authenticated read: the status of a request id that cannot
    /// exist. fal answers 404 to a key it accepts and 401/403 to one it does
    /// not, so this checks reachability and the key without running anything.
    func health(_ request: ConfigRequest, context: HostContext) -> HealthReport {
        let headers: [String: String]
        do { headers = try key(context) } catch let error as PluginError {
            return HealthReport(status: .offline, message: error.message, details: ["code": .string(error.code)])
        } catch { return HealthReport(status: .offline, message: "\(error)") }
        do {
            let config = try Config(request.config, capability: "image.generate")
            let probe = "\(config.queueURL)/\(config.model)/requests/00000000-0000-4000-8000-000000000000/status"
            let response = try context.http(HTTPRequest(method: "GET", url: probe, headers: headers, timeoutMs: 10_000))
            switch response.status {
            case HTTPStatusClass.success, 404:
                return HealthReport(status: .ok, message: "queue reachable; key accepted", details: ["read": .string("GET …/requests/{unknown}/status → \(response.status)")])
            case 429:
                return HealthReport(status: .degraded, message: "over fal's concurrency limit", details: ["code": "RATE_LIMITED"])
            default:
                let error = failure(response)
                return HealthReport(status: .offline, message: error.message,
                                    details: ["code": .string(error.code == "ENGINE_UNAVAILABLE" ? "ENGINE_OFFLINE" : error.code)])
            }
        } catch let error as PluginError {
            return HealthReport(status: .offline, message: error.message, details: ["code": .string(error.code == "ENGINE_UNAVAILABLE" ? "ENGINE_OFFLINE" : error.code)])
        } catch {
            return HealthReport(status: .offline, message: "\(error)")
        }
    }

    /// The account's credits: fal's Platform API, GET /v1/account/billing?expand=credits
    /// → {"credits": {"current_balance", "currency"}}. Needs a key with billing read access.
    func balance(_ request: ConfigRequest, context: HostContext) throws -> CostEstimate {
        let base = (request.config["api_url"]?.stringValue ?? "https://api.fal.ai/v1").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let response = try context.http(HTTPRequest(method: "GET", url: "\(base)/account/billing?expand=credits", headers: try key(context), timeoutMs: 10_000))
        if response.status == 403 {
            throw PluginError(code: "AUTH_FAILED", message: "fal's key may not read billing (HTTP 403).",
                              remediation: "Use a key with billing read access (the BILLING, READONLY or FULL preset in fal.ai/dashboard/keys) to see the balance.")
        }
        guard response.isSuccess else { throw failure(response) }
        guard let credits = (try? response.decodeJSON([String: JSONValue].self))?["credits"],
              let balance = credits["current_balance"]?.doubleValue ?? credits["current_balance"]?.stringValue.flatMap(Double.init), balance.isFinite else {
            throw PluginError(code: "ENGINE_ERROR", message: "fal's billing answer has no credits.current_balance.", remediation: "Retry later.")
        }
        let currency = credits["currency"]?.stringValue.map { $0.uppercased() }.flatMap { $0.count == 3 ? $0 : nil } ?? "USD"
        return CostEstimate(amountMinor: Int((balance * 100).rounded(.down)), currency: currency, basis: "fal credit balance")
    }
}
