import ArgumentParser
import Foundation
import SwitchyardHost
import SwitchyardJSON

/// A diagnostics bundle to attach to a bug report: one JSON document. Secret
/// values never appear: only names and whether they are set; config values
/// under secret-looking keys are replaced; the finished text is swept once
/// more for every secret value this host knows.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor", abstract: "Print a redacted diagnostics bundle (one JSON document): host, plugins, engine configs, secrets (names only), engines, recent failures.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Also write the bundle (JSON) to this file.") var out: String?

    func run() async throws {
        let text = DiagnosticsBundle.text(paths: global.paths, registry: global.registry)
        if let out {
            do { try text.write(toFile: out, atomically: true, encoding: .utf8) } catch { throw fail(error, json: global.json) }
        }
        print(text)
    }
}
