import CPluginAPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct ConformanceCheck: Codable, Sendable {
    public var id: String
    public var ok: Bool
    public var detail: String
    public var durationMs: Double?

    public init(id: String, ok: Bool, detail: String, durationMs: Double? = nil) {
        self.id = id
        self.ok = ok
        self.detail = detail
        self.durationMs = durationMs
    }

    enum CodingKeys: String, CodingKey {
        case id, ok, detail
        case durationMs = "duration_ms"
    }
}

public struct ConformanceReport: Codable, Sendable {
    public var plugin: String
    public var passed: Int
    public var failed: Int
    public var checks: [ConformanceCheck]
    /// Where the plugin's code ran: "process", "in-process" or "both" (then
    /// every check that runs plugin code appears once per mode, its id suffixed @mode).
    public var isolation: String?
}

/// `yard plugin test`: a conformance kit in the spirit of clap-validator and
/// pluginval. Checks that need no code run in this process; every check that
/// runs plugin code runs in a child process of its own, so a plugin that
/// crashes or hangs is reported, never fatal to the kit.
public enum ConformanceSuite {
    public struct ChildCheck: Sendable {
        public var id: String
        public var summary: String
    }

    public static let childChecks: [ChildCheck] = [
        ChildCheck(id: "load.rtld_now", summary: "dlopen(RTLD_NOW|RTLD_LOCAL) resolves every symbol"),
        ChildCheck(id: "symbols.entry", summary: "exports \(SY_PLUGIN_ENTRY_SYMBOL) and no other ABI major's entry"),
        ChildCheck(id: "entry.descriptor", summary: "the entry returns a v1 plugin whose descriptor equals plugin.json"),
        ChildCheck(id: "extension.unknown_is_null", summary: "an unknown extension id returns NULL"),
        ChildCheck(id: "capability.unknown_rejected", summary: "validate and submit refuse a capability the plugin does not declare"),
        ChildCheck(id: "validate.malformed_request", summary: "a request that is not JSON returns SY_E_INVALID_ARGUMENT, not a crash"),
        ChildCheck(id: "validate.schema_violations", summary: "inputs that break the capability's limits return diagnostics"),
        ChildCheck(id: "validate.example_inputs", summary: "each capability's example inputs validate cleanly"),
        ChildCheck(id: "lifecycle.submit_poll", summary: "submit → poll reaches a terminal state for every capability"),
        ChildCheck(id: "outputs.contract", summary: "each capability's example outputs validate against the catalog's output_schema, every file stored with its declared media type"),
        ChildCheck(id: "cancel.idempotent", summary: "cancel twice, and cancel after completion, answer truthfully without error"),
        ChildCheck(id: "documents.schema", summary: "every answer (validate, submit, poll, cancel, health, the declared estimate, balance and reconcile) fits PluginAPI/schemas/abi-v1.schema.json"),
        ChildCheck(id: "network.allow_list", summary: "no request outside network.hosts during a job"),
        ChildCheck(id: "secrets.not_logged", summary: "no secret value appears in any log line or document"),
        ChildCheck(id: "concurrency.jobs", summary: "16 concurrent jobs all finish"),
        ChildCheck(id: "services.absent", summary: "with every optional host service absent, calls return errors, not crashes"),
    ]

    /// Checks of plugin.json and the library file, without running plugin code.
    public static func staticChecks(manifestURL: URL) -> (PluginManifest?, [ConformanceCheck]) {
        var checks: [ConformanceCheck] = []
        let start = DispatchTime.now()
        let data = (try? Data(contentsOf: manifestURL)) ?? Data()
        var manifest: PluginManifest?
        do {
            manifest = try PluginManifest.parse(data, source: manifestURL.path)
            checks.append(ConformanceCheck(id: "manifest.valid", ok: true, detail: "plugin.json is valid", durationMs: ms(since: start)))
        } catch {
            checks.append(ConformanceCheck(id: "manifest.valid", ok: false, detail: "\(error)", durationMs: ms(since: start)))
            return (nil, checks)
        }
        guard let manifest else { return (nil, checks) }
        do {
            try PluginLoader.checkCompatibility(manifest)
            checks.append(ConformanceCheck(id: "abi.compatible", ok: true,
                                           detail: "ABI \(manifest.abi), \(manifest.platform.isEmpty ? "any platform" : manifest.platform), \(manifest.toolchain.isEmpty ? "any toolchain" : manifest.toolchain) fit this host"))
        } catch {
            checks.append(ConformanceCheck(id: "abi.compatible", ok: false, detail: "\(error)"))
        }
        let hashStart = DispatchTime.now()
        do {
            _ = try PluginLoader.inspect(manifestURL: manifestURL, verifyHash: true)
            checks.append(ConformanceCheck(id: "library.sha256", ok: true, detail: "library matches plugin.json's sha256", durationMs: ms(since: hashStart)))
        } catch {
            checks.append(ConformanceCheck(id: "library.sha256", ok: false, detail: "\(error)", durationMs: ms(since: hashStart)))
        }
        return (manifest, checks)
    }

    /// Runs the whole suite, spawning `executable childArguments… --isolation MODE --check ID`
    /// per check and per isolation mode. `environment` is added to each
    /// child's (e.g. YARD_NETWORK_GUARD=loopback).
    public static func run(manifestURL: URL, executable: URL, childArguments: [String], timeoutSeconds: Double,
                           environment: [String: String] = [:], isolations: [PluginIsolation] = [.inProcess]) -> ConformanceReport {
        let (manifest, staticResults) = staticChecks(manifestURL: manifestURL)
        var checks = staticResults
        let modes = isolations.isEmpty ? [.inProcess] : isolations
        for mode in modes {
            let suffix = modes.count > 1 ? "@\(mode.rawValue)" : ""
            for check in childChecks {
                guard manifest != nil, staticResults.allSatisfy(\.ok) else {
                    checks.append(ConformanceCheck(id: check.id + suffix, ok: false, detail: "not run: the static checks above failed"))
                    continue
                }
                var result = runChild(executable: executable, arguments: childArguments + ["--isolation", mode.rawValue, "--check", check.id],
                                      id: check.id, timeoutSeconds: timeoutSeconds, environment: environment)
                result.id = check.id + suffix
                checks.append(result)
            }
        }
        let passed = checks.filter(\.ok).count
        return ConformanceReport(plugin: manifest.map { "\($0.id) \($0.version)" } ?? manifestURL.path,
                                 passed: passed, failed: checks.count - passed, checks: checks,
                                 isolation: modes.count > 1 ? "both" : modes[0].rawValue)
    }

    static func ms(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1_000_000
    }

    static func runChild(executable: URL, arguments: [String], id: String, timeoutSeconds: Double, environment extra: [String: String] = [:]) -> ConformanceCheck {
        let start = DispatchTime.now()
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        // A crashing plugin should end the child with its signal, at once: the
        // Swift runtime's backtracer would catch it and spend seconds symbolicating.
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        environment.merge(extra) { _, new in new }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        do { try process.run() } catch {
            return ConformanceCheck(id: id, ok: false, detail: "could not start the check process: \(error)")
        }
        let reader = PipeReader(output.fileHandleForReading)
        if done.wait(timeout: .now() + timeoutSeconds) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            done.wait()
            return ConformanceCheck(id: id, ok: false, detail: "the plugin hung: no answer within \(Int(timeoutSeconds)) s (killed)", durationMs: ms(since: start))
        }
        let data = reader.finish()
        if process.terminationReason == .uncaughtSignal {
            let signal = process.terminationStatus
            let name = String(cString: strsignal(signal))
            return ConformanceCheck(id: id, ok: false, detail: "the plugin crashed the process with signal \(signal) (\(name))", durationMs: ms(since: start))
        }
        let lastLine = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        guard var result = try? JSONDecoder().decode(ConformanceCheck.self, from: Data(lastLine.utf8)) else {
            return ConformanceCheck(id: id, ok: false, detail: "the check process exited with status \(process.terminationStatus) and no result", durationMs: ms(since: start))
        }
        if result.durationMs == nil { result.durationMs = ms(since: start) }
        return result
    }

    final class PipeReader: @unchecked Sendable {
        private var data = Data()
        private let group = DispatchGroup()

        init(_ handle: FileHandle) {
            group.enter()
            DispatchQueue.global().async {
                self.data = handle.readDataToEndOfFile()
                self.group.leave()
            }
        }

        func finish() -> Data {
            _ = group.wait(timeout: .now() + 5)
            return data
        }
    }
}
