import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SwitchyardJSON
import XCTest
@testable import SwitchyardHost
@testable import SwitchyardServer

/// /openapi.json against the running server, and live progress over SSE.
final class ServerContractTests: ServerTestCase {
    /// The schemas of the document's components, compiled against one
    /// response schema (its `#/components/schemas/…` refs become `#/$defs/…`).
    static func compile(_ schema: JSONValue, components: JSONValue) throws -> JSONSchema {
        func rewrite(_ value: JSONValue) -> JSONValue {
            switch value {
            case .object(let members):
                var out: [String: JSONValue] = [:]
                for (key, member) in members {
                    if key == "$ref", let ref = member.stringValue {
                        out[key] = .string(ref.replacingOccurrences(of: "#/components/schemas/", with: "#/$defs/"))
                    } else if key == "format", member.stringValue == "binary" {
                        continue
                    } else {
                        out[key] = rewrite(member)
                    }
                }
                return .object(out)
            case .array(let items): return .array(items.map(rewrite))
            default: return value
            }
        }
        return try JSONSchema(.object(["$defs": rewrite(components), "allOf": [rewrite(schema)]]))
    }

    func testEveryDocumentedOperationAnswersAsDocumented() async throws {
        let admin = try token("acme", .admin)
        let webhooks = server.webhooks
        try await withServer { api in
            let served = try await api.call(.get, "/openapi.json")
            XCTAssertEqual(served.status, 200)
            let document = try XCTUnwrap(served.json)
            XCTAssertEqual(document["openapi"]?.stringValue, "3.1.0")
            XCTAssertEqual(served.body.readableBytes, YardServer.openAPIDocument.count)
            let components = try XCTUnwrap(document["components"]?["schemas"])

            // Real objects to fill the path parameters with.
            let answer30 = try await api.submitEcho("for the walk", token: admin).json
            let job = try XCTUnwrap(answer30)
            let jobID = try XCTUnwrap(job["id"]?.stringValue)
            let finished = try await api.waitFinished(jobID, token: admin)
            let digest = String(try XCTUnwrap(finished["outputs"]?["file"]?["artifact"]?.stringValue).dropFirst(7))
            let values = ["id": jobID, "name": "ugc-product-clip", "sha256": digest, "engine": "echo"]
            // Two endpoints: the walk deletes one before it reads the other's log.
            let deleted = try webhooks.register(account: "acme", url: "http://127.0.0.1:9/deleted", events: []).endpoint.id
            let logged = try webhooks.register(account: "acme", url: "http://127.0.0.1:9/logged", events: []).endpoint.id
            func fill(_ path: String) -> String {
                var filled = path
                for (name, value) in values { filled = filled.replacingOccurrences(of: "{\(name)}", with: value) }
                // Ids of other kinds of object, one each.
                if path.hasPrefix("/api/v1/capabilities/") { filled = "/api/v1/capabilities/debug.echo" }
                if path.hasPrefix("/api/v1/engines/") || path.hasPrefix("/api/v1/plugins/") { filled = path.replacingOccurrences(of: "{id}", with: "echo") }
                if path.hasPrefix("/api/v1/runs/") { filled = path.replacingOccurrences(of: "{id}", with: "run_unknown") }
                if path.hasPrefix("/api/v1/webhook-endpoints/") { filled = path.replacingOccurrences(of: "{id}", with: path.hasSuffix("/deliveries") ? logged : deleted) }
                return filled
            }
            let bodies: [String: JSONValue] = [
                "connectEngine": ["secrets": ["ECHO_TOKEN": "walk-token"]],
                "submitJob": ["engine": "echo", "capability": "debug.echo", "inputs": ["text": "walked"]],
                "planPreset": ["inputs": [:]], "runPreset": ["inputs": [:]],
                "setBudget": ["limit_minor": 1000], "createWebhookEndpoint": ["url": "http://127.0.0.1:9/hook", "events": ["job.*"]],
            ]
            var walked = 0
            for (path, item) in try XCTUnwrap(document["paths"]?.objectValue).sorted(by: { $0.key < $1.key }) {
                for (method, operation) in try XCTUnwrap(item.objectValue) {
                    // The account's stream never ends by itself: testAccountStream reads it.
                    if path == "/api/v1/events/stream" || path == "/api/v1/events" { continue }
                    let operationID = operation["operationId"]?.stringValue ?? path
                    var answer: APIClient.Answer
                    let uri = fill(path)
                    switch (method, operationID) {
                    case ("post", "uploadArtifact"):
                        answer = try await api.call(.post, uri, token: admin, body: ByteBuffer(string: "walk"), headers: [.contentType: "text/plain"])
                    case ("post", "receiveWebhook"):
                        answer = try await api.call(.post, uri, body: ByteBuffer(string: "{}"), headers: [.contentType: "application/json"])
                    case ("post", _), ("put", _):
                        answer = try await api.call(method == "put" ? .put : .post, uri, token: admin, json: bodies[operationID] ?? [:])
                    case ("delete", _):
                        answer = try await api.call(.delete, uri, token: admin)
                    default:
                        answer = try await api.call(.get, uri, token: operation["security"]?.arrayValue?.isEmpty == false ? admin : nil)
                    }
                    let status = "\(answer.status)"
                    let responses = try XCTUnwrap(operation["responses"]?.objectValue, path)
                    guard let documented = responses[status] else {
                        XCTFail("\(method.uppercased()) \(uri) answered \(status), not documented (\(responses.keys.sorted())): \(answer.text.prefix(300))")
                        continue
                    }
                    XCTAssertLessThan(answer.status, 500, "\(method.uppercased()) \(uri): \(answer.text.prefix(300))")
                    if let content = documented["content"]?.objectValue, let (mediaType, entry) = content.first {
                        let served = answer.headers[.contentType] ?? ""
                        if mediaType != "*/*" {
                            XCTAssertTrue(served.hasPrefix(mediaType), "\(method.uppercased()) \(uri): Content-Type \(served), documented \(mediaType)")
                        }
                        if mediaType == "application/json", let schema = entry["schema"] {
                            let body = try XCTUnwrap(answer.json, "\(uri) answered no JSON: \(answer.text.prefix(200))")
                            let violations = try Self.compile(schema, components: components).validate(body)
                            XCTAssertEqual(violations, [], "\(method.uppercased()) \(uri) → \(status): \(answer.text.prefix(400))")
                        }
                    }
                    walked += 1
                }
            }
            XCTAssertGreaterThanOrEqual(walked, 38, "every operation but the endless streams")
        }
    }

    func testUndocumentedRoutesAreNotServed() async throws {
        // Every route the router knows is in the document (and the other way round, above).
        let document = try JSONValue(parsing: YardServer.openAPIDocument)
        let documented = Set(try XCTUnwrap(document["paths"]?.objectValue).flatMap { path, item in
            (item.objectValue ?? [:]).keys.map { "\($0.uppercased()) \(path)" }
        })
        let router = server.router()
        let served = Set(router.routes.map { route -> String in
            let path = "\(route.path)".split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
            return "\(route.method.rawValue) /\(path)"
        }).subtracting(["GET /api/v1/**", "POST /api/v1/**", "PUT /api/v1/**", "DELETE /api/v1/**"])
        XCTAssertEqual(served.subtracting(documented), [], "served but not documented")
        XCTAssertEqual(documented.subtracting(served), [], "documented but not served")
    }

    /// One SSE frame: its id, event name and data.
    struct Frame { var id: Int64?; var event: String; var data: JSONValue? }

    static func frames(_ text: String) -> [Frame] {
        text.components(separatedBy: "\n\n").compactMap { block in
            var frame = Frame(id: nil, event: "message", data: nil)
            var hasData = false
            for line in block.split(separator: "\n") {
                if line.hasPrefix("id: ") { frame.id = Int64(line.dropFirst(4)) }
                if line.hasPrefix("event: ") { frame.event = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { frame.data = try? JSONValue(parsing: String(line.dropFirst(6))); hasData = true }
            }
            return hasData ? frame : nil
        }
    }

    func testAJobsStreamRunsToItsEndAndResumesFromLastEventID() async throws {
        let run = try token("acme", .run), other = try token("beta", .run)
        try await withServer { api in
            let answer31 = try await api.submitEcho("streamed", token: run, polls: 3).json?["id"]?.stringValue
            let id = try XCTUnwrap(answer31)
            // Opened while the job runs: the stream ends by itself when the job does.
            let whole = try await api.call(.get, "/api/v1/jobs/\(id)/stream", token: run)
            XCTAssertEqual(whole.status, 200)
            XCTAssertEqual(whole.headers[.contentType], "text/event-stream")
            let frames = Self.frames(whole.text)
            let progress = frames.filter { $0.event == "progress" }
            XCTAssertGreaterThanOrEqual(progress.count, 2, whole.text)
            XCTAssertEqual(progress.map { $0.id ?? 0 }, progress.map { $0.id ?? 0 }.sorted(), "ids rise")
            XCTAssertTrue(progress.allSatisfy { $0.data?["job_id"]?.stringValue == id })
            XCTAssertEqual(frames.last?.event, "job")
            XCTAssertEqual(frames.last?.data?["state"]?.stringValue, "succeeded")

            let middle = try XCTUnwrap(progress[progress.count / 2].id)
            let resumed = try await api.call(.get, "/api/v1/jobs/\(id)/stream", token: run, headers: [HTTPField.Name("Last-Event-ID")!: "\(middle)"])
            let rest = Self.frames(resumed.text).filter { $0.event == "progress" }.compactMap(\.id)
            XCTAssertEqual(rest, progress.compactMap(\.id).filter { $0 > middle }, "exactly what came after the last event seen")
            let answer32 = try await api.call(.get, "/api/v1/jobs/\(id)/stream", token: other).status
            XCTAssertEqual(answer32, 404)
        }
    }

    func testTheAccountStreamCarriesOnlyTheAccountsWork() async throws {
        let acme = try token("acme", .run), beta = try token("beta", .run)
        try await withServer { api in
            let answer33 = try await api.submitEcho("acme's", token: acme, polls: 1).json?["id"]?.stringValue
            let mine = try XCTUnwrap(answer33)
            let answer34 = try await api.submitEcho("beta's", token: beta, polls: 1).json?["id"]?.stringValue
            let theirs = try XCTUnwrap(answer34)
            _ = try await api.waitFinished(mine, token: acme)
            _ = try await api.waitFinished(theirs, token: beta)
            let expected = try await api.call(.get, "/api/v1/jobs/\(mine)/events", token: acme).json?["events"]?.arrayValue?.count ?? 0
            XCTAssertGreaterThan(expected, 0)
            // Read over a plain loopback connection until acme's events have arrived, then hang up (the stream never ends by itself).
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(api.port)/api/v1/events/stream")
            request.headers.add(name: "Authorization", value: "Bearer \(acme)")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            XCTAssertEqual(response.status.code, 200)
            XCTAssertEqual(response.headers.first(name: "content-type"), "text/event-stream")
            var text = ""
            for try await chunk in response.body {
                text += String(buffer: chunk)
                if Self.frames(text).count >= expected { break }
            }
            XCTAssertEqual(Self.frames(text).count, expected, text)
            let ids = Set(Self.frames(text).compactMap { $0.data?["job_id"]?.stringValue })
            XCTAssertEqual(ids, [mine], text)
        }
    }
}
