import Foundation
import SwitchyardJSON

/// plugin.json: everything the host needs to know about a plugin without
/// loading its code. Its JSON Schema is Registry/schemas/plugin-manifest.schema.json.
public struct PluginManifest: Codable, Sendable, Hashable {
    public var schemaVersion: Int
    public var id: String
    public var name: String
    public var version: String
    public var vendor: String?
    public var description: String?
    /// "MAJOR.MINOR" of the PluginAPI the library was built against.
    public var abi: String
    /// File name of the shared object, beside plugin.json.
    public var library: String
    public var platform: String
    public var toolchain: String
    /// Hex SHA-256 of the library.
    public var sha256: String
    public var capabilities: [Capability]
    public var configSchema: JSONValue?
    public var secrets: [Secret]
    public var network: Network
    public var resultRetentionSeconds: Int?
    public var maxConcurrency: Int?
    public var extensions: [String]
    /// Executables the plugin may run through sy.process/1 (bare names, resolved on the host's PATH).
    public var processes: [String]
    /// Small files the conformance kit stores before running example_inputs.
    public var exampleArtifacts: [ExampleArtifact]
    /// Deadlines per call (validate, submit, poll, cancel, health, estimate,
    /// webhook, reconcile, balance, load), in ms; the host bounds them (PluginDeadlines).
    public var callTimeoutsMs: [String: Int]
    /// Address space of the plugin's runner process, when it runs isolated.
    public var runnerMemoryMB: Int?

    public struct ExampleArtifact: Codable, Sendable, Hashable {
        public var mediaType: String
        public var dataBase64: String

        enum CodingKeys: String, CodingKey {
            case mediaType = "media_type"
            case dataBase64 = "data_base64"
        }
    }

    public struct Capability: Codable, Sendable, Hashable {
        public var id: String
        /// A JSON Schema that narrows the catalog's input schema.
        public var limits: JSONValue?
        /// A JSON Schema that narrows the catalog's output schema: what this
        /// engine guarantees on top of the catalog (e.g. audio/wav only). The
        /// host checks finished jobs against both.
        public var outputs: JSONValue?
        public var pricing: JSONValue?
        /// Inputs that pass `limits`: used by `yard plugin test` and `plugin info`.
        public var exampleInputs: JSONValue?
        /// How long one job may take before the host cancels it (ENGINE_TIMEOUT).
        public var timeoutSeconds: Int?
        /// The provider models that serve this capability, each with its own
        /// narrowing and price; the host picks one per job (see JobEngine.chooseModel).
        public var models: [Model]?

        public struct Model: Codable, Sendable, Hashable {
            public var id: String
            public var title: String?
            public var `default`: Bool?
            public var limits: JSONValue?
            public var pricing: JSONValue?
        }

        enum CodingKeys: String, CodingKey {
            case id, limits, outputs, pricing, models
            case exampleInputs = "example_inputs"
            case timeoutSeconds = "timeout_seconds"
        }
    }

    public struct Secret: Codable, Sendable, Hashable {
        public var name: String
        public var required: Bool
        public var description: String?

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            required = try c.decodeIfPresent(Bool.self, forKey: .required) ?? true
            description = try c.decodeIfPresent(String.self, forKey: .description)
        }
    }

    public struct Network: Codable, Sendable, Hashable {
        /// Hosts the plugin may reach through sy.http/1 (exact names; "*.example.com" for subdomains).
        public var hosts: [String]

        public init(hosts: [String]) { self.hosts = hosts }
    }

    enum CodingKeys: String, CodingKey {
        case id, name, version, vendor, description, abi, library, platform, toolchain, sha256
        case capabilities, secrets, network, extensions, processes
        case exampleArtifacts = "example_artifacts"
        case schemaVersion = "schema_version"
        case configSchema = "config_schema"
        case resultRetentionSeconds = "result_retention_seconds"
        case maxConcurrency = "max_concurrency"
        case callTimeoutsMs = "call_timeouts_ms"
        case runnerMemoryMB = "runner_memory_mb"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decode(Int.self, forKey: .schemaVersion)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        version = try c.decode(String.self, forKey: .version)
        vendor = try c.decodeIfPresent(String.self, forKey: .vendor)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        abi = try c.decode(String.self, forKey: .abi)
        library = try c.decode(String.self, forKey: .library)
        platform = try c.decodeIfPresent(String.self, forKey: .platform) ?? ""
        toolchain = try c.decodeIfPresent(String.self, forKey: .toolchain) ?? ""
        sha256 = try c.decodeIfPresent(String.self, forKey: .sha256) ?? ""
        capabilities = try c.decode([Capability].self, forKey: .capabilities)
        configSchema = try c.decodeIfPresent(JSONValue.self, forKey: .configSchema)
        secrets = try c.decodeIfPresent([Secret].self, forKey: .secrets) ?? []
        network = try c.decodeIfPresent(Network.self, forKey: .network) ?? Network(hosts: [])
        resultRetentionSeconds = try c.decodeIfPresent(Int.self, forKey: .resultRetentionSeconds)
        maxConcurrency = try c.decodeIfPresent(Int.self, forKey: .maxConcurrency)
        extensions = try c.decodeIfPresent([String].self, forKey: .extensions) ?? []
        processes = try c.decodeIfPresent([String].self, forKey: .processes) ?? []
        exampleArtifacts = try c.decodeIfPresent([ExampleArtifact].self, forKey: .exampleArtifacts) ?? []
        callTimeoutsMs = try c.decodeIfPresent([String: Int].self, forKey: .callTimeoutsMs) ?? [:]
        runnerMemoryMB = try c.decodeIfPresent(Int.self, forKey: .runnerMemoryMB)
    }

    public var capabilityIDs: [String] { capabilities.map(\.id) }

    /// Parses and checks a manifest; every problem is MANIFEST_INVALID with the field.
    public static func parse(_ data: Data, source: String) throws -> PluginManifest {
        // Bounded and strict first: a hostile manifest is refused with a code
        // before the recursive decoder sees it.
        do { _ = try DocumentLimits.manifest.parseJSON(data, source: source) } catch let error as JSONParseError {
            throw YardError(.manifestInvalid, "\(source) is not valid JSON: \(error).", remediation: "Check the file with a JSON linter.")
        }
        let manifest: PluginManifest
        do {
            manifest = try JSONDecoder().decode(PluginManifest.self, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw YardError(.manifestInvalid, "\(source) lacks the required member \"\(key.stringValue)\".",
                            remediation: "Add it; see Registry/schemas/plugin-manifest.schema.json.",
                            field: Self.path(ctx.codingPath + [key]))
        } catch let DecodingError.typeMismatch(type, ctx) {
            throw YardError(.manifestInvalid, "\(source): \(Self.path(ctx.codingPath)) should be of type \(type).",
                            remediation: "Fix the value; see Registry/schemas/plugin-manifest.schema.json.",
                            field: Self.path(ctx.codingPath))
        } catch {
            throw YardError(.manifestInvalid, "\(source) is not valid JSON.",
                            remediation: "Check the file with a JSON linter.")
        }
        try manifest.check(source: source)
        return manifest
    }

    static func path(_ keys: [CodingKey]) -> String {
        "$" + keys.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }.joined()
    }

    static let idPattern = try! NSRegularExpression(pattern: "^[a-z0-9][a-z0-9._-]{0,63}$")
    static let capabilityPattern = try! NSRegularExpression(pattern: "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$")
    static let processPattern = try! NSRegularExpression(pattern: "^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
    static let secretPattern = try! NSRegularExpression(pattern: "^[A-Z][A-Z0-9_]{0,63}$")

    static func matches(_ regex: NSRegularExpression, _ s: String) -> Bool {
        regex.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    func check(source: String) throws {
        func invalid(_ field: String, _ message: String, _ fix: String) -> YardError {
            YardError(.manifestInvalid, "\(source): \(message)", remediation: fix, field: field)
        }
        guard schemaVersion == 1 else {
            throw invalid("$.schema_version", "schema_version \(schemaVersion) is not understood by this host (it reads 1).", "Upgrade yard, or write schema_version 1.")
        }
        guard Self.matches(Self.idPattern, id) else {
            throw invalid("$.id", "id \"\(id)\" must be 1-64 lower-case letters, digits, '.', '_' or '-'.", "Rename the plugin.")
        }
        guard SemanticVersion(version) != nil else {
            throw invalid("$.version", "version \"\(version)\" is not semver (MAJOR.MINOR.PATCH).", "Write e.g. 1.0.0.")
        }
        guard ABIVersion(abi) != nil else {
            throw invalid("$.abi", "abi \"\(abi)\" is not MAJOR.MINOR.", "Write the PluginAPI version the plugin was built against, e.g. \(HostPlatform.abiString).")
        }
        guard !library.isEmpty, !library.contains("/"), library != ".", library != ".." else {
            throw invalid("$.library", "library must be a file name beside plugin.json.", "Write e.g. libMyPlugin.so.")
        }
        if !sha256.isEmpty, sha256.count != 64 || !sha256.allSatisfy(\.isHexDigit) {
            throw invalid("$.sha256", "sha256 must be 64 hex digits.", "Let `yard plugin pack` fill it in.")
        }
        guard !capabilities.isEmpty else {
            throw invalid("$.capabilities", "a plugin must offer at least one capability.", "Add a capability from Registry/capabilities/.")
        }
        var seen = Set<String>()
        for (i, capability) in capabilities.enumerated() {
            guard Self.matches(Self.capabilityPattern, capability.id) else {
                throw invalid("$.capabilities[\(i)].id", "capability id \"\(capability.id)\" must look like area.action.", "Use an id from Registry/capabilities/.")
            }
            guard seen.insert(capability.id).inserted else {
                throw invalid("$.capabilities[\(i)].id", "capability \(capability.id) is listed twice.", "List each capability once.")
            }
            if let limits = capability.limits {
                do { _ = try JSONSchema(limits) } catch {
                    throw invalid("$.capabilities[\(i)].limits", "limits is not a valid schema: \(error)", "Fix the schema.")
                }
            }
            if let outputs = capability.outputs {
                do { _ = try JSONSchema(outputs) } catch {
                    throw invalid("$.capabilities[\(i)].outputs", "outputs is not a valid schema: \(error)", "Fix the schema.")
                }
            }
        }
        if let configSchema {
            do { _ = try JSONSchema(configSchema) } catch {
                throw invalid("$.config_schema", "config_schema is not a valid schema: \(error)", "Fix the schema.")
            }
        }
        for (i, secret) in secrets.enumerated() where !Self.matches(Self.secretPattern, secret.name) {
            throw invalid("$.secrets[\(i)].name", "secret name \"\(secret.name)\" must be UPPER_SNAKE_CASE.", "Rename it, e.g. FAL_KEY.")
        }
        for (i, host) in network.hosts.enumerated() where host.isEmpty || host.contains("/") || host.contains(":") && !host.hasPrefix("[") {
            throw invalid("$.network.hosts[\(i)]", "\"\(host)\" is not a host name.", "Write a bare host such as api.runpod.ai (no scheme, path or port).")
        }
        for (i, name) in processes.enumerated() where !Self.matches(Self.processPattern, name) {
            throw invalid("$.processes[\(i)]", "\"\(name)\" is not a bare executable name.", "Write the program's name as found on PATH, e.g. ffmpeg (no directories).")
        }
        if let maxConcurrency, maxConcurrency < 1 {
            throw invalid("$.max_concurrency", "max_concurrency must be at least 1.", "Write a positive number.")
        }
        for (name, ms) in callTimeoutsMs.sorted(by: { $0.key < $1.key }) {
            guard PluginDeadlines.defaults[name] != nil else {
                throw invalid("$.call_timeouts_ms.\(name)", "\"\(name)\" is not a call the host bounds.",
                              "Use one of \(PluginDeadlines.defaults.keys.sorted().joined(separator: ", ")).")
            }
            guard ms >= 1 else {
                throw invalid("$.call_timeouts_ms.\(name)", "a deadline must be at least 1 ms.", "Write milliseconds, e.g. 30000.")
            }
        }
        if let memory = runnerMemoryMB, memory < 64 {
            throw invalid("$.runner_memory_mb", "runner_memory_mb must be at least 64.", "Write the runner's memory limit in MiB, e.g. 2048.")
        }
        if let retention = resultRetentionSeconds, retention < 0 {
            throw invalid("$.result_retention_seconds", "result_retention_seconds cannot be negative.", "Write 0 for results that are returned inline.")
        }
    }
}

public struct ABIVersion: Sendable, Hashable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3, let major = Int(parts[0]), let minor = Int(parts[1]),
              major >= 0, minor >= 0 else { return nil }
        self.major = major
        self.minor = minor
    }

    public var description: String { "\(major).\(minor)" }

    public static var host: ABIVersion { ABIVersion(major: HostPlatform.abiMajor, minor: HostPlatform.abiMinor) }

    /// Nil when a host of ABI `host` may load a plugin built for `self`, else the reason.
    public func incompatibility(withHost host: ABIVersion = .host) -> String? {
        if major != host.major {
            return "it was built for PluginAPI \(self) and this host speaks \(host.major).x (plugins of ABI \(host.major).0 to \(host.major).\(host.minor) load)"
        }
        if minor > host.minor {
            return "it needs PluginAPI \(self), newer than this host's \(host) (plugins of ABI \(host.major).0 to \(host.major).\(host.minor) load)"
        }
        return nil
    }
}

public struct SemanticVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var patch: Int
    public var prerelease: String

    public init?(_ text: String) {
        let core = text.split(separator: "+", maxSplits: 1).first.map(String.init) ?? text
        let pieces = core.split(separator: "-", maxSplits: 1)
        let numbers = pieces.first?.split(separator: ".", omittingEmptySubsequences: false) ?? []
        guard numbers.count == 3, let a = Int(numbers[0]), let b = Int(numbers[1]), let c = Int(numbers[2]),
              a >= 0, b >= 0, c >= 0 else { return nil }
        major = a
        minor = b
        patch = c
        prerelease = pieces.count > 1 ? String(pieces[1]) : ""
    }

    public var description: String { "\(major).\(minor).\(patch)" + (prerelease.isEmpty ? "" : "-\(prerelease)") }

    public static func < (l: SemanticVersion, r: SemanticVersion) -> Bool {
        if (l.major, l.minor, l.patch) != (r.major, r.minor, r.patch) {
            return (l.major, l.minor, l.patch) < (r.major, r.minor, r.patch)
        }
        if l.prerelease.isEmpty != r.prerelease.isEmpty { return !l.prerelease.isEmpty }
        return l.prerelease < r.prerelease
    }
}
