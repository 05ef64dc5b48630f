import ArgumentParser
import Foundation
import SwitchyardHost

extension PluginCommand {
    /// Loads and validates every plugin below a folder in this process; used by
    /// scripts/bench-plugins.sh to measure load + validate per plugin.
    struct BenchLoad: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "bench-load", abstract: "Measure load + validate (benchmark helper).", shouldDisplay: false)
        @Argument var directory: String

        func run() throws {
            let root = URL(fileURLWithPath: directory)
            let dirs = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
            var timings: [Double] = []
            for dir in dirs {
                let manifest = root.appendingPathComponent(dir).appendingPathComponent("plugin.json")
                let start = DispatchTime.now()
                let plugin = try PluginLoader.load(manifestURL: manifest, services: HostServiceSet())
                let capability = plugin.manifest.capabilities[0]
                let request: [String: Any] = ["capability": capability.id, "inputs": [String: Any](), "config": [String: Any]()]
                let result = plugin.call(.validate, request: try JSONSerialization.data(withJSONObject: request))
                guard result.isOK else { throw YardError("BENCH", "validate failed for \(dir)", remediation: "") }
                timings.append(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6)
            }
            let sorted = timings.sorted()
            let total = timings.reduce(0, +)
            print(String(format: "%.3f %d %.3f %.3f", total, timings.count, sorted[sorted.count / 2], sorted.last ?? 0))
        }
    }
}
