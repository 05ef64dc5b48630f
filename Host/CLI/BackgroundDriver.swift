import Foundation
import SwitchyardHost
#if canImport(Glibc)
import Glibc
#endif

/// Starts the store's driver (`yard jobs resume --background`) as a process
/// of its own session, so closing the terminal or Ctrl-C there does not stop
/// it. It takes $YARD_HOME/driver.lock, works until nothing unfinished is
/// left, and exits; its log is $YARD_HOME/logs/driver.log.
enum BackgroundDriver {
    /// glibc's POSIX_SPAWN_SETSID (spawn.h, glibc 2.26+), which Swift does not import: the child starts a session of its own.
    static let spawnSetSID: Int32 = 0x80

    /// The driver's pid: the running one, or one started now. nil if it could not be started.
    @discardableResult
    static func ensureRunning(_ global: GlobalOptions) -> Int32? {
        let paths = global.paths
        if let pid = StoreDriver.driverPID(paths: paths) { return pid }
        let log = paths.driverLogFile
        try? FileManager.default.createDirectory(at: log.deletingLastPathComponent(), withIntermediateDirectories: true)
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var arguments = [executable, "jobs", "resume", "--background", "--home", paths.home.path]
        for path in global.pluginPaths { arguments += ["--plugin-path", path] }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log.path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGPIPE)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(Self.spawnSetSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let cArguments = arguments.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, cArguments, environ)
        guard status == 0 else { return nil }
        // The child is reaped by nobody if this process lives on; it exits soon after us anyway.
        return pid
    }
}

/// Follows a job by reading the store while another process drives it:
/// sleeps until about when the job is next polled (at least 0.1 s, at most
/// 1 s), never spins, and makes sure a driver exists for it.
struct JobFollower {
    let global: GlobalOptions
    let store: SQLiteJobStore

    func follow(_ jobID: String, onChange: (JobRecord) -> Void) async throws -> JobRecord {
        var lastSeen: Date?
        var lastDriverCheck = Date.distantPast
        while true {
            guard let job = try store.job(id: jobID) else { throw YardError.jobNotFound(jobID) }
            if job.updatedAt != lastSeen {
                lastSeen = job.updatedAt
                onChange(job)
            }
            if job.phase.isTerminal { return job }
            if Date().timeIntervalSince(lastDriverCheck) > 2 {
                lastDriverCheck = Date()
                ensureDriven(job)
            }
            let untilPoll = (job.nextPollAt ?? Date()).timeIntervalSinceNow
            try await Task.sleep(nanoseconds: UInt64(min(max(untilPoll, 0.1), 1.0) * 1e9))
        }
    }

    /// Nobody follows an unfinished, unclaimed job when no driver holds the store (e.g. after a reboot).
    func ensureDriven(_ job: JobRecord) {
        let paths = global.paths
        guard !StoreDriver.isDriven(paths: paths), !StoreLock.isHeld(paths.claimFile(job.id)) else { return }
        BackgroundDriver.ensureRunning(global)
    }
}
