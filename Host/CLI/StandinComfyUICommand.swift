import ArgumentParser
import Foundation
import SwitchyardStandIns

extension StandinCommand {
    struct ComfyUI: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "comfyui",
            abstract: "A local ComfyUI server: /prompt, /queue, /history, /view, /upload/image, /object_info, with its failure modes.",
            discussion: "Execution moves with time, one node every few milliseconds (--ms-per-tick); nothing runs on a GPU. Like a fresh server it has no model files unless --with-models.")
        @Option(help: "Port on 127.0.0.1 (0: any free port).") var port = 8188
        @Option(help: "Serve this /object_info dump (e.g. from your real server) instead of the recorded catalogue.") var objectInfo: String?
        @Option(name: .customLong("missing-node"), help: "A node class the server lacks (repeatable).") var missingNodes: [String] = []
        @Flag(help: "Install a sample checkpoint and upscaler, so model-loading workflows run (a fresh server has none).") var withModels = false
        @Flag(help: .hidden) var noModels = false
        @Option(help: "Milliseconds one tick of execution takes.") var msPerTick: Int64 = 20
        @Flag(help: "Nothing leaves the queue (a busy server).") var paused = false
        @Option(help: "Ticks each node takes (a slow GPU).") var ticksPerNode = 1

        func run() async throws {
            var catalogue: [String: Any]?
            if let objectInfo {
                guard let object = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: objectInfo)))) as? [String: Any] else {
                    throw ValidationError("--object-info \(objectInfo) is not a JSON object as /object_info answers it.")
                }
                catalogue = object
            }
            let standIn: ComfyUIStandIn
            do { standIn = try ComfyUIStandIn(objectInfo: catalogue, withModels: withModels && !noModels) } catch {
                throw ValidationError("The node catalogue is not a JSON object as /object_info answers it (\(error)); pass --object-info FILE.")
            }
            standIn.configure { faults in
                faults.missingNodeClasses = Set(missingNodes)
                faults.paused = paused
                faults.ticksPerNode = max(1, ticksPerNode)
                faults.msPerTick = max(1, msPerTick)
            }
            try await standIn.start(port: port)
            StandInBanner.write("""
                ComfyUI stand-in on \(standIn.baseURL) (also under /api), \(withModels && !noModels ? "sample models installed" : "no model files (as a fresh server; --with-models adds some)"). Point the comfyui engine at it:
                  yard config set comfyui base_url=\(standIn.baseURL)
                No secret is needed: ComfyUI has no authentication. Ctrl-C to stop.
                """)
            await standIn.waitUntilStopped()
        }
    }
}
