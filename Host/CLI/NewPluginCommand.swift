import ArgumentParser
import Foundation
import SwitchyardHost

extension PluginCommand {
    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Scaffold a working adapter package (Swift, SwitchyardPluginSDK) that builds, packs and passes `plugin test`.",
            discussion: """
                Then: cd NAME && swift build && yard plugin pack --manifest plugin.json --library .build/debug/libNAME.so --out NAME.yardpkg
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Plugin id: lower-case letters, digits and '-'.") var name: String
        @Option(help: "Folder to create (default: ./NAME).") var dir: String?
        @Option(help: "Capability the adapter offers (the template is written for image.generate).") var capability: String = "image.generate"
        @Option(help: "Path to a Switchyard checkout; the scaffold depends on its PluginAPI package (default: this yard's source tree).")
        var sdkPath: String?
        @Option(help: "Git URL of Switchyard, when no local checkout is used.") var sdkURL: String = "https://github.com/switchyard-dev/switchyard"

        func run() throws {
            do {
                guard name.range(of: "^[a-z][a-z0-9-]{0,62}$", options: .regularExpression) != nil else {
                    throw YardError(.usage, "\"\(name)\" is not a valid plugin id.", remediation: "Use lower-case letters, digits and '-', starting with a letter.")
                }
                // The template's inputs (prompt) and outputs (images) are image.generate's: another capability would scaffold
                // an adapter the catalog's contract refuses. Start from this one and change both for another capability.
                guard capability == "image.generate" else {
                    throw YardError(.usage, "plugin new scaffolds image.generate adapters; \(capability)'s inputs and outputs differ.",
                                    remediation: "Scaffold with --capability image.generate, then change the capability, limits and outputs (Registry/capabilities/\(capability).json has its schemas).",
                                    field: "--capability")
                }
                let target = name.split(separator: "-").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined() + "Adapter"
                let root = URL(fileURLWithPath: dir ?? name)
                let fm = FileManager.default
                guard !fm.fileExists(atPath: root.path) else {
                    throw YardError(.usage, "\(root.path) already exists.", remediation: "Choose another --dir; `plugin new` never overwrites files.")
                }
                let checkout = sdkPath.map { URL(fileURLWithPath: $0).standardizedFileURL }
                    ?? YardPaths.registryDirectory()?.deletingLastPathComponent()
                let dependency: String, packageName: String
                // The checkout's PluginAPI folder is a package of its own (the headers and the SDK, Foundation
                // only): depending on it resolves none of the host's dependencies.
                let pluginAPI = checkout?.appendingPathComponent("PluginAPI")
                if let pluginAPI, fm.fileExists(atPath: pluginAPI.appendingPathComponent("Package.swift").path) {
                    dependency = ".package(path: \"\(pluginAPI.path)\")"
                    packageName = "PluginAPI"
                } else if let checkout, fm.fileExists(atPath: checkout.appendingPathComponent("Package.swift").path) {
                    dependency = ".package(path: \"\(checkout.path)\")"
                    packageName = checkout.lastPathComponent.lowercased()
                } else {
                    dependency = ".package(url: \"\(sdkURL)\", from: \"0.1.0\")"
                    packageName = "switchyard"
                }
                let sources = root.appendingPathComponent("Sources/\(target)")
                try fm.createDirectory(at: sources, withIntermediateDirectories: true)
                try write(root.appendingPathComponent("Package.swift"), Templates.package(target: target, dependency: dependency, packageName: packageName))
                try write(sources.appendingPathComponent("\(target).swift"), Templates.adapter(id: name, target: target, capability: capability))
                try write(root.appendingPathComponent("plugin.json"), Templates.manifest(id: name, target: target, capability: capability))
                try write(root.appendingPathComponent(".gitignore"), ".build/\nPackage.resolved\n*.yardpkg\n")
                try write(root.appendingPathComponent("README.md"), Templates.readme(id: name, target: target))
                if global.json { printJSON(["created": root.path, "library": "lib\(target).so"]) } else {
                    print("Created \(root.path)\nNext:\n  cd \(root.path) && swift build\n  yard plugin pack --manifest plugin.json --library .build/debug/lib\(target).so --out \(name).yardpkg\n  yard plugin install \(name).yardpkg --allow-unsigned && yard plugin test \(name)")
                }
            } catch { throw fail(error, json: global.json) }
        }

        func write(_ url: URL, _ text: String) throws { try text.write(to: url, atomically: true, encoding: .utf8) }
    }
}

enum Templates {
    static func package(target: String, dependency: String, packageName: String) -> String {
        """
        // swift-tools-version:6.1
        import PackageDescription

        // A Switchyard engine adapter. It depends on SwitchyardPluginSDK only
        // (Switchyard's PluginAPI package: the C headers and the SDK, Foundation
        // only): a plugin must never link a second copy of a package the host links.
        let package = Package(
            name: "\(target)",
            products: [.library(name: "\(target)", type: .dynamic, targets: ["\(target)"])],
            dependencies: [\(dependency)],
            targets: [
                .target(name: "\(target)", dependencies: [.product(name: "SwitchyardPluginSDK", package: "\(packageName)")]),
            ]
        )

        """
    }

    static func adapter(id: String, target: String, capability: String) -> String {
        """
        import Foundation
        import SwitchyardPluginSDK

        @_cdecl("sy_plugin_entry_v1") public func syPluginEntry(_ host: UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>? { PluginExport.entry(\(target).self, host: host) }

        /// Replace the bodies with calls to your provider through context.http(...).
        /// Keep no per-job state here: whatever poll needs goes into the ref.
        struct \(target): EngineAdapter {
            init() {}

            var descriptor: PluginDescriptor {
                PluginDescriptor(id: "\(id)", version: "0.1.0", name: "\(target)", capabilities: ["\(capability)"])
            }

            func validate(_ request: JobRequest, context: HostContext) -> [Diagnostic] {
                guard let prompt = request.inputs["prompt"]?.stringValue, !prompt.isEmpty else {
                    return [Diagnostic(code: "CONTRACT_MISMATCH", message: "prompt is required.",
                                       remediation: "Pass --input prompt=...", field: "$.inputs.prompt")]
                }
                return []
            }

            func submit(_ request: JobRequest, context: HostContext) throws -> SubmitResult {
                if let problem = validate(request, context: context).first {
                    throw PluginError(code: problem.code, message: problem.message, remediation: problem.remediation, field: problem.field)
                }
                // A remote provider returns its job id here; the host stores the ref before anything else.
                return .ref(["prompt": request.inputs["prompt"] ?? "", "key": .string(request.job?.idempotencyKey ?? "")], nextPollAfterMs: 50)
            }

            /// A one-pixel PNG standing in for the image your provider makes.
            static let samplePNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

            func poll(_ request: RefRequest, context: HostContext) throws -> PollResult {
                // Your provider answers with its own JSON. An OutputMap turns it into the catalog's
                // outputs (Registry/capabilities/\(capability).json): a URL becomes a file the host
                // downloads, a data: URI or base64 is stored at once, and the image's width and height
                // are read from the file when the answer lacks them (docs/abi.md). The host fails a job
                // whose outputs break the catalog (OUTPUT_CONTRACT_VIOLATION); `yard plugin test` checks it.
                let answer: JSONValue = ["output": ["image": .string("data:image/png;base64," + Self.samplePNG)], "seed": 42]
                let map = OutputMap(["images": [["file": ["$file": "$.output.image"]]], "seed": "$.seed"])
                return PollResult(state: .succeeded, progress: 1, outputs: try map.apply(to: answer, context: context))
            }

            func cancel(_ request: RefRequest, context: HostContext) throws -> CancelResult {
                CancelResult(outcome: .alreadyFinished, charged: .no)
            }

            func health(_ request: ConfigRequest, context: HostContext) -> HealthReport {
                HealthReport(status: .ok)
            }
        }

        """
    }

    static func manifest(id: String, target: String, capability: String) -> String {
        """
        {
          "schema_version": 1,
          "id": "\(id)",
          "name": "\(target)",
          "version": "0.1.0",
          "description": "Describe what engine this adapter speaks to.",
          "abi": "\(HostPlatform.abiString)",
          "library": "lib\(target).so",
          "platform": "",
          "toolchain": "",
          "sha256": "",
          "capabilities": [
            {
              "id": "\(capability)",
              "limits": {
                "type": "object",
                "required": ["prompt"],
                "additionalProperties": false,
                "properties": {"prompt": {"type": "string", "minLength": 1, "maxLength": 2000}}
              },
              "pricing": {"unit": "request", "amount_minor": 0, "currency": "USD"},
              "example_inputs": {"prompt": "a lighthouse at dawn"}
            }
          ],
          "config_schema": {"type": "object"},
          "secrets": [],
          "network": {"hosts": []},
          "result_retention_seconds": 0,
          "max_concurrency": 8,
          "extensions": []
        }

        """
    }

    static func readme(id: String, target: String) -> String {
        """
        # \(id) — a Switchyard engine adapter

            swift build
            yard plugin pack --manifest plugin.json --library .build/debug/lib\(target).so --out \(id).yardpkg
            yard plugin keygen --publisher "Your Name" --out keys     # once
            yard plugin sign \(id).yardpkg --key keys/your-name.private.json
            yard plugin install \(id).yardpkg                          # after `yard plugin trust keys/your-name.public.json`
            yard plugin test \(id)

        Declare every host the adapter calls in plugin.json `network.hosts` and every secret in `secrets`;
        the host refuses anything else.

        """
    }
}
