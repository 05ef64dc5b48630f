import ArgumentParser
import Foundation
import SwitchyardTesting

extension StandinCommand {
    struct ComfyUI: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "comfyui",
            abstract: "A local ComfyUI server: /prompt, /queue, /history, /view, /upload/image, /object_info, with its failure modes.",
            discussion: "Execution moves one node per request the server receives, so a polling client drives it; nothing runs on a GPU.")
        @Option(help: "Port on 127.0.0.1 (0: any free port).") var port = 8188
        @Option(help: "Serve this /object_info dump (e.g. from your real server) instead of the recorded catalogue.") var objectInfo: String?
        @Option(name: .customLong("missing-node"), help: "A node class the server lacks (repeatable).") var missingNodes: [String] = []
        @Flag(help: "No model files installed: every loader's choice list is empty, as on a fresh server.") var noModels = false
        @Flag(help: "Nothing leaves the queue (a busy server).") var paused = false
        @Option(help: "Requests each node takes (a slow GPU).") var ticksPerNode = 1

        func run() async throws {
            var catalogue: [String: Any]?
            if let objectInfo {
                guard let object = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: objectInfo)))) as? [String: Any] else {
                    throw ValidationError("--object-info \(objectInfo) is not a JSON object as /object_info answers it.")
                }
                catalogue = object
            }
            let standIn: ComfyUIStandIn
            do { standIn = try ComfyUIStandIn(objectInfo: catalogue) } catch {
                throw ValidationError("The recorded node catalogue (\(ComfyUIStandIn.recordedCatalogue.path)) is missing; pass --object-info FILE.")
            }
            if noModels { standIn.models = [:] }
            standIn.configure { faults in
                faults.missingNodeClasses = Set(missingNodes)
                faults.paused = paused
                faults.ticksPerNode = max(1, ticksPerNode)
            }
            try await standIn.start(port: port)
            // Written unbuffered: a script reading the URL from a pipe sees it at once.
            FileHandle.standardOutput.write(Data("""
                ComfyUI stand-in on \(standIn.baseURL) (also under /api). Point the comfyui engine at it:
                  yard config set comfyui base_url=\(standIn.baseURL)
                No secret is needed: ComfyUI has no authentication. Ctrl-C to stop.

                """.utf8))
            await standIn.waitUntilStopped()
        }
    }
}
