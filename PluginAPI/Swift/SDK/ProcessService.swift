import CPluginAPI
import Foundation

// Swift side of sy.process/1 (PluginAPI/include/switchyard/ext/process.h):
// child processes for local engines, shaped for submit/poll. Arguments name
// files by placeholder ("{input:NAME}", "{output:NAME}", "{file:NAME}"); the
// host substitutes paths the plugin never sees.

/// What to run. Encode once and keep it in the job's ref: after a host restart
/// the same request (same `key`) starts the work again under the same handle.
public struct ProcessRequest: Codable, Sendable, Hashable {
    public struct Output: Codable, Sendable, Hashable {
        public var fileExtension: String
        public var mediaType: String

        public init(fileExtension: String, mediaType: String) {
            self.fileExtension = fileExtension
            self.mediaType = mediaType
        }

        enum CodingKeys: String, CodingKey {
            case fileExtension = "extension"
            case mediaType = "media_type"
        }
    }

    public struct TextFile: Codable, Sendable, Hashable {
        public var text: String
        public var fileExtension: String

        public init(text: String, fileExtension: String = "txt") {
            self.text = text
            self.fileExtension = fileExtension
        }

        enum CodingKeys: String, CodingKey {
            case text
            case fileExtension = "extension"
        }
    }

    public struct Progress: Codable, Sendable, Hashable {
        /// "ffmpeg": the host reads `-progress pipe:1` lines from stdout.
        public var format: String
        public var durationSeconds: Double

        public init(format: String = "ffmpeg", durationSeconds: Double) {
            self.format = format
            self.durationSeconds = durationSeconds
        }

        enum CodingKeys: String, CodingKey {
            case format
            case durationSeconds = "duration_seconds"
        }
    }

    public var executable: String
    public var args: [String]
    public var key: String?
    /// Placeholder name → artifact handle ("sha256:…").
    public var inputs: [String: String]
    public var outputs: [String: Output]
    public var files: [String: TextFile]
    public var stdin: String?
    public var progress: Progress?
    public var timeoutMs: Int?

    public init(executable: String, args: [String], key: String? = nil, inputs: [String: String] = [:],
                outputs: [String: Output] = [:], files: [String: TextFile] = [:], stdin: String? = nil,
                progress: Progress? = nil, timeoutMs: Int? = nil) {
        self.executable = executable
        self.args = args
        self.key = key
        self.inputs = inputs
        self.outputs = outputs
        self.files = files
        self.stdin = stdin
        self.progress = progress
        self.timeoutMs = timeoutMs
    }

    enum CodingKeys: String, CodingKey {
        case executable, args, key, inputs, outputs, files, stdin, progress
        case timeoutMs = "timeout_ms"
    }

    struct InputRef: Codable { var artifact: String }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(executable, forKey: .executable)
        try c.encode(args, forKey: .args)
        try c.encodeIfPresent(key, forKey: .key)
        try c.encode(inputs.mapValues { InputRef(artifact: $0) }, forKey: .inputs)
        try c.encode(outputs, forKey: .outputs)
        try c.encode(files, forKey: .files)
        try c.encodeIfPresent(stdin, forKey: .stdin)
        try c.encodeIfPresent(progress, forKey: .progress)
        try c.encodeIfPresent(timeoutMs, forKey: .timeoutMs)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        executable = try c.decode(String.self, forKey: .executable)
        args = try c.decodeIfPresent([String].self, forKey: .args) ?? []
        key = try c.decodeIfPresent(String.self, forKey: .key)
        inputs = (try c.decodeIfPresent([String: InputRef].self, forKey: .inputs) ?? [:]).mapValues(\.artifact)
        outputs = try c.decodeIfPresent([String: Output].self, forKey: .outputs) ?? [:]
        files = try c.decodeIfPresent([String: TextFile].self, forKey: .files) ?? [:]
        stdin = try c.decodeIfPresent(String.self, forKey: .stdin)
        progress = try c.decodeIfPresent(Progress.self, forKey: .progress)
        timeoutMs = try c.decodeIfPresent(Int.self, forKey: .timeoutMs)
    }
}

/// One look at a child process.
public struct ProcessStatus: Codable, Sendable {
    public enum State: String, Codable, Sendable { case running, exited, killed, timedOut = "timed_out" }
    public var state: State
    public var progress: Double?
    public var exitCode: Int?
    public var signal: Int?
    public var elapsedMs: Int?
    public var stderrTail: String?
    public var stdout: String?
    public var outputs: [String: ArtifactHandle]?

    public var isFinished: Bool { state != .running }
    public var succeeded: Bool { state == .exited && exitCode == 0 }

    enum CodingKeys: String, CodingKey {
        case state, progress, signal, stdout, outputs
        case exitCode = "exit_code"
        case elapsedMs = "elapsed_ms"
        case stderrTail = "stderr_tail"
    }
}

extension HostContext {
    func processService() throws -> UnsafePointer<sy_service_process_t> {
        guard let svc = service(SY_SERVICE_PROCESS, as: sy_service_process_t.self) else {
            throw Self.unavailable(SY_SERVICE_PROCESS)
        }
        return svc
    }

    static func processError(_ status: sy_status_t, _ out: Data, _ what: String) -> PluginError {
        if let doc = try? JSONDecoder().decode(ErrorDocument.self, from: out) { return doc.error }
        switch status {
        case SY_E_NOT_FOUND:
            return PluginError(code: "PROCESS_NOT_FOUND", message: "The host knows no process \(what).",
                               remediation: "Start it again; the host forgets its children when it restarts.")
        case SY_E_DENIED:
            return PluginError(code: "PROCESS_DENIED", message: "The host refused to run \(what): it is not in plugin.json's processes.",
                               remediation: "List the executable under processes in plugin.json.")
        default:
            return PluginError(code: "PROCESS_FAILED", message: "sy.process/1 failed for \(what) (status \(status)).",
                               remediation: "See the job's events for the host's reason.", retryable: true)
        }
    }

    /// Starts a child; returns its handle. Throws DEPENDENCY_MISSING when the
    /// executable is not installed.
    public func startProcess(_ request: ProcessRequest) throws -> String {
        guard let fn = try processService().pointee.start else { throw Self.unavailable(SY_SERVICE_PROCESS) }
        let body = try JSONEncoder().encode(request)
        let (status, out) = SinkBuffer.collect { sink in body.withSyStr { fn(call, $0, sink) } }
        guard status == SY_OK, let handle = (try? JSONDecoder().decode([String: String].self, from: out))?["handle"] else {
            throw Self.processError(status, out, request.executable)
        }
        return handle
    }

    /// The child's state; PROCESS_NOT_FOUND for a handle the host does not know (e.g. after a restart).
    public func processStatus(_ handle: String) throws -> ProcessStatus {
        guard let fn = try processService().pointee.status else { throw Self.unavailable(SY_SERVICE_PROCESS) }
        let (status, out) = SinkBuffer.collect { sink in handle.withSyStr { fn(call, $0, sink) } }
        guard status == SY_OK else { throw Self.processError(status, out, handle) }
        return try JSONDecoder().decode(ProcessStatus.self, from: out)
    }

    /// Blocks until the child finishes or `timeoutMs` passes.
    public func waitProcess(_ handle: String, timeoutMs: Int64) throws -> ProcessStatus {
        guard let fn = try processService().pointee.wait else { throw Self.unavailable(SY_SERVICE_PROCESS) }
        let (status, out) = SinkBuffer.collect { sink in handle.withSyStr { fn(call, $0, timeoutMs, sink) } }
        guard status == SY_OK else { throw Self.processError(status, out, handle) }
        return try JSONDecoder().decode(ProcessStatus.self, from: out)
    }

    /// Runs a short helper (ffprobe) to completion: start, then wait.
    public func runProcess(_ request: ProcessRequest, timeoutMs: Int64 = 60_000) throws -> ProcessStatus {
        try waitProcess(try startProcess(request), timeoutMs: timeoutMs)
    }

    /// Kills the child and its process group. True if it was still running.
    @discardableResult
    public func cancelProcess(_ handle: String) throws -> Bool {
        guard let fn = try processService().pointee.cancel else { throw Self.unavailable(SY_SERVICE_PROCESS) }
        let (status, out) = SinkBuffer.collect { sink in handle.withSyStr { fn(call, $0, sink) } }
        guard status == SY_OK else { throw Self.processError(status, out, handle) }
        return (try? JSONDecoder().decode([String: String].self, from: out))?["outcome"] == "killed"
    }

    /// Nil when the executable is installed, else the error to report (DEPENDENCY_MISSING with the install command).
    public func missingExecutable(_ name: String) throws -> PluginError? {
        guard let fn = try processService().pointee.locate else { throw Self.unavailable(SY_SERVICE_PROCESS) }
        let (status, out) = SinkBuffer.collect { sink in name.withSyStr { fn(call, $0, sink) } }
        guard status == SY_OK else { throw Self.processError(status, out, name) }
        let doc = try JSONDecoder().decode(JSONValue.self, from: out)
        if doc["installed"]?.boolValue == true { return nil }
        return PluginError(code: "DEPENDENCY_MISSING", message: "\(name) is not installed on this machine (not found on PATH).",
                           remediation: doc["remediation"]?.stringValue ?? "Install \(name).")
    }
}
