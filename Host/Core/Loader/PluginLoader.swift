import CPluginAPI
import Crypto
import Foundation
import SwitchyardJSON
#if canImport(Glibc)
import Glibc
#endif

/// The operations of the v1 job model, plus optional extensions.
public enum PluginOperation: String, Sendable, CaseIterable {
    case validate, submit, poll, cancel, health
}

/// The answer of one plugin call: the ABI status and the document the plugin wrote.
public struct PluginCallResult: Sendable {
    public var status: Int32
    public var document: Data
    /// Set when the plugin never answered (crash, deadline, unusable document);
    /// `document` then holds the host's own {"error":{...}} in the ABI's shape.
    public var failure: PluginCallFailure?
    /// The failure is this call's own: it was the only call in flight when the
    /// runner died, or it missed its own deadline. Repeated attributed failures
    /// quarantine a job.
    public var attributed: Bool = false
    /// An extension call whose extension the plugin does not implement.
    public var absent: Bool = false

    public init(status: Int32, document: Data, failure: PluginCallFailure? = nil, attributed: Bool = false) {
        self.status = status
        self.document = document
        self.failure = failure
        self.attributed = attributed
    }

    /// The document as read once by the host (SwitchyardJSON), when it was
    /// checked on its way in; `answer` reads it then without parsing again.
    var parsed: JSONValue?

    public var isOK: Bool { status == SY_OK }
    public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: document)) as? [String: Any] }
    /// The document as a JSON object, nil when it is not one.
    public var answer: JSONValue? {
        if let parsed { return parsed }
        guard let value = try? JSONValue(parsing: document), value.objectValue != nil else { return nil }
        return value
    }
}

/// A plugin whose code is loaded: in this process (never unloaded: a Swift
/// image cannot be dlclose'd safely, so the handle lives as long as the
/// process), or in a runner process the host supervises (isolation: process).
public final class LoadedPlugin: @unchecked Sendable {
    public let manifest: PluginManifest
    public let libraryURL: URL
    public let context: PluginContext
    /// The descriptor document the plugin returned from its entry.
    public let descriptor: [String: Any]
    public let isolation: PluginIsolation
    public let deadlines: PluginDeadlines
    let plugin: UnsafePointer<sy_plugin_t>?
    let host: UnsafeMutablePointer<sy_host_t>?
    let supervisor: PluginSupervisor?

    init(manifest: PluginManifest, libraryURL: URL, context: PluginContext, descriptor: [String: Any],
         plugin: UnsafePointer<sy_plugin_t>, host: UnsafeMutablePointer<sy_host_t>) {
        self.manifest = manifest
        self.libraryURL = libraryURL
        self.context = context
        self.descriptor = descriptor
        self.plugin = plugin
        self.host = host
        self.supervisor = nil
        self.isolation = .inProcess
        self.deadlines = PluginDeadlines(manifest: manifest)
    }

    init(supervisor: PluginSupervisor) {
        manifest = supervisor.manifest
        libraryURL = supervisor.library
        context = supervisor.context
        descriptor = supervisor.descriptor
        plugin = nil
        host = nil
        self.supervisor = supervisor
        isolation = .process
        deadlines = supervisor.deadlines
    }

    /// What the runner's sandbox enforces (isolated plugins only).
    public var sandbox: SandboxReport? { supervisor?.sandbox }
    /// How often the runner was restarted after a crash or a missed deadline.
    public var restarts: Int { supervisor?.restarts ?? 0 }

    /// Ends an isolated plugin's runner now (the next call starts it again).
    public func stopRunner() { supervisor?.shutdown() }

    /// Calls one operation and blocks until it returns. Call it from a worker
    /// thread (see PluginCallExecutor), never from a cooperative async thread.
    /// An isolated plugin's call has its deadline; an in-process call has none
    /// here (JobEngine's `perform` bounds it).
    public func call(_ operation: PluginOperation, request: Data, jobID: String? = nil) -> PluginCallResult {
        if let supervisor { return supervisor.callBlocking(.operation(operation), request: request, jobID: jobID) }
        guard let plugin else { return PluginCallResult(status: SY_E_INTERNAL, document: Data()) }
        let fn: (@convention(c) (UnsafePointer<sy_plugin_t>?, UnsafePointer<sy_call_t>?, sy_str_t, UnsafePointer<sy_sink_t>?) -> sy_status_t)?
        switch operation {
        case .validate: fn = plugin.pointee.validate
        case .submit: fn = plugin.pointee.submit
        case .poll: fn = plugin.pointee.poll
        case .cancel: fn = plugin.pointee.cancel
        case .health: fn = plugin.pointee.health
        }
        guard let fn else { return PluginCallResult(status: SY_E_UNSUPPORTED, document: Data()) }
        return withCall(jobID: jobID, kind: .operation(operation)) { call, sink in request.withSyStr { fn(plugin, call, $0, sink) } }
    }

    /// Whether the plugin implements an optional extension (get_extension(id) != NULL).
    public func hasExtension(_ id: String) -> Bool {
        if let supervisor { return supervisor.hasExtension(id) }
        return extensionTable(id) != nil
    }

    /// Looks up an optional plugin extension of an in-process plugin; NULL
    /// (nil) when absent, and always nil for an isolated plugin (its tables
    /// live in the runner: use hasExtension and callExtension).
    public func extensionTable(_ id: String) -> UnsafeRawPointer? {
        guard let plugin, let get = plugin.pointee.get_extension else { return nil }
        return Data(id.utf8).withSyStr { get(plugin, $0) }
    }

    /// Calls an extension whose table is `{struct_size, fn(plugin, call, request, out)}`
    /// (all v1 plugin extensions have that shape); nil when the plugin lacks it.
    public func callExtension(_ id: String, request: Data, jobID: String? = nil) -> PluginCallResult? {
        if let supervisor {
            let result = supervisor.callBlocking(.extension(id), request: request, jobID: jobID)
            return result.absent ? nil : result
        }
        typealias ExtensionFn = @convention(c) (UnsafePointer<sy_plugin_t>?, UnsafePointer<sy_call_t>?, sy_str_t, UnsafePointer<sy_sink_t>?) -> sy_status_t
        guard let plugin, let table = extensionTable(id) else { return nil }
        // Every v1 plugin extension is { uint32_t struct_size; fn }: the function sits at the first pointer-aligned offset.
        // A table from a later minor may be larger (appended fields); one smaller than v1.0's is unusable.
        let size = table.load(as: UInt32.self)
        guard size >= UInt32(SY_EXTENSION_ESTIMATE_V1_0_SIZE),
              let raw = table.load(fromByteOffset: MemoryLayout<UnsafeRawPointer>.stride, as: UnsafeRawPointer?.self) else {
            return PluginCallResult(status: SY_E_UNSUPPORTED, document: Data())
        }
        let fn = unsafeBitCast(raw, to: ExtensionFn.self)
        return withCall(jobID: jobID, kind: .extension(id)) { call, sink in request.withSyStr { fn(plugin, call, $0, sink) } }
    }

    /// One call from async code, within its deadline. An isolated plugin's
    /// call waits on the runner's answer without holding a thread; an
    /// in-process call runs on the executor's threads and, past its deadline,
    /// is abandoned there (PLUGIN_TIMEOUT) since code in this process cannot be stopped.
    public func perform(_ kind: PluginCallKind, request: Data, jobID: String?, executor: PluginCallExecutor = .shared) async -> PluginCallResult {
        var result: PluginCallResult
        if let supervisor {
            result = await supervisor.call(kind, request: request, jobID: jobID)
            if case .extension = kind, result.absent { return result }
        } else {
            let deadline = deadlines.ms(for: kind)
            let pluginID = manifest.id
            result = await executor.run(timeoutMs: deadline,
                                        onTimeout: .failure(.timedOut(deadline), kind: kind, pluginID: pluginID, attributed: true)) { [self] in
                switch kind {
                case .operation(let op): return self.call(op, request: request, jobID: jobID)
                case .extension(let id):
                    guard let answer = self.callExtension(id, request: request, jobID: jobID) else {
                        var absent = PluginCallResult(status: SY_E_UNSUPPORTED, document: Data())
                        absent.absent = true
                        return absent
                    }
                    return answer
                }
            }
            if result.absent { return result }
        }
        return result.failure == nil ? Self.checkedDocument(result, kind: kind, pluginID: manifest.id) : result
    }

    /// A document the host cannot read is the plugin's failure, with its own
    /// code, never a silent "no answer".
    static func checkedDocument(_ result: PluginCallResult, kind: PluginCallKind, pluginID: String) -> PluginCallResult {
        if result.document.isEmpty {
            if result.isOK {
                return .failure(.outputInvalid("\(pluginID) answered \(kind.description) with SY_OK but wrote no document"), kind: kind, pluginID: pluginID, attributed: true)
            }
            return result
        }
        guard let value = try? JSONValue(parsing: result.document), value.objectValue != nil else {
            return .failure(.outputInvalid("\(pluginID) answered \(kind.description) with a document that is not a JSON object (\(result.document.count) bytes)"),
                            kind: kind, pluginID: pluginID, attributed: true)
        }
        var checked = result
        checked.parsed = value
        return checked
    }

    private func withCall(jobID: String?, kind: PluginCallKind, _ body: (UnsafePointer<sy_call_t>, UnsafePointer<sy_sink_t>) -> sy_status_t) -> PluginCallResult {
        let (status, data, truncated) = HostCall.run(CallContext(plugin: context, jobID: jobID), host: host.map { UnsafePointer($0) },
                                                     limit: PluginDocumentLimit.bytes, body)
        if truncated {
            return .failure(.outputInvalid("\(manifest.id) answered \(kind.description) with a document larger than \(PluginDocumentLimit.bytes >> 20) MiB"),
                            kind: kind, pluginID: manifest.id, attributed: true)
        }
        return PluginCallResult(status: status, document: data)
    }

    deinit { supervisor?.shutdown() }
}

final class ManagedAtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: UInt64 = 0
    func next() -> UInt64 { lock.withLock { value += 1; return value } }
}

/// Checks and loads plugins. Checks run cheapest first and refuse before any
/// plugin code runs: manifest, file, ABI, platform, toolchain, sha256, ELF;
/// then dlopen, the entry symbol, the entry call and the descriptor.
public enum PluginLoader {
    private static let lock = NSLock()
    /// One load per library per process: the entry is called once, the handle kept forever.
    nonisolated(unsafe) private static var loaded: [String: LoadedPlugin] = [:]

    public static let entrySymbol = SY_PLUGIN_ENTRY_SYMBOL

    /// Reads and checks plugin.json and the library beside it without loading code.
    public static func inspect(manifestURL: URL, verifyHash: Bool = true, lockExpectation: LockExpectation = .none) throws -> (PluginManifest, URL) {
        let data: Data
        do {
            data = try Data(contentsOf: manifestURL)
        } catch {
            throw YardError(.pluginNotFound, "No plugin manifest at \(manifestURL.path).",
                            remediation: "Check the path, or run `yard plugin list` to see installed plugins.")
        }
        let manifest = try PluginManifest.parse(data, source: manifestURL.path)
        try lockExpectation.verify(manifestBytes: data, manifest: manifest, manifestURL: manifestURL)
        let library = manifestURL.deletingLastPathComponent().appendingPathComponent(manifest.library)
        guard FileManager.default.fileExists(atPath: library.path) else {
            throw YardError(.pluginNotFound, "\(manifest.id): the library \(manifest.library) is missing beside \(manifestURL.lastPathComponent).",
                            remediation: "Reinstall the plugin (`yard plugin install`), or rebuild it and run `yard plugin pack`.", field: "$.library")
        }
        try checkCompatibility(manifest)
        if verifyHash { try verifyLibrary(manifest, at: library) }
        return (manifest, library)
    }

    public static func checkCompatibility(_ manifest: PluginManifest) throws {
        guard let abi = ABIVersion(manifest.abi) else {
            throw YardError(.manifestInvalid, "\(manifest.id): abi \"\(manifest.abi)\" is not MAJOR.MINOR.", remediation: "Fix plugin.json.", field: "$.abi")
        }
        if let reason = abi.incompatibility() {
            throw YardError(.pluginIncompatible, "\(manifest.id) \(manifest.version) cannot load: \(reason).",
                            remediation: abi.major > ABIVersion.host.major || abi.minor > ABIVersion.host.minor
                                ? "Upgrade yard, or install a build of the plugin for PluginAPI \(HostPlatform.abiString)."
                                : "Install a build of the plugin for PluginAPI \(HostPlatform.abiString).", field: "$.abi")
        }
        if !manifest.platform.isEmpty, manifest.platform != HostPlatform.platform {
            throw YardError(.pluginIncompatible, "\(manifest.id) was built for \(manifest.platform); this host is \(HostPlatform.platform).",
                            remediation: "Install the \(HostPlatform.platform) build of the plugin.", field: "$.platform")
        }
        if !manifest.toolchain.isEmpty, !HostPlatform.isToolchainCompatible(manifest.toolchain) {
            throw YardError(.pluginIncompatible, "\(manifest.id) was built with \(manifest.toolchain); this host runs \(HostPlatform.toolchain). Swift's ABI is not stable on Linux, so a Swift plugin must come from the host's toolchain.",
                            remediation: "Rebuild the plugin with \(HostPlatform.toolchain), or write it against the C ABI only (toolchain \"c\").", field: "$.toolchain")
        }
    }

    public static func sha256(of url: URL) throws -> String {
        guard let handle = try? FileHandle(forReadingFrom: url) else {
            throw YardError(.pluginNotFound, "Cannot read \(url.path).", remediation: "Check the file's permissions.")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    static func verifyLibrary(_ manifest: PluginManifest, at library: URL) throws {
        guard !manifest.sha256.isEmpty else {
            throw YardError(.manifestInvalid, "\(manifest.id): plugin.json has no sha256 for \(manifest.library).",
                            remediation: "Package the plugin with `yard plugin pack`, which records the library's sha256.", field: "$.sha256")
        }
        let actual = try sha256(of: library)
        guard actual == manifest.sha256.lowercased() else {
            throw YardError(.pluginCorrupt, "\(manifest.id): \(manifest.library) has sha256 \(actual.prefix(16))…, but plugin.json says \(manifest.sha256.prefix(16))…. The file was changed or damaged after packaging.",
                            remediation: "Reinstall the plugin from its package; never edit an installed library.", field: "$.sha256")
        }
    }

    static func checkELF(_ library: URL, id: String) throws {
        try ELFImage.check(library, id: id)
    }

    /// Loads the plugin: inspect, dlopen(RTLD_NOW | RTLD_LOCAL), resolve the
    /// entry, call it once, check the descriptor against the manifest.
    /// In process, a library is loaded once per process and never unloaded,
    /// so the services of its first load stay bound to it: loading the same
    /// file again returns that plugin, whatever `services` this call passes.
    /// Isolated (`.process`), every load starts a runner of its own, bound
    /// to the `services` given here.
    public static func load(manifestURL: URL, services: HostServiceSet, verifyHash: Bool = true,
                            lockExpectation: LockExpectation = .none, isolation: PluginIsolation = .inProcess, runner: RunnerConfiguration = RunnerConfiguration()) throws -> LoadedPlugin {
        let (manifest, library) = try inspect(manifestURL: manifestURL, verifyHash: verifyHash, lockExpectation: lockExpectation)
        if isolation == .process {
            try checkELF(library, id: manifest.id)
            let supervisor = try PluginSupervisor(manifest: manifest, manifestURL: manifestURL, library: library,
                                                  context: PluginContext(manifest: manifest, services: services), configuration: runner)
            return LoadedPlugin(supervisor: supervisor)
        }
        let key = library.resolvingSymlinksInPath().path
        if let existing = lock.withLock({ loaded[key] }) { return existing }
        try checkELF(library, id: manifest.id)

        guard let handle = dlopen(key, RTLD_NOW | RTLD_LOCAL) else {
            throw dlopenFailure(dlerror().map { String(cString: $0) } ?? "unknown dlopen error", manifest: manifest)
        }
        // Never dlclose: a Swift image cannot be unloaded.
        guard let symbol = dlsym(handle, entrySymbol) else {
            throw missingEntry(otherMajors: (2...9).filter { dlsym(handle, "sy_plugin_entry_v\($0)") != nil }, manifest: manifest)
        }

        let context = PluginContext(manifest: manifest, services: services)
        let host = makeHost(context)
        typealias Entry = @convention(c) (UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>?
        let entry = unsafeBitCast(symbol, to: Entry.self)
        guard let plugin = entry(UnsafePointer(host)) else { throw entryReturnedNull(manifest) }
        let descriptor = try checkPlugin(plugin, manifest: manifest)
        let result = LoadedPlugin(manifest: manifest, libraryURL: library, context: context, descriptor: descriptor, plugin: plugin, host: host)
        lock.withLock { loaded[key] = result }
        return result
    }

    static func dlopenFailure(_ reason: String, manifest: PluginManifest) -> YardError {
        if reason.contains("undefined symbol") || reason.contains("cannot open shared object file") {
            return YardError(.pluginIncompatible, "\(manifest.id): the library needs something this system lacks: \(reason).",
                             remediation: "Install the missing library, or rebuild the plugin against \(HostPlatform.toolchain).", field: "$.library")
        }
        return YardError(.pluginCorrupt, "\(manifest.id): the library does not load: \(reason).",
                         remediation: "The file is damaged or truncated: reinstall or rebuild it.", field: "$.library")
    }

    static func missingEntry(otherMajors: [Int], manifest: PluginManifest) -> YardError {
        if let major = otherMajors.first {
            return YardError(.pluginIncompatible, "\(manifest.id) exports sy_plugin_entry_v\(major): it was built for PluginAPI \(major).x, and this host speaks \(HostPlatform.abiMajor).x.",
                             remediation: "Install a build of the plugin for PluginAPI \(HostPlatform.abiString).", field: "$.abi")
        }
        return YardError(.pluginCorrupt, "\(manifest.id): the library exports no \(entrySymbol).",
                         remediation: "Export the entry: in Swift, one @_cdecl(\"\(entrySymbol)\") line calling PluginExport.entry; in C, a visible function of that name.")
    }

    static func entryReturnedNull(_ manifest: PluginManifest) -> YardError {
        YardError(.pluginEntryFailed, "\(manifest.id): \(entrySymbol) returned NULL: the plugin refused this host (PluginAPI \(HostPlatform.abiString)).",
                  remediation: "Upgrade yard or install a build of the plugin for PluginAPI \(HostPlatform.abiString).")
    }

    static func makeHost(_ context: PluginContext) -> UnsafeMutablePointer<sy_host_t> {
        func staticString(_ s: String) -> sy_str_t {
            let bytes = Array(s.utf8)
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(bytes.count, 1))
            bytes.withUnsafeBufferPointer { buf in
                buf.withMemoryRebound(to: CChar.self) { p.initialize(from: $0.baseAddress!, count: bytes.count) }
            }
            return sy_str_t(data: p, size: bytes.count)
        }
        let host = UnsafeMutablePointer<sy_host_t>.allocate(capacity: 1)
        host.initialize(to: sy_host_t(
            struct_size: UInt32(MemoryLayout<sy_host_t>.size),
            abi: sy_version_t(struct_size: UInt32(MemoryLayout<sy_version_t>.size), major: UInt32(SY_ABI_MAJOR),
                              minor: UInt32(SY_ABI_MINOR), patch: UInt32(SY_ABI_PATCH)),
            name: staticString("switchyard"),
            version: staticString(HostPlatform.hostVersion),
            host_data: Unmanaged.passRetained(context).toOpaque(),
            get_service: { host, id in
                guard let data = host?.pointee.host_data else { return nil }
                let context = Unmanaged<PluginContext>.fromOpaque(data).takeUnretainedValue()
                return ServiceTables.lookup(String(syStr: id), for: context)
            }
        ))
        return host
    }

    static func checkPlugin(_ plugin: UnsafePointer<sy_plugin_t>, manifest: PluginManifest) throws -> [String: Any] {
        let p = plugin.pointee
        // Compared with the frozen v1.0 size, never this host's sizeof: a plugin
        // built against 1.0 must keep loading when a later minor appends fields.
        guard p.struct_size >= UInt32(SY_PLUGIN_V1_0_SIZE) else {
            return try checkPlugin(PluginImageFacts(structSize: p.struct_size, abiMajor: 0, abiMinor: 0, requiredFunctionsPresent: false, descriptor: Data()), manifest: manifest)
        }
        let complete = p.validate != nil && p.submit != nil && p.poll != nil && p.cancel != nil && p.health != nil && p.get_extension != nil
        return try checkPlugin(PluginImageFacts(structSize: p.struct_size, abiMajor: p.abi.major, abiMinor: p.abi.minor,
                                                requiredFunctionsPresent: complete, descriptor: Data(syStr: p.descriptor)), manifest: manifest)
    }

    /// The same checks for a plugin in this process and one in a runner (whose READY frame carries these facts).
    static func checkPlugin(_ p: PluginImageFacts, manifest: PluginManifest) throws -> [String: Any] {
        guard p.structSize >= UInt32(SY_PLUGIN_V1_0_SIZE) else {
            throw YardError(.pluginCorrupt, "\(manifest.id): its sy_plugin_t is \(p.structSize) bytes, smaller than PluginAPI 1.0's \(SY_PLUGIN_V1_0_SIZE).",
                            remediation: "Rebuild the plugin against PluginAPI \(HostPlatform.abiString) headers.")
        }
        let abi = ABIVersion(major: Int(p.abiMajor), minor: Int(p.abiMinor))
        if let reason = abi.incompatibility() {
            throw YardError(.pluginIncompatible, "\(manifest.id) cannot load: \(reason) (as its descriptor says).",
                            remediation: "Upgrade yard, or install a build of the plugin for PluginAPI \(HostPlatform.abiString).", field: "$.abi")
        }
        if let declared = ABIVersion(manifest.abi), declared != abi {
            throw YardError(.manifestMismatch, "\(manifest.id): plugin.json says ABI \(declared) but the library was built for \(abi).",
                            remediation: "Repackage the plugin with `yard plugin pack` from the same build.", field: "$.abi")
        }
        guard p.requiredFunctionsPresent else {
            throw YardError(.pluginCorrupt, "\(manifest.id): its sy_plugin_t leaves a required function NULL.",
                            remediation: "Implement validate, submit, poll, cancel, health and get_extension.")
        }
        guard let object = try? JSONSerialization.jsonObject(with: p.descriptor) as? [String: Any] else {
            throw YardError(.pluginCorrupt, "\(manifest.id): its descriptor is not a JSON object.", remediation: "Fix the plugin's descriptor.")
        }
        let id = object["id"] as? String ?? "", version = object["version"] as? String ?? ""
        let capabilities = (object["capabilities"] as? [String] ?? []).sorted()
        var differences: [String] = []
        if id != manifest.id { differences.append("id \"\(id)\" ≠ \"\(manifest.id)\"") }
        if version != manifest.version { differences.append("version \(version) ≠ \(manifest.version)") }
        if capabilities != manifest.capabilityIDs.sorted() {
            differences.append("capabilities \(capabilities) ≠ \(manifest.capabilityIDs.sorted())")
        }
        if !differences.isEmpty {
            throw YardError(.manifestMismatch, "\(manifest.id): the library's descriptor does not match plugin.json: \(differences.joined(separator: "; ")).",
                            remediation: "Package plugin.json together with the library it describes (`yard plugin pack`).")
        }
        return object
    }
}
