import Foundation
import SwitchyardJSON

/// The catalog's output schema as a contract the host enforces after harvest
/// (ARCHITECTURE: "The host checks inputs before submit and outputs after
/// harvest"): the outputs validate against the capability's output_schema and
/// the engine's narrower declared `outputs`, every file is an artifact in this
/// host's store whose bytes are of its declared media type, that type is one
/// the schema allows, and no media bytes sit inline. Shared by the job engine
/// and the conformance kit, so a plugin the kit passes is one the engine accepts.
public struct OutputContract: Sendable {
    public struct Violation: Sendable, Hashable, Codable {
        /// JSON path inside the outputs, e.g. `$.images[0].file`.
        public var field: String
        public var message: String
    }

    public let catalog: CapabilityCatalog
    public let artifacts: ArtifactDirectory
    /// Outputs larger than this are media bytes inline (a job row never holds them).
    public var maxOutputBytes = 1 << 20

    public init(catalog: CapabilityCatalog, artifacts: ArtifactDirectory) {
        self.catalog = catalog
        self.artifacts = artifacts
    }

    /// Every way `outputs` breaks the contract of `capability` as `declared` narrows it.
    /// `compiled` is `declared.outputs` already compiled (the engine caches it per engine and capability).
    public func violations(_ outputs: JSONValue, capability: String, declared: PluginManifest.Capability?, compiled narrowerSchema: JSONSchema? = nil) -> [Violation] {
        var found: [Violation] = []
        let size = outputs.serialized().count
        if size > maxOutputBytes {
            found.append(Violation(field: "$", message: "the outputs are \(size) bytes of JSON: media must be files in the artifact store, not inline"))
        }
        guard let entry = catalog.entries[capability], let schema = entry.output else { return found }
        found += schema.validate(outputs).map { Violation(field: $0.path, message: $0.message) }
        if let narrower = declared?.outputs, let compiled = narrowerSchema ?? (try? JSONSchema(narrower)) {
            found += compiled.validate(outputs).map { Violation(field: $0.path, message: "\($0.message) (the engine's declared outputs)") }
        }
        found += fileViolations(outputs, schema: schema.document, root: schema.document, field: "$")
        var seen = Set<Violation>()
        return found.filter { seen.insert($0).inserted }
    }

    /// Walks the value with its schema: each file position must hold a stored artifact of an allowed type.
    func fileViolations(_ value: JSONValue, schema: JSONValue, root: JSONValue, field: String) -> [Violation] {
        if let ref = schema["$ref"]?.stringValue, ref.hasSuffix("/file") || schema["x-media-types"] != nil {
            return file(value, allowed: schema["x-media-types"]?.arrayValue?.compactMap(\.stringValue) ?? [], field: field)
        }
        var target = schema
        if let ref = schema["$ref"]?.stringValue, let name = ref.split(separator: "/").last, let resolved = root["$defs"]?[String(name)] { target = resolved }
        switch value {
        case .object(let members):
            var found: [Violation] = []
            for (key, member) in members.sorted(by: { $0.key < $1.key }) {
                if let property = target["properties"]?[key] {
                    found += fileViolations(member, schema: property, root: root, field: "\(field).\(key)")
                }
            }
            return found
        case .array(let items):
            guard let itemSchema = target["items"] else { return [] }
            return items.enumerated().flatMap { fileViolations($0.element, schema: itemSchema, root: root, field: "\(field)[\($0.offset)]") }
        default:
            return []
        }
    }

    func file(_ value: JSONValue, allowed: [String], field: String) -> [Violation] {
        guard let handle = value["artifact"]?.stringValue else {
            if value["url"] != nil { return [Violation(field: field, message: "is a URL the host did not store: outputs name files by artifact handle")] }
            return []  // Not a file at all: the schema's own violation says so.
        }
        let digest = handle.hasPrefix("sha256:") ? String(handle.dropFirst(7)) : handle
        guard digest.count == 64, digest.allSatisfy(\.isHexDigit) else { return [Violation(field: field, message: "\(handle) is not an artifact handle")] }
        let path = artifacts.path(for: digest.lowercased())
        guard let head = FileHandle(forReadingAtPath: path.path).map({ handle in defer { try? handle.close() }; return (try? handle.read(upToCount: 64)) ?? Data() }) else {
            return [Violation(field: field, message: "names artifact \(handle.prefix(19))…, which is not in this host's store")]
        }
        let declared = value["media_type"]?.stringValue.map(MediaSniffer.normalize)
        let sniffed = MediaSniffer.sniff(head)
        var found: [Violation] = []
        if let declared, let sniffed, !MediaSniffer.compatible(declared, sniffed) {
            found.append(Violation(field: field, message: "is declared \(declared), but its bytes are \(sniffed)"))
        }
        // application/octet-stream among the allowed types admits any bytes.
        if !allowed.isEmpty, !allowed.contains("application/octet-stream") {
            guard let type = declared ?? sniffed else {
                return found + [Violation(field: field, message: "has no media type and its bytes are of no known format; accepted: \(allowed.joined(separator: ", "))")]
            }
            if !allowed.contains(where: { MediaSniffer.compatible($0, type) }) {
                found.append(Violation(field: field, message: "is \(type); the capability's outputs are \(allowed.joined(separator: ", "))"))
            }
        }
        return found
    }

    /// The stable error of a job whose outputs broke the contract: the job ran,
    /// so the provider's charge stands.
    public static func error(engine: String, capability: String, violations: [Violation]) -> [String: Any] {
        let first = violations.first
        let more = violations.count > 1 ? " (and \(violations.count - 1) more)" : ""
        return [
            "code": "OUTPUT_CONTRACT_VIOLATION",
            "message": "\(engine) returned outputs for \(capability) that break the catalog contract: \(first.map { "\($0.field) \($0.message)" } ?? "")\(more).",
            "remediation": "The job ran and the provider's charge stands. Report it to \(engine)'s author (`yard plugin test \(engine)` shows the failing check), or prefer another engine for this step.",
            "field": "$.outputs" + (first?.field.dropFirst() ?? ""),
            "engine": engine, "capability": capability,
            "violations": violations.prefix(20).map { ["field": $0.field, "message": $0.message] },
            "retryable": false, "charged": "yes",
        ]
    }
}

/// Media types from magic numbers, for checking what a file really is.
public enum MediaSniffer {
    public static func sniff(_ head: Data) -> String? {
        let b = [UInt8](head.prefix(64))
        func ascii(_ i: Int, _ n: Int) -> String? { i + n <= b.count ? String(decoding: b[i..<(i + n)], as: UTF8.self) : nil }
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "image/png" }
        if b.starts(with: [0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if ascii(0, 4) == "GIF8" { return "image/gif" }
        if ascii(0, 4) == "RIFF", ascii(8, 4) == "WEBP" { return "image/webp" }
        if ascii(0, 4) == "RIFF", ascii(8, 4) == "WAVE" { return "audio/wav" }
        if ascii(4, 4) == "ftyp" {
            let brand = ascii(8, 4) ?? ""
            return brand == "qt  " ? "video/quicktime" : brand.hasPrefix("M4A") ? "audio/mp4" : "video/mp4"
        }
        if b.starts(with: [0x1A, 0x45, 0xDF, 0xA3]) { return "video/webm" }
        if ascii(0, 4) == "OggS" { return "audio/ogg" }
        if ascii(0, 4) == "fLaC" { return "audio/flac" }
        if ascii(0, 3) == "ID3" || (b.count > 1 && b[0] == 0xFF && b[1] & 0xE0 == 0xE0) { return "audio/mpeg" }
        return nil
    }

    /// `image/PNG; charset=…` → `image/png`, and common aliases to their IANA names.
    public static func normalize(_ type: String) -> String {
        let bare = type.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? type.lowercased()
        return ["image/jpg": "image/jpeg", "audio/x-wav": "audio/wav", "audio/wave": "audio/wav", "audio/vnd.wave": "audio/wav",
                "audio/mp3": "audio/mpeg", "audio/x-flac": "audio/flac", "audio/x-m4a": "audio/mp4"][bare] ?? bare
    }

    /// Two names of one format: an MP4 container also serves audio/mp4 and QuickTime, WebM also audio/webm.
    public static func compatible(_ a: String, _ b: String) -> Bool {
        let x = normalize(a), y = normalize(b)
        if x == y { return true }
        let families: [Set<String>] = [["video/mp4", "audio/mp4", "video/quicktime"], ["video/webm", "audio/webm"]]
        return families.contains { $0.contains(x) && $0.contains(y) }
    }
}
