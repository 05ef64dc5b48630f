import Foundation
import SwitchyardPluginSDK

// endpoint.deploy: create a serverless template (image + env) and an endpoint
// (GPU type ids, min/max workers, idle timeout) on the user's own RunPod
// account through its REST API (https://rest.runpod.io/v1), then poll the new
// endpoint's /health until it answers. Creation is by name and idempotent: a
// submit that is repeated after a crash finds the template and endpoint it
// made the first time instead of paying for a second endpoint.

extension RunPodAdapter {
    static let defaultRestURL = "https://rest.runpod.io/v1"
    /// Secrets a deploy may copy into the worker's environment: only ones this plugin declares.
    static let deployableSecrets: Set<String> = ["HF_TOKEN", "CIVITAI_TOKEN"]

    struct DeploySpec {
        var name: String
        var image: String
        var env: [String: String]
        var secretEnv: [String]
        var gpuTypeIDs: [String]
        var workersMin: Int
        var workersMax: Int
        var idleTimeout: Int
        var executionTimeoutMs: Int
        var containerDiskGB: Int
        var flashboot: Bool

        init(_ inputs: [String: JSONValue]) throws {
            func missing(_ field: String) -> PluginError {
                PluginError(code: "CONTRACT_MISMATCH", message: "endpoint.deploy needs \(field).", remediation: "Add --input \(field)=….", field: "$.inputs.\(field)")
            }
            guard let name = inputs["name"]?.stringValue, !name.isEmpty else { throw missing("name") }
            guard let image = inputs["image"]?.stringValue, !image.isEmpty else { throw missing("image") }
            let gpus = (inputs["gpu_type_ids"]?.arrayValue ?? []).compactMap(\.stringValue)
            guard !gpus.isEmpty else { throw missing("gpu_type_ids") }
            self.name = name
            self.image = image
            env = [:]
            for pair in inputs["env"]?.arrayValue ?? [] {
                if let name = pair["name"]?.stringValue, let value = pair["value"]?.stringValue { env[name] = value }
            }
            secretEnv = (inputs["secret_env"]?.arrayValue ?? []).compactMap(\.stringValue)
            gpuTypeIDs = gpus
            workersMin = inputs["workers_min"]?.intValue ?? 0
            workersMax = inputs["workers_max"]?.intValue ?? 3
            idleTimeout = inputs["idle_timeout_seconds"]?.intValue ?? 5
            executionTimeoutMs = inputs["execution_timeout_ms"]?.intValue ?? 600_000
            containerDiskGB = inputs["container_disk_gb"]?.intValue ?? 20
            flashboot = inputs["flashboot"]?.boolValue ?? true
            if let undeclared = secretEnv.first(where: { !RunPodAdapter.deployableSecrets.contains($0) }) {
                throw PluginError(code: "CONTRACT_MISMATCH", message: "secret_env names \(undeclared), which the runpod plugin may not read.",
                                  remediation: "Use one of \(RunPodAdapter.deployableSecrets.sorted().joined(separator: ", ")), or put a non-secret value in env.",
                                  field: "$.inputs.secret_env")
            }
            if let clash = secretEnv.first(where: { env[$0] != nil }) {
                throw PluginError(code: "CONTRACT_MISMATCH", message: "\(clash) is in both env and secret_env.",
                                  remediation: "Keep secrets out of env: name them in secret_env only.", field: "$.inputs.env.\(clash)")
            }
        }
    }

    func restURL(_ config: [String: JSONValue]) -> String {
        (config["rest_url"]?.stringValue ?? Self.defaultRestURL).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
    }

    func restError(_ response: HTTPResponse, _ what: String) -> PluginError {
        if [401, 403].contains(response.status) || response.status == 429 { return failure(response, submitting: false) }
        let text = (try? response.decodeJSON([String: JSONValue].self))?["error"]?.stringValue ?? String(decoding: response.body.prefix(300), as: UTF8.self)
        if (400..<500).contains(response.status) {
            return PluginError(code: "CONTRACT_MISMATCH", message: "RunPod refused to \(what): \(text)", remediation: "Fix the deploy inputs.", field: "$.inputs")
        }
        return PluginError(code: "ENGINE_UNAVAILABLE", message: "RunPod answered HTTP \(response.status) when asked to \(what): \(text)",
                           remediation: "Run the deploy again: it finds what was already created by name.", retryable: false, charged: .no)
    }

    /// Finds an object by name in a REST listing, or creates it.
    func findOrCreate(_ kind: String, name: String, body: [String: JSONValue], base: String, headers: [String: String],
                      context: HostContext) throws -> [String: JSONValue] {
        let listing = try context.http(HTTPRequest(method: "GET", url: "\(base)/\(kind)", headers: headers))
        guard listing.isSuccess else { throw restError(listing, "list \(kind)") }
        if let existing = (try? listing.decodeJSON([[String: JSONValue]].self))?.first(where: { $0["name"]?.stringValue == name }) {
            context.log(.info, "runpod: reusing \(kind) \(name) (\(existing["id"]?.stringValue ?? "?"))")
            return existing
        }
        let created = try context.http(HTTPRequest(method: "POST", url: "\(base)/\(kind)", headers: headers, bodyData: try JSONEncoder().encode(body)))
        guard created.isSuccess, let object = try? created.decodeJSON([String: JSONValue].self), object["id"]?.stringValue != nil else {
            throw restError(created, "create \(kind) \(name)")
        }
        return object
    }

    func deploy(_ request: JobRequest, context: HostContext) throws -> SubmitResult {
        let spec = try DeploySpec(request.inputs)
        var env = spec.env
        for name in spec.secretEnv {
            guard let value = try context.secret(name) else {
                throw PluginError(code: "AUTH_MISSING", message: "secret_env names \(name), which is not set.", remediation: "Run `yard secrets set \(name)`.")
            }
            env[name] = value
        }
        let base = restURL(request.config)
        let headers = try headers(context)
        let template = try findOrCreate("templates", name: "\(spec.name)-template", body: [
            "name": .string("\(spec.name)-template"), "imageName": .string(spec.image), "isServerless": true,
            "containerDiskInGb": .number(Double(spec.containerDiskGB)), "env": .object(env.mapValues(JSONValue.string)),
        ], base: base, headers: headers, context: context)
        if let image = template["imageName"]?.stringValue, image != spec.image {
            throw PluginError(code: "CONTRACT_MISMATCH", message: "A template named \(spec.name)-template already exists with image \(image).",
                              remediation: "Choose another name, or delete the old template in the RunPod console.", field: "$.inputs.name")
        }
        let templateID = template["id"]?.stringValue ?? ""
        let endpoint = try findOrCreate("endpoints", name: spec.name, body: [
            "name": .string(spec.name), "templateId": .string(templateID), "gpuTypeIds": .array(spec.gpuTypeIDs.map(JSONValue.string)),
            "workersMin": .number(Double(spec.workersMin)), "workersMax": .number(Double(spec.workersMax)),
            "idleTimeout": .number(Double(spec.idleTimeout)), "executionTimeoutMs": .number(Double(spec.executionTimeoutMs)),
            "flashboot": .bool(spec.flashboot),
        ], base: base, headers: headers, context: context)
        let endpointID = endpoint["id"]?.stringValue ?? ""
        context.log(.info, "runpod: endpoint \(endpointID) created; waiting for it to answer /health")
        return .ref(["deploy": true, "endpoint_id": .string(endpointID), "template_id": .string(templateID)], nextPollAfterMs: 2000)
    }

    func pollDeploy(_ request: RefRequest, context: HostContext) throws -> PollResult {
        let endpointID = request.ref["endpoint_id"]?.stringValue ?? ""
        var config = request.config
        config["endpoint_id"] = .string(endpointID)
        let response = try context.http(HTTPRequest(method: "GET", url: try Config(config).url("health"), headers: try headers(context)))
        if response.status == 404 { return PollResult(state: .running, progress: 0.5, message: "endpoint \(endpointID) is provisioning", nextPollAfterMs: 5000) }
        guard response.isSuccess, let health = try? response.decodeJSON([String: JSONValue].self) else {
            throw failure(response, submitting: false)
        }
        var outputs: [String: JSONValue] = [
            "endpoint_id": .string(endpointID),
            "workers_idle": health["workers"]?["idle"] ?? 0, "workers_running": health["workers"]?["running"] ?? 0,
            "engine_config": ["endpoint_id": .string(endpointID)],
        ]
        if let template = request.ref["template_id"]?.stringValue { outputs["template_id"] = .string(template) }
        return PollResult(state: .succeeded, progress: 1, message: "endpoint \(endpointID) is up", outputs: outputs)
    }

    func cancelDeploy(_ request: RefRequest, context: HostContext) throws -> CancelResult {
        guard let endpointID = request.ref["endpoint_id"]?.stringValue else { return CancelResult(outcome: .notFound, charged: .no) }
        let response = try context.http(HTTPRequest(method: "DELETE", url: "\(restURL(request.config))/endpoints/\(endpointID)", headers: try headers(context)))
        if response.status == 404 { return CancelResult(outcome: .notFound, charged: .no) }
        guard response.isSuccess else { throw restError(response, "delete endpoint \(endpointID)") }
        return CancelResult(outcome: .cancelledRunning, charged: .no, message: "endpoint \(endpointID) deleted; its template is kept")
    }

    /// RunPod's webhook is the /status body, unsigned: anyone who learns the URL
    /// could post one. So the delivery only names the job; its state is read
    /// back from RunPod's own /status before anything is applied.
    func webhook(_ request: WebhookRequest, context: HostContext) throws -> WebhookUpdate {
        guard let body = try? JSONDecoder().decode([String: JSONValue].self, from: request.body), let id = body["id"]?.stringValue, !id.isEmpty else {
            throw PluginError(code: "WEBHOOK_REJECTED", message: "The delivery is not a RunPod job status (no id).", remediation: "Only RunPod's deliveries are accepted.")
        }
        let verified = try poll(RefRequest(ref: ["id": .string(id)], config: request.config), context: context)
        // A delivery does not say which capability (so which output map) the job
        // serves: for a finished job the host polls with the job's own ref, which does.
        return WebhookUpdate(match: ["id": .string(id)], update: verified, dedupeKey: "runpod:\(id):\(verified.state.rawValue)",
                             poll: verified.state == .succeeded ? true : nil)
    }
}
