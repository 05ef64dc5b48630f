@_exported import CPluginAPI
import Foundation

/// Exports an adapter through the C ABI. A plugin's whole export is one line:
///
///     @_cdecl("sy_plugin_entry_v1") public func syPluginEntry(_ host: UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>? { PluginExport.entry(MyAdapter.self, host: host) }
public enum PluginExport {
    /// Called from the plugin's `sy_plugin_entry_v1`. Returns the same
    /// descriptor on every call; NULL when the host's ABI cannot serve this
    /// plugin (other major, or an older minor than the SDK was built for).
    public static func entry<A: EngineAdapter>(_ type: A.Type, host: UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>? {
        guard let host, host.pointee.struct_size >= UInt32(SY_HOST_V1_0_SIZE) else { return nil }
        let abi = host.pointee.abi
        guard abi.major == UInt32(SY_ABI_MAJOR), abi.minor >= UInt32(SY_ABI_MINOR) else { return nil }
        return PluginRuntime.shared.install { A() }
    }
}

/// The one adapter this image serves. Each plugin image carries its own copy
/// of the SDK, so this global is per plugin.
final class PluginRuntime: @unchecked Sendable {
    static let shared = PluginRuntime()

    private let lock = NSLock()
    private var plugin: UnsafeMutablePointer<sy_plugin_t>?
    private(set) var adapter: (any EngineAdapter)?
    private var extensions: [String: UnsafeRawPointer] = [:]

    func install(_ make: () -> any EngineAdapter) -> UnsafePointer<sy_plugin_t>? {
        lock.lock()
        defer { lock.unlock() }
        if let plugin { return UnsafePointer(plugin) }
        let adapter = make()
        guard let descriptorJSON = try? JSONEncoder().encode(adapter.descriptor) else { return nil }
        // Static for the life of the process: the host never unloads a plugin.
        let descriptorBytes = UnsafeMutablePointer<CChar>.allocate(capacity: descriptorJSON.count)
        descriptorJSON.withUnsafeBytes { raw in
            descriptorBytes.initialize(from: raw.bindMemory(to: CChar.self).baseAddress!, count: descriptorJSON.count)
        }
        let p = UnsafeMutablePointer<sy_plugin_t>.allocate(capacity: 1)
        p.initialize(to: sy_plugin_t(
            struct_size: UInt32(MemoryLayout<sy_plugin_t>.size),
            abi: sy_version_t(struct_size: UInt32(MemoryLayout<sy_version_t>.size),
                              major: UInt32(SY_ABI_MAJOR), minor: UInt32(SY_ABI_MINOR), patch: UInt32(SY_ABI_PATCH)),
            descriptor: sy_str_t(data: descriptorBytes, size: descriptorJSON.count),
            plugin_data: nil,
            validate: { _, call, request, out in PluginRuntime.shared.validate(call, request, out) },
            submit: { _, call, request, out in PluginRuntime.shared.submit(call, request, out) },
            poll: { _, call, request, out in PluginRuntime.shared.poll(call, request, out) },
            cancel: { _, call, request, out in PluginRuntime.shared.cancel(call, request, out) },
            health: { _, call, request, out in PluginRuntime.shared.health(call, request, out) },
            get_extension: { _, id in PluginRuntime.shared.extensionTable(String(syStr: id)) }
        ))
        self.adapter = adapter
        self.extensions = Self.makeExtensions(declared: Set(adapter.descriptor.extensions))
        plugin = p
        return UnsafePointer(p)
    }

    private static func makeExtensions(declared: Set<String>) -> [String: UnsafeRawPointer] {
        var tables: [String: UnsafeRawPointer] = [:]
        func keep<T>(_ value: T) -> UnsafeRawPointer {
            let p = UnsafeMutablePointer<T>.allocate(capacity: 1)
            p.initialize(to: value)
            return UnsafeRawPointer(p)
        }
        if declared.contains(SY_EXTENSION_ESTIMATE) {
            tables[SY_EXTENSION_ESTIMATE] = keep(sy_extension_estimate_t(
                struct_size: UInt32(MemoryLayout<sy_extension_estimate_t>.size),
                estimate: { _, call, request, out in
                    PluginRuntime.shared.run(call, request, out, JobRequest.self) { a, r, c in try a.estimate(r, context: c) }
                }))
        }
        if declared.contains(SY_EXTENSION_BALANCE) {
            tables[SY_EXTENSION_BALANCE] = keep(sy_extension_balance_t(
                struct_size: UInt32(MemoryLayout<sy_extension_balance_t>.size),
                balance: { _, call, request, out in
                    PluginRuntime.shared.run(call, request, out, ConfigRequest.self) { a, r, c in try a.balance(r, context: c) }
                }))
        }
        if declared.contains(SY_EXTENSION_WEBHOOK) {
            tables[SY_EXTENSION_WEBHOOK] = keep(sy_extension_webhook_t(
                struct_size: UInt32(MemoryLayout<sy_extension_webhook_t>.size),
                webhook: { _, call, request, out in
                    PluginRuntime.shared.run(call, request, out, WebhookRequest.self) { a, r, c in try a.webhook(r, context: c) }
                }))
        }
        if declared.contains(SY_EXTENSION_RECONCILE) {
            tables[SY_EXTENSION_RECONCILE] = keep(sy_extension_reconcile_t(
                struct_size: UInt32(MemoryLayout<sy_extension_reconcile_t>.size),
                reconcile: { _, call, request, out in
                    PluginRuntime.shared.run(call, request, out, JobRequest.self) { a, r, c in
                        ReconcileAnswer(ref: try a.reconcile(r, context: c) ?? .null)
                    }
                }))
        }
        return tables
    }

    func extensionTable(_ id: String) -> UnsafeRawPointer? {
        lock.lock()
        defer { lock.unlock() }
        return extensions[id]
    }

    // MARK: dispatch

    /// Decodes the request, runs the adapter, encodes the answer. Adapter
    /// errors become {"error":...} documents; nothing escapes as a crash.
    func run<Request: Decodable, Answer: Encodable>(
        _ call: UnsafePointer<sy_call_t>?, _ request: sy_str_t, _ out: UnsafePointer<sy_sink_t>?,
        _ type: Request.Type, _ body: (any EngineAdapter, Request, HostContext) throws -> Answer
    ) -> sy_status_t {
        guard let call, let adapter else { return SY_E_INTERNAL }
        guard call.pointee.struct_size >= UInt32(SY_CALL_V1_0_SIZE) else { return SY_E_INVALID_ARGUMENT }
        let decoded: Request
        do {
            decoded = try JSONDecoder().decode(Request.self, from: Data(syStr: request))
        } catch {
            write(out, ErrorDocument(error: PluginError(
                code: "INVALID_REQUEST", message: "The request document is not valid: \(Self.describe(error)).",
                remediation: "This is a host bug or a hand-made request; see docs/abi.md for the document shapes.")))
            return SY_E_INVALID_ARGUMENT
        }
        do {
            write(out, try body(adapter, decoded, HostContext(call: call)))
            return SY_OK
        } catch let error as PluginError {
            write(out, ErrorDocument(error: error))
            return error.code == "UNSUPPORTED" ? SY_E_UNSUPPORTED : SY_E_FAILED
        } catch {
            write(out, ErrorDocument(error: PluginError(
                code: "PLUGIN_INTERNAL", message: "The adapter failed: \(error).",
                remediation: "Report this to the plugin's author with the job id.")))
            return SY_E_INTERNAL
        }
    }

    private func write<T: Encodable>(_ out: UnsafePointer<sy_sink_t>?, _ value: T) {
        guard let data = try? JSONEncoder().encode(value) else { return }
        writeSink(out, data)
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing member \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
            return "wrong type at \(ctx.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.dataCorrupted: return "not JSON"
        default: return "\(error)"
        }
    }

    func validate(_ call: UnsafePointer<sy_call_t>?, _ request: sy_str_t, _ out: UnsafePointer<sy_sink_t>?) -> sy_status_t {
        run(call, request, out, JobRequest.self) { adapter, request, context in
            guard adapter.descriptor.capabilities.contains(request.capability) else {
                return DiagnosticsDocument(diagnostics: [Diagnostic(
                    code: "CONTRACT_MISMATCH",
                    message: "Capability \(request.capability) is not offered by \(adapter.descriptor.id).",
                    remediation: "Use one of: \(adapter.descriptor.capabilities.joined(separator: ", ")).",
                    field: "$.capability")])
            }
            return DiagnosticsDocument(diagnostics: adapter.validate(request, context: context))
        }
    }

    func submit(_ call: UnsafePointer<sy_call_t>?, _ request: sy_str_t, _ out: UnsafePointer<sy_sink_t>?) -> sy_status_t {
        run(call, request, out, JobRequest.self) { adapter, request, context in
            guard adapter.descriptor.capabilities.contains(request.capability) else {
                throw PluginError(code: "CONTRACT_MISMATCH",
                                  message: "Capability \(request.capability) is not offered by \(adapter.descriptor.id).",
                                  remediation: "Use one of: \(adapter.descriptor.capabilities.joined(separator: ", ")).",
                                  field: "$.capability")
            }
            switch try adapter.submit(request, context: context) {
            case .ref(let ref, let next): return SubmitDocument(ref: ref, nextPollAfterMs: next, result: nil)
            case .finished(let result): return SubmitDocument(ref: nil, nextPollAfterMs: nil, result: result)
            }
        }
    }

    func poll(_ call: UnsafePointer<sy_call_t>?, _ request: sy_str_t, _ out: UnsafePointer<sy_sink_t>?) -> sy_status_t {
        run(call, request, out, RefRequest.self) { adapter, request, context in try adapter.poll(request, context: context) }
    }

    func cancel(_ call: UnsafePointer<sy_call_t>?, _ request: sy_str_t, _ out: UnsafePointer<sy_sink_t>?) -> sy_status_t {
        run(call, request, out, RefRequest.self) { adapter, request, context in try adapter.cancel(request, context: context) }
    }

    func health(_ call: UnsafePointer<sy_call_t>?, _ request: sy_str_t, _ out: UnsafePointer<sy_sink_t>?) -> sy_status_t {
        run(call, request, out, ConfigRequest.self) { adapter, request, context in adapter.health(request, context: context) }
    }
}

struct DiagnosticsDocument: Codable { var diagnostics: [Diagnostic] }

struct SubmitDocument: Codable {
    var ref: JSONValue?
    var nextPollAfterMs: Int?
    var result: PollResult?

    enum CodingKeys: String, CodingKey {
        case ref, result
        case nextPollAfterMs = "next_poll_after_ms"
    }
}

struct ReconcileAnswer: Codable { var ref: JSONValue }
