import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// sy.process/1 on the host side (PluginAPI/include/switchyard/ext/process.h):
/// runs allow-listed executables for local engines, each in its own process
/// group and scratch folder, copying input artifacts out of the store and
/// output files back into it, so plugins handle artifacts, never paths.
///
/// Children get a small environment (PATH, HOME and TMPDIR in their scratch
/// folder, LANG), never the host's: the host's environment may hold secrets.
/// The host forgets its children when it exits; the next start kills any that
/// outlived it and sweeps their folders (docs/adr/0009-process-service.md).
public final class HostProcessService: @unchecked Sendable {
    /// A refusal with the status to return and the error document to write.
    public struct Failure: Error, Sendable {
        public enum Kind: Sendable { case denied, missing, invalid, notFound, failed }
        public var kind: Kind
        public var code: String
        public var message: String
        public var remediation: String
    }

    public let artifacts: any ArtifactSink
    /// ROOT/<host pid>/<handle>/: one scratch folder per child.
    public let workRoot: URL
    private let lock = NSLock()
    private var path: String
    private var records: [String: ChildRecord] = [:]
    private var finishedOrder: [String] = []
    static let keepFinished = 512
    static let stderrTailBytes = 4096
    static let stdoutLimit = 1 << 20
    static let spawnLock = NSLock()

    /// Debian packages that provide executables whose package has another name.
    static let packages: [String: String] = ["ffprobe": "ffmpeg", "ffplay": "ffmpeg", "espeak": "espeak-ng"]

    public init(artifacts: any ArtifactSink, workRoot: URL, searchPath: String? = nil) {
        self.artifacts = artifacts
        self.workRoot = workRoot
        self.path = searchPath ?? ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        // Feeding stdin to a child that already exited must be EPIPE, not a
        // SIGPIPE that ends the host. Children get default dispositions back.
        signal(SIGPIPE, SIG_IGN)
        sweepOrphans()
    }

    /// Where executables are looked up (the host's PATH unless changed).
    public var searchPath: String {
        get { lock.withLock { path } }
        set { lock.withLock { path = newValue } }
    }

    // MARK: resolving executables

    public static func installCommand(for name: String) -> String {
        "sudo apt-get install -y \(packages[name] ?? name)"
    }

    func resolve(_ name: String) -> String? {
        for dir in searchPath.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(name)"
            var info = stat()
            if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    func check(_ name: String, allowed: [String], pluginID: String) throws -> String {
        guard allowed.contains(name), !name.contains("/") else {
            throw Failure(kind: .denied, code: "PROCESS_DENIED", message: "\(pluginID) may not run \(name): it is not in plugin.json's processes (\(allowed.joined(separator: ", ")))." ,
                          remediation: "List \(name) under processes in \(pluginID)'s plugin.json.")
        }
        guard let path = resolve(name) else {
            throw Failure(kind: .missing, code: "DEPENDENCY_MISSING", message: "\(name) is not installed (not found on PATH); \(pluginID) needs it.",
                          remediation: "Install it: \(Self.installCommand(for: name))")
        }
        return path
    }

    /// {"name","installed","remediation"?}
    public func locate(_ name: String, allowed: [String], pluginID: String) throws -> [String: Any] {
        do {
            _ = try check(name, allowed: allowed, pluginID: pluginID)
            return ["name": name, "installed": true]
        } catch let failure as Failure where failure.kind == .missing {
            return ["name": name, "installed": false, "remediation": failure.remediation]
        }
    }

    // MARK: start

    public func start(_ request: [String: Any], allowed: [String], pluginID: String) throws -> String {
        guard let executable = request["executable"] as? String else {
            throw Failure(kind: .invalid, code: "INVALID_REQUEST", message: "The process request lacks \"executable\".", remediation: "See ext/process.h.")
        }
        let binary = try check(executable, allowed: allowed, pluginID: pluginID)
        let key = request["key"] as? String
        let handle = "proc_" + String(SHA256.hash(data: Data("\(pluginID)\n\(key ?? UUID().uuidString)".utf8))
            .map { String(format: "%02x", $0) }.joined().prefix(32))
        if lock.withLock({ records[handle] }) != nil { return handle }

        let folder = workRoot.appendingPathComponent(String(getpid())).appendingPathComponent(handle)
        let fm = FileManager.default
        try? fm.removeItem(at: folder)
        do { try fm.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw Failure(kind: .failed, code: "IO_FAILED", message: "Could not create the scratch folder \(folder.path): \(error)", remediation: "Check free space and permissions under YARD_HOME.")
        }
        do {
            var paths: [String: String] = [:]
            for (name, value) in (request["inputs"] as? [String: Any]) ?? [:] {
                let handleText = ((value as? [String: Any])?["artifact"] as? String) ?? (value as? String) ?? ""
                let digest = handleText.hasPrefix("sha256:") ? String(handleText.dropFirst(7)) : handleText
                guard Self.safeFileName(name), let bytes = try artifacts.read(sha256: digest) else {
                    throw Failure(kind: .invalid, code: "ARTIFACT_NOT_FOUND", message: "Input \(name) names \(handleText.prefix(19))…, which is not in this host's store.",
                                  remediation: "Pass an artifact this host holds (--input name=@file).")
                }
                let file = folder.appendingPathComponent("in-\(name)")
                try bytes.write(to: file)
                paths["input:\(name)"] = file.path
            }
            /// The scratch file for one declared output or text file, its name checked.
            func declared(_ kind: String, _ name: String, _ spec: [String: Any], defaultExtension: String) throws -> URL {
                let ext = (spec["extension"] as? String) ?? defaultExtension
                guard Self.safeName(name), Self.safeName(ext) else {
                    throw Failure(kind: .invalid, code: "INVALID_REQUEST", message: "\(kind) \(name).\(ext) is not a plain name.", remediation: "Use letters, digits, '-' and '_'.")
                }
                let file = folder.appendingPathComponent("\(kind)-\(name).\(ext)")
                paths["\(kind):\(name)"] = file.path
                return file
            }
            var outputs: [String: (URL, String)] = [:]
            for (name, value) in (request["outputs"] as? [String: Any]) ?? [:] {
                let spec = value as? [String: Any] ?? [:]
                outputs[name] = (try declared("output", name, spec, defaultExtension: "bin"), (spec["media_type"] as? String) ?? "application/octet-stream")
            }
            for (name, value) in (request["files"] as? [String: Any]) ?? [:] {
                let spec = value as? [String: Any] ?? [:]
                try Data(((spec["text"] as? String) ?? "").utf8).write(to: try declared("file", name, spec, defaultExtension: "txt"))
            }
            let args = try ((request["args"] as? [Any]) ?? []).map { arg -> String in
                guard let text = arg as? String else {
                    throw Failure(kind: .invalid, code: "INVALID_REQUEST", message: "Process arguments must be strings.", remediation: "Quote numbers.")
                }
                return try Self.substitute(text, paths)
            }
            let progress = request["progress"] as? [String: Any]
            let record = ChildRecord(handle: handle, pluginID: pluginID, executable: executable, folder: folder, outputs: outputs,
                                     duration: (progress?["format"] as? String) == "ffmpeg" ? (progress?["duration_seconds"] as? NSNumber)?.doubleValue : nil)
            let environment = ["PATH=\(searchPath)", "HOME=\(folder.path)", "TMPDIR=\(folder.path)", "LANG=C.UTF-8"]
            lock.withLock { records[handle] = record }
            do {
                try record.spawn(binary, [executable] + args, environment: environment, stdin: request["stdin"] as? String, service: self)
            } catch {
                _ = lock.withLock { records.removeValue(forKey: handle) }
                throw error
            }
            try? Data("\(record.pid) \(executable)".utf8).write(to: folder.appendingPathComponent("pgid"))
            if let timeout = (request["timeout_ms"] as? NSNumber)?.intValue, timeout > 0 {
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(timeout)) { record.kill(reason: .timedOut) }
            }
            return handle
        } catch {
            try? fm.removeItem(at: folder)
            if error is Failure { throw error }
            throw Failure(kind: .failed, code: "PROCESS_FAILED", message: "Could not start \(executable): \(error)", remediation: "Check free space under YARD_HOME.")
        }
    }

    /// NAME or NAME.EXT (some programs choose a parser by extension, e.g. ffmpeg's lut3d).
    static func safeFileName(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        return parts.count <= 2 && parts.allSatisfy(safeName)
    }

    static func safeName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    /// Replaces every {input:X}, {output:X} and {file:X} with its path.
    static func substitute(_ text: String, _ paths: [String: String]) throws -> String {
        guard text.contains("{") else { return text }
        var result = ""
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            result += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else { result += rest[open...]; return result }
            let name = String(rest[rest.index(after: open)..<close])
            if let path = paths[name] {
                result += path
            } else if ["input:", "output:", "file:"].contains(where: { name.hasPrefix($0) }) {
                throw Failure(kind: .invalid, code: "INVALID_REQUEST", message: "Argument placeholder {\(name)} names nothing in inputs, outputs or files.",
                              remediation: "Declare it in the request.")
            } else {
                result += rest[open...close]
            }
            rest = rest[rest.index(after: close)...]
        }
        return result + rest
    }

    // MARK: status, wait, cancel

    func record(_ handle: String, pluginID: String) throws -> ChildRecord {
        guard let record = lock.withLock({ records[handle] }), record.pluginID == pluginID else {
            throw Failure(kind: .notFound, code: "PROCESS_NOT_FOUND", message: "No process \(handle) in this host (it forgets its children when it restarts).",
                          remediation: "Start the work again with the same key.")
        }
        return record
    }

    public func status(_ handle: String, pluginID: String) throws -> [String: Any] {
        try record(handle, pluginID: pluginID).document()
    }

    public func wait(_ handle: String, pluginID: String, timeoutMs: Int64) throws -> [String: Any] {
        let record = try record(handle, pluginID: pluginID)
        record.waitFinished(timeoutMs: timeoutMs)
        return record.document()
    }

    public func cancel(_ handle: String, pluginID: String) throws -> [String: Any] {
        let record = try record(handle, pluginID: pluginID)
        let wasRunning = record.kill(reason: .killed)
        record.waitFinished(timeoutMs: 5_000)
        return ["outcome": wasRunning ? "killed" : "already_finished"]
    }

    /// Ends every running child with its process group (SIGTERM, then
    /// SIGKILL after `graceSeconds`) and waits for them: the host is about to
    /// exit (Ctrl-C), and a child must not outlive it under pid 1.
    /// Returns how many were running.
    @discardableResult
    public func terminateAll(graceSeconds: Double = 1) -> Int {
        let running = lock.withLock { records.values.filter { !$0.isFinished } }
        for record in running { record.kill(reason: .killed) }
        let deadline = Date().addingTimeInterval(graceSeconds)
        for record in running {
            record.waitFinished(timeoutMs: Int64(max(0, deadline.timeIntervalSinceNow) * 1000))
            if !record.isFinished, record.pid > 0 { Glibc.kill(-record.pid, SIGKILL) }
        }
        return running.count
    }

    /// Process ids of running children, for tests and diagnostics.
    public func runningPIDs() -> [Int32] {
        lock.withLock { records.values.filter { !$0.isFinished }.map(\.pid) }
    }

    func finished(_ handle: String) {
        lock.withLock {
            finishedOrder.append(handle)
            while finishedOrder.count > Self.keepFinished { records.removeValue(forKey: finishedOrder.removeFirst()) }
        }
    }

    /// Kills children that outlived an earlier host process (their group
    /// still runs the executable recorded in the folder) and removes the folders.
    func sweepOrphans() {
        let fm = FileManager.default
        guard let hosts = try? fm.contentsOfDirectory(atPath: workRoot.path) else { return }
        for host in hosts {
            guard let pid = Int32(host), pid != getpid() else { continue }
            if Glibc.kill(pid, 0) == 0 || errno == EPERM { continue }
            let hostDir = workRoot.appendingPathComponent(host)
            for child in (try? fm.contentsOfDirectory(atPath: hostDir.path)) ?? [] {
                let note = (try? String(contentsOf: hostDir.appendingPathComponent(child).appendingPathComponent("pgid"), encoding: .utf8)) ?? ""
                let parts = note.split(separator: " ")
                guard parts.count == 2, let group = Int32(parts[0]), group > 1 else { continue }
                let comm = (try? String(contentsOfFile: "/proc/\(group)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                if !comm.isEmpty, String(parts[1]).hasPrefix(comm) { Glibc.kill(-group, SIGKILL) }
            }
            try? fm.removeItem(at: hostDir)
        }
    }

    // MARK: one child

    final class ChildRecord: @unchecked Sendable {
        enum End { case exited, killed, timedOut }

        let handle: String
        let pluginID: String
        let executable: String
        let folder: URL
        let outputs: [String: (URL, String)]
        let duration: Double?
        let started = DispatchTime.now()
        private(set) var pid: Int32 = 0
        private let condition = NSCondition()
        private var end: End?
        private var requestedEnd: End?
        private var exitCode: Int32?
        private var signal: Int32?
        private var stdout = Data()
        private var stderrTail = Data()
        private var outTimeSeconds: Double = 0
        private var progressEnded = false
        private var imported: [String: Any] = [:]
        private var endedAt: DispatchTime?
        private var openStreams = 2
        private var exited = false

        init(handle: String, pluginID: String, executable: String, folder: URL, outputs: [String: (URL, String)], duration: Double?) {
            self.handle = handle
            self.pluginID = pluginID
            self.executable = executable
            self.folder = folder
            self.outputs = outputs
            self.duration = duration
        }

        var isFinished: Bool { condition.withLock { end != nil } }

        func spawn(_ binary: String, _ argv: [String], environment: [String], stdin input: String?, service: HostProcessService) throws {
            // pipe2 is not visible from Swift: pipe + FD_CLOEXEC under one lock, so
            // a child spawned meanwhile by another job cannot inherit these ends.
            HostProcessService.spawnLock.lock()
            defer { HostProcessService.spawnLock.unlock() }
            var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0], inPipe: [Int32] = [0, 0]
            guard pipe(&outPipe) == 0, pipe(&errPipe) == 0, pipe(&inPipe) == 0 else {
                throw Failure(kind: .failed, code: "PROCESS_FAILED", message: "pipe() failed: \(String(cString: strerror(errno)))", remediation: "The host may be out of file descriptors.")
            }
            for fd in outPipe + errPipe + inPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            let (rc, child) = GroupSpawn.spawn(binary, arguments: argv, environment: environment) { actions in
                posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
                posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
                posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
            }
            close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
            guard rc == 0 else {
                close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
                throw Failure(kind: .failed, code: "PROCESS_FAILED", message: "Could not start \(binary): \(String(cString: strerror(rc)))", remediation: "Check that it is executable.")
            }
            pid = child
            let stdinFD = inPipe[1], stdoutFD = outPipe[0], stderrFD = errPipe[0]
            Thread.detachNewThread {
                if let input { Data(input.utf8).withUnsafeBytes { raw in _ = ChildRecord.writeAll(stdinFD, raw) } }
                close(stdinFD)
            }
            Thread.detachNewThread { [self] in drain(stdoutFD, isStdout: true) }
            Thread.detachNewThread { [self] in drain(stderrFD, isStdout: false) }
            Thread.detachNewThread { [self] in reap(service: service) }
        }

        static func writeAll(_ fd: Int32, _ raw: UnsafeRawBufferPointer) -> Bool {
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return true
        }

        func drain(_ fd: Int32, isStdout: Bool) {
            var buffer = [UInt8](repeating: 0, count: 65536)
            var pending = Data()
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                let chunk = Data(buffer[0..<n])
                condition.withLock {
                    if isStdout {
                        if stdout.count < HostProcessService.stdoutLimit { stdout.append(chunk.prefix(HostProcessService.stdoutLimit - stdout.count)) }
                        if duration != nil {
                            pending.append(chunk)
                            while let newline = pending.firstIndex(of: 0x0A) {
                                parseProgress(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                                pending.removeSubrange(pending.startIndex...newline)
                            }
                        }
                    } else {
                        stderrTail.append(chunk)
                        if stderrTail.count > HostProcessService.stderrTailBytes * 2 { stderrTail = stderrTail.suffix(HostProcessService.stderrTailBytes) }
                    }
                }
            }
            close(fd)
            condition.withLock {
                openStreams -= 1
                condition.broadcast()
            }
        }

        /// ffmpeg -progress lines: out_time_us=…, progress=continue|end.
        func parseProgress(_ line: String) {
            if line.hasPrefix("out_time_us="), let us = Double(line.dropFirst(12)), us >= 0 {
                outTimeSeconds = max(outTimeSeconds, us / 1_000_000)
            } else if line == "progress=end" {
                progressEnded = true
            }
        }

        func reap(service: HostProcessService) {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            // The group may hold grandchildren still writing our pipes; end them too.
            Glibc.kill(-pid, SIGKILL)
            condition.withLock {
                exited = true
                while openStreams > 0 { condition.wait() }
            }
            let code: Int32? = (status & 0x7f) == 0 ? (status >> 8) & 0xff : nil
            let sig: Int32? = (status & 0x7f) != 0 ? status & 0x7f : nil
            var imported: [String: Any] = [:]
            let requested = condition.withLock { requestedEnd }
            if code == 0, requested == nil {
                for (name, (file, mediaType)) in outputs {
                    guard let data = try? Data(contentsOf: file), !data.isEmpty,
                          let digest = try? service.artifacts.put(data, mediaType: mediaType) else { continue }
                    imported[name] = ["artifact": "sha256:\(digest)", "media_type": mediaType, "size": data.count]
                }
            }
            try? FileManager.default.removeItem(at: folder)
            condition.withLock {
                exitCode = code
                signal = sig
                self.imported = imported
                end = requested ?? (sig != nil ? .killed : .exited)
                endedAt = DispatchTime.now()
                condition.broadcast()
            }
            service.finished(handle)
        }

        /// Ends the group: SIGTERM, then SIGKILL after 2 s. False if it had already finished.
        @discardableResult
        func kill(reason: End) -> Bool {
            let pid = self.pid
            let running = condition.withLock { () -> Bool in
                guard end == nil, !exited else { return false }
                if requestedEnd == nil { requestedEnd = reason }
                return true
            }
            guard running, pid > 0 else { return false }
            Glibc.kill(-pid, SIGTERM)
            DispatchQueue.global().asyncAfter(deadline: .now() + 2) { [self] in
                if !isFinished { Glibc.kill(-pid, SIGKILL) }
            }
            return true
        }

        func waitFinished(timeoutMs: Int64) {
            let deadline = Date().addingTimeInterval(Double(max(timeoutMs, 0)) / 1000)
            condition.withLock {
                while end == nil { if !condition.wait(until: deadline) { break } }
            }
        }

        func document() -> [String: Any] {
            condition.withLock {
                let elapsed = (endedAt ?? DispatchTime.now()).uptimeNanoseconds - started.uptimeNanoseconds
                var doc: [String: Any] = ["elapsed_ms": Int(elapsed / 1_000_000),
                                          "stderr_tail": String(decoding: stderrTail.suffix(HostProcessService.stderrTailBytes), as: UTF8.self)]
                switch end {
                case nil:
                    doc["state"] = "running"
                    if let duration, duration > 0 { doc["progress"] = min(progressEnded ? 1 : outTimeSeconds / duration, 1) }
                case .exited?:
                    doc["state"] = "exited"
                    doc["progress"] = 1.0
                case .killed?: doc["state"] = "killed"
                case .timedOut?: doc["state"] = "timed_out"
                }
                if end != nil {
                    doc["stdout"] = String(decoding: stdout, as: UTF8.self)
                    if let exitCode { doc["exit_code"] = Int(exitCode) }
                    if let signal { doc["signal"] = Int(signal) }
                    if !imported.isEmpty { doc["outputs"] = imported }
                }
                return doc
            }
        }
    }
}
