import CPluginAPI
import Foundation

/// The C vtable of sy.process/1, bridging to the plugin's HostProcessService
/// with its manifest's processes allow-list.
enum ProcessServiceTable {
    static func fail(_ error: Error, _ sink: UnsafePointer<sy_sink_t>?) -> sy_status_t {
        guard let failure = error as? HostProcessService.Failure else {
            hostWrite(sink, json: errorDocument("PROCESS_FAILED", "\(error)", "See the host's log."))
            return SY_E_FAILED
        }
        hostWrite(sink, json: errorDocument(failure.code, failure.message, failure.remediation))
        switch failure.kind {
        case .denied: return SY_E_DENIED
        case .missing, .notFound: return SY_E_NOT_FOUND
        case .invalid: return SY_E_INVALID_ARGUMENT
        case .failed: return SY_E_FAILED
        }
    }

    static func with(_ call: UnsafePointer<sy_call_t>?, _ sink: UnsafePointer<sy_sink_t>?,
                     _ body: (HostProcessService, PluginManifest) throws -> [String: Any]) -> sy_status_t {
        guard let ctx = CallContext.from(call), let service = ctx.plugin.services.process else { return SY_E_INTERNAL }
        do {
            hostWrite(sink, json: try body(service, ctx.plugin.manifest))
            return SY_OK
        } catch {
            return fail(error, sink)
        }
    }

    nonisolated(unsafe) static let table = ServiceTables.keep(sy_service_process_t(
        struct_size: UInt32(MemoryLayout<sy_service_process_t>.size),
        start: { call, request, sink in
            with(call, sink) { service, manifest in
                guard let doc = try? JSONSerialization.jsonObject(with: Data(syStr: request)) as? [String: Any] else {
                    throw HostProcessService.Failure(kind: .invalid, code: "INVALID_REQUEST", message: "The process request is not a JSON object.", remediation: "See ext/process.h.")
                }
                return ["handle": try service.start(doc, allowed: manifest.processes, pluginID: manifest.id)]
            }
        },
        status: { call, handle, sink in
            with(call, sink) { service, manifest in try service.status(String(syStr: handle), pluginID: manifest.id) }
        },
        wait: { call, handle, timeout, sink in
            with(call, sink) { service, manifest in try service.wait(String(syStr: handle), pluginID: manifest.id, timeoutMs: timeout) }
        },
        cancel: { call, handle, sink in
            with(call, sink) { service, manifest in try service.cancel(String(syStr: handle), pluginID: manifest.id) }
        },
        locate: { call, name, sink in
            with(call, sink) { service, manifest in try service.locate(String(syStr: name), allowed: manifest.processes, pluginID: manifest.id) }
        }
    ))
}
