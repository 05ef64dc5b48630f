import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where output goes. Results (tables, summaries, --json) go to stdout;
/// progress, prompts and refusals go to stderr, so `yard … --json > out.json`
/// and `yard … | jq` see only results.
enum Terminal {
    static var stderrIsTTY: Bool { isatty(STDERR_FILENO) == 1 }
    static var stdinIsTTY: Bool { isatty(STDIN_FILENO) == 1 }

    /// Writes straight to fd 2 (unbuffered, safe from a signal handler's queue).
    static func err(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Width of the terminal on stdout; $COLUMNS, else 100 when it is not a terminal.
    static var columns: Int {
        if let text = ProcessInfo.processInfo.environment["COLUMNS"], let value = Int(text), value > 20 { return value }
        var size = winsize()
        if isatty(STDOUT_FILENO) == 1, ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 20 { return Int(size.ws_col) }
        return 100
    }
}

/// How live progress is shown: redrawn in place on a terminal, one line per
/// change when asked for with --progress on a pipe or file, nothing otherwise.
enum ProgressMode {
    case off, lines, live

    init(requested: Bool) {
        if Terminal.stderrIsTTY { self = .live } else { self = requested ? .lines : .off }
    }
}

/// `--progress` for commands that follow work.
struct ProgressOptions: ParsableArguments {
    @Flag(help: "Print progress lines on stderr even when it is not a terminal (on a terminal they are always shown).")
    var progress = false

    var mode: ProgressMode { ProgressMode(requested: progress) }
}
