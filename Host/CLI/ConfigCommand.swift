import ArgumentParser
import Foundation
import SwitchyardHost
import SwitchyardJSON

/// `yard config`: an engine's configuration ($YARD_HOME/config/ENGINE.json)
/// without writing JSON by hand. Every change is checked against the
/// engine's config schema (plugin.json `config_schema`) before it is written.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Show, set and locate an engine's configuration, checked against the engine's config schema.",
        discussion: """
            Examples:
              yard config set comfyui base_url=http://127.0.0.1:8188
              yard config set runpod endpoint_id=abc123xyz gpu_rate_minor_per_second=0.05
              yard config unset runpod gpu_rate_minor_per_second
              yard config show runpod
              yard config path fal
            """,
        subcommands: [Show.self, Set.self, Unset.self, Path.self])

    struct EngineArgument: ParsableArguments {
        @Argument(help: "Engine (plugin id), e.g. runpod.") var engine: String
    }

    static func file(_ global: GlobalOptions, _ engine: String) -> URL {
        global.paths.home.appendingPathComponent("config/\(engine).json")
    }

    static func schema(_ global: GlobalOptions, _ engine: String) throws -> JSONValue? {
        let url = try global.registry.resolve(engine)
        return try PluginManifest.parse(Data(contentsOf: url), source: url.path).configSchema
    }

    static func current(_ global: GlobalOptions, _ engine: String) throws -> [String: JSONValue] {
        try EngineConfigs(paths: global.paths).config(for: engine)
    }

    /// Schema violations of a whole config, as a refusal naming the key.
    static func check(_ config: [String: JSONValue], schema: JSONValue?, engine: String) throws {
        guard let schema else { return }
        let known = schema["properties"]?.objectValue.map { Array($0.keys) } ?? []
        for key in config.keys.sorted() where !known.isEmpty && !known.contains(key) && schema["additionalProperties"]?.boolValue == false {
            throw YardError("CONFIG_INVALID", "\(engine) has no config key \(key)." + NameSuggestion.sentence(for: key, among: known),
                            remediation: "Keys: \(known.sorted().joined(separator: ", ")).", field: key)
        }
        // Completeness (`required`) is the job's pre-flight to check: keys are set one at a time.
        if let first = try JSONSchema(schema).validate(.object(config)).first(where: { $0.keyword != "required" }) {
            let key = first.path.hasPrefix("$.") ? String(first.path.dropFirst(2)) : first.path
            throw YardError("CONFIG_INVALID", "\(engine) config: \(first.message).", remediation: "See `yard plugin info \(engine)` and the README's section on \(engine).", field: key)
        }
    }

    static func write(_ config: [String: JSONValue], to url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let object = try JSONSerialization.jsonObject(with: JSONValue.object(config).serialized())
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try (data + Data("\n".utf8)).write(to: url, options: .atomic)
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The engine's configuration, and the keys it also accepts.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var engine: EngineArgument

        func run() throws {
            do {
                let schema = try ConfigCommand.schema(global, engine.engine)
                let config = try ConfigCommand.current(global, engine.engine)
                if global.json { printJSON(JSONValue.object(config)); return }
                let file = ConfigCommand.file(global, engine.engine)
                print("\(engine.engine) (\(FileManager.default.fileExists(atPath: file.path) ? file.path : "no file yet: \(file.path)"))")
                for (key, value) in config.sorted(by: { $0.key < $1.key }) { print("  \(key) = \(String(decoding: value.serialized(), as: UTF8.self))") }
                let others = (schema?["properties"]?.objectValue ?? [:]).filter { config[$0.key] == nil }.sorted { $0.key < $1.key }
                if !others.isEmpty {
                    print("also accepted:")
                    for (key, rules) in others {
                        let detail = [rules["description"]?.stringValue, rules["default"].map { "default \(String(decoding: $0.serialized(), as: UTF8.self))" }].compactMap { $0 }
                        print("  \(key)\(detail.isEmpty ? "" : " — " + detail.joined(separator: "; "))")
                    }
                }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set keys (KEY=VALUE; VALUE is read as JSON when it is JSON, else as text).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var engine: EngineArgument
        @Argument(help: "KEY=VALUE pairs.") var assignments: [String] = []

        func run() throws {
            do {
                guard !assignments.isEmpty else { throw YardError(.usage, "Nothing to set.", remediation: "Pass KEY=VALUE, e.g. `yard config set comfyui base_url=http://127.0.0.1:8188`.", field: "KEY=VALUE") }
                let schema = try ConfigCommand.schema(global, engine.engine)
                var config = try ConfigCommand.current(global, engine.engine)
                for assignment in assignments {
                    guard let eq = assignment.firstIndex(of: "="), eq != assignment.startIndex else {
                        throw YardError(.usage, "\(assignment) is not KEY=VALUE.", remediation: "Write e.g. base_url=http://127.0.0.1:8188.", field: "KEY=VALUE")
                    }
                    let key = String(assignment[..<eq]), text = String(assignment[assignment.index(after: eq)...])
                    config[key] = (try? JSONValue(parsing: Data(text.utf8))) ?? .string(text)
                }
                try ConfigCommand.check(config, schema: schema, engine: engine.engine)
                let file = ConfigCommand.file(global, engine.engine)
                try ConfigCommand.write(config, to: file)
                if global.json { printJSON(JSONValue.object(config)); return }
                print("Wrote \(file.path).")
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Unset: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove keys (the engine's default applies again).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var engine: EngineArgument
        @Argument(help: "Keys to remove.") var keys: [String] = []

        func run() throws {
            do {
                var config = try ConfigCommand.current(global, engine.engine)
                for key in keys where config.removeValue(forKey: key) == nil {
                    throw YardError(.usage, "\(engine.engine) has no \(key) set." + NameSuggestion.sentence(for: key, among: Array(config.keys)),
                                    remediation: "See `yard config show \(engine.engine)`.", field: key)
                }
                try ConfigCommand.check(config, schema: try ConfigCommand.schema(global, engine.engine), engine: engine.engine)
                let file = ConfigCommand.file(global, engine.engine)
                try ConfigCommand.write(config, to: file)
                if global.json { printJSON(JSONValue.object(config)); return }
                print("Wrote \(file.path).")
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Path: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Where the engine's configuration file is (it need not exist yet).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var engine: EngineArgument

        func run() throws {
            do {
                _ = try global.registry.resolve(engine.engine)
                let file = ConfigCommand.file(global, engine.engine)
                if global.json { printJSON(["path": file.path]); return }
                print(file.path)
            } catch { throw fail(error, json: global.json) }
        }
    }
}
