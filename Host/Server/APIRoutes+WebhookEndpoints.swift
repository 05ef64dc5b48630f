import Foundation
import Hummingbird
import SwitchyardHost
import SwitchyardJSON

/// Outbound webhooks over the API: an account registers the URLs that hear
/// of its finished jobs and runs, and reads each endpoint's delivery log.
/// Another account's endpoint answers exactly like a missing one.
extension APIRoutes {
    func registerWebhookEndpoints(on api: RouterGroup<APIRequestContext>) {
        api.post("webhook-endpoints") { [self] request, context in try await createEndpoint(request, context) }
        api.get("webhook-endpoints") { [self] _, context in try listEndpoints(context) }
        api.delete("webhook-endpoints/:id") { [self] _, context in try deleteEndpoint(context) }
        api.get("webhook-endpoints/:id/deliveries") { [self] request, context in try endpointDeliveries(request, context) }
    }

    static func endpointView(_ endpoint: WebhookEndpoint) -> JSONValue {
        .object(["id": .string(endpoint.id), "url": .string(endpoint.url), "events": .array(endpoint.events.map(JSONValue.string)),
                 "created_at": JSONResponse.time(endpoint.createdAt)])
    }

    func ownedEndpoint(_ context: APIRequestContext, _ token: APIToken) throws -> WebhookEndpoint {
        let id = parameter(context, "id")
        guard id.hasPrefix("whe_"), let endpoint = try server.webhooks.endpoint(id, account: token.account) else {
            throw APIError("WEBHOOK_ENDPOINT_NOT_FOUND", "No webhook endpoint \(SafePath.shown(id)) for account \(token.account).",
                           remediation: "List the account's endpoints with GET /api/v1/webhook-endpoints.", field: "id")
        }
        return endpoint
    }

    func createEndpoint(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let token = try context.require(.run)
        let body = try await jsonBody(request, context)
        guard let url = body["url"]?.stringValue else {
            throw APIError("BODY_INVALID", "Send the endpoint as {\"url\":\"https://…\",\"events\":[\"job.*\",\"run.*\"]}.",
                           remediation: "url is where finished jobs and runs are posted.", field: "url")
        }
        var events: [String] = []
        if let given = body["events"] {
            guard let items = given.arrayValue, items.count <= 20, items.allSatisfy({ $0.stringValue != nil }) else {
                throw APIError("BODY_INVALID", "events must be an array of event names.", remediation: "Send e.g. [\"job.*\", \"run.succeeded\"].", field: "events")
            }
            events = items.compactMap(\.stringValue)
        }
        guard try server.webhooks.endpoints(account: token.account).count < 20 else {
            throw APIError("WEBHOOK_ENDPOINT_LIMIT", "Account \(token.account) has 20 webhook endpoints, the most it may have.",
                           remediation: "Delete one with DELETE /api/v1/webhook-endpoints/ID.", status: 409)
        }
        let (endpoint, secret) = try server.webhooks.register(account: token.account, url: url, events: events)
        guard case .object(var view) = Self.endpointView(endpoint) else { return JSONResponse.make(.null) }
        // Shown this once: the server signs with it and never answers it again.
        view["secret"] = .string(secret)
        return JSONResponse.make(.object(view), status: 201, headers: [.location: "/api/v1/webhook-endpoints/\(endpoint.id)/deliveries"])
    }

    func listEndpoints(_ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        return JSONResponse.make(.object(["endpoints": .array(try server.webhooks.endpoints(account: token.account).map(Self.endpointView))]))
    }

    func deleteEndpoint(_ context: APIRequestContext) throws -> Response {
        let token = try context.require(.run)
        let endpoint = try ownedEndpoint(context, token)
        try server.webhooks.remove(endpoint.id, account: token.account)
        return JSONResponse.make(.object(["id": .string(endpoint.id), "deleted": .bool(true)]))
    }

    func endpointDeliveries(_ request: Request, _ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        let endpoint = try ownedEndpoint(context, token)
        let rows = try server.webhooks.deliveries(endpoint: endpoint.id, limit: limit(request))
        return JSONResponse.make(.object(["endpoint": Self.endpointView(endpoint), "deliveries": .array(rows.map { delivery in
            .object(["id": .string(delivery.id), "event_id": .string(delivery.eventID), "type": .string(delivery.eventType),
                     "state": .string(delivery.state), "attempts": .number(Double(delivery.attempts)),
                     "created_at": JSONResponse.time(delivery.createdAt), "next_attempt_at": JSONResponse.time(delivery.nextAttemptAt),
                     "delivered_at": JSONResponse.time(delivery.deliveredAt),
                     "last_status": delivery.lastStatus.map { JSONValue.number(Double($0)) } ?? JSONValue.null,
                     "last_error": delivery.lastError.map(JSONValue.string) ?? JSONValue.null,
                     "log": .array(delivery.log.map { attempt in
                         .object(["attempt": .number(Double(attempt.attempt)), "at": JSONResponse.time(attempt.at),
                                  "status": attempt.status.map { JSONValue.number(Double($0)) } ?? JSONValue.null,
                                  "error": attempt.error.map(JSONValue.string) ?? JSONValue.null,
                                  "duration_ms": attempt.durationMs.map { JSONValue.number(Double($0)) } ?? JSONValue.null])
                     })])
        })]))
    }
}
