import CPluginAPI
import CRunnerProtocol
import Foundation

/// One sy_call_t and one sink around a call into C, either direction: the
/// host calling a plugin, or the host serving a runner's service request
/// through the very vtables an in-process plugin gets.
enum HostCall {
    static let nextCallID = ManagedAtomicCounter()

    /// Runs `body` with a call whose host_data is `context` and a sink that
    /// collects at most `limit` bytes (more: `truncated`, and the bytes are dropped).
    static func run(_ context: CallContext, host: UnsafePointer<sy_host_t>?, callID: UInt64 = nextCallID.next(), limit: Int? = nil,
                    _ body: (UnsafePointer<sy_call_t>, UnsafePointer<sy_sink_t>) -> sy_status_t) -> (status: sy_status_t, data: Data, truncated: Bool) {
        let ctx = Unmanaged.passRetained(context)
        defer { ctx.release() }
        let buffer = HostSinkBuffer(limit: limit)
        let bufferRef = Unmanaged.passRetained(buffer)
        defer { bufferRef.release() }
        var sink = sy_sink_t(struct_size: UInt32(MemoryLayout<sy_sink_t>.size), context: bufferRef.toOpaque()) { sink, bytes, size in
            guard let sink, let context = sink.pointee.context, let bytes, size > 0 else { return }
            Unmanaged<HostSinkBuffer>.fromOpaque(context).takeUnretainedValue().append(UnsafeRawPointer(bytes), size)
        }
        let job = Data((context.jobID ?? "").utf8)
        let status: sy_status_t = job.withSyStr { jobStr in
            var call = sy_call_t(struct_size: UInt32(MemoryLayout<sy_call_t>.size), host: host,
                                 call_id: callID, job_id: jobStr, host_data: ctx.toOpaque())
            return withUnsafePointer(to: &call) { callPtr in withUnsafePointer(to: &sink) { body(callPtr, $0) } }
        }
        return (status, buffer.truncated ? Data() : buffer.data, buffer.truncated)
    }
}

/// What a sink collects; past `limit` it drops everything and says so.
final class HostSinkBuffer {
    var data = Data()
    let limit: Int?
    private(set) var truncated = false

    init(limit: Int? = nil) { self.limit = limit }

    func append(_ bytes: UnsafeRawPointer, _ size: Int) {
        guard !truncated else { return }
        if let limit, data.count + size > limit {
            truncated = true
            data = Data()
            return
        }
        data.append(bytes.assumingMemoryBound(to: UInt8.self), count: size)
    }
}

/// Serves a runner's service request (SYR_FRAME_SERVICE). The arguments are
/// handed to the host's own C vtables (ServiceTables), so an isolated plugin
/// meets exactly the checks an in-process one does: the allow-list, the
/// declared secrets, the kv scope, the process allow-list.
enum RunnerServiceBridge {
    struct Request {
        var callID: UInt64
        var service: UInt8
        var function: UInt8
        var value: Int64
        var args: [Data]
    }

    struct Answer {
        var status: Int32
        var value: Int64 = 0
        var output = Data()
    }

    static let serviceIDs: [Int32: String] = [
        SYR_SVC_LOG: SY_SERVICE_LOG, SYR_SVC_CLOCK: SY_SERVICE_CLOCK, SYR_SVC_HTTP: SY_SERVICE_HTTP,
        SYR_SVC_SECRETS: SY_SERVICE_SECRETS, SYR_SVC_ARTIFACTS: SY_SERVICE_ARTIFACTS, SYR_SVC_CRYPTO: SY_SERVICE_CRYPTO,
        SYR_SVC_KV: SY_SERVICE_KV, SYR_SVC_PROCESS: SY_SERVICE_PROCESS,
    ]

    /// The option naming a service on the runner's command line.
    static func option(for id: String) -> String? {
        switch id {
        case SY_SERVICE_LOG: return "log"
        case SY_SERVICE_CLOCK: return "clock"
        case SY_SERVICE_HTTP: return "http"
        case SY_SERVICE_SECRETS: return "secrets"
        case SY_SERVICE_ARTIFACTS: return "artifacts"
        case SY_SERVICE_CRYPTO: return "crypto"
        case SY_SERVICE_KV: return "kv"
        case SY_SERVICE_PROCESS: return "process"
        default: return nil
        }
    }

    /// Log lines (order matters within a call), the clock, crypto, secrets
    /// and kv reads are answered on the reader thread, sparing a thread hop
    /// per request; whatever may block for long (network, artifacts, kv
    /// writes, child processes) goes to a worker.
    static func answersInline(_ service: UInt8, _ function: UInt8) -> Bool {
        switch Int32(service) {
        case SYR_SVC_LOG, SYR_SVC_CLOCK, SYR_SVC_CRYPTO, SYR_SVC_SECRETS: return true
        case SYR_SVC_KV: return function == 0
        default: return false
        }
    }

    /// nil for sy.log/1, whose function returns nothing (no reply is sent).
    static func perform(_ request: Request, context: CallContext?) -> Answer? {
        let isLog = Int32(request.service) == SYR_SVC_LOG
        guard let context, let id = serviceIDs[Int32(request.service)],
              let table = ServiceTables.lookup(id, for: context.plugin) else {
            return isLog ? nil : Answer(status: SY_E_DENIED)
        }
        return withStrings(request.args) { args in
            func arg(_ i: Int) -> sy_str_t { i < args.count ? args[i] : sy_str_t(data: nil, size: 0) }
            var value: Int64 = 0
            let (status, output, _) = HostCall.run(context, host: nil, callID: request.callID) { call, sink -> sy_status_t in
                switch (Int32(request.service), request.function) {
                case (SYR_SVC_LOG, 0):
                    table.assumingMemoryBound(to: sy_service_log_t.self).pointee.log?(call, Int32(truncatingIfNeeded: request.value), arg(0))
                    return SY_OK
                case (SYR_SVC_CLOCK, 0):
                    value = table.assumingMemoryBound(to: sy_service_clock_t.self).pointee.now_unix_ms?(call) ?? 0
                    return SY_OK
                case (SYR_SVC_CLOCK, 1):
                    value = table.assumingMemoryBound(to: sy_service_clock_t.self).pointee.monotonic_ns?(call) ?? 0
                    return SY_OK
                case (SYR_SVC_HTTP, 0):
                    return table.assumingMemoryBound(to: sy_service_http_t.self).pointee.request?(call, arg(0), sink) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_SECRETS, 0):
                    return table.assumingMemoryBound(to: sy_service_secrets_t.self).pointee.get?(call, arg(0), sink) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_ARTIFACTS, 0):
                    let bytes = arg(1)
                    return table.assumingMemoryBound(to: sy_service_artifacts_t.self).pointee.put?(call, arg(0), bytes.data, bytes.size, sink) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_ARTIFACTS, 1):
                    return table.assumingMemoryBound(to: sy_service_artifacts_t.self).pointee.download?(call, arg(0), sink) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_ARTIFACTS, 2):
                    return table.assumingMemoryBound(to: sy_service_artifacts_t.self).pointee.read?(call, arg(0), sink) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_CRYPTO, 0):
                    return table.assumingMemoryBound(to: sy_service_crypto_t.self).pointee.sha256?(call, arg(0), sink) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_CRYPTO, 1):
                    return table.assumingMemoryBound(to: sy_service_crypto_t.self).pointee.hmac_sha256?(call, arg(0), arg(1), sink) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_CRYPTO, 2):
                    return table.assumingMemoryBound(to: sy_service_crypto_t.self).pointee.ed25519_verify?(call, arg(0), arg(1), arg(2)) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_CRYPTO, 3):
                    return table.assumingMemoryBound(to: sy_service_crypto_t.self).pointee.jwt_hs256?(call, arg(0), arg(1), sink) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_KV, 0):
                    return table.assumingMemoryBound(to: sy_service_kv_t.self).pointee.get?(call, arg(0), sink) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_KV, 1):
                    return table.assumingMemoryBound(to: sy_service_kv_t.self).pointee.put?(call, arg(0), arg(1), request.value) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_KV, 2):
                    return table.assumingMemoryBound(to: sy_service_kv_t.self).pointee.remove?(call, arg(0)) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_PROCESS, 0):
                    return table.assumingMemoryBound(to: sy_service_process_t.self).pointee.start?(call, arg(0), sink) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_PROCESS, 1):
                    return table.assumingMemoryBound(to: sy_service_process_t.self).pointee.status?(call, arg(0), sink) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_PROCESS, 2):
                    return table.assumingMemoryBound(to: sy_service_process_t.self).pointee.wait?(call, arg(0), request.value, sink) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_PROCESS, 3):
                    return table.assumingMemoryBound(to: sy_service_process_t.self).pointee.cancel?(call, arg(0), sink) ?? SY_E_UNSUPPORTED
                case (SYR_SVC_PROCESS, 4):
                    return table.assumingMemoryBound(to: sy_service_process_t.self).pointee.locate?(call, arg(0), sink) ?? SY_E_UNSUPPORTED
                default:
                    return SY_E_UNSUPPORTED
                }
            }
            return isLog ? nil : Answer(status: status, value: value, output: output)
        }
    }

    /// The arguments as sy_str_t, valid inside `body`.
    static func withStrings<R>(_ args: [Data], _ body: ([sy_str_t]) -> R) -> R {
        var buffers: [UnsafeMutableRawBufferPointer] = []
        defer { buffers.forEach { $0.deallocate() } }
        let strings = args.map { arg -> sy_str_t in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(arg.count, 1), alignment: 8)
            buffers.append(buffer)
            arg.copyBytes(to: buffer)
            return sy_str_t(data: buffer.baseAddress?.assumingMemoryBound(to: CChar.self), size: arg.count)
        }
        return body(strings)
    }
}
