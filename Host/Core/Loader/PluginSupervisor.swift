import CPluginAPI
import CRunnerProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Keeps one isolated plugin's runner alive: starts it, restarts it after a
/// crash with exponential backoff, stops it when idle, and after a crash
/// serializes the plugin's calls for a few calls (probation), so that the
/// next crash names the one call, and so the one job, that caused it.
final class PluginSupervisor: @unchecked Sendable {
    let manifest: PluginManifest
    let manifestURL: URL
    let library: URL
    let context: PluginContext
    let deadlines: PluginDeadlines
    let configuration: RunnerConfiguration
    private let launch: PluginRunnerProcess.Launch

    private let lock = NSLock()
    private var current: PluginRunnerProcess?
    private var failuresInARow = 0
    private var nextStartAt = DispatchTime.now()
    private var lastCrashAt = DispatchTime(uptimeNanoseconds: 0)
    private var probation = 0
    private var shutDown = false
    private var extensionCache: [String: Bool] = [:]
    private(set) var restarts = 0
    private(set) var sandbox: SandboxReport?
    private(set) var lastFailure: String?
    /// One start at a time; callers wait behind it.
    private let starter = DispatchQueue(label: "switchyard.runner-start")
    private let serialGate = ConcurrencyGate(limit: 1)

    /// Starts the runner and checks what it loaded; throws the same refusals
    /// as an in-process load (PLUGIN_INCOMPATIBLE, PLUGIN_CORRUPT, …) or
    /// PLUGIN_CRASHED / PLUGIN_TIMEOUT when the entry crashes or hangs.
    init(manifest: PluginManifest, manifestURL: URL, library: URL, context: PluginContext, configuration: RunnerConfiguration) throws {
        self.manifest = manifest
        self.manifestURL = manifestURL
        self.library = library
        self.context = context
        self.configuration = configuration
        deadlines = PluginDeadlines(manifest: manifest)
        let services = context.services
        var offered: [String] = []
        if services.log != nil { offered.append("log") }
        if services.clock != nil { offered.append("clock") }
        if services.http != nil { offered.append("http") }
        if services.secrets != nil { offered.append("secrets") }
        if services.artifacts != nil { offered.append("artifacts") }
        if services.crypto { offered.append("crypto") }
        if services.kv != nil { offered.append("kv") }
        if services.process != nil { offered.append("process") }
        let pluginFolder = library.resolvingSymlinksInPath().deletingLastPathComponent().path
        launch = PluginRunnerProcess.Launch(
            runner: try configuration.resolvedExecutable(), library: library.resolvingSymlinksInPath(),
            readPaths: [pluginFolder] + RunnerLibraryFolders.current.filter { $0 != pluginFolder },
            scratch: configuration.scratchRoot, services: offered, systemClock: services.clock is SystemClock,
            memoryMB: min(max(manifest.runnerMemoryMB ?? 4096, 64), 65_536), configuration: configuration)
        let process = try start(checkingLibrary: false)
        descriptor = try Self.descriptor(of: process.1, manifest: manifest)
        lock.withLock {
            current = process.0
            sandbox = process.1.sandbox
        }
        // The extensions the host asks about are learnt once, at load, so that
        // asking later never waits on the runner.
        for id in [SY_EXTENSION_ESTIMATE, SY_EXTENSION_WEBHOOK, SY_EXTENSION_RECONCILE, SY_EXTENSION_BALANCE] {
            if let present = process.0.hasExtension(id, deadlineMs: deadlines.ms(for: .extension(id))) {
                lock.withLock { extensionCache[id] = present }
            }
        }
    }

    private(set) var descriptor: [String: Any] = [:]

    deinit { shutdown() }

    /// Stops the runner for good (the plugin is unloaded).
    func shutdown() {
        let process: PluginRunnerProcess? = lock.withLock {
            shutDown = true
            defer { current = nil }
            return current
        }
        process?.stop()
    }

    // MARK: starting

    private func start(checkingLibrary: Bool) throws -> (PluginRunnerProcess, PluginRunnerProcess.Ready) {
        // A restart loads the file again: it must still be the library the manifest names.
        if checkingLibrary { try PluginLoader.verifyLibrary(manifest, at: library) }
        var launch = self.launch
        RunnerScratch.sweepOnce(configuration.scratchRoot)
        launch.scratch = RunnerScratch.folder(in: configuration.scratchRoot, for: manifest.id)
        let process = try PluginRunnerProcess.spawn(launch, context: context)
        process.onEnd = { [weak self] process, ending in self?.ended(process, ending) }
        let ready = try process.waitReady(timeoutMs: deadlines.loadMs).get()
        if ready.status != SYR_LOAD_OK {
            process.stop()
            throw Self.loadFailure(ready, manifest: manifest)
        }
        return (process, ready)
    }

    static func loadFailure(_ ready: PluginRunnerProcess.Ready, manifest: PluginManifest) -> YardError {
        switch ready.status {
        case SYR_LOAD_DLOPEN_FAILED: return PluginLoader.dlopenFailure(ready.message, manifest: manifest)
        case SYR_LOAD_NO_ENTRY: return PluginLoader.missingEntry(otherMajors: (2...9).filter { ready.otherMajors & (1 << UInt32($0)) != 0 }, manifest: manifest)
        case SYR_LOAD_ENTRY_NULL: return PluginLoader.entryReturnedNull(manifest)
        default:
            return YardError("RUNNER_FAILED", "\(manifest.id): the runner could not prepare the plugin: \(ready.message).",
                             remediation: "Run `yard doctor` to see what the sandbox needs from this system.")
        }
    }

    static func descriptor(of ready: PluginRunnerProcess.Ready, manifest: PluginManifest) throws -> [String: Any] {
        try PluginLoader.checkPlugin(ready.facts, manifest: manifest)
    }

    private func ended(_ process: PluginRunnerProcess, _ ending: PluginRunnerProcess.Ending) {
        lock.withLock {
            guard current === process else { return }
            current = nil
            if process.wasStoppedByHost { return }
            noteCrash()
            restarts += 1
            probation = configuration.probationCalls
            lastFailure = ending.description
        }
    }

    /// The running process, starting one if needed: after a crash the start
    /// waits out the backoff first. nil (with the reason) when the start fails.
    private func running() -> (PluginRunnerProcess?, String?) {
        if let process = lock.withLock({ current }), process.isRunning { return (process, nil) }
        return starter.sync {
            let (existing, down, startAt) = lock.withLock { (current, shutDown, nextStartAt) }
            if let existing, existing.isRunning { return (existing, nil) }
            if down { return (nil, "the plugin was unloaded") }
            let now = DispatchTime.now()
            if startAt > now {
                let waitMs = min(Int((startAt.uptimeNanoseconds - now.uptimeNanoseconds) / 1_000_000), configuration.maxBackoffMs)
                Thread.sleep(forTimeInterval: Double(waitMs) / 1000)
            }
            do {
                let (process, ready) = try start(checkingLibrary: true)
                _ = try Self.descriptor(of: ready, manifest: manifest)
                lock.withLock {
                    current = process
                    sandbox = ready.sandbox ?? sandbox
                }
                return (process, nil)
            } catch {
                let reason = (error as? YardError)?.message ?? "\(error)"
                lock.withLock {
                    noteCrash()
                    lastFailure = reason
                }
                return (nil, "restarting it failed: \(reason)")
            }
        }
    }

    /// Under `lock`: one more failure in a row, and the backoff before the next start.
    private func noteCrash() {
        let now = DispatchTime.now()
        // A plugin that ran cleanly for a minute since its last crash starts afresh.
        if now.uptimeNanoseconds - lastCrashAt.uptimeNanoseconds > 60_000_000_000 { failuresInARow = 0 }
        lastCrashAt = now
        failuresInARow += 1
        let delay = min(configuration.baseBackoffMs << min(failuresInARow - 1, 16), configuration.maxBackoffMs)
        nextStartAt = now + .milliseconds(delay)
    }

    /// A clean answer during probation counts towards trusting the plugin
    /// with concurrent calls again; a whole probation clean ends the backoff.
    private func noteOutcome(_ result: PluginCallResult) {
        let schedule: Bool = lock.withLock {
            if result.failure == nil, probation > 0 {
                probation -= 1
                if probation == 0 { failuresInARow = 0 }
            }
            guard !idleCheckScheduled, current != nil else { return false }
            idleCheckScheduled = true
            return true
        }
        if schedule { scheduleIdleCheck(after: configuration.idleTimeoutSeconds) }
    }

    private var idleCheckScheduled = false

    /// One pending check per plugin at a time; it re-arms itself while the runner is busy.
    private func scheduleIdleCheck(after seconds: Double) {
        let timeout = configuration.idleTimeoutSeconds
        guard timeout > 0 else { return }
        PluginRunnerProcess.timerQueue.asyncAfter(deadline: .now() + seconds) { [weak self] in
            guard let self else { return }
            var again: Double?
            let idle: PluginRunnerProcess? = self.lock.withLock {
                self.idleCheckScheduled = false
                guard let process = self.current else { return nil }
                let idleSeconds = Double(DispatchTime.now().uptimeNanoseconds - process.lastActivity.uptimeNanoseconds) / 1e9
                guard process.callsInFlight == 0, idleSeconds >= timeout else {
                    self.idleCheckScheduled = true
                    again = max(timeout - idleSeconds, 1)
                    return nil
                }
                self.current = nil
                return process
            }
            if let again { self.scheduleIdleCheck(after: again) }
            idle?.stop()
        }
    }

    // MARK: calls

    /// One call, from async code: never blocks a cooperative thread while the
    /// plugin works (the answer resumes the caller from the runner's reader).
    func call(_ kind: PluginCallKind, request: Data, jobID: String?) async -> PluginCallResult {
        let deadline = deadlines.ms(for: kind)
        let serialize = lock.withLock { probation > 0 }
        if serialize { await serialGate.acquire() }
        var process = lock.withLock { current }.flatMap { $0.isRunning ? $0 : nil }
        var why: String?
        if process == nil {
            // Starting may wait out a backoff and spawn: off the cooperative threads.
            (process, why) = await withCheckedContinuation { continuation in
                PluginCallExecutor.shared.queue.async { continuation.resume(returning: self.running()) }
            }
        }
        var result: PluginCallResult
        if let process {
            result = await withCheckedContinuation { continuation in
                process.send(kind, request: request, jobID: jobID, deadlineMs: deadline) { continuation.resume(returning: $0) }
            }
            if case .unavailable = result.failure, process.wasStoppedByHost {
                // Stopped for being idle just as this call came: it never ran, start again.
                let (fresh, _) = await withCheckedContinuation { continuation in
                    PluginCallExecutor.shared.queue.async { continuation.resume(returning: self.running()) }
                }
                if let fresh {
                    result = await withCheckedContinuation { continuation in
                        fresh.send(kind, request: request, jobID: jobID, deadlineMs: deadline) { continuation.resume(returning: $0) }
                    }
                }
            }
        } else {
            result = .failure(.unavailable(why ?? "it is not running"), kind: kind, pluginID: manifest.id, attributed: false)
        }
        noteOutcome(result)
        if serialize { await serialGate.release() }
        return result
    }

    /// One call, blocking the calling thread (the conformance kit, tests).
    func callBlocking(_ kind: PluginCallKind, request: Data, jobID: String?) -> PluginCallResult {
        let deadline = deadlines.ms(for: kind)
        let (process, why) = running()
        guard let process else {
            return .failure(.unavailable(why ?? "it is not running"), kind: kind, pluginID: manifest.id, attributed: false)
        }
        let done = DispatchSemaphore(value: 0)
        let box = PluginRunnerProcess.ResultBox()
        process.send(kind, request: request, jobID: jobID, deadlineMs: deadline) { result in
            box.set(result)
            done.signal()
        }
        done.wait()
        let result = box.value ?? .failure(.crashed("no answer"), kind: kind, pluginID: manifest.id, attributed: false)
        noteOutcome(result)
        return result
    }

    /// Whether get_extension(id) is non-NULL. Extension tables are static for
    /// the life of the plugin, so one answer per id is kept.
    func hasExtension(_ id: String) -> Bool {
        if let known = lock.withLock({ extensionCache[id] }) { return known }
        let (process, _) = running()
        guard let process, let answer = process.hasExtension(id, deadlineMs: deadlines.ms(for: .extension(id))) else { return false }
        lock.withLock { extensionCache[id] = answer }
        return answer
    }
}

/// Runner scratch folders are named `<plugin>-<host pid>-<random>`: a host
/// that was killed cannot remove its runners' folders, so the next host
/// removes those of hosts that are gone, once per process.
enum RunnerScratch {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var swept: Set<String> = []

    static func folder(in root: URL, for pluginID: String) -> URL {
        root.appendingPathComponent("\(pluginID)-\(getpid())-\(UUID().uuidString.prefix(8).lowercased())")
    }

    static func sweepOnce(_ root: URL) {
        guard lock.withLock({ swept.insert(root.path).inserted }) else { return }
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: root.path)) ?? [] {
            let parts = name.split(separator: "-")
            guard parts.count >= 3, let pid = Int32(parts[parts.count - 2]), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { try? fm.removeItem(at: root.appendingPathComponent(name)) }
        }
    }
}

/// The folder of the Swift runtime this host runs on (a Swift plugin needs
/// the same toolchain libraries: libswiftCore, Foundation, Dispatch) and
/// LD_LIBRARY_PATH: what the runner may read beyond the system's library
/// folders and the plugin's own.
enum RunnerLibraryFolders {
    static let runtimePrefixes = ["libswift", "libFoundation", "lib_Foundation", "libdispatch", "libBlocksRuntime"]

    static let current: [String] = {
        guard let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return [] }
        var folders: [String] = []
        var seen = Set<String>()
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            let name = (path as NSString).lastPathComponent
            guard name.contains(".so"), runtimePrefixes.contains(where: name.hasPrefix) else { continue }
            let folder = (path as NSString).deletingLastPathComponent
            if folder.hasPrefix("/usr/lib") || folder.hasPrefix("/lib") { continue }
            if seen.insert(folder).inserted { folders.append(folder) }
        }
        for entry in (ProcessInfo.processInfo.environment["LD_LIBRARY_PATH"] ?? "").split(separator: ":") where !entry.isEmpty {
            if seen.insert(String(entry)).inserted { folders.append(String(entry)) }
        }
        return Array(folders.prefix(48))
    }()
}
