import ArgumentParser
import Foundation
import Logging
import SwitchyardHost

@main
struct Yard: AsyncParsableCommand {
    /// Process logs go to stderr, at YARD_LOG_LEVEL (trace…critical; default warning),
    /// so stdout stays clean for --json.
    static func main() async {
        // Everything created under $YARD_HOME is private (files 0600, folders 0700).
        PrivateFiles.restrictUmask()
        let level = ProcessInfo.processInfo.environment["YARD_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let unknown = CommandSuggestion.unknownSubcommand(in: arguments) {
            Terminal.err("error[USAGE]: \(unknown)\n  fix: Run `yard --help` for the list of commands.\n")
            Foundation.exit(ExitStatus.usage)
        }
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // ArgumentParser's usage errors exit 64 (EX_USAGE); yard documents 2, like most CLIs.
            if exitCode(for: error) == .validationFailure {
                Terminal.err(fullMessage(for: error) + "\n")
                Foundation.exit(ExitStatus.usage)
            }
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "yard",
        abstract: "Switchyard: a plugin host for generative-media engines.",
        discussion: """
            Loads engine adapters (.so plugins with a plugin.json) against a stable C PluginAPI, \
            validates them, and runs their jobs. Data lives in $YARD_HOME (default ~/.local/share/switchyard).
            Results go to stdout (--json for scripts); progress and errors go to stderr.
            Exit status: 0 ok, 1 refused or failed, 2 usage error, 130 interrupted (Ctrl-C).
            """,
        version: HostPlatform.hostVersion,
        subcommands: [RunCommand.self, PlanCommand.self, PresetsCommand.self, JobsCommand.self, RunsCommand.self, ArtifactsCommand.self, EnginesCommand.self,
                      ConfigCommand.self, SecretsCommand.self, DoctorCommand.self, PluginCommand.self, StandinCommand.self, ServeCommand.self, TokensCommand.self, ModelsCommand.self,
                      CreditsCommand.self, BenchEngineCommand.self, BenchInflightCommand.self, BenchDownloadCommand.self]
    )
}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Data directory (default: $YARD_HOME, else ~/.local/share/switchyard).")
    var home: String?

    @Option(name: .customLong("plugin-path"), help: "Extra folder to search for plugins (repeatable; also $YARD_PLUGIN_PATH).")
    var pluginPaths: [String] = []

    @Flag(name: .long, help: "Print machine-readable JSON.")
    var json = false

    var paths: YardPaths { YardPaths.resolve(home: home) }
    var registry: PluginRegistry { PluginRegistry(paths: paths, extraPaths: pluginPaths) }

    /// A data directory that cannot be one (a file, or below a file, or not
    /// writable) is refused before any command touches it.
    func validate() throws {
        let home = paths.home
        if let problem = YardPaths.homeProblem(home) {
            throw fail(YardError(.ioFailed, problem, remediation: "Pass --home (or set YARD_HOME to) a folder you can write, or leave both unset for ~/.local/share/switchyard.",
                                 field: self.home != nil ? "--home" : "YARD_HOME"), json: json)
        }
    }
}

/// The exit statuses every command uses (documented in `yard --help`).
enum ExitStatus {
    static let ok: Int32 = 0
    static let failed: Int32 = 1
    static let usage: Int32 = 2
    static let interrupted: Int32 = 130
}

/// Prints a refusal the same way everywhere: code, message, field, remediation
/// on stderr (or one JSON object on stdout with --json). Exit status 2 for a
/// usage error, 1 for everything else.
func fail(_ error: Error, json: Bool) -> ExitCode {
    if let exit = error as? ExitCode { return exit }
    let yardError = YardError.describing(error)
    if json {
        printJSON(["error": yardError])
    } else {
        var text = "error[\(yardError.code.rawValue)]: \(yardError.message)\n"
        if let field = yardError.field { text += "  field: \(field)\n" }
        text += "  fix: \(yardError.remediation)\n"
        FileHandle.standardError.write(Data(text.utf8))
    }
    return ExitCode(yardError.code == .usage ? ExitStatus.usage : ExitStatus.failed)
}

/// JSON as every command prints it: sorted keys, dates in ISO 8601 UTC.
func printJSON<T: Encodable>(_ value: T) {
    if let text = jsonText(value) { print(text) }
}

func jsonText<T: Encodable>(_ value: T) -> String? {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .custom { date, encoder in
        var container = encoder.singleValueContainer()
        try container.encode(isoTimestamp(date))
    }
    return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) }
}

/// 2026-12-02T10:41:07.123Z: the one timestamp format of yard's output.
func isoTimestamp(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    formatter.timeZone = TimeZone(identifier: "UTC")
    return formatter.string(from: date)
}

/// Pads columns for a plain-text table.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { i in all.map { $0.count > i ? $0[i].count : 0 }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n")
}
