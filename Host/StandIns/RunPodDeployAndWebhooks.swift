import Foundation
import SwitchyardHost

/// RunPod's REST API for the user's own account (templates and serverless
/// endpoints, https://rest.runpod.io/v1, served here under /rest/v1), and its
/// webhooks: the /status body POSTed, unsigned, to the `webhook` given on
/// /run, retried on failure (RunPod: twice, 10 s apart), duplicates included.
extension RunPodStandIn {
    public var restURL: String { "\(server.baseURL)/rest/v1" }
    public var deployedEndpoints: [[String: Any]] { lock.withLock { endpoints } }
    public var createdTemplates: [[String: Any]] { lock.withLock { templates } }

    func rest(_ request: ScriptedHTTPServer.Request, _ parts: [String]) -> ScriptedHTTPServer.Response {
        guard parts.first == "v1", parts.count >= 2 else { return .json(["error": "not found"], status: 404) }
        let body = (try? JSONSerialization.jsonObject(with: request.body)) as? [String: Any] ?? [:]
        switch (request.method, parts[1], parts.count) {
        case ("GET", "templates", 2): return .json(templates)
        case ("GET", "endpoints", 2): return .json(endpoints)
        case ("POST", "templates", 2):
            guard let name = body["name"] as? String, !name.isEmpty, let image = body["imageName"] as? String, !image.isEmpty else {
                return .json(["error": "name and imageName are required"], status: 400)
            }
            guard !templates.contains(where: { $0["name"] as? String == name }) else {
                return .json(["error": "Template name must be unique"], status: 400)
            }
            let template: [String: Any] = ["id": "tpl" + String(UUID().uuidString.lowercased().prefix(8)), "name": name, "imageName": image,
                                           "env": body["env"] ?? [:], "isServerless": body["isServerless"] as? Bool ?? false,
                                           "containerDiskInGb": body["containerDiskInGb"] ?? 50]
            templates.append(template)
            return .json(template)
        case ("POST", "endpoints", 2):
            guard let templateID = body["templateId"] as? String, templates.contains(where: { $0["id"] as? String == templateID }) else {
                return .json(["error": "templateId is required and must name one of your templates"], status: 400)
            }
            guard let gpus = body["gpuTypeIds"] as? [String], !gpus.isEmpty else { return .json(["error": "gpuTypeIds is required"], status: 400) }
            let minWorkers = body["workersMin"] as? Int ?? 0, maxWorkers = body["workersMax"] as? Int ?? 3
            guard minWorkers >= 0, maxWorkers >= max(1, minWorkers) else {
                return .json(["error": "workersMax must be at least 1 and at least workersMin"], status: 400)
            }
            let endpoint: [String: Any] = ["id": String(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(14)),
                                           "name": body["name"] ?? "", "templateId": templateID, "gpuTypeIds": gpus,
                                           "workersMin": minWorkers, "workersMax": maxWorkers, "idleTimeout": body["idleTimeout"] ?? 5,
                                           "executionTimeoutMs": body["executionTimeoutMs"] ?? 600_000]
            endpoints.append(endpoint)
            endpointCreatedMs[endpoint["id"] as? String ?? ""] = clock.nowUnixMs()
            return .json(endpoint)
        case ("DELETE", "endpoints", 3):
            let before = endpoints.count
            endpoints.removeAll { $0["id"] as? String == parts[2] }
            return before == endpoints.count ? .json(["error": "endpoint not found"], status: 404) : .init(status: 204)
        default:
            return .json(["error": "not found"], status: 404)
        }
    }

    /// Finishes a job at once (COMPLETED with output), as a worker would.
    public func complete(_ id: String) {
        lock.withLock {
            guard var job = jobs[id] else { return }
            let now = clock.nowUnixMs()
            job.startedMs = job.startedMs ?? now
            job.executionMs = Int(now - (job.startedMs ?? now))
            job.status = "COMPLETED"
            job.finishedMs = now
            jobs[id] = job
        }
    }

    /// A new endpoint answers 404 while it provisions (`provisioningMs`), then reports its workers.
    func deployedHealth(_ endpoint: [String: Any], now: Int64) -> ScriptedHTTPServer.Response {
        let id = endpoint["id"] as? String ?? ""
        guard now - (endpointCreatedMs[id] ?? now) >= faults.provisioningMs else { return .json(["error": "endpoint not found"], status: 404) }
        return .json(["jobs": ["completed": 0, "failed": 0, "inProgress": 0, "inQueue": 0, "retried": 0],
                      "workers": ["idle": endpoint["workersMin"] as? Int ?? 0, "running": 0]])
    }

    /// Sends the webhook of every finished job that asked for one (the /status
    /// body, unsigned), plus `faults.duplicateWebhooks` copies; answers the
    /// receiver's status per POST.
    @discardableResult
    public func deliverWebhooks() async -> [Int?] {
        let due: [(String, Data)] = lock.withLock {
            advanceAll(now: clock.nowUnixMs())
            return jobs.values.filter { $0.webhook != nil && ["COMPLETED", "FAILED", "TIMED_OUT", "CANCELLED"].contains($0.status) }.map { job in
                (job.webhook!, (try? JSONSerialization.data(withJSONObject: statusBody(job), options: [.sortedKeys])) ?? Data())
            }
        }
        let copies = lock.withLock { faults.duplicateWebhooks }
        var statuses: [Int?] = []
        for (url, body) in due {
            for _ in 0...copies { statuses.append(await Self.post(url: url, headers: ["content-type": "application/json"], body: body)) }
        }
        return statuses
    }
}
