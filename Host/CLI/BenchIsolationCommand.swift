import ArgumentParser
import Foundation
import SwitchyardHost
import SwitchyardStandIns

extension PluginCommand {
    /// The cost of process isolation per call, against the same call in
    /// process, in the same run: used by scripts/bench-isolation.sh.
    struct BenchCalls: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "bench-calls", abstract: "Measure per-call cost in process vs isolated (benchmark helper).", shouldDisplay: false)
        @OptionGroup var global: GlobalOptions
        @Option(help: "Calls per plugin, mode and round.") var calls = 2000
        @Option(help: "Rounds; the order of the modes alternates between rounds.") var rounds = 3
        @Flag(help: "Start runners without the sandbox (rlimits only), to see what the sandbox costs.") var noSandbox = false

        struct Case {
            var label: String
            var plugin: String
            var request: [String: Any]
            var prepare: ((LoadedPlugin) async throws -> [String: Any])?
        }

        func run() async throws {
            let home = global.paths.home
            let runner = {
                var configuration = RunnerConfiguration(scratchRoot: home.appendingPathComponent("tmp/runners"))
                configuration.sandbox = !noSandbox
                return configuration
            }()
            let standIn = RunPodStandIn()
            try await standIn.start()
            defer { Task { await standIn.stop() } }
            let services = HostServiceSet(log: CollectingLogSink(), clock: SystemClock(), http: BlockingHTTPTransport(defaultTimeoutMs: 5_000),
                                          secrets: EnvironmentSecrets(environment: [:], values: ["RUNPOD_API_KEY": standIn.apiKey]),
                                          artifacts: ArtifactDirectory(root: home.appendingPathComponent("artifacts")), kv: MemoryKeyValueStore(), crypto: true)
            let runpodConfig: [String: Any] = ["endpoint_id": standIn.endpointID, "base_url": standIn.baseURL, "ttl_ms": 60_000]
            let cases = [
                Case(label: "c-minimal poll (no host service)", plugin: "c-minimal",
                     request: ["ref": ["result": ["state": "succeeded"]], "config": [String: Any]()]),
                Case(label: "echo poll (kv get through the host)", plugin: "echo", request: [:]) { plugin in
                    let submitted = await plugin.perform(.operation(.submit), request: try Self.data(["capability": "debug.echo", "inputs": ["text": "bench", "polls": 0], "config": [String: Any](),
                                                                                                      "job": ["id": "bench", "idempotency_key": "bench", "attempt": 1]]), jobID: "bench")
                    guard let ref = submitted.json?["ref"] else { throw YardError("BENCH", "echo submit failed: \(String(decoding: submitted.document, as: UTF8.self))", remediation: "") }
                    return ["ref": ref, "config": [String: Any]()]
                },
                Case(label: "runpod poll (one sy.http GET to the stand-in)", plugin: "runpod", request: [:]) { plugin in
                    let submitted = await plugin.perform(.operation(.submit), request: try Self.data(["capability": "image.generate", "inputs": ["prompt": "bench"], "config": runpodConfig,
                                                                                                      "job": ["id": "bench", "idempotency_key": "bench-\(UUID().uuidString)", "attempt": 1]]), jobID: "bench")
                    guard let ref = submitted.json?["ref"] else { throw YardError("BENCH", "runpod submit failed: \(String(decoding: submitted.document, as: UTF8.self))", remediation: "") }
                    return ["ref": ref, "config": runpodConfig]
                },
            ]
            print("isolation cost per call (\(calls) calls per mode and round, \(rounds) rounds, sandbox \(noSandbox ? "off" : "on"))")
            for benchCase in cases {
                let manifest = try global.registry.resolve(benchCase.plugin)
                let loadStart = DispatchTime.now()
                let isolated = try PluginLoader.load(manifestURL: manifest, services: services, isolation: .process, runner: runner)
                let loadMs = Self.ms(since: loadStart)
                let inProcess = try PluginLoader.load(manifestURL: manifest, services: services, isolation: .inProcess)
                var requests: [PluginIsolation: Data] = [:]
                for (mode, plugin) in [(PluginIsolation.inProcess, inProcess), (.process, isolated)] {
                    let request = try await benchCase.prepare?(plugin) ?? benchCase.request
                    requests[mode] = try Self.data(request)
                }
                var samples: [PluginIsolation: [Double]] = [.inProcess: [], .process: []]
                for round in 0..<rounds {
                    let order: [(PluginIsolation, LoadedPlugin)] = round % 2 == 0 ? [(.inProcess, inProcess), (.process, isolated)] : [(.process, isolated), (.inProcess, inProcess)]
                    for (mode, plugin) in order {
                        let body = requests[mode] ?? Data()
                        for _ in 0..<min(100, calls) { _ = await plugin.perform(.operation(.poll), request: body, jobID: "bench") }
                        for _ in 0..<calls {
                            let start = DispatchTime.now()
                            let result = await plugin.perform(.operation(.poll), request: body, jobID: "bench")
                            samples[mode]?.append(Self.ms(since: start) * 1000)
                            guard result.isOK else {
                                throw YardError("BENCH", "\(benchCase.plugin) poll failed (\(mode.rawValue)): \(String(decoding: result.document, as: UTF8.self).prefix(300))", remediation: "")
                            }
                        }
                    }
                }
                let a = Self.percentiles(samples[.inProcess] ?? []), b = Self.percentiles(samples[.process] ?? [])
                print(benchCase.label)
                print(String(format: "  in-process  p50 %8.1f µs  p90 %8.1f µs  p99 %8.1f µs", a.0, a.1, a.2))
                print(String(format: "  process     p50 %8.1f µs  p90 %8.1f µs  p99 %8.1f µs", b.0, b.1, b.2))
                print(String(format: "  ratio       p50 %.2fx  p90 %.2fx  p99 %.2fx   (+%.1f µs at p50)   runner start %.1f ms", b.0 / a.0, b.1 / a.1, b.2 / a.2, b.0 - a.0, loadMs))
                isolated.stopRunner()
            }
        }

        static func data(_ object: [String: Any]) throws -> Data {
            try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        }

        static func ms(since start: DispatchTime) -> Double {
            Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
        }

        static func percentiles(_ values: [Double]) -> (Double, Double, Double) {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return (0, 0, 0) }
            func at(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
            return (at(0.5), at(0.9), at(0.99))
        }
    }
}
