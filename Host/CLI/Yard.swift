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
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "yard",
        abstract: "Switchyard: a plugin host for generative-media engines.",
        discussion: """
            Loads engine adapters (.so plugins with a plugin.json) against a stable C PluginAPI, \
            validates them, and runs their jobs. Data lives in $YARD_HOME (default ~/.local/share/switchyard).
            """,
        version: HostPlatform.hostVersion,
        subcommands: [RunCommand.self, PlanCommand.self, PresetsCommand.self, JobsCommand.self, EnginesCommand.self, SecretsCommand.self, DoctorCommand.self, PluginCommand.self, StandinCommand.self, ServeCommand.self, ModelsCommand.self, CreditsCommand.self, BenchEngineCommand.self, BenchInflightCommand.self, BenchDownloadCommand.self]
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
}

/// Prints a refusal the same way everywhere: code, message, field, remediation
/// on stderr (or one JSON object on stdout with --json), exit status 1.
func fail(_ error: Error, json: Bool) -> ExitCode {
    let yardError = (error as? YardError) ?? YardError("INTERNAL", "\(error)", remediation: "Report this with the command you ran.")
    if json {
        printJSON(["error": yardError])
    } else {
        var text = "error[\(yardError.code.rawValue)]: \(yardError.message)\n"
        if let field = yardError.field { text += "  field: \(field)\n" }
        text += "  fix: \(yardError.remediation)\n"
        FileHandle.standardError.write(Data(text.utf8))
    }
    return ExitCode(1)
}

func printJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    if let data = try? encoder.encode(value) { print(String(decoding: data, as: UTF8.self)) }
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
