import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// What `yard models pull` was asked for: `owner/name[@revision]` or
/// `hf:owner/name[@revision]` (Hugging Face), `civitai:VERSION_ID[:file]`,
/// `local:group/name` (files already below $YARD_HOME/models/local).
public struct ModelReference: Sendable, Hashable {
    public enum Vendor: String, Sendable { case huggingface, civitai, local }
    public var vendor: Vendor
    /// huggingface: owner/name. civitai: the model version id. local: group/name below $YARD_HOME/models/local.
    public var name: String
    public var revision: String?
    /// civitai: one file of the version by name (absent: the primary file).
    public var file: String?

    public static func parse(_ text: String) throws -> ModelReference {
        func invalid(_ why: String) -> YardError {
            YardError(.usage, "\"\(text)\" is not a model reference: \(why).",
                      remediation: "Use owner/name[@revision] (Hugging Face) or civitai:VERSION_ID[:file].", field: "model")
        }
        if text.hasPrefix("civitai:") {
            let parts = text.dropFirst("civitai:".count).split(separator: ":", maxSplits: 1).map(String.init)
            guard let id = parts.first, !id.isEmpty, id.allSatisfy(\.isNumber) else { throw invalid("the version id must be a number (from the model page's URL ?modelVersionId=…)") }
            return ModelReference(vendor: .civitai, name: id, revision: id, file: parts.count > 1 ? parts[1] : nil)
        }
        var body = text
        if body.hasPrefix("local:") {
            let name = String(body.dropFirst("local:".count))
            guard name.split(separator: "/", omittingEmptySubsequences: false).count == 2, ModelSourceResolver.isSafeRelativePath(name) else {
                throw invalid("a local model is group/name, a folder below $YARD_HOME/models/local")
            }
            return ModelReference(vendor: .local, name: name, revision: nil, file: nil)
        }
        for prefix in ["hf:", "huggingface:"] where body.hasPrefix(prefix) { body = String(body.dropFirst(prefix.count)) }
        var revision: String?
        if let at = body.firstIndex(of: "@") {
            revision = String(body[body.index(after: at)...])
            body = String(body[..<at])
        }
        let parts = body.split(separator: "/", omittingEmptySubsequences: false)
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && !$0.hasPrefix(".") && $0.unicodeScalars.allSatisfy(allowed.contains) }) else {
            throw invalid("a Hugging Face repo id is owner/name")
        }
        if let revision, revision.isEmpty || revision.contains("..") || revision.hasPrefix("/") { throw invalid("bad revision") }
        return ModelReference(vendor: .huggingface, name: body, revision: revision, file: nil)
    }
}

/// A resolved download: every file with where to fetch it and what it must be.
public struct ModelPlan: Sendable {
    public struct File: Sendable {
        public var path: String
        public var size: Int?
        /// Known before downloading (LFS oid, Civitai hash): verified after.
        public var sha256: String?
        /// git blob id of a small (non-LFS) Hub file: verified after.
        public var gitOID: String?
        public var url: String
    }
    public var vendor: String
    public var repo: String
    public var revision: String
    public var type: String
    public var license: String?
    public var files: [File]
    /// Sent to the first hop only (the Hub or Civitai), never to a CDN it redirects to.
    public var authorization: String?

    public var id: String { "\(vendor):\(repo)" }
}

/// Talks to the Hugging Face Hub and Civitai to turn a reference into a plan.
/// 401/403/404 become distinct codes with what to do; 429 waits Retry-After.
public final class ModelSourceResolver: @unchecked Sendable {
    public var hubEndpoint: String
    public var civitaiEndpoint: String
    public var hfToken: String?
    public var civitaiToken: String?
    public var maxRateLimitWaits = 5
    /// Longest Retry-After honoured before giving up with RATE_LIMITED.
    public var maxRetryAfterSeconds = 120.0
    let client: HTTPClient

    public init(hubEndpoint: String, civitaiEndpoint: String, hfToken: String?, civitaiToken: String?) {
        self.hubEndpoint = hubEndpoint.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.civitaiEndpoint = civitaiEndpoint.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.hfToken = hfToken.flatMap { $0.isEmpty ? nil : $0 }
        self.civitaiToken = civitaiToken.flatMap { $0.isEmpty ? nil : $0 }
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    deinit { try? client.syncShutdown() }

    /// The environment's endpoints and the tokens from the vault (env vars override).
    public static func standard(secrets: any SecretSource, environment: [String: String] = ProcessInfo.processInfo.environment) -> ModelSourceResolver {
        ModelSourceResolver(hubEndpoint: environment["HF_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://huggingface.co",
                            civitaiEndpoint: environment["CIVITAI_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://civitai.com",
                            hfToken: secrets.value(of: "HF_TOKEN"), civitaiToken: secrets.value(of: "CIVITAI_TOKEN"))
    }

    struct Answer {
        var status: Int
        var headers: HTTPHeaders
        var body: Data
        var json: Any? { try? JSONSerialization.jsonObject(with: body) }
    }

    /// One GET with the token; waits out 429s (Retry-After) a few times.
    func get(_ url: String, authorization: String?) async throws -> Answer {
        var waits = 0
        while true {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "user-agent", value: "switchyard/\(HostPlatform.hostVersion)")
            request.headers.add(name: "accept", value: "application/json")
            if let authorization { request.headers.add(name: "authorization", value: authorization) }
            let response: HTTPClientResponse
            do {
                try NetworkGuard.check(url: url)
                response = try await client.execute(request, timeout: .seconds(60))
            } catch {
                throw YardError("ENGINE_UNREACHABLE", "Could not reach \(URLComponents(string: url)?.host ?? url): \(error).",
                                remediation: "Check the network, HF_ENDPOINT / CIVITAI_ENDPOINT, and retry; a partial download resumes.")
            }
            let body = try await response.body.collect(upTo: 32 << 20)
            let answer = Answer(status: Int(response.status.code), headers: response.headers, body: Data(body.readableBytesView))
            if answer.status == 429, waits < maxRateLimitWaits {
                let wait = Self.retryAfterSeconds(answer.headers)
                guard wait <= maxRetryAfterSeconds else { return answer }
                waits += 1
                try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
                continue
            }
            return answer
        }
    }

    static func retryAfterSeconds(_ headers: HTTPHeaders) -> Double {
        max(0, headers.first(name: "retry-after").flatMap(Double.init) ?? 1)
    }

    // MARK: Hugging Face

    var hubAuthorization: String? { hfToken.map { "Bearer \($0)" } }

    /// The user HF_TOKEN belongs to; AUTH_FAILED when the Hub refuses it.
    public func whoami() async throws -> String {
        guard let hubAuthorization else {
            throw YardError("AUTH_MISSING", "HF_TOKEN is not set.", remediation: "Create a read token at huggingface.co/settings/tokens, then `yard secrets set HF_TOKEN`.", field: "HF_TOKEN")
        }
        let answer = try await get("\(hubEndpoint)/api/whoami-v2", authorization: hubAuthorization)
        guard answer.status == 200, let name = (answer.json as? [String: Any])?["name"] as? String else {
            if answer.status == 401 {
                throw YardError("AUTH_FAILED", "The Hub refused HF_TOKEN (whoami answered 401: the token is invalid, expired or revoked).",
                                remediation: "Create a new read token at huggingface.co/settings/tokens and `yard secrets set HF_TOKEN`.", field: "HF_TOKEN")
            }
            throw Self.hubError(answer, repo: "", hasToken: true, what: "whoami")
        }
        return name
    }

    /// The Hub's errors, told apart: not logged in (401), access not granted
    /// (403, gated), missing repo / revision / file (404), rate limit (429).
    static func hubError(_ answer: Answer, repo: String, hasToken: Bool, what: String) -> YardError {
        let code = answer.headers.first(name: "x-error-code")
        let message = answer.headers.first(name: "x-error-message") ?? ((answer.json as? [String: Any])?["error"] as? String) ?? "HTTP \(answer.status)"
        switch (answer.status, code) {
        case (401, _) where message.contains("Invalid credentials"):
            return YardError("AUTH_FAILED", "The Hub refused HF_TOKEN: \(message).",
                             remediation: "Create a new read token at huggingface.co/settings/tokens and `yard secrets set HF_TOKEN`.", field: "HF_TOKEN")
        case (401, "GatedRepo"):
            return YardError("AUTH_MISSING", "\(repo) is gated: the Hub only serves its files to a logged-in user who accepted its licence (\(message)).",
                             remediation: "Accept the licence on https://huggingface.co/\(repo), create a read token, then `yard secrets set HF_TOKEN`.", field: "HF_TOKEN")
        case (401, _):
            return YardError("AUTH_MISSING", "The Hub does not show \(repo) without logging in: it is private, or does not exist (\(message)).",
                             remediation: hasToken ? "Check the repo id; if it is private, use a token of an account that can read it (`yard secrets set HF_TOKEN`)."
                                                   : "If the repo is private, `yard secrets set HF_TOKEN` with a token that can read it; otherwise check the repo id.",
                             field: hasToken ? "model" : "HF_TOKEN")
        case (403, _):
            return YardError("ACCESS_NOT_GRANTED", "Your Hugging Face account has not been granted access to \(repo) (\(message)).",
                             remediation: "Open https://huggingface.co/\(repo), accept the licence or request access, wait for approval, then pull again.", field: "model")
        case (404, "RevisionNotFound"):
            return YardError("REVISION_NOT_FOUND", "\(repo) has no revision like that (\(message)).",
                             remediation: "Use a branch, tag or commit listed on https://huggingface.co/\(repo)/commits/main.", field: "revision")
        case (404, "EntryNotFound"):
            return YardError("FILE_NOT_FOUND", "\(repo) has no such file (\(message)).", remediation: "Check the file names with the repo's Files tab.", field: "model")
        case (404, _):
            return YardError("MODEL_NOT_FOUND", "The Hub has no repo \(repo) visible to this account (\(message)).",
                             remediation: "Check the repo id (owner/name, as in the model page's URL); if it is private, set HF_TOKEN to a token that can read it.", field: "model")
        case (429, _):
            return YardError("RATE_LIMITED", "The Hub rate-limited \(what) (retry after \(Int(retryAfterSeconds(answer.headers))) s).",
                             remediation: "Wait and pull again (a partial download resumes); logged-in users get higher limits (`yard secrets set HF_TOKEN`).")
        default:
            return YardError("ENGINE_UNAVAILABLE", "The Hub answered HTTP \(answer.status) for \(what): \(message).", remediation: "Retry later; check status.huggingface.co.")
        }
    }

    func hubJSON(_ path: String, repo: String, what: String) async throws -> Any {
        let answer = try await get("\(hubEndpoint)\(path)", authorization: hubAuthorization)
        guard answer.status == 200 else { throw Self.hubError(answer, repo: repo, hasToken: hfToken != nil, what: what) }
        guard let json = answer.json else {
            throw YardError("ENGINE_ERROR", "The Hub's \(what) for \(repo) is not valid JSON (\(answer.body.count) bytes).",
                            remediation: "Retry; if it persists, check that HF_ENDPOINT (\(hubEndpoint)) points at a Hugging Face Hub.")
        }
        return json
    }

    static func encodeRevision(_ revision: String) -> String {
        revision.addingPercentEncoding(withAllowedCharacters: CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))) ?? revision
    }

    /// Resolves the revision to a commit (`/api/models/{repo}/revision/{rev}`)
    /// and lists its files with sizes and LFS digests (`/tree/{commit}?recursive=true`).
    public func resolveHub(_ reference: ModelReference, include: [String] = [], type: String? = nil) async throws -> ModelPlan {
        if hfToken != nil { _ = try await whoami() }
        let repo = reference.name
        let revision = reference.revision ?? "main"
        let info = try await hubJSON("/api/models/\(repo)/revision/\(Self.encodeRevision(revision))", repo: repo, what: "model info") as? [String: Any] ?? [:]
        guard let commit = info["sha"] as? String, !commit.isEmpty else {
            throw YardError("ENGINE_ERROR", "The Hub's answer for \(repo)@\(revision) has no commit sha.", remediation: "Retry; report it if it persists.")
        }
        // The commit names a folder and goes into URLs: a git object id only (SHA-1, or SHA-256 repos).
        guard Self.isGitCommitID(commit) else {
            throw YardError(.nameInvalid, "The Hub answered \"\(SafePath.shown(commit))\" as the commit of \(repo)@\(revision), which is not a git commit id.",
                            remediation: "Check hub_url (the model host is not behaving like the Hugging Face Hub); report it if it persists.", field: "revision")
        }
        // The Hub pages listings (1000 entries) and names the next page in a Link header.
        var tree: [[String: Any]] = []
        var next: String? = "\(hubEndpoint)/api/models/\(repo)/tree/\(commit)?recursive=true&expand=false"
        while let url = next {
            let answer = try await get(url, authorization: hubAuthorization)
            guard answer.status == 200 else { throw Self.hubError(answer, repo: repo, hasToken: hfToken != nil, what: "file listing") }
            guard let page = answer.json as? [[String: Any]] else {
                throw YardError("ENGINE_ERROR", "The Hub's file listing for \(repo) is not a list.", remediation: "Retry; report it if it persists.")
            }
            tree += page
            next = answer.headers.first(name: "link").flatMap(Self.nextLink)
        }
        var files: [ModelPlan.File] = []
        for entry in tree where entry["type"] as? String == "file" {
            guard let path = entry["path"] as? String, Self.isSafeRelativePath(path) else { continue }
            guard include.isEmpty || include.contains(where: { Self.glob($0, matches: path) }) else { continue }
            let lfs = entry["lfs"] as? [String: Any]
            let encodedPath = path.split(separator: "/").map { String($0).addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? String($0) }.joined(separator: "/")
            files.append(ModelPlan.File(path: path, size: (lfs?["size"] as? Int) ?? (entry["size"] as? Int),
                                        sha256: (lfs?["oid"] as? String)?.lowercased(), gitOID: lfs == nil ? entry["oid"] as? String : nil,
                                        url: "\(hubEndpoint)/\(repo)/resolve/\(commit)/\(encodedPath)"))
        }
        if files.isEmpty {
            throw YardError("FILE_NOT_FOUND", "\(repo)@\(revision) has no file matching \(include.isEmpty ? "anything" : include.joined(separator: ", ")).",
                            remediation: "Check the --include patterns against the repo's Files tab.", field: "include")
        }
        let card = info["cardData"] as? [String: Any]
        let tags = info["tags"] as? [String] ?? []
        let license = (card?["license"] as? String) ?? tags.first { $0.hasPrefix("license:") }.map { String($0.dropFirst(8)) }
        return ModelPlan(vendor: "huggingface", repo: repo, revision: commit,
                         type: type ?? Self.hubType(pipelineTag: info["pipeline_tag"] as? String, tags: tags, files: files.map(\.path)),
                         license: license, files: files, authorization: hubAuthorization)
    }

    /// The `rel="next"` URL of a Link header.
    static func nextLink(_ header: String) -> String? {
        for part in header.split(separator: ",") where part.contains("rel=\"next\"") {
            guard let open = part.firstIndex(of: "<"), let close = part.firstIndex(of: ">"), open < close else { continue }
            return String(part[part.index(after: open)..<close])
        }
        return nil
    }

    /// The catalog type from the Hub's pipeline tag and tags.
    static func hubType(pipelineTag: String?, tags: [String], files: [String]) -> String {
        if tags.contains(where: { $0.lowercased() == "lora" }) || files.contains(where: { $0.hasSuffix("adapter_model.safetensors") || $0.contains("lora") }) { return "lora" }
        switch pipelineTag ?? "" {
        case "text-to-image", "image-to-image", "unconditional-image-generation": return "checkpoint"
        case "text-generation", "text2text-generation", "conversational", "image-text-to-text": return "llm"
        case "text-to-video", "image-to-video", "video-classification": return "video"
        case "text-to-speech", "text-to-audio", "automatic-speech-recognition", "audio-to-audio": return "audio"
        default: return tags.contains("diffusers") ? "checkpoint" : "other"
        }
    }

    // MARK: Civitai

    public func resolveCivitai(_ reference: ModelReference, type: String? = nil) async throws -> ModelPlan {
        let authorization = civitaiToken.map { "Bearer \($0)" }
        let answer = try await get("\(civitaiEndpoint)/api/v1/model-versions/\(reference.name)", authorization: authorization)
        guard answer.status == 200, let doc = answer.json as? [String: Any] else { throw Self.civitaiError(answer, id: reference.name) }
        let files = doc["files"] as? [[String: Any]] ?? []
        let chosen: [[String: Any]]
        if let name = reference.file {
            chosen = files.filter { $0["name"] as? String == name }
            guard !chosen.isEmpty else {
                throw YardError("FILE_NOT_FOUND", "Civitai version \(reference.name) has no file \(name); it has \(files.compactMap { $0["name"] as? String }.joined(separator: ", ")).",
                                remediation: "Use one of those names after the second colon, or leave it out for the primary file.", field: "model")
            }
        } else {
            chosen = [files.first { $0["primary"] as? Bool == true } ?? files.first].compactMap { $0 }
        }
        guard !chosen.isEmpty else {
            throw YardError("FILE_NOT_FOUND", "Civitai version \(reference.name) lists no files.", remediation: "Pick another version on the model page.", field: "model")
        }
        let planned: [ModelPlan.File] = try chosen.map { file in
            guard let name = file["name"] as? String, Self.isSafeRelativePath(name), let url = file["downloadUrl"] as? String else {
                throw YardError("ENGINE_ERROR", "Civitai listed a file without a usable name or download URL.", remediation: "Report it; pick another version meanwhile.")
            }
            // sizeKB is rounded by Civitai: the sha256 is what is verified.
            return ModelPlan.File(path: name, size: nil, sha256: ((file["hashes"] as? [String: Any])?["SHA256"] as? String)?.lowercased(), gitOID: nil, url: url)
        }
        let model = doc["model"] as? [String: Any]
        let modelID = (doc["modelId"] as? Int).map(String.init) ?? "0"
        let civitaiType = (model?["type"] as? String ?? "").lowercased()
        let mapped = ["checkpoint": "checkpoint", "lora": "lora", "locon": "lora", "dora": "lora", "textualinversion": "embedding",
                      "vae": "vae", "controlnet": "controlnet", "upscaler": "upscaler"][civitaiType] ?? "other"
        return ModelPlan(vendor: "civitai", repo: "\(modelID)/\(reference.name)", revision: reference.name, type: type ?? mapped,
                         license: (model?["allowCommercialUse"] as? [String])?.joined(separator: ","), files: planned, authorization: authorization)
    }

    static func civitaiError(_ answer: Answer, id: String) -> YardError {
        let text = ((answer.json as? [String: Any]).flatMap { ($0["message"] ?? $0["error"]) as? String }) ?? "HTTP \(answer.status)"
        switch answer.status {
        case 401:
            return YardError("AUTH_MISSING", "Civitai requires a login for version \(id): \(text).",
                             remediation: "Create an API key at civitai.com/user/account, then `yard secrets set CIVITAI_TOKEN`.", field: "CIVITAI_TOKEN")
        case 403:
            return YardError("ACCESS_NOT_GRANTED", "Civitai refused version \(id): \(text).",
                             remediation: "Open the model page on civitai.com and check early-access or purchase requirements.", field: "model")
        case 404:
            return YardError("MODEL_NOT_FOUND", "Civitai has no model version \(id).",
                             remediation: "Use the number after ?modelVersionId= in the model page's URL.", field: "model")
        case 429:
            return YardError("RATE_LIMITED", "Civitai rate-limited the request.", remediation: "Wait a minute and pull again.")
        default:
            return YardError("ENGINE_UNAVAILABLE", "Civitai answered HTTP \(answer.status): \(text).", remediation: "Retry later.")
        }
    }

    // MARK: paths

    /// 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
    static func isGitCommitID(_ text: String) -> Bool {
        (text.utf8.count == 40 || text.utf8.count == 64) && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// No absolute paths, `..`, backslashes or control characters: a file cannot leave its model directory.
    static func isSafeRelativePath(_ path: String) -> Bool {
        !path.isEmpty && !path.hasPrefix("/") && !path.contains("\\") && !path.unicodeScalars.contains { $0.value < 0x20 }
            && !path.split(separator: "/").contains { $0 == ".." || $0 == "." }
    }

    /// `*` and `?` within a path segment, `**` across segments; a pattern without `/` also matches a file name in any folder.
    static func glob(_ pattern: String, matches path: String) -> Bool {
        func match(_ p: Substring, _ s: Substring) -> Bool {
            guard let c = p.first else { return s.isEmpty }
            if p.hasPrefix("**") {
                let rest = p.dropFirst(2).drop { $0 == "/" }
                var tail = s[...]
                while true {
                    if match(rest, tail) { return true }
                    guard !tail.isEmpty else { return false }
                    tail = tail.dropFirst()
                }
            }
            if c == "*" {
                var tail = s[...]
                while true {
                    if match(p.dropFirst(), tail) { return true }
                    guard let first = tail.first, first != "/" else { return false }
                    tail = tail.dropFirst()
                }
            }
            guard let d = s.first, c == "?" ? d != "/" : c == d else { return false }
            return match(p.dropFirst(), s.dropFirst())
        }
        if match(Substring(pattern), Substring(path)) { return true }
        return !pattern.contains("/") && match(Substring(pattern), Substring(path.split(separator: "/").last ?? ""))
    }
}
