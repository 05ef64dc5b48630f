import Foundation
import SwitchyardHost
#if canImport(Glibc)
import Glibc
#endif

/// Ctrl-C while a command follows jobs. The first one stops local child
/// processes (ffmpeg, espeak-ng) with their process groups, says which
/// remote jobs keep running at their providers (and may keep billing) and
/// that they are resumed later unless cancelled, and — on a terminal — offers
/// to cancel them. A second Ctrl-C exits at once. Exit status 130 either way.
final class InterruptGuard: @unchecked Sendable {
    let engine: JobEngine
    /// The unfinished jobs this command is responsible for, read when Ctrl-C comes.
    let work: @Sendable () -> [JobRecord]
    /// Set for pipeline runs: cancelling cancels the run, so no driver continues it.
    let runID: String?
    private let queue = DispatchQueue(label: "switchyard.interrupt")
    private let lock = NSLock()
    private var sources: [DispatchSourceSignal] = []
    private var interrupts = 0

    init(engine: JobEngine, runID: String? = nil, work: @escaping @Sendable () -> [JobRecord]) {
        self.engine = engine
        self.runID = runID
        self.work = work
    }

    func install() {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [weak self] in self?.interrupted(number) }
            source.resume()
            sources.append(source)
        }
    }

    func remove() {
        for source in sources { source.cancel() }
        sources.removeAll()
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }

    private func interrupted(_ number: Int32) {
        let count = lock.withLock { () -> Int in
            interrupts += 1
            return interrupts
        }
        if count > 1 || number == SIGTERM {
            engine.processes.terminateAll(graceSeconds: 0.5)
            if count > 1 { Terminal.err("\nInterrupted again: exiting.\n") }
            exit(130)
        }
        let stopped = engine.processes.terminateAll()
        let unfinished = work().filter { !$0.phase.isTerminal }
        let remote = unfinished.filter { !isLocal($0.pluginID) }
        var text = "\nInterrupted."
        if stopped > 0 { text += " Stopped \(stopped) local process\(stopped == 1 ? "" : "es") (local work is run again on resume, at no cost)." }
        text += "\n"
        if remote.isEmpty {
            if let runID { text += "Continue later with `yard run --resume \(runID)`.\n" }
            Terminal.err(text)
            exit(130)
        }
        text += "Still running at the provider, and resumed later (`yard jobs resume`) unless you cancel:\n"
        for job in remote {
            text += "  \(job.id)  \(job.pluginID)  \(job.phase.rawValue)\(paid(job) ? "  — may keep billing until it ends" : "")\n"
        }
        let cancelCommand = runID.map { "yard runs cancel \($0)" } ?? remote.map { "yard jobs cancel \($0.id)" }.joined(separator: "; ")
        guard Terminal.stdinIsTTY && Terminal.stderrIsTTY else {
            text += "Cancel with `\(cancelCommand)`.\n"
            Terminal.err(text)
            exit(130)
        }
        text += "Cancel \(remote.count == 1 ? "it" : "them") now? [y/N] (Ctrl-C again to leave \(remote.count == 1 ? "it" : "them") running) "
        Terminal.err(text)
        // Read on another thread: this queue must stay free for a second Ctrl-C.
        Thread.detachNewThread { [self] in
            let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
            guard answer == "y" || answer == "yes" else {
                Terminal.err("Left running. `\(cancelCommand)` cancels later.\n")
                exit(130)
            }
            let done = DispatchSemaphore(value: 0)
            let engine = self.engine, runID = self.runID
            Task {
                do {
                    if let runID {
                        let cancelled = try await PipelineRunner(engine: engine, configs: EngineConfigs(paths: engine.paths)).cancel(runID)
                        for job in cancelled.jobs { Terminal.err("  \(job.id): \(job.phase.rawValue)\(Self.charged(job))\n") }
                        Terminal.err("Run \(runID) cancelled.\n")
                    } else {
                        for job in remote {
                            let cancelled = try await engine.cancel(job.id)
                            Terminal.err("  \(cancelled.id): \(cancelled.phase.rawValue)\(Self.charged(cancelled))\n")
                        }
                    }
                } catch {
                    Terminal.err("Cancelling failed: \((error as? YardError)?.message ?? "\(error)")\n")
                }
                done.signal()
            }
            done.wait()
            exit(130)
        }
    }

    /// A job that runs on this machine, through sy.process/1 and no network.
    func isLocal(_ pluginID: String) -> Bool {
        guard let manifest = try? engine.plugin(pluginID).manifest else { return false }
        return manifest.network.hosts.isEmpty
    }

    func paid(_ job: JobRecord) -> Bool {
        (job.estimateMinor ?? 0) > 0 || ((try? engine.plugin(job.pluginID).manifest.secrets.contains { $0.required }) ?? false)
    }

    static func charged(_ job: JobRecord) -> String {
        guard let text = job.cancelOutcomeJSON, let outcome = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
              let charged = outcome["charged"] as? String else { return "" }
        return charged == "no" ? " (not charged)" : " (the provider may charge: \(charged))"
    }
}
