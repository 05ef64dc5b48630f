import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardHost

/// GET /api/v1/diagnostics: the `yard doctor` bundle as a download, for the
/// Setup Hub's "Export diagnostics". It is the host's, not an account's, so
/// it needs admin; secret values never appear in it (DiagnosticsBundle).
enum DiagnosticsRoute {
    static func register(on api: RouterGroup<APIRequestContext>, server: YardServer) {
        api.get("diagnostics") { _, context -> Response in
            _ = try context.require(.admin)
            let engine = server.engine
            // The bundle probes the plugin runner's sandbox: off the request's event loop.
            let text = await Task.detached { DiagnosticsBundle.text(paths: engine.paths, registry: engine.registry) }.value
            let stamp = DiagnosticsBundle.timestamp(Date()).replacingOccurrences(of: ":", with: "").prefix(17)
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store",
                                                   .contentDisposition: "attachment; filename=\"yard-diagnostics-\(stamp)Z.json\""],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }
}
