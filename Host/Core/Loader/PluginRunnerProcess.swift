import CPluginAPI
import CRunnerProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How the host starts yard-plugin-runner.
public struct RunnerConfiguration: Sendable {
    /// The runner executable; nil: found beside the running executable (or YARD_PLUGIN_RUNNER).
    public var executable: URL?
    /// Each runner gets a private scratch folder below this one (its only writable place).
    public var scratchRoot: URL
    /// false: rlimits only (for measurements and for kernels that refuse everything else).
    public var sandbox = true
    public var cpuSeconds = 3600
    public var fileMB = 64
    public var openFiles = 256
    /// The largest document a call may answer with; longer answers fail with PLUGIN_OUTPUT_INVALID.
    public var maxDocumentBytes = PluginDocumentLimit.bytes
    /// A runner with no call for this long is stopped; the next call starts it again.
    public var idleTimeoutSeconds: Double = 120
    /// After a crash the host serializes a plugin's calls for this many clean
    /// answers, so that the next crash names the one call that caused it.
    public var probationCalls = 3
    /// Restarts after consecutive crashes wait base × 2^(n-1), at most max.
    public var baseBackoffMs = 50
    public var maxBackoffMs = 5_000

    public init(executable: URL? = nil, scratchRoot: URL = FileManager.default.temporaryDirectory.appendingPathComponent("yard-runners")) {
        self.executable = executable
        self.scratchRoot = scratchRoot
    }

    /// YARD_PLUGIN_RUNNER, else yard-plugin-runner beside this process's executable.
    public static func locateExecutable(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
        if let path = environment["YARD_PLUGIN_RUNNER"], !path.isEmpty { return URL(fileURLWithPath: path) }
        let candidates = [URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
                          URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()]
        for exe in candidates {
            let runner = exe.deletingLastPathComponent().appendingPathComponent("yard-plugin-runner")
            if FileManager.default.isExecutableFile(atPath: runner.path) { return runner }
        }
        return nil
    }

    func resolvedExecutable() throws -> URL {
        guard let runner = executable ?? Self.locateExecutable() else {
            throw YardError("RUNNER_MISSING", "yard-plugin-runner, which runs plugins out of process, is not installed beside yard.",
                            remediation: "Reinstall yard with scripts/build.sh (it builds yard-plugin-runner), set YARD_PLUGIN_RUNNER, or run a plugin you trust with --isolation in-process.")
        }
        return runner
    }
}

/// The largest document the host accepts from one plugin call.
public enum PluginDocumentLimit {
    public static let bytes = 64 << 20
}

/// What the runner applied to itself before loading the plugin (its READY report).
public struct SandboxReport: Codable, Sendable, Equatable {
    public struct Layer: Codable, Sendable, Equatable {
        public var layer: String
        /// "enforced", "partial", "unavailable" or "off".
        public var state: String
        public var detail: String
    }
    public var sandbox: Bool
    public var uid: Int
    public var layers: [Layer]
    /// From `--probe` only: what a hostile plugin's attempts got.
    public var checks: [String: String]?

    public func layer(_ name: String) -> Layer? { layers.first { $0.layer == name } }
    func enforced(_ name: String) -> Bool { layer(name)?.state == "enforced" }

    /// One line each for network, filesystem and processes: what holds, and by which layers.
    public var summary: [String: String] {
        var network: [String] = [], processes: [String] = []
        if enforced("network-namespace") { network.append("network namespace") }
        if enforced("seccomp") { network.append("seccomp"); processes.append("seccomp") }
        if enforced("landlock"), layer("landlock")?.detail.contains("TCP") == true { network.append("landlock") }
        if layer("rlimits") != nil { processes.append("RLIMIT_NPROC") }
        let filesystem = enforced("landlock") ? "scratch folder only (landlock)" : "unrestricted: \(layer("landlock")?.detail ?? "landlock not applied")"
        return [
            "network": network.isEmpty ? "open: no layer applies" : "none of its own (\(network.joined(separator: ", ")))",
            "filesystem": filesystem,
            "processes": processes.contains("seccomp") ? "no fork or exec (\(processes.joined(separator: ", ")))" : "limited by \(processes.joined(separator: ", "))",
            "limits": layer("rlimits")?.detail ?? "none",
        ]
    }

    /// Layers the kernel refused, with the reason: what `doctor` warns about.
    public var degraded: [Layer] { layers.filter { $0.state != "enforced" } }
}

/// Facts about a loaded sy_plugin_t, from the entry in this process or from a runner's READY frame.
struct PluginImageFacts {
    var structSize: UInt32
    var abiMajor: UInt32
    var abiMinor: UInt32
    var requiredFunctionsPresent: Bool
    var descriptor: Data
}

/// One yard-plugin-runner process and its channel. Calls are matched to
/// answers by id; service requests from the plugin are served with the same
/// vtables an in-process plugin gets. When the process ends, every call in
/// flight fails (PLUGIN_CRASHED, or PLUGIN_TIMEOUT for the call whose
/// deadline ended it) and the supervisor is told.
final class PluginRunnerProcess: @unchecked Sendable {
    struct Launch {
        var runner: URL
        /// nil: `--probe` (apply the sandbox, test it, report, exit).
        var library: URL?
        var readPaths: [String]
        var scratch: URL
        var services: [String]
        var systemClock: Bool
        var memoryMB: Int
        var configuration: RunnerConfiguration
    }

    struct Ready {
        var status: Int32
        var message: String
        var facts: PluginImageFacts
        var otherMajors: UInt32
        var sandbox: SandboxReport?
    }

    /// How the process ended, for messages.
    struct Ending {
        var description: String
        /// The call whose deadline ended the process, if that was the cause.
        var timedOutCall: UInt64?
        var timeoutMs: Int
    }

    private struct Pending {
        var kind: PluginCallKind
        var jobID: String?
        var deadlineMs: Int
        var completion: @Sendable (PluginCallResult) -> Void
        var deadline: UInt64 = 0
    }

    let pid: pid_t
    let pluginID: String
    private let socket: Int32
    /// nil for a probe, which loads no plugin (every service request is refused).
    private let context: PluginContext?
    private let scratch: URL
    private let lock = NSLock()
    private var pending: [UInt64: Pending] = [:]
    private var ended: Ending?
    private var ready: Ready?
    private let readySignal = DispatchSemaphore(value: 0)
    private var stderrTail = Data()
    private var timedOutCall: (UInt64, Int)?
    private var killedBecause: String?
    /// Set before the process is reaped: from then on its pid may name another process.
    private var reaping = false
    private let outputClosed = DispatchSemaphore(value: 0)
    private let writeLock = NSLock()
    private(set) var lastActivity = DispatchTime.now()
    /// Told once when the process has ended.
    var onEnd: (@Sendable (PluginRunnerProcess, Ending) -> Void)?

    private static let nextCallID = ManagedAtomicCounter()
    static let serviceQueue = DispatchQueue(label: "switchyard.runner-services", qos: .userInitiated, attributes: .concurrent)
    static let timerQueue = DispatchQueue(label: "switchyard.runner-timers", qos: .utility)

    private init(pid: pid_t, socket: Int32, pluginID: String, context: PluginContext?, scratch: URL) {
        self.pid = pid
        self.socket = socket
        self.pluginID = pluginID
        self.context = context
        self.scratch = scratch
    }

    var isRunning: Bool { lock.withLock { ended == nil } }
    var callsInFlight: Int { lock.withLock { pending.count } }

    // MARK: start

    /// Spawns the runner with only its channel (fd 3) and an output pipe
    /// (fds 1 and 2): no other descriptor, no environment of the host (its
    /// secrets live there), its own process group.
    static func spawn(_ launch: Launch, context: PluginContext?) throws -> PluginRunnerProcess {
        let fm = FileManager.default
        try fm.createDirectory(at: launch.scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var arguments = [launch.runner.path, "--parent", String(getpid()), "--host-version", HostPlatform.hostVersion,
                         "--scratch", launch.scratch.path, "--services", launch.services.joined(separator: ","),
                         "--memory-mb", String(launch.memoryMB), "--cpu-seconds", String(launch.configuration.cpuSeconds),
                         "--file-mb", String(launch.configuration.fileMB), "--open-files", String(launch.configuration.openFiles),
                         "--max-document-bytes", String(launch.configuration.maxDocumentBytes)]
        for path in launch.readPaths { arguments += ["--read", path] }
        if launch.systemClock { arguments.append("--system-clock") }
        if !launch.configuration.sandbox { arguments.append("--no-sandbox") }
        if let library = launch.library { arguments += ["--library", library.path] } else { arguments.append("--probe") }
        var environment = ["SWIFT_BACKTRACE=enable=no", "LANG=C.UTF-8", "PATH=/usr/bin:/bin",
                           "TMPDIR=\(launch.scratch.path)", "HOME=\(launch.scratch.path)"]
        if let libraryPath = ProcessInfo.processInfo.environment["LD_LIBRARY_PATH"] { environment.append("LD_LIBRARY_PATH=\(libraryPath)") }

        HostProcessService.spawnLock.lock()
        defer { HostProcessService.spawnLock.unlock() }
        var channel: [Int32] = [-1, -1], output: [Int32] = [-1, -1]
        let streamCloexec = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, streamCloexec, 0, &channel) == 0 else {
            throw YardError("RUNNER_FAILED", "Could not create the runner's channel: \(String(cString: strerror(errno))).", remediation: "The host may be out of file descriptors.")
        }
        guard socketpair(AF_UNIX, streamCloexec, 0, &output) == 0 else {
            close(channel[0]); close(channel[1])
            throw YardError("RUNNER_FAILED", "Could not create the runner's output pipe: \(String(cString: strerror(errno))).", remediation: "The host may be out of file descriptors.")
        }
        let (rc, child) = GroupSpawn.spawn(launch.runner.path, arguments: arguments, environment: environment) { actions in
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, output[1], 1)
            posix_spawn_file_actions_adddup2(&actions, output[1], 2)
            posix_spawn_file_actions_adddup2(&actions, channel[1], SYR_CHANNEL_FD)
        }
        close(channel[1])
        close(output[1])
        guard rc == 0 else {
            close(channel[0]); close(output[0])
            throw YardError("RUNNER_FAILED", "Could not start \(launch.runner.path): \(String(cString: strerror(rc))).",
                            remediation: "Check that yard-plugin-runner is installed and executable.")
        }
        let process = PluginRunnerProcess(pid: child, socket: channel[0], pluginID: context?.manifest.id ?? "sandbox-probe", context: context, scratch: launch.scratch)
        let outputFD = output[0]
        Thread.detachNewThread { process.drainOutput(outputFD) }
        let reader = Thread { process.readLoop() }
        reader.name = "runner-\(process.pluginID)"
        reader.start()
        return process
    }

    /// Waits for the READY frame: the sandbox is up and the entry returned.
    func waitReady(timeoutMs: Int) -> Result<Ready, YardError> {
        if readySignal.wait(timeout: .now() + .milliseconds(timeoutMs)) == .timedOut {
            kill(because: "its entry did not return within \(timeoutMs) ms")
            _ = readySignal.wait(timeout: .now() + 5)
            return .failure(YardError("PLUGIN_TIMEOUT", "\(pluginID): loading took longer than \(timeoutMs) ms (the entry or a library constructor hangs); the runner was killed.",
                                      remediation: "Report this to the plugin's author; `yard plugin test \(pluginID)` shows where it hangs.", field: "$.call_timeouts_ms.load"))
        }
        return lock.withLock {
            if let ready { return .success(ready) }
            let how = ended?.description ?? "ended"
            return .failure(YardError("PLUGIN_CRASHED", "\(pluginID) crashed while loading: the runner \(how).",
                                      remediation: "The plugin's entry or a library it needs fails: run `yard plugin test \(pluginID)` and report the result to its author."))
        }
    }

    // MARK: calls

    /// Sends one call; `completion` runs exactly once, with the plugin's
    /// answer or with the failure that prevented it.
    func send(_ kind: PluginCallKind, request: Data, jobID: String?, deadlineMs: Int, completion: @escaping @Sendable (PluginCallResult) -> Void) {
        let callID = Self.nextCallID.next()
        var frame = RunnerFrame.Writer(kind: SYR_FRAME_CALL, id: callID)
        switch kind {
        case .operation(let op):
            frame.u8(UInt8(Self.opcode(op)))
            frame.data(Data())
        case .extension(let id):
            frame.u8(UInt8(SYR_OP_EXTENSION))
            frame.string(id)
        }
        frame.string(jobID ?? "")
        frame.data(request)
        let bytes = frame.finish()
        let registered: Bool = lock.withLock {
            guard ended == nil else { return false }
            let deadline = CallDeadlines.shared.schedule(afterMs: deadlineMs) { [weak self] in self?.deadlineMissed(callID, deadlineMs) }
            pending[callID] = Pending(kind: kind, jobID: jobID, deadlineMs: deadlineMs, completion: completion, deadline: deadline)
            lastActivity = .now()
            return true
        }
        guard registered else {
            completion(.failure(.unavailable("the runner of \(pluginID) is not running"), kind: kind, pluginID: pluginID, attributed: false))
            return
        }
        if !write(bytes) {
            // Never reached the runner: nothing ran, so nothing can have been charged.
            if let call = lock.withLock({ pending.removeValue(forKey: callID) }) {
                CallDeadlines.shared.cancel(call.deadline)
                call.completion(.failure(.unavailable("the runner of \(pluginID) closed its channel"), kind: kind, pluginID: pluginID, attributed: false))
            }
        }
    }

    /// Whether the plugin implements an extension (get_extension(id) != NULL).
    func hasExtension(_ id: String, deadlineMs: Int) -> Bool? {
        let callID = Self.nextCallID.next()
        var frame = RunnerFrame.Writer(kind: SYR_FRAME_CALL, id: callID)
        frame.u8(UInt8(SYR_OP_HAS_EXTENSION))
        frame.string(id)
        frame.string("")
        frame.data(Data())
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox()
        let registered: Bool = lock.withLock {
            guard ended == nil else { return false }
            let deadline = CallDeadlines.shared.schedule(afterMs: deadlineMs) { [weak self] in self?.deadlineMissed(callID, deadlineMs) }
            pending[callID] = Pending(kind: .extension(id), jobID: nil, deadlineMs: deadlineMs, completion: { result in box.set(result); done.signal() }, deadline: deadline)
            return true
        }
        guard registered else { return nil }
        guard write(frame.finish()) else {
            if let call = lock.withLock({ pending.removeValue(forKey: callID) }) { CallDeadlines.shared.cancel(call.deadline) }
            return nil
        }
        done.wait()
        guard let result = box.value, result.failure == nil else { return nil }
        return result.status == SY_OK
    }

    final class ResultBox: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: PluginCallResult?
        func set(_ value: PluginCallResult) { lock.withLock { stored = value } }
        var value: PluginCallResult? { lock.withLock { stored } }
    }

    static func opcode(_ op: PluginOperation) -> Int32 {
        switch op {
        case .validate: return SYR_OP_VALIDATE
        case .submit: return SYR_OP_SUBMIT
        case .poll: return SYR_OP_POLL
        case .cancel: return SYR_OP_CANCEL
        case .health: return SYR_OP_HEALTH
        }
    }

    private func write(_ bytes: Data) -> Bool {
        writeLock.lock()
        defer { writeLock.unlock() }
        return bytes.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.send(socket, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
    }

    private func deadlineMissed(_ callID: UInt64, _ deadlineMs: Int) {
        let description: String? = lock.withLock {
            guard let call = pending[callID], ended == nil, timedOutCall == nil else { return nil }
            timedOutCall = (callID, deadlineMs)
            return "\(call.kind.description)\(call.jobID.map { " of job \($0)" } ?? "")"
        }
        guard let description else { return }
        kill(because: "\(description) missed its \(deadlineMs) ms deadline")
    }

    /// Ends the process now (SIGKILL to its group). The reader sees the
    /// channel close and fails what is in flight.
    func kill(because reason: String) {
        lock.withLock {
            if killedBecause == nil { killedBecause = reason }
            guard !reaping else { return }
            Glibc.kill(-pid, SIGKILL)
            Glibc.kill(pid, SIGKILL)
        }
    }

    /// Stops a healthy runner (idle, or its plugin is unloaded): not a crash.
    func stop() {
        kill(because: "stopped by the host")
    }

    var wasStoppedByHost: Bool { lock.withLock { killedBecause == "stopped by the host" } }

    // MARK: reading

    private func readLoop() {
        let reader = RunnerFrameReader(fd: socket, maxFrameBytes: Int(SYR_MAX_FRAME_BYTES))
        var violation: String?
        while violation == nil {
            let frame: RunnerFrame
            do { frame = try reader.next() } catch RunnerFrameReader.Failure.malformed(let why) {
                violation = why
                break
            } catch { break }
            switch Int32(frame.kind) {
            case SYR_FRAME_RESULT: violation = receiveResult(frame)
            case SYR_FRAME_SERVICE: violation = receiveService(frame)
            case SYR_FRAME_READY: violation = receiveReady(frame)
            default: violation = "an unknown frame kind \(frame.kind)"
            }
        }
        if let violation { kill(because: "it broke the runner protocol (\(violation))") }
        finish()
    }

    private func receiveReady(_ frame: RunnerFrame) -> String? {
        var r = RunnerFrame.Reader(frame.payload)
        let status = r.i32()
        let message = String(decoding: r.bytes(), as: UTF8.self)
        let facts = PluginImageFacts(structSize: r.u32(), abiMajor: r.u32(), abiMinor: r.u32(), requiredFunctionsPresent: false, descriptor: Data())
        let functions = r.u32()
        let otherMajors = r.u32()
        let descriptor = r.bytes()
        let report = r.bytes()
        guard r.ok else { return "a malformed READY frame" }
        let allFunctions = UInt32(SYR_FN_VALIDATE | SYR_FN_SUBMIT | SYR_FN_POLL | SYR_FN_CANCEL | SYR_FN_HEALTH | SYR_FN_GET_EXTENSION)
        var complete = facts
        complete.requiredFunctionsPresent = functions & allFunctions == allFunctions
        complete.descriptor = descriptor
        let sandbox = try? JSONDecoder().decode(SandboxReport.self, from: report)
        let first: Bool = lock.withLock {
            guard ready == nil else { return false }
            ready = Ready(status: status, message: redact(message), facts: complete, otherMajors: otherMajors, sandbox: sandbox)
            return true
        }
        guard first else { return "a second READY frame" }
        readySignal.signal()
        return nil
    }

    private func receiveResult(_ frame: RunnerFrame) -> String? {
        var r = RunnerFrame.Reader(frame.payload)
        let status = r.i32()
        let flags = r.u32()
        let document = r.bytes()
        guard r.ok else { return "a malformed RESULT frame" }
        guard let call = lock.withLock({ () -> Pending? in
            lastActivity = .now()
            return pending.removeValue(forKey: frame.id)
        }) else {
            return "an answer to call \(frame.id), which is not in flight"
        }
        CallDeadlines.shared.cancel(call.deadline)
        var result = PluginCallResult(status: status, document: document)
        if flags & UInt32(SYR_RESULT_TRUNCATED) != 0 {
            result = .failure(.outputInvalid("\(pluginID) answered \(call.kind.description) with a document larger than \(PluginDocumentLimit.bytes >> 20) MiB"),
                              kind: call.kind, pluginID: pluginID, attributed: true)
        }
        result.absent = flags & UInt32(SYR_RESULT_ABSENT) != 0
        call.completion(result)
        return nil
    }

    private func receiveService(_ frame: RunnerFrame) -> String? {
        var r = RunnerFrame.Reader(frame.payload)
        let callID = r.u64()
        let service = r.u8()
        let function = r.u8()
        let value = r.i64()
        let count = Int(r.u8())
        var args: [Data] = []
        for _ in 0..<count { args.append(r.bytes()) }
        guard r.ok, count <= 4 else { return "a malformed SERVICE frame" }
        let jobID: String?? = lock.withLock { pending[callID].map { $0.jobID } }
        let request = RunnerServiceBridge.Request(callID: callID, service: service, function: function, value: value, args: args)
        // A request naming no call in flight gets no context: every service refuses it.
        let call = context.flatMap { context in jobID.map { CallContext(plugin: context, jobID: $0) } }
        let requestID = frame.id
        if RunnerServiceBridge.answersInline(service, function) {
            if let answer = RunnerServiceBridge.perform(request, context: call) { reply(requestID, answer) }
        } else {
            Self.serviceQueue.async { [self] in
                if let answer = RunnerServiceBridge.perform(request, context: call) { reply(requestID, answer) }
            }
        }
        return nil
    }

    private func reply(_ requestID: UInt64, _ answer: RunnerServiceBridge.Answer) {
        var frame = RunnerFrame.Writer(kind: SYR_FRAME_SERVICE_REPLY, id: requestID)
        frame.i32(answer.status)
        frame.i64(answer.value)
        frame.data(answer.output)
        _ = write(frame.finish())
    }

    private func drainOutput(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            lock.withLock {
                stderrTail.append(contentsOf: buffer[0..<n])
                if stderrTail.count > 8192 { stderrTail = stderrTail.suffix(4096) }
            }
        }
        close(fd)
        outputClosed.signal()
    }

    /// The plugin's last output line, redacted, for crash messages.
    private func lastOutputLine() -> String? {
        let tail = lock.withLock { stderrTail }
        let text = redact(String(decoding: tail, as: UTF8.self))
        let line = text.split(whereSeparator: \.isNewline).last.map(String.init)?.trimmingCharacters(in: .whitespaces)
        guard let line, !line.isEmpty else { return nil }
        return line.count > 240 ? String(line.prefix(240)) + "…" : line
    }

    private func redact(_ text: String) -> String { context?.redact(text) ?? text }

    private func finish() {
        // The plugin may have closed fd 3 and kept running: end it either way.
        lock.withLock {
            Glibc.kill(-pid, SIGKILL)
            Glibc.kill(pid, SIGKILL)
            reaping = true
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        close(socket)
        try? FileManager.default.removeItem(at: scratch)
        // The output pipe delivers the plugin's last words once the process is gone.
        _ = outputClosed.wait(timeout: .now() + .milliseconds(200))
        let termSignal = status & 0x7f
        var how: String
        if termSignal == 0 {
            how = "exited with status \((status >> 8) & 0xff)"
        } else {
            how = "died of signal \(termSignal) (\(String(cString: strsignal(termSignal))))"
        }
        let (killed, timeout, calls, readyDone) = lock.withLock { () -> (String?, (UInt64, Int)?, [UInt64: Pending], Bool) in
            let calls = pending
            pending.removeAll()
            return (killedBecause, timedOutCall, calls, ready != nil)
        }
        if let killed { how = "was killed by the host: \(killed)" }
        if let line = lastOutputLine() { how += "; its last output: \"\(line)\"" }
        let ending = Ending(description: how, timedOutCall: timeout?.0, timeoutMs: timeout?.1 ?? 0)
        lock.withLock { ended = ending }
        if !readyDone { readySignal.signal() }
        let attributable = calls.count == 1
        for (id, call) in calls {
            CallDeadlines.shared.cancel(call.deadline)
            let failure: PluginCallFailure
            if timeout?.0 == id {
                failure = .timedOut(call.deadlineMs)
            } else if let timeout, let other = calls[timeout.0] {
                failure = .crashed("the runner was restarted because \(other.kind.description)\(other.jobID.map { " of job \($0)" } ?? "") missed its \(timeout.1) ms deadline")
            } else {
                failure = .crashed("the runner \(how)")
            }
            call.completion(.failure(failure, kind: call.kind, pluginID: pluginID, attributed: timeout?.0 == id || (timeout == nil && attributable)))
        }
        onEnd?(self, ending)
    }
}

/// What the runner's sandbox holds on this machine, without loading a plugin:
/// the runner applies every layer to itself, tries to open a socket, read a
/// file outside its folders and fork, and reports (`yard doctor`, `plugin info`).
public enum SandboxProbe {
    public static func run(_ configuration: RunnerConfiguration = RunnerConfiguration()) throws -> SandboxReport {
        let launch = PluginRunnerProcess.Launch(
            runner: try configuration.resolvedExecutable(), library: nil, readPaths: RunnerLibraryFolders.current,
            scratch: configuration.scratchRoot.appendingPathComponent("probe-\(UUID().uuidString.prefix(8).lowercased())"),
            services: [], systemClock: true, memoryMB: 4096, configuration: configuration)
        let process = try PluginRunnerProcess.spawn(launch, context: nil)
        let ready = try process.waitReady(timeoutMs: 10_000).get()
        process.stop()
        guard let report = ready.sandbox else {
            throw YardError("RUNNER_FAILED", "yard-plugin-runner --probe answered without a sandbox report.", remediation: "Reinstall yard (scripts/build.sh).")
        }
        return report
    }
}

extension PluginCallResult {
    /// A call the plugin never answered: the host writes the error document
    /// itself, in the ABI's shape, so every caller reads it like a plugin's.
    static func failure(_ failure: PluginCallFailure, kind: PluginCallKind, pluginID: String, attributed: Bool) -> PluginCallResult {
        let message: String, remediation: String, charged: String
        switch failure {
        case .crashed(let why):
            message = "\(pluginID) crashed during \(kind.description): \(why)."
            remediation = "The host restarts the plugin; if it keeps crashing, run `yard plugin test \(pluginID)` and report the result to its author."
            charged = "unknown"
        case .timedOut(let ms):
            message = "\(pluginID) did not answer \(kind.description) within its \(ms) ms deadline; the runner was stopped."
            remediation = "Retry later. If it keeps hanging, report it to the plugin's author (plugin.json call_timeouts_ms sets the deadline, within the host's bounds)."
            charged = "unknown"
        case .outputInvalid(let why):
            message = "\(why)."
            remediation = "Report this to the plugin's author; `yard plugin test \(pluginID)` shows the documents it writes."
            charged = "unknown"
        case .unavailable(let why):
            message = "\(pluginID) could not take \(kind.description): \(why)."
            remediation = "The host restarts the plugin with backoff; if it cannot start, run `yard plugin test \(pluginID)`."
            // The call never ran: a submit cannot have reached the provider. Any
            // other call says nothing about what the provider charges.
            charged = kind == .operation(.submit) ? "no" : "unknown"
        }
        let document: [String: Any] = ["error": ["code": failure.code, "message": message, "remediation": remediation,
                                                 "retryable": true, "charged": charged]]
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data()
        return PluginCallResult(status: SY_E_INTERNAL, document: data, failure: failure, attributed: attributed)
    }
}
