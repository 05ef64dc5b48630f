import Foundation
import SwitchyardPluginSDK

/// ComfyUI's HTTP API through the host's http service. A local engine bills
/// nothing, so every failure here is `charged: no`; transport failures and
/// 5xx are retryable (the prompt id makes a repeated submit harmless).
struct ComfyUIServer {
    let config: ComfyUIConfig
    let context: HostContext

    func get(_ path: String, timeoutMs: Int? = nil) throws -> HTTPResponse {
        try send(HTTPRequest(method: "GET", url: config.url(path), headers: ["accept": "application/json"], timeoutMs: timeoutMs))
    }

    func post(_ path: String, json: JSONValue) throws -> HTTPResponse {
        try send(HTTPRequest(method: "POST", url: config.url(path), headers: ["content-type": "application/json"],
                             bodyData: try JSONEncoder().encode(json)))
    }

    func send(_ request: HTTPRequest) throws -> HTTPResponse {
        do {
            return try context.http(request)
        } catch var error as PluginError where ["ENGINE_UNREACHABLE", "ENGINE_TIMEOUT"].contains(error.code) {
            error.charged = .no
            error.remediation = "Check that ComfyUI is running at \(config.baseURL) (config base_url); the host retries."
            throw error
        }
    }

    static func unavailable(_ response: HTTPResponse, _ what: String) -> PluginError {
        PluginError(code: "ENGINE_UNAVAILABLE", message: "ComfyUI answered \(what) with HTTP \(response.status): \(String(decoding: response.body.prefix(200), as: UTF8.self))",
                    remediation: "Retried automatically; see ComfyUI's console for the cause.", retryable: true, charged: .no)
    }

    /// A 2xx JSON object, or a retryable error (5xx, a cut-off or malformed body).
    func json(_ response: HTTPResponse, what: String) throws -> [String: JSONValue] {
        guard response.isSuccess else { throw Self.unavailable(response, what) }
        guard let object = try? response.decodeJSON([String: JSONValue].self) else {
            throw PluginError(code: "ENGINE_ERROR", message: "ComfyUI's answer to \(what) is not a JSON object.",
                              remediation: "Retried automatically.", retryable: true, charged: .no)
        }
        return object
    }

    /// The history entry of a prompt, or nil when ComfyUI answers `{}` (unknown,
    /// still queued, or forgotten by a restart: history lives in memory).
    func history(_ promptID: String) throws -> [String: JSONValue]? {
        let answer = try json(try get("history/\(promptID)"), what: "/history")
        return answer[promptID]?.objectValue
    }

    struct Queue {
        var running: [String]
        var pending: [String]
    }

    /// Prompt ids running and waiting; queue items are [number, prompt_id, prompt, extra_data, outputs].
    func queue() throws -> Queue {
        let answer = try json(try get("queue"), what: "/queue")
        func ids(_ key: String) -> [(Double, String)] {
            (answer[key]?.arrayValue ?? []).compactMap { item in
                guard let parts = item.arrayValue, parts.count > 1, let id = parts[1].stringValue else { return nil }
                return (parts[0].doubleValue ?? 0, id)
            }
        }
        return Queue(running: ids("queue_running").map(\.1), pending: ids("queue_pending").sorted { $0.0 < $1.0 }.map(\.1))
    }

    /// Whether ComfyUI knows the prompt at all (history, running or waiting).
    /// Queue first, then history: a prompt only moves from the queue into the
    /// history, so one that leaves the queue between the two reads is still seen.
    func knows(_ promptID: String) throws -> Bool {
        let queue = try queue()
        if queue.running.contains(promptID) || queue.pending.contains(promptID) { return true }
        return try history(promptID) != nil
    }

    /// Uploads a file into ComfyUI's input folder (POST /upload/image, multipart)
    /// and returns the name a LoadImage node refers to it by.
    func upload(_ data: Data, name: String, mediaType: String) throws -> String {
        let boundary = "switchyard-\(name.filter { $0.isLetter || $0.isNumber })"
        var body = Data()
        func part(_ disposition: String, _ type: String?, _ bytes: Data) {
            body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; \(disposition)\r\n".utf8))
            if let type { body.append(Data("Content-Type: \(type)\r\n".utf8)) }
            body.append(Data("\r\n".utf8))
            body.append(bytes)
            body.append(Data("\r\n".utf8))
        }
        part("name=\"image\"; filename=\"\(name)\"", mediaType, data)
        part("name=\"type\"", nil, Data("input".utf8))
        // Names are content addresses, so overwriting an existing file changes nothing.
        part("name=\"overwrite\"", nil, Data("true".utf8))
        body.append(Data("--\(boundary)--\r\n".utf8))
        let response = try send(HTTPRequest(method: "POST", url: config.url("upload/image"),
                                            headers: ["content-type": "multipart/form-data; boundary=\(boundary)"], bodyData: body))
        let answer = try json(response, what: "/upload/image")
        guard let stored = answer["name"]?.stringValue else {
            throw PluginError(code: "ENGINE_ERROR", message: "ComfyUI's /upload/image answer names no file.", remediation: "Retried automatically.",
                              retryable: true, charged: .no)
        }
        let subfolder = answer["subfolder"]?.stringValue ?? ""
        return subfolder.isEmpty ? stored : "\(subfolder)/\(stored)"
    }

    /// An output file's bytes (GET /view); nil when ComfyUI no longer has it.
    func view(_ file: JSONValue) throws -> Data? {
        var components = URLComponents()
        components.queryItems = [URLQueryItem(name: "filename", value: file["filename"]?.stringValue ?? ""),
                                 URLQueryItem(name: "subfolder", value: file["subfolder"]?.stringValue ?? ""),
                                 URLQueryItem(name: "type", value: file["type"]?.stringValue ?? "output")]
        let response = try send(HTTPRequest(method: "GET", url: config.url("view") + (components.percentEncodedQuery.map { "?\($0)" } ?? "")))
        if response.status == 404 { return nil }
        guard response.isSuccess else { throw Self.unavailable(response, "/view") }
        return response.body
    }
}
