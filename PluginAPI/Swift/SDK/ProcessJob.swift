import Foundation

/// A job that is one child process run through sy.process/1, mapped onto
/// submit/poll/cancel. The ref holds the handle and the whole request, so
/// after a host restart (the host forgets its children) poll starts the same
/// request again under the same key, and hence the same handle: local work
/// costs nothing to repeat, and the job finishes instead of being lost.
public enum ProcessJob {
    /// What poll found.
    public enum Outcome: Sendable {
        case running(PollResult)
        /// Exit code 0: the status carries stdout and the imported outputs.
        case succeeded(ProcessStatus, extra: JSONValue)
        /// A terminal answer (failed or cancelled) to return as it is.
        case ended(PollResult)
    }

    /// The key of a job's child: stable across retries of one job, unique across jobs.
    public static func key(_ job: JobInfo?, step: String = "main") -> String {
        "\(job?.id ?? "adhoc-\(UUID().uuidString)")/\(step)"
    }

    /// Starts the child; returns the ref to hand back from submit. `extra` is
    /// whatever poll needs afterwards (expected duration, output names, …).
    public static func start(_ request: ProcessRequest, extra: JSONValue = .null, context: HostContext) throws -> JSONValue {
        var request = request
        if request.key == nil { request.key = UUID().uuidString }
        let handle = try context.startProcess(request)
        let encoded = try JSONDecoder().decode(JSONValue.self, from: try JSONEncoder().encode(request))
        return ["handle": .string(handle), "request": encoded, "extra": extra]
    }

    static func parts(_ ref: JSONValue) throws -> (String, ProcessRequest, JSONValue) {
        guard let handle = ref["handle"]?.stringValue, let raw = ref["request"],
              let request = try? JSONDecoder().decode(ProcessRequest.self, from: JSONEncoder().encode(raw)) else {
            throw PluginError(code: "INVALID_REF", message: "This ref was not made by a process job.", remediation: "Poll refs returned by this plugin's submit.", field: "$.ref")
        }
        return (handle, request, ref["extra"] ?? .null)
    }

    /// How long one poll waits for the child to finish: a short long-poll, so
    /// a step ends within milliseconds of its process rather than a poll interval later.
    public static let pollWaitMs: Int64 = 250

    public static func poll(_ ref: JSONValue, context: HostContext) throws -> Outcome {
        let (handle, request, extra) = try parts(ref)
        let status: ProcessStatus
        do {
            status = try context.waitProcess(handle, timeoutMs: pollWaitMs)
        } catch let error as PluginError where error.code == "PROCESS_NOT_FOUND" {
            let again = try context.startProcess(request)
            context.log(.warning, "\(request.executable): the host lost the child (restart?); started it again as \(again)")
            return .running(PollResult(state: .running, progress: 0, message: "started again after a host restart", nextPollAfterMs: 200))
        }
        switch status.state {
        case .running:
            return .running(PollResult(state: .running, progress: status.progress, message: "\(request.executable) running",
                                       nextPollAfterMs: 10))
        case .killed:
            return .ended(PollResult(state: .cancelled, message: "\(request.executable) was stopped"))
        case .timedOut:
            return .ended(PollResult(state: .failed, error: PluginError(
                code: "ENGINE_TIMEOUT", message: "\(request.executable) ran past its time limit and was stopped.",
                remediation: "Use shorter or smaller inputs, or a lower quality.", retryable: true)))
        case .exited where status.exitCode == 0:
            return .succeeded(status, extra: extra)
        case .exited:
            return .ended(PollResult(state: .failed, error: failure(request.executable, status, context: context)))
        }
    }

    /// ENGINE_ERROR naming the exit code and the child's last words (its full stderr tail goes to the job's log).
    public static func failure(_ executable: String, _ status: ProcessStatus, context: HostContext) -> PluginError {
        let tail = status.stderrTail ?? ""
        context.log(.error, "\(executable) exited with code \(status.exitCode ?? -1):\n\(tail)")
        let last = tail.split(whereSeparator: \.isNewline).suffix(2).joined(separator: " / ")
        return PluginError(code: "ENGINE_ERROR", message: "\(executable) failed (exit code \(status.exitCode ?? -1))\(last.isEmpty ? "" : ": \(last)")",
                           remediation: "Check that the input files are valid media of the declared types; the job's log holds the full message.")
    }

    public static func cancel(_ ref: JSONValue, context: HostContext) throws -> CancelResult {
        let (handle, request, _) = try parts(ref)
        do {
            let killed = try context.cancelProcess(handle)
            return CancelResult(outcome: killed ? .cancelledRunning : .alreadyFinished, charged: .no,
                                message: killed ? "\(request.executable) stopped" : nil)
        } catch let error as PluginError where error.code == "PROCESS_NOT_FOUND" {
            return CancelResult(outcome: .notFound, charged: .no, message: "no such child in this host (it may have restarted)")
        }
    }

    /// Health from whether the executables are installed: offline with
    /// DEPENDENCY_MISSING and the install command when one is not.
    public static func health(_ executables: [String], context: HostContext) -> HealthReport {
        do {
            for name in executables {
                if let missing = try context.missingExecutable(name) {
                    return HealthReport(status: .offline, message: "\(missing.message) \(missing.remediation)",
                                        details: ["code": .string(missing.code), "remediation": .string(missing.remediation)])
                }
            }
            return HealthReport(status: .ok, message: "\(executables.joined(separator: ", ")) installed")
        } catch let error as PluginError {
            return HealthReport(status: .offline, message: error.message, details: ["code": .string(error.code)])
        } catch {
            return HealthReport(status: .offline, message: "\(error)")
        }
    }
}
