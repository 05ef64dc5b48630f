import CPluginAPI
import Crypto
import Foundation
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

    public var isOK: Bool { status == SY_OK }
    public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: document)) as? [String: Any] }
}

/// A plugin whose code is loaded. Never unloaded: a Swift image cannot be
/// dlclose'd safely, so the handle lives as long as the process.
public final class LoadedPlugin: @unchecked Sendable {
    public let manifest: PluginManifest
    public let libraryURL: URL
    public let context: PluginContext
    /// The descriptor document the plugin returned from its entry.
    public let descriptor: [String: Any]
    let plugin: UnsafePointer<sy_plugin_t>
    let host: UnsafeMutablePointer<sy_host_t>

    init(manifest: PluginManifest, libraryURL: URL, context: PluginContext, descriptor: [String: Any],
         plugin: UnsafePointer<sy_plugin_t>, host: UnsafeMutablePointer<sy_host_t>) {
        self.manifest = manifest
        self.libraryURL = libraryURL
        self.context = context
        self.descriptor = descriptor
        self.plugin = plugin
        self.host = host
    }

    /// Calls one operation and blocks until it returns. Call it from a worker
    /// thread (see PluginCallExecutor), never from a cooperative async thread.
    public func call(_ operation: PluginOperation, request: Data, jobID: String? = nil) -> PluginCallResult {
        let fn: (@convention(c) (UnsafePointer<sy_plugin_t>?, UnsafePointer<sy_call_t>?, sy_str_t, UnsafePointer<sy_sink_t>?) -> sy_status_t)?
        switch operation {
        case .validate: fn = plugin.pointee.validate
        case .submit: fn = plugin.pointee.submit
        case .poll: fn = plugin.pointee.poll
        case .cancel: fn = plugin.pointee.cancel
        case .health: fn = plugin.pointee.health
        }
        guard let fn else { return PluginCallResult(status: SY_E_UNSUPPORTED, document: Data()) }
        return withCall(jobID: jobID) { call, sink in request.withSyStr { fn(plugin, call, $0, sink) } }
    }

    /// Looks up an optional plugin extension; NULL (nil) when absent.
    public func extensionTable(_ id: String) -> UnsafeRawPointer? {
        guard let get = plugin.pointee.get_extension else { return nil }
        return Data(id.utf8).withSyStr { get(plugin, $0) }
    }

    /// Calls an extension whose table is `{struct_size, fn(plugin, call, request, out)}`
    /// (all v1 plugin extensions have that shape).
    public func callExtension(_ id: String, request: Data, jobID: String? = nil) -> PluginCallResult? {
        typealias ExtensionFn = @convention(c) (UnsafePointer<sy_plugin_t>?, UnsafePointer<sy_call_t>?, sy_str_t, UnsafePointer<sy_sink_t>?) -> sy_status_t
        guard let table = extensionTable(id) else { return nil }
        // Every v1 plugin extension is { uint32_t struct_size; fn }: the function sits at the first pointer-aligned offset.
        let size = table.load(as: UInt32.self)
        guard size >= UInt32(MemoryLayout<sy_extension_estimate_t>.size),
              let raw = table.load(fromByteOffset: MemoryLayout<UnsafeRawPointer>.stride, as: UnsafeRawPointer?.self) else {
            return PluginCallResult(status: SY_E_UNSUPPORTED, document: Data())
        }
        let fn = unsafeBitCast(raw, to: ExtensionFn.self)
        return withCall(jobID: jobID) { call, sink in request.withSyStr { fn(plugin, call, $0, sink) } }
    }

    private static let nextCallID = ManagedAtomicCounter()

    private func withCall(jobID: String?, _ body: (UnsafePointer<sy_call_t>, UnsafePointer<sy_sink_t>) -> sy_status_t) -> PluginCallResult {
        let ctx = Unmanaged.passRetained(CallContext(plugin: context, jobID: jobID))
        defer { ctx.release() }
        let buffer = HostSinkBuffer()
        let bufferRef = Unmanaged.passRetained(buffer)
        defer { bufferRef.release() }
        var sink = sy_sink_t(struct_size: UInt32(MemoryLayout<sy_sink_t>.size), context: bufferRef.toOpaque()) { sink, bytes, size in
            guard let sink, let context = sink.pointee.context, let bytes, size > 0 else { return }
            Unmanaged<HostSinkBuffer>.fromOpaque(context).takeUnretainedValue().data.append(
                UnsafeRawPointer(bytes).assumingMemoryBound(to: UInt8.self), count: size)
        }
        let job = Data((jobID ?? "").utf8)
        let status: sy_status_t = job.withSyStr { jobStr in
            var call = sy_call_t(struct_size: UInt32(MemoryLayout<sy_call_t>.size), host: UnsafePointer(host),
                                 call_id: Self.nextCallID.next(), job_id: jobStr, host_data: ctx.toOpaque())
            return withUnsafePointer(to: &call) { callPtr in withUnsafePointer(to: &sink) { body(callPtr, $0) } }
        }
        return PluginCallResult(status: status, document: buffer.data)
    }
}

final class HostSinkBuffer {
    var data = Data()
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
    /// A library is loaded once per process and never unloaded, so the
    /// services of its first load stay bound to it: loading the same file
    /// again returns that plugin, whatever `services` this call passes.
    public static func load(manifestURL: URL, services: HostServiceSet, verifyHash: Bool = true, lockExpectation: LockExpectation = .none) throws -> LoadedPlugin {
        let (manifest, library) = try inspect(manifestURL: manifestURL, verifyHash: verifyHash, lockExpectation: lockExpectation)
        let key = library.resolvingSymlinksInPath().path
        if let existing = lock.withLock({ loaded[key] }) { return existing }
        try checkELF(library, id: manifest.id)

        guard let handle = dlopen(key, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            if reason.contains("undefined symbol") || reason.contains("cannot open shared object file") {
                throw YardError(.pluginIncompatible, "\(manifest.id): the library needs something this system lacks: \(reason).",
                                remediation: "Install the missing library, or rebuild the plugin against \(HostPlatform.toolchain).", field: "$.library")
            }
            throw YardError(.pluginCorrupt, "\(manifest.id): the library does not load: \(reason).",
                            remediation: "The file is damaged or truncated: reinstall or rebuild it.", field: "$.library")
        }
        // Never dlclose: a Swift image cannot be unloaded.
        guard let symbol = dlsym(handle, entrySymbol) else {
            for major in 2...9 where dlsym(handle, "sy_plugin_entry_v\(major)") != nil {
                throw YardError(.pluginIncompatible, "\(manifest.id) exports sy_plugin_entry_v\(major): it was built for PluginAPI \(major).x, and this host speaks \(HostPlatform.abiMajor).x.",
                                remediation: "Install a build of the plugin for PluginAPI \(HostPlatform.abiString).", field: "$.abi")
            }
            throw YardError(.pluginCorrupt, "\(manifest.id): the library exports no \(entrySymbol).",
                            remediation: "Export the entry: in Swift, one @_cdecl(\"\(entrySymbol)\") line calling PluginExport.entry; in C, a visible function of that name.")
        }

        let context = PluginContext(manifest: manifest, services: services)
        let host = makeHost(context)
        typealias Entry = @convention(c) (UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>?
        let entry = unsafeBitCast(symbol, to: Entry.self)
        guard let plugin = entry(UnsafePointer(host)) else {
            throw YardError(.pluginEntryFailed, "\(manifest.id): \(entrySymbol) returned NULL: the plugin refused this host (PluginAPI \(HostPlatform.abiString)).",
                            remediation: "Upgrade yard or install a build of the plugin for PluginAPI \(HostPlatform.abiString).")
        }
        let descriptor = try checkPlugin(plugin, manifest: manifest)
        let result = LoadedPlugin(manifest: manifest, libraryURL: library, context: context, descriptor: descriptor, plugin: plugin, host: host)
        lock.withLock { loaded[key] = result }
        return result
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
        guard p.struct_size >= UInt32(MemoryLayout<sy_plugin_t>.size) else {
            throw YardError(.pluginCorrupt, "\(manifest.id): its sy_plugin_t is \(p.struct_size) bytes, smaller than v1's \(MemoryLayout<sy_plugin_t>.size).",
                            remediation: "Rebuild the plugin against PluginAPI \(HostPlatform.abiString) headers.")
        }
        let abi = ABIVersion(major: Int(p.abi.major), minor: Int(p.abi.minor))
        if let reason = abi.incompatibility() {
            throw YardError(.pluginIncompatible, "\(manifest.id) cannot load: \(reason) (as its descriptor says).",
                            remediation: "Upgrade yard, or install a build of the plugin for PluginAPI \(HostPlatform.abiString).", field: "$.abi")
        }
        if let declared = ABIVersion(manifest.abi), declared != abi {
            throw YardError(.manifestMismatch, "\(manifest.id): plugin.json says ABI \(declared) but the library was built for \(abi).",
                            remediation: "Repackage the plugin with `yard plugin pack` from the same build.", field: "$.abi")
        }
        guard p.validate != nil, p.submit != nil, p.poll != nil, p.cancel != nil, p.health != nil, p.get_extension != nil else {
            throw YardError(.pluginCorrupt, "\(manifest.id): its sy_plugin_t leaves a required function NULL.",
                            remediation: "Implement validate, submit, poll, cancel, health and get_extension.")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(syStr: p.descriptor)) as? [String: Any] else {
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
