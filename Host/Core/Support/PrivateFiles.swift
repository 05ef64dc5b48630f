import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Everything under $YARD_HOME is private to its user: files 0600, folders
/// 0700. `yard` sets its umask to 077 at start, so whatever it (or SQLite,
/// or a plugin runner it starts) creates is private from the first byte;
/// the store and the vault also tighten what they open, for homes made
/// before that rule and for hosts embedding the library.
public enum PrivateFiles {
    /// The umask the process started with (for files written outside
    /// $YARD_HOME, such as --output-dir copies, which keep the user's default).
    nonisolated(unsafe) public private(set) static var userUmask: mode_t = 0o022

    /// Makes files this process creates 0600 and folders 0700.
    public static func restrictUmask() {
        let previous = umask(0o077)
        userUmask = previous
    }

    /// A folder (and its missing parents) created 0700; an existing one is left as it is.
    public static func makeDirectory(_ url: URL) throws {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    /// chmod 0600 (a file) or 0700 (a folder), when it exists and is ours;
    /// symlinks are left alone (chmod would follow them).
    public static func tighten(_ url: URL) {
        var info = stat()
        guard lstat(url.path, &info) == 0, info.st_uid == getuid() else { return }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: if info.st_mode & 0o077 != 0 { chmod(url.path, 0o700) }
        case S_IFREG: if info.st_mode & 0o077 != 0 { chmod(url.path, 0o600) }
        default: return
        }
    }

    /// The mode a file written for the user outside $YARD_HOME gets.
    public static var userFileMode: mode_t { 0o666 & ~userUmask }
}
