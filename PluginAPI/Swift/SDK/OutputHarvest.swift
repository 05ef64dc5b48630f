import Foundation

/// How a provider's answer becomes a capability's outputs. It is data (JSON),
/// so an engine's config can carry one for a worker the adapter does not know
/// (RunPod's `output_map`), and adapters write their built-in ones the same way.
///
/// A rule is one of:
/// - `"$"`, `"$.images[0].url"` or `"$.images.0.url"`: the value at that path of
///   the answer (absent when missing). Inside `$each`, `$` is the element and
///   `$^` the whole answer.
/// - `{"$file": RULE, "$media_type": RULE}`: a file. A URL becomes `{"url"}` for
///   the host to download; a `data:` URI or a base64 payload is stored as an
///   artifact at once; fal's `{url, content_type}` and worker-comfyui's
///   `{filename, type: "s3_url"|"base64", data}` are understood.
/// - `{"$each": PATH, "$map": RULE}`: a list, RULE applied to each element.
/// - `{"$first": [RULE, …]}`: the first rule that yields a value.
/// - `{"$number": RULE}`: a number, also from a string ("5").
/// - `{"$const": VALUE}`: VALUE as written.
/// - any other object: an object of those members (absent ones left out; absent
///   when every member is); an array: a list (absent items left out); any other
///   value: itself.
///
/// Nothing the map does not name reaches the outputs, so provider JSON (and
/// media bytes inline in it) never travels on to the next step.
public struct OutputMap: Sendable {
    public let rules: [String: JSONValue]

    public init(_ rules: [String: JSONValue]) { self.rules = rules }

    /// A map written by a user (engine config): checked before any job runs.
    public init(validating document: JSONValue, field: String) throws {
        guard let object = document.objectValue, !object.isEmpty else {
            throw PluginError(code: "CONFIG_INVALID", message: "An output map is an object from output names to rules.",
                              remediation: "Write e.g. {\"images\": {\"$each\": \"$.images\", \"$map\": {\"file\": {\"$file\": \"$\"}}}}.", field: field)
        }
        for (name, rule) in object { try Self.check(rule, field: "\(field).\(name)") }
        rules = object
    }

    static func check(_ rule: JSONValue, field: String) throws {
        func bad(_ why: String) -> PluginError {
            PluginError(code: "CONFIG_INVALID", message: "Output map rule at \(field): \(why).",
                        remediation: "Rules are paths (\"$.a.b\"), {\"$file\"}, {\"$each\", \"$map\"}, {\"$first\"}, {\"$number\"}, {\"$const\"}, objects or lists.", field: field)
        }
        switch rule {
        case .string(let s) where s.hasPrefix("$"):
            if Path(s) == nil { throw bad("\(s) is not a path") }
        case .object(let o):
            if let each = o["$each"] {
                guard each.stringValue.flatMap(Path.init) != nil else { throw bad("$each takes a path") }
                guard let map = o["$map"] else { throw bad("$each needs $map") }
                try check(map, field: field + ".$map")
            } else if let first = o["$first"] {
                guard let list = first.arrayValue, !list.isEmpty else { throw bad("$first takes a non-empty list") }
                for (i, r) in list.enumerated() { try check(r, field: field + ".$first[\(i)]") }
            } else if let file = o["$file"] {
                try check(file, field: field + ".$file")
                if let type = o["$media_type"] { try check(type, field: field + ".$media_type") }
            } else if let number = o["$number"] {
                try check(number, field: field + ".$number")
            } else if o["$const"] == nil {
                for key in o.keys where key.hasPrefix("$") { throw bad("unknown keyword \(key)") }
                for (k, r) in o { try check(r, field: field + ".\(k)") }
            }
        case .array(let items):
            for (i, r) in items.enumerated() { try check(r, field: field + "[\(i)]") }
        default: break
        }
    }

    /// The outputs for `answer`. Files named by the map are resolved through
    /// `context` (inline bytes stored as artifacts); media facts a catalog
    /// output needs and the answer lacks (size, duration) are read from the files.
    public func apply(to answer: JSONValue, context: HostContext) throws -> [String: JSONValue] {
        var outputs: [String: JSONValue] = [:]
        let evaluator = Evaluator(root: answer, context: context)
        for (name, rule) in rules {
            if let value = try evaluator.evaluate(rule, at: answer) { outputs[name] = value }
        }
        return try MediaOutputs.complete(outputs, context: context)
    }

    /// A path into a JSON document: members and indexes.
    struct Path {
        enum Step { case member(String), index(Int) }
        var outer: Bool
        var steps: [Step]

        init?(_ text: String) {
            var rest = Substring(text)
            guard rest.hasPrefix("$") else { return nil }
            rest = rest.dropFirst()
            outer = rest.hasPrefix("^")
            if outer { rest = rest.dropFirst() }
            steps = []
            while !rest.isEmpty {
                if rest.hasPrefix(".") {
                    rest = rest.dropFirst()
                    let name = rest.prefix { $0 != "." && $0 != "[" }
                    guard !name.isEmpty else { return nil }
                    steps.append(Int(name).map(Step.index) ?? .member(String(name)))
                    rest = rest.dropFirst(name.count)
                } else if rest.hasPrefix("[") {
                    guard let close = rest.firstIndex(of: "]"), let index = Int(rest[rest.index(after: rest.startIndex)..<close]) else { return nil }
                    steps.append(.index(index))
                    rest = rest[rest.index(after: close)...]
                } else {
                    return nil
                }
            }
        }

        func lookup(_ value: JSONValue) -> JSONValue? {
            var current = value
            for step in steps {
                switch step {
                case .member(let name):
                    guard let next = current[name] else { return nil }
                    current = next
                case .index(let i):
                    guard let items = current.arrayValue, i >= 0, i < items.count else { return nil }
                    current = items[i]
                }
            }
            return current == .null ? nil : current
        }
    }

    struct Evaluator {
        let root: JSONValue
        let context: HostContext

        func evaluate(_ rule: JSONValue, at scope: JSONValue) throws -> JSONValue? {
            switch rule {
            case .string(let s) where s.hasPrefix("$"):
                guard let path = Path(s) else { return nil }
                return path.lookup(path.outer ? root : scope)
            case .object(let o):
                if let each = o["$each"]?.stringValue, let path = Path(each), let map = o["$map"] {
                    guard let items = path.lookup(path.outer ? root : scope)?.arrayValue else { return nil }
                    let mapped = try items.compactMap { try evaluate(map, at: $0) }
                    return mapped.isEmpty ? nil : .array(mapped)
                }
                if let first = o["$first"]?.arrayValue {
                    for alternative in first { if let value = try evaluate(alternative, at: scope) { return value } }
                    return nil
                }
                if let file = o["$file"] {
                    guard let value = try evaluate(file, at: scope) else { return nil }
                    let type = try o["$media_type"].flatMap { try evaluate($0, at: scope) }?.stringValue
                    return try FileOutput.resolve(value, mediaType: type, context: context)
                }
                if let number = o["$number"] {
                    guard let value = try evaluate(number, at: scope) else { return nil }
                    if value.doubleValue != nil { return value }
                    return value.stringValue.flatMap(Double.init).map(JSONValue.number)
                }
                if let constant = o["$const"] { return constant }
                var object: [String: JSONValue] = [:]
                for (key, member) in o { if let value = try evaluate(member, at: scope) { object[key] = value } }
                return object.isEmpty ? nil : .object(object)
            case .array(let items):
                let values = try items.compactMap { try evaluate($0, at: scope) }
                return values.isEmpty ? nil : .array(values)
            default:
                return rule
            }
        }
    }
}

/// One file of a provider's answer, as the host's outputs name files.
public enum FileOutput {
    /// `{"url", "media_type"?}` for a URL (the host downloads it before the
    /// provider's retention ends), `{"artifact", "media_type", "size"}` for
    /// bytes given inline (stored now: a job row never holds media bytes), nil
    /// when `value` names no file.
    public static func resolve(_ value: JSONValue, mediaType: String? = nil, context: HostContext) throws -> JSONValue? {
        switch value {
        case .string(let s):
            if s.hasPrefix("https://") || s.hasPrefix("http://") {
                var file: [String: JSONValue] = ["url": .string(s)]
                if let mediaType = mediaType ?? typeFromName(s) { file["media_type"] = .string(mediaType) }
                return .object(file)
            }
            if s.hasPrefix("data:") {
                guard let comma = s.firstIndex(of: ","), let bytes = Data(base64Encoded: String(s[s.index(after: comma)...]), options: .ignoreUnknownCharacters) else { return nil }
                let declared = String(s.dropFirst(5).prefix { $0 != ";" && $0 != "," })
                return try store(bytes, mediaType: declared.isEmpty ? mediaType : declared, context: context)
            }
            // A bare base64 payload (worker-comfyui, Kling-style APIs): only what decodes to a known format counts.
            guard s.count >= 16, let bytes = Data(base64Encoded: s, options: .ignoreUnknownCharacters), let sniffed = MediaProbe.sniff(bytes) else { return nil }
            return try store(bytes, mediaType: mediaType ?? sniffed, context: context)
        case .object(let o):
            if o["artifact"]?.stringValue != nil { return value }
            let type = mediaType ?? o["media_type"]?.stringValue ?? o["content_type"]?.stringValue ?? o["mime_type"]?.stringValue
            // worker-comfyui 5.x: {"filename", "type": "s3_url" | "base64", "data"}.
            if let kind = o["type"]?.stringValue, let data = o["data"]?.stringValue {
                let named = type ?? o["filename"]?.stringValue.flatMap(typeFromName)
                if kind == "s3_url" || data.hasPrefix("http") { return try resolve(.string(data), mediaType: named, context: context) }
                guard let bytes = Data(base64Encoded: data, options: .ignoreUnknownCharacters) else { return nil }
                return try store(bytes, mediaType: named ?? MediaProbe.sniff(bytes), context: context)
            }
            if let url = o["url"]?.stringValue { return try resolve(.string(url), mediaType: type, context: context) }
            if let data = o["file_data"]?.stringValue ?? o["data"]?.stringValue { return try resolve(.string(data), mediaType: type, context: context) }
            return nil
        default:
            return nil
        }
    }

    static func store(_ bytes: Data, mediaType: String?, context: HostContext) throws -> JSONValue {
        let type = mediaType.flatMap { $0.isEmpty || $0 == "application/octet-stream" ? nil : $0 } ?? MediaProbe.sniff(bytes) ?? "application/octet-stream"
        let handle = try context.putArtifact(bytes, mediaType: type)
        return ["artifact": .string(handle.artifact), "media_type": .string(type), "size": .number(Double(handle.size))]
    }

    /// The media type a file name (or URL path) suggests.
    public static func typeFromName(_ name: String) -> String? {
        let path = URLComponents(string: name)?.path ?? name
        let ext = (path as NSString).pathExtension.lowercased()
        return ["png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
                "mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm", "wav": "audio/wav", "mp3": "audio/mpeg",
                "ogg": "audio/ogg", "flac": "audio/flac", "m4a": "audio/mp4"][ext]
    }
}

/// The media members of catalog outputs (`images[].file` with width and
/// height; `image` with width and height; `video` with duration_seconds,
/// width, height and fps; `audio` with duration_seconds and sample_rate). A
/// member the provider did not report is read from the file, which is
/// downloaded into the store for that (so it is also safe from the
/// provider's retention); members the provider reported are kept.
public enum MediaOutputs {
    public static func complete(_ outputs: [String: JSONValue], context: HostContext) throws -> [String: JSONValue] {
        var result = outputs
        if let images = outputs["images"]?.arrayValue {
            result["images"] = .array(try images.map { item in
                guard var image = item.objectValue, let file = image["file"], image["width"] == nil || image["height"] == nil else { return item }
                let (stored, facts) = try probe(file, context: context)
                image["file"] = stored
                if image["width"] == nil, let w = facts.width { image["width"] = .number(Double(w)) }
                if image["height"] == nil, let h = facts.height { image["height"] = .number(Double(h)) }
                return .object(image)
            })
        }
        if let file = outputs["image"], outputs["width"] == nil || outputs["height"] == nil {
            let (stored, facts) = try probe(file, context: context)
            result["image"] = stored
            if result["width"] == nil, let w = facts.width { result["width"] = .number(Double(w)) }
            if result["height"] == nil, let h = facts.height { result["height"] = .number(Double(h)) }
        }
        if let file = outputs["video"], outputs["duration_seconds"] == nil || outputs["width"] == nil || outputs["fps"] == nil {
            let (stored, facts) = try probe(file, context: context)
            result["video"] = stored
            if result["duration_seconds"] == nil, let d = facts.durationSeconds, d > 0 { result["duration_seconds"] = .number(d) }
            if result["width"] == nil, let w = facts.width, w > 0 { result["width"] = .number(Double(w)) }
            if result["height"] == nil, let h = facts.height, h > 0 { result["height"] = .number(Double(h)) }
            if result["fps"] == nil, let f = facts.fps, f > 0 { result["fps"] = .number(f) }
        }
        if let file = outputs["audio"], outputs["duration_seconds"] == nil || outputs["sample_rate"] == nil {
            let (stored, facts) = try probe(file, context: context)
            result["audio"] = stored
            if result["duration_seconds"] == nil, let d = facts.durationSeconds, d > 0 { result["duration_seconds"] = .number(d) }
            if result["sample_rate"] == nil, let r = facts.sampleRate, r > 0 { result["sample_rate"] = .number(Double(r)) }
        }
        return result
    }

    /// The file as an artifact (downloading a URL into the store) and what its bytes say.
    static func probe(_ file: JSONValue, context: HostContext) throws -> (JSONValue, MediaFacts) {
        var file = file
        if file["artifact"] == nil, let url = file["url"]?.stringValue {
            let handle = try context.downloadArtifact(url: url, mediaType: file["media_type"]?.stringValue)
            var stored: [String: JSONValue] = ["artifact": .string(handle.artifact), "size": .number(Double(handle.size))]
            if let type = handle.mediaType ?? file["media_type"]?.stringValue { stored["media_type"] = .string(type) }
            file = .object(stored)
        }
        guard let handle = file["artifact"]?.stringValue else { return (file, MediaFacts()) }
        let facts = MediaProbe.facts(try context.readArtifact(handle))
        if var object = file.objectValue, let sniffed = facts.mediaType,
           object["media_type"]?.stringValue.map({ $0.isEmpty || $0 == "application/octet-stream" || $0 == "binary/octet-stream" }) ?? true {
            object["media_type"] = .string(sniffed)
            file = .object(object)
        }
        return (file, facts)
    }
}
