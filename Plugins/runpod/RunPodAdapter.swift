import Foundation
import SwitchyardPluginSDK

// RunPod serverless (queue-based endpoints): POST /run, GET /status/{id},
// POST /cancel/{id}, GET /health, with `Authorization: Bearer <key>`.
// The endpoint runs the user's own worker, so the adapter passes the job's
// inputs as the worker's `input` (renamed through config.input_map), and maps
// RunPod's states and failures onto the host's stable codes.

@_cdecl("sy_plugin_entry_v1") public func syPluginEntry(_ host: UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>? { PluginExport.entry(RunPodAdapter.self, host: host) }

struct RunPodAdapter: EngineAdapter {
    static let capabilities = ["image.generate", "image.edit", "image.upscale", "video.from_image", "video.from_text", "video.upscale", "audio.speech",
                               "comfy.workflow", "endpoint.deploy"]
    static let defaultBaseURL = "https://api.runpod.ai/v2"
    static let defaultGraphQLURL = "https://api.runpod.io/graphql"

    init() {}

    var descriptor: PluginDescriptor {
        PluginDescriptor(id: "runpod", version: "0.1.0", name: "RunPod serverless", capabilities: Self.capabilities,
                         extensions: [SY_EXTENSION_ESTIMATE, SY_EXTENSION_WEBHOOK, SY_EXTENSION_BALANCE])
    }

    struct Config {
        var endpointID: String
        var baseURL: String
        var executionTimeoutMs: Int
        var ttlMs: Int
        var webhook: String?
        var inputMap: [String: String]
        var outputMap: OutputMap?
        var gpuRateMinorPerSecond: Double

        /// The endpoint (and its worker's conventions) serving `capability`:
        /// `endpoints[capability]` when given, else `endpoint_id`. A user runs
        /// one worker image per endpoint, so each capability may have its own.
        init(_ config: [String: JSONValue], capability: String? = nil) throws {
            let specific = capability.flatMap { config["endpoints"]?[$0] }
            guard let endpoint = specific?.stringValue ?? specific?["endpoint_id"]?.stringValue ?? config["endpoint_id"]?.stringValue, !endpoint.isEmpty else {
                throw PluginError(code: "CONFIG_INVALID", message: "RunPod needs endpoint_id: the id of your serverless endpoint\(capability.map { " (or endpoints.\($0))" } ?? "").",
                                  remediation: "Set it in $YARD_HOME/config/runpod.json or --config '{\"endpoint_id\":\"…\"}'.", field: "$.config.endpoint_id")
            }
            endpointID = endpoint
            baseURL = (config["base_url"]?.stringValue ?? RunPodAdapter.defaultBaseURL).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            executionTimeoutMs = config["execution_timeout_ms"]?.intValue ?? 600_000
            ttlMs = config["ttl_ms"]?.intValue ?? 86_400_000
            webhook = config["webhook_url"]?.stringValue
            inputMap = (specific?["input_map"]?.objectValue ?? config["input_map"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
            let userMap = specific?["output_map"] ?? capability.flatMap { config["output_map"]?[$0] }
            let field = specific?["output_map"] != nil ? "$.config.endpoints.\(capability ?? "").output_map" : "$.config.output_map.\(capability ?? "")"
            outputMap = try userMap.map { try OutputMap(validating: $0, field: field) }
            gpuRateMinorPerSecond = config["gpu_rate_minor_per_second"]?.doubleValue ?? 0.05
        }

        func url(_ path: String) -> String { "\(baseURL)/\(endpointID)/\(path)" }
    }

    /// How the common public workers answer, per capability, when the config
    /// gives no output_map: worker-comfyui 5.x `{"images":[{"filename","type":
    /// "s3_url"|"base64","data"}]}`, worker-sdxl style `{"images":[url | data
    /// URI]}` or `{"image_url"}`, `{"video_url"}`, `{"audio_url"}`, and outputs
    /// already in the catalog's shape. Sizes and durations a worker leaves out
    /// are read from the files.
    static let builtInOutputMaps: [String: [String: JSONValue]] = {
        let image: JSONValue = ["file": ["$file": ["$first": ["$.file", "$"]]], "width": "$.width", "height": "$.height", "seed": "$.seed"]
        let images: JSONValue = ["$first": [
            ["$each": "$.images", "$map": image],
            [["file": ["$file": "$.image_url"]]],
            [["file": ["$file": "$.image"]]],
            [["file": ["$file": "$"]]],
        ]]
        let single: JSONValue = ["$first": [["$file": "$.image_url"], ["$file": "$.image"], ["$file": "$.images[0].file"], ["$file": "$.images[0]"], ["$file": "$"]]]
        func media(_ name: String) -> JSONValue {
            ["$first": [["$file": .string("$.\(name)_url")], ["$file": .string("$.\(name)")], ["$file": .string("$.\(name)s[0]")], ["$file": "$"]]]
        }
        let duration: JSONValue = ["$number": ["$first": ["$.duration_seconds", "$.duration"]]]
        let video: [String: JSONValue] = ["video": media("video"), "duration_seconds": duration, "width": "$.width", "height": "$.height",
                                          "fps": ["$number": "$.fps"], "seed": "$.seed"]
        return [
            "image.generate": ["images": images, "seed": "$.seed"],
            "image.edit": ["images": images, "seed": "$.seed"],
            "image.upscale": ["image": single, "width": "$.width", "height": "$.height"],
            "video.from_image": video, "video.from_text": video, "video.upscale": video,
            "audio.speech": ["audio": media("audio"), "duration_seconds": duration, "sample_rate": "$.sample_rate"],
            "comfy.workflow": ["files": ["$first": [
                ["$each": "$.files", "$map": ["node": "$.node", "file": ["$file": "$.file"]]],
                ["$each": "$.images", "$map": ["node": ["$first": ["$.node", "$.filename"]], "file": ["$file": "$"]]],
            ]], "prompt_id": "$.prompt_id"],
        ]
    }()

    func validate(_ request: JobRequest, context: HostContext) -> [Diagnostic] {
        do {
            if request.capability == "endpoint.deploy" { _ = try DeploySpec(request.inputs) } else { _ = try Config(request.config, capability: request.capability) }
        } catch let error as PluginError {
            return [Diagnostic(code: error.code, message: error.message, remediation: error.remediation, field: error.field)]
        } catch { return [] }
        if let body = try? JSONEncoder().encode(request.inputs), body.count > 10 << 20 {
            return [Diagnostic(code: "CONTRACT_MISMATCH", message: "The inputs are \(body.count) bytes; RunPod's /run accepts 10 MB.",
                               remediation: "Pass large files as URLs or artifacts rather than inline.", field: "$.inputs")]
        }
        return []
    }

    func headers(_ context: HostContext) throws -> [String: String] {
        guard let key = try context.secret("RUNPOD_API_KEY") else {
            throw PluginError(code: "AUTH_MISSING", message: "RUNPOD_API_KEY is not set.", remediation: "Run `yard secrets set RUNPOD_API_KEY`.")
        }
        return ["authorization": "Bearer \(key)", "content-type": "application/json", "accept": "application/json"]
    }

    /// Maps a non-2xx answer to a stable code. `submitting` makes 5xx ambiguous:
    /// the job may have been created, and RunPod has no idempotency key.
    func failure(_ response: HTTPResponse, submitting: Bool) -> PluginError {
        let text = String(decoding: response.body.prefix(300), as: UTF8.self)
        switch response.status {
        case 401, 403:
            return PluginError(code: "AUTH_FAILED", message: "RunPod refused the API key (HTTP \(response.status)).",
                               remediation: "Check RUNPOD_API_KEY (`yard secrets set RUNPOD_API_KEY`) and that it can access this endpoint.")
        case 429:
            let after = response.retryAfterMs() ?? 2000
            return PluginError(code: "RATE_LIMITED", message: "RunPod rate limit reached.", remediation: "The host retries after the delay RunPod asked for.",
                               retryable: true, charged: .no, retryAfterMs: after)
        case 400, 413, 422:
            return PluginError(code: "CONTRACT_MISMATCH", message: "RunPod rejected the request: \(text)", remediation: "Check the inputs your worker expects.", field: "$.inputs")
        case 404:
            return PluginError(code: "RESULT_EXPIRED", message: "RunPod no longer knows this job (results are deleted after retention or the ttl).",
                               remediation: "Run the job again; Switchyard downloads results as soon as they finish.", charged: .unknown)
        default:
            return PluginError(code: "ENGINE_UNAVAILABLE", message: "RunPod answered HTTP \(response.status): \(text)",
                               remediation: "Retry later; check status.runpod.io.", retryable: !submitting, charged: submitting ? .unknown : .no)
        }
    }

    func submit(_ request: JobRequest, context: HostContext) throws -> SubmitResult {
        if request.capability == "endpoint.deploy" { return try deploy(request, context: context) }
        let config = try Config(request.config, capability: request.capability)
        var input: [String: JSONValue] = [:]
        for (key, value) in request.inputs { input[config.inputMap[key] ?? key] = try Self.workerValue(value, context: context) }
        var body: [String: JSONValue] = ["input": .object(input),
                                         "policy": ["executionTimeout": .number(Double(config.executionTimeoutMs)), "ttl": .number(Double(config.ttlMs))]]
        if let webhook = config.webhook { body["webhook"] = .string(webhook) }
        let payload = try JSONEncoder().encode(body)
        guard payload.count <= 10 << 20 else {
            throw PluginError(code: "CONTRACT_MISMATCH", message: "With its files inline the job is \(payload.count) bytes; RunPod's /run takes 10 MB.",
                              remediation: "Pass large files as URLs, or smaller files.", field: "$.inputs")
        }
        let response = try context.http(HTTPRequest(method: "POST", url: config.url("run"), headers: try headers(context), bodyData: payload))
        guard response.isSuccess else { throw failure(response, submitting: true) }
        guard let answer = try? response.decodeJSON([String: JSONValue].self), let id = answer["id"]?.stringValue else {
            throw PluginError(code: "ENGINE_ERROR", message: "RunPod's /run answer has no job id.", remediation: "Check the endpoint in the RunPod console.", charged: .unknown)
        }
        context.log(.info, "runpod: job \(id) queued on endpoint \(config.endpointID)")
        return .ref(["id": .string(id), "endpoint_id": .string(config.endpointID), "capability": .string(request.capability)], nextPollAfterMs: 1000)
    }

    /// A file input as a worker can read it: the bytes inline as a data: URI
    /// (workers such as worker-sdxl and worker-comfyui take base64 images), or
    /// the URL itself. An artifact handle means nothing outside this host.
    static func workerValue(_ value: JSONValue, context: HostContext) throws -> JSONValue {
        if let handle = value["artifact"]?.stringValue {
            let bytes = try context.readArtifact(handle)
            let type = value["media_type"]?.stringValue ?? MediaProbe.sniff(bytes) ?? "application/octet-stream"
            return .string("data:\(type);base64," + bytes.base64EncodedString())
        }
        if let url = value["url"]?.stringValue, (value.objectValue?.keys.allSatisfy { ["url", "media_type", "size"].contains($0) } ?? false) { return .string(url) }
        if let items = value.arrayValue { return .array(try items.map { try workerValue($0, context: context) }) }
        return value
    }

    func poll(_ request: RefRequest, context: HostContext) throws -> PollResult {
        if request.ref["deploy"]?.boolValue == true { return try pollDeploy(request, context: context) }
        let capability = request.ref["capability"]?.stringValue ?? request.job?.capability
        var config = try Config(request.config, capability: capability)
        // The job stays on the endpoint it was sent to, whatever the config says now.
        if let endpoint = request.ref["endpoint_id"]?.stringValue { config.endpointID = endpoint }
        guard let id = request.ref["id"]?.stringValue else {
            throw PluginError(code: "INVALID_REF", message: "This ref has no RunPod job id.", remediation: "Poll refs made by the runpod adapter.", field: "$.ref")
        }
        let response = try context.http(HTTPRequest(method: "GET", url: config.url("status/\(id)"), headers: try headers(context)))
        if response.status == 404 {
            return PollResult(state: .failed, error: failure(response, submitting: false))
        }
        guard response.isSuccess else { throw failure(response, submitting: false) }
        guard let answer = try? response.decodeJSON([String: JSONValue].self) else {
            throw PluginError(code: "ENGINE_ERROR", message: "RunPod's status answer is not JSON.", remediation: "Retried automatically.", retryable: true)
        }
        let executionMs = answer["executionTime"]?.intValue
        // RunPod bills GPU time on every terminal state: executionTime is the usage.
        let usage = executionMs.map { Usage(executionMs: $0) }
        switch answer["status"]?.stringValue ?? "" {
        case "IN_QUEUE":
            return PollResult(state: .queued, progress: 0, message: "waiting for a worker (delay \(answer["delayTime"]?.intValue ?? 0) ms)", nextPollAfterMs: 2000)
        case "IN_PROGRESS":
            return PollResult(state: .running, progress: 0.5, message: "running on a worker", nextPollAfterMs: 2000)
        case "COMPLETED":
            guard let output = answer["output"], output != .null else {
                return PollResult(state: .failed, error: PluginError(code: "ENGINE_ERROR", message: "RunPod reports COMPLETED with no output: the worker returned nothing.",
                                                                     remediation: "Check the worker's handler and logs in the RunPod console.", charged: .yes), usage: usage)
            }
            let map = config.outputMap ?? capability.flatMap { Self.builtInOutputMaps[$0] }.map(OutputMap.init)
            guard let map else {
                // A ref from before capabilities were recorded in it: pass the worker's object through.
                return PollResult(state: .succeeded, progress: 1, outputs: output.objectValue ?? ["output": output], usage: usage)
            }
            return PollResult(state: .succeeded, progress: 1, outputs: try map.apply(to: output, context: context), usage: usage)
        case "FAILED":
            return PollResult(state: .failed, error: PluginError(code: "ENGINE_ERROR", message: "The worker failed: \(Self.workerError(answer["error"]))",
                                                                 remediation: "Check the worker's logs in the RunPod console.", charged: executionMs == 0 ? .no : .yes), usage: usage)
        case "TIMED_OUT":
            return PollResult(state: .failed, error: PluginError(code: "ENGINE_TIMEOUT", message: "RunPod stopped the job at its execution timeout.",
                                                                 remediation: "Raise execution_timeout_ms in the engine config, or use a faster GPU.", charged: .yes), usage: usage)
        case "CANCELLED":
            // A job cancelled before a worker took it used no GPU time.
            let ran = (executionMs ?? 0) > 0
            return PollResult(state: .cancelled, message: "cancelled at RunPod",
                              error: PluginError(code: "CANCELLED", message: "The job was cancelled at RunPod\(ran ? " after \(executionMs ?? 0) ms on a worker" : " before a worker took it").",
                                                 remediation: "Run it again if it is still wanted.", charged: ran ? .yes : .no), usage: usage)
        case let other:
            throw PluginError(code: "ENGINE_ERROR", message: "RunPod answered an unknown status \"\(other)\".", remediation: "Retried automatically.", retryable: true)
        }
    }

    /// What a FAILED job's `error` says. The official worker SDK (runpod-python,
    /// rp_job.run_job) sends a JSON string {"error_type","error_message",
    /// "error_traceback",…} for a handler that raised; a handler may also
    /// return {"error": "text"} itself, which arrives as that text.
    static func workerError(_ value: JSONValue?) -> String {
        guard let value else { return "no details" }
        if let text = value.stringValue {
            if let data = text.data(using: .utf8), let object = try? JSONDecoder().decode([String: JSONValue].self, from: data),
               let message = object["error_message"]?.stringValue {
                let type = object["error_type"]?.stringValue.map { " (\($0.replacingOccurrences(of: "<class '", with: "").replacingOccurrences(of: "'>", with: "")))" } ?? ""
                return message + type
            }
            return text.isEmpty ? "no details" : String(text.prefix(500))
        }
        if let message = value["error_message"]?.stringValue { return message }
        return String(decoding: (try? JSONEncoder().encode(value)) ?? Data(), as: UTF8.self).prefix(500).description
    }

    func cancel(_ request: RefRequest, context: HostContext) throws -> CancelResult {
        if request.ref["deploy"]?.boolValue == true { return try cancelDeploy(request, context: context) }
        var config = try Config(request.config, capability: request.ref["capability"]?.stringValue ?? request.job?.capability)
        if let endpoint = request.ref["endpoint_id"]?.stringValue { config.endpointID = endpoint }
        guard let id = request.ref["id"]?.stringValue else { return CancelResult(outcome: .notFound, charged: .no) }
        let headers = try headers(context)
        let before = try context.http(HTTPRequest(method: "GET", url: config.url("status/\(id)"), headers: headers))
        if before.status == 404 { return CancelResult(outcome: .notFound, charged: .unknown, message: "RunPod no longer knows this job") }
        let answer = try? before.decodeJSON([String: JSONValue].self)
        let previous = answer?["status"]?.stringValue ?? ""
        let usedBefore = answer?["executionTime"]?.intValue.map { Usage(executionMs: $0) }
        if ["COMPLETED", "FAILED", "TIMED_OUT", "CANCELLED"].contains(previous) {
            if previous == "CANCELLED" {
                let ran = (answer?["executionTime"]?.intValue ?? 0) > 0
                return CancelResult(outcome: ran ? .cancelledRunning : .cancelledInQueue, charged: ran ? .yes : .no, usage: usedBefore)
            }
            return CancelResult(outcome: .alreadyFinished, charged: .yes, usage: usedBefore)
        }
        let response = try context.http(HTTPRequest(method: "POST", url: config.url("cancel/\(id)"), headers: headers))
        guard response.isSuccess else { throw failure(response, submitting: false) }
        if previous == "IN_QUEUE" {
            // It may have been taken by a worker between the two calls: /status says what it used.
            let after = (try? context.http(HTTPRequest(method: "GET", url: config.url("status/\(id)"), headers: headers))).flatMap { try? $0.decodeJSON([String: JSONValue].self) }
            let executionMs = after?["executionTime"]?.intValue ?? 0
            if executionMs > 0 {
                return CancelResult(outcome: .cancelledRunning, charged: .yes, message: "a worker had taken the job: RunPod bills the \(executionMs) ms it ran",
                                    usage: Usage(executionMs: executionMs))
            }
            return CancelResult(outcome: .cancelledInQueue, charged: .no)
        }
        // A running job has used (and is billed for) GPU time: RunPod's CANCELLED answer carries executionTime.
        let after = (try? context.http(HTTPRequest(method: "GET", url: config.url("status/\(id)"), headers: headers))).flatMap { try? $0.decodeJSON([String: JSONValue].self) }
        let usage = (after?["executionTime"]?.intValue).map { Usage(executionMs: $0) } ?? usedBefore
        return CancelResult(outcome: .cancelledRunning, charged: .yes,
                            message: "RunPod bills the GPU time used before the cancel\(usage?.executionMs.map { " (\($0) ms)" } ?? "")", usage: usage)
    }

    func health(_ request: ConfigRequest, context: HostContext) -> HealthReport {
        do {
            if request.config["endpoint_id"] == nil {
                // No endpoint yet (e.g. before endpoint.deploy): the account's REST API is what must answer.
                let response = try context.http(HTTPRequest(method: "GET", url: "\(restURL(request.config))/endpoints", headers: try headers(context), timeoutMs: 10_000))
                guard response.isSuccess else {
                    let failure = failure(response, submitting: false)
                    return HealthReport(status: .offline, message: failure.message, details: ["code": .string(failure.code == "ENGINE_UNAVAILABLE" ? "ENGINE_OFFLINE" : failure.code)])
                }
                return HealthReport(status: .ok, message: "account reachable; no endpoint_id configured (deploy one with endpoint.deploy)")
            }
            let config = try Config(request.config)
            let response = try context.http(HTTPRequest(method: "GET", url: config.url("health"), headers: try headers(context), timeoutMs: 10_000))
            guard response.isSuccess, let answer = try? response.decodeJSON([String: JSONValue].self) else {
                let failure = failure(response, submitting: false)
                // Rate limited means up and busy; a refused key is the user's to fix, not an outage.
                return HealthReport(status: response.status == 429 ? .degraded : .offline, message: failure.message,
                                    details: ["code": .string(failure.code == "ENGINE_UNAVAILABLE" ? "ENGINE_OFFLINE" : failure.code)])
            }
            let idle = answer["workers"]?["idle"]?.intValue ?? 0, running = answer["workers"]?["running"]?.intValue ?? 0
            let queued = answer["jobs"]?["inQueue"]?.intValue ?? 0
            let details: [String: JSONValue] = ["workers_idle": .number(Double(idle)), "workers_running": .number(Double(running)), "in_queue": .number(Double(queued))]
            if idle + running == 0 && queued > 0 {
                return HealthReport(status: .degraded, message: "\(queued) jobs waiting and no workers: no GPU capacity, or the worker crash-loops", details: details)
            }
            return HealthReport(status: .ok, message: "\(idle) idle, \(running) running, \(queued) queued", details: details)
        } catch let error as PluginError {
            return HealthReport(status: .offline, message: error.message)
        } catch {
            return HealthReport(status: .offline, message: "\(error)")
        }
    }

    /// The account's credit balance: RunPod's GraphQL API, `myself { clientBalance }` (USD).
    func balance(_ request: ConfigRequest, context: HostContext) throws -> CostEstimate {
        let url = request.config["graphql_url"]?.stringValue ?? Self.defaultGraphQLURL
        let body = try JSONEncoder().encode(["query": "query { myself { clientBalance } }"])
        let response = try context.http(HTTPRequest(method: "POST", url: url, headers: try headers(context), bodyData: body, timeoutMs: 10_000))
        guard response.isSuccess else { throw failure(response, submitting: false) }
        guard let answer = try? response.decodeJSON([String: JSONValue].self) else {
            throw PluginError(code: "ENGINE_ERROR", message: "RunPod's GraphQL answer is not JSON.", remediation: "Retry later.", retryable: true)
        }
        if let first = answer["errors"]?.arrayValue?.first {
            let message = first["message"]?.stringValue ?? "error"
            let auth = message.lowercased().contains("unauthorized") || message.lowercased().contains("api key")
            throw PluginError(code: auth ? "AUTH_FAILED" : "ENGINE_ERROR", message: "RunPod's GraphQL API refused the balance query: \(message)",
                              remediation: auth ? "Check RUNPOD_API_KEY (`yard secrets set RUNPOD_API_KEY`): it needs read access to the account." : "Retry later.")
        }
        guard let dollars = answer["data"]?["myself"]?["clientBalance"]?.doubleValue, dollars.isFinite else {
            throw PluginError(code: "ENGINE_ERROR", message: "RunPod's GraphQL answer has no myself.clientBalance.", remediation: "Retry later.")
        }
        return CostEstimate(amountMinor: Int((dollars * 100).rounded(.down)), currency: "USD", basis: "RunPod account credit (myself.clientBalance)")
    }

    func estimate(_ request: JobRequest, context: HostContext) throws -> CostEstimate {
        if request.capability == "endpoint.deploy" {
            return CostEstimate(amountMinor: 0, basis: "creating an endpoint is free; workers_min > 0 keeps workers billed by RunPod per second")
        }
        let config = try Config(request.config, capability: request.capability)
        let seconds = Double(config.executionTimeoutMs) / 1000
        return CostEstimate(amountMinor: Int((seconds * config.gpuRateMinorPerSecond).rounded(.up)),
                            basis: "upper bound: execution timeout \(Int(seconds)) s × GPU rate; settled from RunPod's executionTime")
    }
}
