import Foundation
import Glibc

/// How the host starts a child it must be able to stop as a whole (a plugin
/// runner, a local tool such as ffmpeg): posix_spawn into a process group of
/// its own, every signal back at its default and none blocked, so the child
/// neither inherits the host's handlers nor its mask.
enum GroupSpawn {
    /// Returns posix_spawn's status (0 on success) and the child's pid.
    /// `files` sets up the child's descriptors.
    static func spawn(_ path: String, arguments: [String], environment: [String],
                      files: (inout posix_spawn_file_actions_t) -> Void) -> (status: Int32, pid: pid_t) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        files(&actions)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let cArgs = arguments.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, path, &actions, &attributes, cArgs, cEnv)
        return (status, child)
    }
}
