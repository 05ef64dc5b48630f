import Crypto
import Foundation

/// The Hugging Face Hub, its LFS CDN, the inference router and Civitai's
/// download API on loopback (PROVIDERS.md: Hugging Face), faithful enough
/// that the official `huggingface_hub` client downloads from it through
/// `HF_ENDPOINT`:
///
/// - `GET /api/whoami-v2`; `GET /api/models/{repo}[/revision/{rev}]` (sha,
///   siblings, gated, private, cardData.license);
///   `GET /api/models/{repo}/tree/{rev}[/{dir}]?recursive=` (files with
///   `oid`, `size`, `lfs:{oid,size,pointerSize}`; directories).
/// - `HEAD|GET /{repo}/resolve/{rev}/{path}`: small files answered directly
///   (`ETag` = git blob id); LFS files 302 to the CDN on another host name
///   with `X-Linked-Etag` (sha256) and `X-Linked-Size`; `X-Repo-Commit` on both.
/// - `HEAD|GET /cdn/{sha256}`: the bytes, with `Range` (206, 416).
/// - Failures: gated (401 not logged in, 403 access not granted), private and
///   missing repos (401 without a token, 404 with one: the Hub never tells
///   them apart), `X-Error-Code` RepoNotFound / RevisionNotFound /
///   EntryNotFound / GatedRepo, invalid tokens, 429 with Retry-After, a
///   connection dropped mid-body, a throttled body (to kill a client mid-file),
///   cut-off JSON.
/// - `POST /hf-inference/models/{model}` (router): image bytes for
///   text-to-image, 503 `{"error","estimated_time"}` while a model loads,
///   402 when the monthly credits are spent, 429, 404 for unknown models.
/// - Civitai: `GET /api/v1/model-versions/{id}`, `GET /api/download/models/{id}`
///   (Bearer token when the version needs login, 307 to the CDN).
///
/// Every request is recorded (method, path, headers) so tests can check,
/// e.g., that a resumed download sent `Range`.
public final class HubStandIn: @unchecked Sendable {
    public struct File: Sendable {
        public var path: String
        public var data: Data
        /// Stored in LFS: resolved through a CDN redirect, announced by sha256.
        public var lfs: Bool
        public init(path: String, data: Data, lfs: Bool) {
            self.path = path
            self.data = data
            self.lfs = lfs
        }
        public var sha256: String { SHA256.hash(data: data).hexString }
        /// git's blob id: sha1("blob <size>\0" + bytes).
        public var gitOID: String { Insecure.SHA1.hash(data: Data("blob \(data.count)\0".utf8) + data).hexString }
    }

    public struct Repo: Sendable {
        public var id: String
        public var files: [File]
        /// Branch and tag names → commit. "main" is always present.
        public var refs: [String: String]
        public var gated = false
        public var isPrivate = false
        public var license: String?
        public var pipelineTag: String?
        public var tags: [String] = []
        /// Users who may read the repo when it is private or gated.
        public var allowedUsers: Set<String> = []

        public init(id: String, files: [File], commit: String? = nil) {
            self.id = id
            self.files = files
            let digest = SHA256.hash(data: Data(id.utf8) + Data(files.map(\.path).joined(separator: "\n").utf8)).hexString
            self.refs = ["main": commit ?? String(digest.prefix(40))]
        }

        public var commit: String { refs["main"] ?? "" }
    }

    public struct CivitaiVersion: Sendable {
        public var id: Int
        public var modelID: Int
        public var name: String
        public var type: String
        public var baseModel: String
        public var files: [File]
        public var requiresLogin = false
        public init(id: Int, modelID: Int, name: String, type: String, baseModel: String, files: [File]) {
            self.id = id
            self.modelID = modelID
            self.name = name
            self.type = type
            self.baseModel = baseModel
            self.files = files
        }
    }

    public struct Faults: Sendable {
        /// The next N requests to the Hub answer 429 with Retry-After.
        public var rateLimitNext = 0
        public var retryAfterSeconds = 1
        /// The next N CDN bodies stop after this many bytes and the connection is dropped.
        public var dropNextBodies = 0
        public var dropAfterBytes = 1 << 20
        /// CDN bodies are sent at this rate (bytes per second), to give a test time to kill a client.
        public var throttleBytesPerSecond: Int?
        /// Tree listings are paginated like the Hub's (1000 entries, then a `Link: <…>; rel="next"`).
        public var treePageSize = 1000
        /// The next N /api/models answers are cut-off JSON with status 200.
        public var malformedNext = 0
        /// The next N router calls answer 429 with Retry-After (the router counts apart from the Hub).
        public var routerRateLimitNext = 0
        /// Router calls answer 402: the account's monthly inference credits are spent.
        public var creditsExhausted = false
        /// The next N router calls answer 503 "currently loading" with estimated_time.
        public var loadingNext = 0
        public var estimatedTimeSeconds = 0.05
        public init() {}
    }

    public struct Recorded: Sendable {
        public var method: String
        public var path: String
        public var query: String
        public var headers: [String: String]
    }

    /// A read token of the user allowed into every gated and private repo.
    public let token: String
    /// A valid token of a user who has not been granted access to gated repos.
    public let ungrantedToken: String
    /// Accept any non-empty Bearer token as `token` (for `yard plugin test`, which sends canaries).
    public var acceptAnyToken = false

    private let lock = NSLock()
    private var repos: [String: Repo] = [:]
    private var civitai: [Int: CivitaiVersion] = [:]
    private var faultState = Faults()
    private var recorded: [Recorded] = []
    private var server: ScriptedHTTPServer?
    public private(set) var port = 0

    public init(token: String = "hf_STANDIN_read_token_000000000000", ungrantedToken: String = "hf_STANDIN_other_user_token_0000000") {
        self.token = token
        self.ungrantedToken = ungrantedToken
    }

    /// The Hub's base URL (what HF_ENDPOINT is set to).
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// The CDN: the same server under another host name, as the real CDN is another host.
    public var cdnBaseURL: String { "http://localhost:\(port)" }
    public var requests: [Recorded] { lock.withLock { recorded } }
    public var faults: Faults { lock.withLock { faultState } }
    public func configure(_ change: (inout Faults) -> Void) { lock.withLock { change(&faultState) } }
    public func add(_ repo: Repo) { lock.withLock { repos[repo.id] = repo } }
    public func add(_ version: CivitaiVersion) { lock.withLock { civitai[version.id] = version } }
    public func repo(_ id: String) -> Repo? { lock.withLock { repos[id] } }

    // MARK: sample data

    /// Deterministic bytes (xorshift), so every run serves the same files.
    public static func bytes(_ count: Int, seed: UInt64) -> Data {
        var state = seed | 1
        var bytes = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            bytes[i] = UInt8(truncatingIfNeeded: state)
        }
        return Data(bytes)
    }

    /// The repos `yard standin hf` serves and the tests start from: a
    /// multi-file diffusers repo (LFS weights in sub-folders), a gated and a
    /// private repo, and a Civitai LoRA.
    public func addSampleRepos(weightBytes: Int = 3 << 20) {
        var tiny = Repo(id: "hf-internal-testing/tiny-stable-diffusion-pipe", files: [
            File(path: ".gitattributes", data: Data("*.safetensors filter=lfs diff=lfs merge=lfs -text\n".utf8), lfs: false),
            File(path: "README.md", data: Data("---\nlicense: apache-2.0\nlibrary_name: diffusers\n---\n# tiny pipe\n".utf8), lfs: false),
            File(path: "model_index.json", data: Data(#"{"_class_name":"StableDiffusionPipeline","unet":["diffusers","UNet2DConditionModel"]}"#.utf8), lfs: false),
            File(path: "unet/config.json", data: Data(#"{"sample_size":32,"in_channels":4}"#.utf8), lfs: false),
            File(path: "unet/diffusion_pytorch_model.safetensors", data: Self.bytes(weightBytes, seed: 11), lfs: true),
            File(path: "text_encoder/model.safetensors", data: Self.bytes(weightBytes / 3 + 17, seed: 23), lfs: true),
        ])
        tiny.license = "apache-2.0"
        tiny.pipelineTag = "text-to-image"
        tiny.tags = ["diffusers", "license:apache-2.0"]
        tiny.refs["v1.0"] = tiny.commit
        add(tiny)
        var gated = Repo(id: "standin/gated-model", files: [
            File(path: "config.json", data: Data(#"{"gated":true}"#.utf8), lfs: false),
            File(path: "model.safetensors", data: Self.bytes(64 << 10, seed: 5), lfs: true),
        ])
        gated.gated = true
        gated.license = "other"
        gated.pipelineTag = "text-generation"
        gated.allowedUsers = ["standin-user"]
        add(gated)
        var secret = Repo(id: "standin/private-model", files: [File(path: "config.json", data: Data("{}".utf8), lfs: false)])
        secret.isPrivate = true
        secret.allowedUsers = ["standin-user"]
        add(secret)
        add(CivitaiVersion(id: 128713, modelID: 4384, name: "v1.0", type: "LORA", baseModel: "SDXL 1.0",
                           files: [File(path: "detail_tweaker.safetensors", data: Self.bytes(256 << 10, seed: 41), lfs: true),
                                   File(path: "detail_tweaker_example.png", data: Self.bytes(4 << 10, seed: 43), lfs: true)]))
    }

    // MARK: server

    /// Starts listening on 127.0.0.1 (`port` 0: an ephemeral one); returns once bound.
    /// The server also answers on `localhost`, which serves as the CDN host.
    public func start(port requested: Int = 0) async throws {
        let server = ScriptedHTTPServer { [unowned self] request in
            lock.withLock { recorded.append(Recorded(method: request.method, path: request.path, query: request.query, headers: request.headers)) }
            let answer = respond(Incoming(method: request.method, path: request.path, query: request.query, headers: request.headers, body: request.body))
            return ScriptedHTTPServer.Response(status: answer.status, headers: answer.headers, body: answer.body,
                                               bytesPerSecond: answer.throttle, dropAfter: answer.dropAfter)
        }
        try await server.start(port: requested)
        self.server = server
        port = server.port
    }

    public func waitUntilStopped() async { await server?.waitUntilStopped() }

    public func stop() async { await server?.stop() }

    struct Incoming {
        var method: String
        var path: String
        var query: String
        var headers: [String: String]
        var body: Data
    }

    /// An answer; also the error side of the auth checks (`Result` needs an Error).
    struct Answer: Error {
        var status: Int
        var headers: [String: String] = [:]
        var body = Data()
        /// Stream `body` slowly, or stop after `dropAfter` bytes and drop the connection.
        var throttle: Int?
        var dropAfter: Int?

        static func json(_ object: Any, status: Int = 200, headers: [String: String] = [:]) -> Answer {
            var all = headers
            all["content-type"] = "application/json; charset=utf-8"
            return Answer(status: status, headers: all, body: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
        }
    }

    // MARK: routing

    func respond(_ request: Incoming) -> Answer {
        let path = request.path
        if path.hasPrefix("/cdn/") { return cdn(request) }
        if path.hasPrefix("/hf-inference/models/") { return inference(request) }
        if path.hasPrefix("/api/v1/model-versions/") || path.hasPrefix("/api/download/models/") { return civitaiRoute(request) }
        if let limited = rateLimited() { return limited }
        if path == "/api/whoami-v2" { return whoami(request) }
        if path.hasPrefix("/api/models/") {
            let malformed: Bool = lock.withLock {
                guard faultState.malformedNext > 0 else { return false }
                faultState.malformedNext -= 1
                return true
            }
            if malformed { return Answer(status: 200, headers: ["content-type": "application/json"], body: Data(#"{"_id":"6540","id":"#.utf8)) }
            return modelsAPI(request)
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        if parts.count >= 5, parts[2] == "resolve" { return resolve(request, parts: parts) }
        return .json(["error": "Sorry, we can't find the page you are looking for."], status: 404)
    }

    func rateLimited() -> Answer? {
        lock.withLock {
            guard faultState.rateLimitNext > 0 else { return nil }
            faultState.rateLimitNext -= 1
            return .json(["error": "You have exceeded our hourly quotas for action: resolve. We invite you to retry later."], status: 429,
                         headers: ["retry-after": String(faultState.retryAfterSeconds), "ratelimit": "\"api\";r=0;t=\(faultState.retryAfterSeconds)"])
        }
    }

    /// The user a request speaks for: nil without a token; .failure for an invalid one.
    func user(_ request: Incoming) -> Result<String?, Answer> {
        guard let auth = request.headers["authorization"], !auth.isEmpty else { return .success(nil) }
        let bearer = auth.hasPrefix("Bearer ") ? String(auth.dropFirst(7)) : ""
        if bearer == token || (acceptAnyToken && !bearer.isEmpty && bearer != ungrantedToken) { return .success("standin-user") }
        if bearer == ungrantedToken { return .success("other-user") }
        return .failure(.json(["error": "Invalid credentials in Authorization header"], status: 401,
                              headers: ["x-error-message": "Invalid credentials in Authorization header"]))
    }

    func whoami(_ request: Incoming) -> Answer {
        switch user(request) {
        case .failure(let answer): return answer
        case .success(nil): return .json(["error": "Invalid credentials in Authorization header"], status: 401, headers: ["x-error-message": "Invalid credentials in Authorization header"])
        case .success(let name?):
            return .json(["type": "user", "id": "64f0\(name.count)", "name": name, "fullname": name, "isPro": false, "orgs": [],
                          "auth": ["type": "access_token", "accessToken": ["displayName": "standin", "role": "read"]]])
        }
    }

    static let repoNotFoundMessage = "Repository not found"

    /// The repo as this caller may see it, or the Hub's answer for why not.
    /// Private and missing repos look the same: 401 without a token, 404 with one.
    func visibleRepo(_ id: String, _ request: Incoming, forFiles: Bool) -> Result<Repo, Answer> {
        let who: String?
        switch user(request) {
        case .failure(let answer): return .failure(answer)
        case .success(let name): who = name
        }
        let repo = lock.withLock { repos[id] }
        let visible = repo.map { !$0.isPrivate || (who.map { $0 == "standin-user" || repo?.allowedUsers.contains($0) == true } ?? false) } ?? false
        guard let repo, visible else {
            let status = who == nil ? 401 : 404
            return .failure(.json(["error": Self.repoNotFoundMessage], status: status,
                                  headers: ["x-error-code": "RepoNotFound", "x-error-message": Self.repoNotFoundMessage]))
        }
        if forFiles, repo.gated {
            guard let who else {
                let message = "Access to model \(id) is restricted. You must have access to it and be authenticated to access it. Please log in."
                return .failure(.json(["error": message], status: 401, headers: ["x-error-code": "GatedRepo", "x-error-message": message]))
            }
            guard who == "standin-user" || repo.allowedUsers.contains(who) else {
                let message = "Access to model \(id) is restricted and you are not in the authorized list. Visit \(baseURL)/\(id) to ask for access."
                return .failure(.json(["error": message], status: 403, headers: ["x-error-code": "GatedRepo", "x-error-message": message]))
            }
        }
        return .success(repo)
    }

    func commit(of repo: Repo, _ revision: String) -> String? {
        let rev = revision.removingPercentEncoding ?? revision
        if let commit = repo.refs[rev] { return commit }
        if rev.count == 40, repo.refs.values.contains(rev) { return rev }
        return nil
    }

    static func revisionNotFound(_ rev: String) -> Answer {
        let message = "Invalid rev id: \(rev)"
        return .json(["error": message], status: 404, headers: ["x-error-code": "RevisionNotFound", "x-error-message": message])
    }

    func modelsAPI(_ request: Incoming) -> Answer {
        let rest = String(request.path.dropFirst("/api/models/".count)).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard rest.count >= 2 else { return .json(["error": "Not found"], status: 404) }
        let id = "\(rest[0])/\(rest[1])"
        let repo: Repo
        switch visibleRepo(id, request, forFiles: false) {
        case .failure(let answer): return answer
        case .success(let found): repo = found
        }
        if rest.count == 2 || (rest.count >= 4 && rest[2] == "revision") {
            let rev = rest.count >= 4 ? rest[3...].joined(separator: "/") : "main"
            guard let sha = commit(of: repo, rev) else { return Self.revisionNotFound(rev) }
            var info: [String: Any] = [
                "_id": String(sha.prefix(24)), "id": repo.id, "modelId": repo.id, "author": String(repo.id.split(separator: "/")[0]),
                "sha": sha, "lastModified": "2026-11-01T12:00:00.000Z", "createdAt": "2026-10-01T12:00:00.000Z",
                "private": repo.isPrivate, "gated": repo.gated ? "manual" : false, "disabled": false, "downloads": 42, "likes": 3,
                "tags": repo.tags, "siblings": repo.files.map { ["rfilename": $0.path] },
                "cardData": repo.license.map { ["license": $0] } ?? [:], "usedStorage": repo.files.reduce(0) { $0 + $1.data.count },
            ]
            if let tag = repo.pipelineTag { info["pipeline_tag"] = tag }
            if repo.tags.contains("diffusers") { info["library_name"] = "diffusers" }
            return .json(info)
        }
        guard rest.count >= 4, rest[2] == "tree" else { return .json(["error": "Not found"], status: 404) }
        let rev = rest[3]
        guard commit(of: repo, rev) != nil else { return Self.revisionNotFound(rev) }
        let folder = rest.count > 4 ? rest[4...].joined(separator: "/").removingPercentEncoding ?? "" : ""
        let recursive = request.query.split(separator: "&").contains { $0.lowercased() == "recursive=true" || $0 == "recursive=1" }
        let prefix = folder.isEmpty ? "" : folder + "/"
        var entries: [[String: Any]] = []
        var folders = Set<String>()
        for file in repo.files where file.path.hasPrefix(prefix) {
            let relative = String(file.path.dropFirst(prefix.count))
            let components = relative.split(separator: "/").map(String.init)
            // Folders along the way, as the Hub lists them.
            for depth in 1..<max(components.count, 1) where recursive || depth == 1 {
                let dir = prefix + components.prefix(depth).joined(separator: "/")
                if folders.insert(dir).inserted {
                    entries.append(["type": "directory", "oid": String(SHA256.hash(data: Data(dir.utf8)).hexString.prefix(40)), "size": 0, "path": dir])
                }
            }
            guard recursive || components.count == 1 else { continue }
            var entry: [String: Any] = ["type": "file", "path": file.path, "size": file.data.count]
            if file.lfs {
                entry["oid"] = Insecure.SHA1.hash(data: Data("version https://git-lfs.github.com/spec/v1\noid sha256:\(file.sha256)\nsize \(file.data.count)\n".utf8)).hexString
                entry["lfs"] = ["oid": file.sha256, "size": file.data.count, "pointerSize": 134]
            } else {
                entry["oid"] = file.gitOID
            }
            entries.append(entry)
        }
        if !folder.isEmpty, entries.isEmpty {
            let message = "\(folder) does not exist on \"\(rev)\""
            return .json(["error": message], status: 404, headers: ["x-error-code": "EntryNotFound", "x-error-message": message])
        }
        let pageSize = max(1, faults.treePageSize)
        let parameters = request.query.split(separator: "&").map(String.init)
        let start = parameters.first { $0.hasPrefix("cursor=") }.flatMap { Int($0.dropFirst("cursor=".count)) } ?? 0
        let page = Array(entries.dropFirst(start).prefix(pageSize))
        guard start + pageSize < entries.count else { return .json(page) }
        let next = (parameters.filter { !$0.hasPrefix("cursor=") } + ["cursor=\(start + pageSize)"]).joined(separator: "&")
        return .json(page, headers: ["link": "<\(baseURL)\(request.path)?\(next)>; rel=\"next\""])
    }

    func resolve(_ request: Incoming, parts: [String]) -> Answer {
        let id = "\(parts[0])/\(parts[1])"
        let repo: Repo
        switch visibleRepo(id, request, forFiles: true) {
        case .failure(let answer): return answer
        case .success(let found): repo = found
        }
        let rev = parts[3].removingPercentEncoding ?? parts[3]
        guard let sha = commit(of: repo, rev) else { return Self.revisionNotFound(rev) }
        let filePath = parts[4...].joined(separator: "/").removingPercentEncoding ?? ""
        guard let file = repo.files.first(where: { $0.path == filePath }) else {
            let message = "\(filePath) does not exist on \"\(rev)\""
            return .json(["error": message], status: 404, headers: ["x-error-code": "EntryNotFound", "x-error-message": message, "x-repo-commit": sha])
        }
        if file.lfs {
            // The Hub answers LFS files with a signed CDN URL on another host; the
            // metadata rides on the redirect itself.
            let location = "\(cdnBaseURL)/cdn/\(file.sha256)?X-Amz-Expires=3600&X-Amz-Signature=standin&response-content-disposition=attachment%3B+filename%3D%22\(file.path.split(separator: "/").last ?? "")%22"
            let note = Data("Found. Redirecting to \(location)".utf8)
            return Answer(status: 302, headers: ["location": location, "x-repo-commit": sha, "x-linked-etag": "\"\(file.sha256)\"",
                                                 "x-linked-size": String(file.data.count), "etag": "\"\(file.gitOID)\"",
                                                 "content-type": "text/plain; charset=utf-8", "accept-ranges": "bytes"], body: note)
        }
        var answer = ranged(file.data, request)
        answer.headers["etag"] = "\"\(file.gitOID)\""
        answer.headers["x-repo-commit"] = sha
        return answer
    }

    func cdn(_ request: Incoming) -> Answer {
        let digest = String(request.path.dropFirst("/cdn/".count))
        let data = lock.withLock { () -> Data? in
            for repo in repos.values { if let file = repo.files.first(where: { $0.lfs && $0.sha256 == digest }) { return file.data } }
            for version in civitai.values { if let file = version.files.first(where: { $0.sha256 == digest }) { return file.data } }
            return nil
        }
        guard let data else { return Answer(status: 404, headers: ["content-type": "application/xml"], body: Data("<Error><Code>NoSuchKey</Code></Error>".utf8)) }
        var answer = ranged(data, request)
        answer.headers["etag"] = "\"\(digest)\""
        guard request.method == "GET", answer.status / 100 == 2 else { return answer }
        lock.withLock {
            answer.throttle = faultState.throttleBytesPerSecond
            if faultState.dropNextBodies > 0, answer.body.count > faultState.dropAfterBytes {
                faultState.dropNextBodies -= 1
                answer.dropAfter = faultState.dropAfterBytes
            }
        }
        return answer
    }

    /// 200 with the whole body, or 206 for a satisfiable `Range: bytes=a-[b]`, or 416.
    func ranged(_ data: Data, _ request: Incoming) -> Answer {
        var headers = ["accept-ranges": "bytes", "content-type": "application/octet-stream"]
        guard let range = request.headers["range"], range.hasPrefix("bytes=") else { return Answer(status: 200, headers: headers, body: data) }
        let spec = range.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
        guard spec.count == 2, let start = Int(spec[0]), start < data.count else {
            headers["content-range"] = "bytes */\(data.count)"
            return Answer(status: 416, headers: headers)
        }
        let end = min(Int(spec[1]) ?? (data.count - 1), data.count - 1)
        headers["content-range"] = "bytes \(start)-\(end)/\(data.count)"
        return Answer(status: 206, headers: headers, body: data.subdata(in: start..<(end + 1)))
    }

    // MARK: inference router

    func inference(_ request: Incoming) -> Answer {
        let model = String(request.path.dropFirst("/hf-inference/models/".count))
        switch user(request) {
        case .failure(let answer): return answer
        case .success(nil):
            return .json(["error": "You must provide a valid Hugging Face token (Authorization: Bearer hf_...)."], status: 401)
        case .success:
            break
        }
        let limited: Int? = lock.withLock {
            guard faultState.routerRateLimitNext > 0 else { return nil }
            faultState.routerRateLimitNext -= 1
            return faultState.retryAfterSeconds
        }
        if let limited {
            return .json(["error": "Rate limit reached. You reached free usage limit (reset hourly)."], status: 429, headers: ["retry-after": String(limited)])
        }
        if faults.creditsExhausted {
            return .json(["error": "You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO to get 20x more monthly included credits."], status: 402)
        }
        if model.hasPrefix("standin/missing") { return .json(["error": "Model \(model) does not exist"], status: 404) }
        let loading: Double? = lock.withLock {
            guard faultState.loadingNext > 0 else { return nil }
            faultState.loadingNext -= 1
            return faultState.estimatedTimeSeconds
        }
        if let loading {
            return .json(["error": "Model \(model) is currently loading", "estimated_time": loading], status: 503)
        }
        guard let doc = (try? JSONSerialization.jsonObject(with: request.body)) as? [String: Any], let prompt = doc["inputs"] as? String, !prompt.isEmpty else {
            return .json(["error": "Input should be a valid string: `inputs` must be the prompt"], status: 400)
        }
        let parameters = doc["parameters"] as? [String: Any] ?? [:]
        let width = parameters["width"] as? Int ?? 1024, height = parameters["height"] as? Int ?? 1024
        return Answer(status: 200, headers: ["content-type": "image/png", "x-compute-type": "gpu", "x-compute-time": "1.2"],
                      body: StandInMedia.png(width: width, height: height, seed: prompt))
    }

    // MARK: Civitai

    func civitaiRoute(_ request: Incoming) -> Answer {
        if request.path.hasPrefix("/api/v1/model-versions/") {
            guard let id = Int(request.path.dropFirst("/api/v1/model-versions/".count)), let version = lock.withLock({ civitai[id] }) else {
                return .json(["error": "No model version with id \(request.path.split(separator: "/").last ?? "")"], status: 404)
            }
            let files: [[String: Any]] = version.files.enumerated().map { index, file in
                ["id": version.id * 10 + index, "name": file.path, "sizeKB": Double(file.data.count) / 1024, "type": index == 0 ? "Model" : "Training Data",
                 "primary": index == 0, "metadata": ["format": file.path.hasSuffix(".safetensors") ? "SafeTensor" : "Other", "fp": "fp16"],
                 "hashes": ["SHA256": file.sha256.uppercased(), "AutoV2": String(file.sha256.prefix(10)).uppercased()],
                 "downloadUrl": "\(baseURL)/api/download/models/\(version.id)?fileId=\(version.id * 10 + index)"]
            }
            return .json(["id": version.id, "modelId": version.modelID, "name": version.name, "baseModel": version.baseModel,
                          "model": ["name": "standin \(version.type.lowercased())", "type": version.type, "nsfw": false, "poi": false],
                          "files": files, "downloadUrl": "\(baseURL)/api/download/models/\(version.id)"])
        }
        let idText = request.path.dropFirst("/api/download/models/".count)
        guard let id = Int(idText), let version = lock.withLock({ civitai[id] }) else {
            return .json(["error": "Model not found"], status: 404)
        }
        if version.requiresLogin {
            let auth = request.headers["authorization"] ?? ""
            guard auth == "Bearer \(token)" || (acceptAnyToken && auth.count > 7) else {
                return .json(["error": "Unauthorized", "message": "The creator of this asset requires you to be logged in to download it"], status: 401)
            }
        }
        let fileID = request.query.split(separator: "&").first { $0.hasPrefix("fileId=") }.flatMap { Int($0.dropFirst(7)) }
        let index = fileID.map { $0 - version.id * 10 } ?? 0
        guard version.files.indices.contains(index) else { return .json(["error": "File not found"], status: 404) }
        let file = version.files[index]
        return Answer(status: 307, headers: ["location": "\(cdnBaseURL)/cdn/\(file.sha256)?filename=\(file.path)",
                                             "content-disposition": "attachment; filename=\"\(file.path)\""])
    }
}

fileprivate extension Sequence where Element == UInt8 {
    var hexString: String { map { String(format: "%02x", $0) }.joined() }
}
