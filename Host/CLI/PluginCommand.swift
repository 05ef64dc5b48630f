import ArgumentParser
import Foundation
import SwitchyardHost
import SwitchyardJSON

extension PluginIsolation: ExpressibleByArgument {}

struct PluginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin",
        abstract: "List, inspect, install, test and publish engine plugins.",
        subcommands: [List.self, Info.self, Install.self, Remove.self, Test.self, New.self, Pack.self, Sign.self,
                      Keygen.self, Trust.self, Index.self, Check.self, BenchLoad.self, BenchCalls.self]
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List installed plugins (reads manifests and a cache; loads no code).")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let rows = global.registry.list()
            if global.json {
                printJSON(rows.map(ListRow.init))
                return
            }
            if rows.isEmpty {
                print("No plugins found. Search path: \(global.registry.roots.map(\.0.path).joined(separator: ", "))")
                return
            }
            print(table(["ID", "VERSION", "ABI", "SOURCE", "STATUS", "CAPABILITIES"],
                        rows.map { [$0.id, $0.version, $0.abi, $0.source.rawValue, $0.status.rawValue, $0.capabilities.joined(separator: ",")] }))
            for row in rows where row.status != .ok {
                if let problem = row.problem { print("\n\(row.id) (\(row.manifestPath)):\n  \(problem.code.rawValue): \(problem.message)\n  fix: \(problem.remediation)") }
            }
        }

        /// The documented --json shape: {id, version, abi, capabilities, source, status}, plus where and why.
        struct ListRow: Encodable {
            var id, version, abi: String
            var capabilities: [String]
            var source, status, manifest: String
            var problem: YardError?
            init(_ row: InstalledPlugin) {
                id = row.id; version = row.version; abi = row.abi; capabilities = row.capabilities
                source = row.source.rawValue; status = row.status.rawValue; manifest = row.manifestPath; problem = row.problem
            }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a plugin's manifest: capabilities, secrets, hosts, limits, and where its code runs.",
            discussion: "An isolated plugin runs in yard-plugin-runner; the sandbox shown is what the runner enforces on this machine (probed without loading the plugin).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Plugin id, or a path to its folder or plugin.json.") var plugin: String

        func run() throws {
            do {
                let url = try global.registry.resolve(plugin)
                let manifest = try PluginManifest.parse(Data(contentsOf: url), source: url.path)
                let isolation = IsolationView(manifestURL: url, manifest: manifest, paths: global.paths, registry: global.registry)
                if global.json { printJSON(InfoView(manifest: manifest, isolation: isolation)); return }
                print("\(manifest.name) — \(manifest.id) \(manifest.version)")
                if let d = manifest.description { print(d) }
                print("manifest:     \(url.path)")
                print("library:      \(manifest.library) (sha256 \(manifest.sha256.prefix(16))…)")
                print("abi:          \(manifest.abi)   platform: \(manifest.platform)   toolchain: \(manifest.toolchain)")
                print("capabilities: \(manifest.capabilityIDs.joined(separator: ", "))")
                print("secrets:      \(manifest.secrets.map { $0.name + ($0.required ? "" : " (optional)") }.joined(separator: ", ").nonEmpty ?? "none")")
                print("hosts:        \(manifest.network.hosts.joined(separator: ", ").nonEmpty ?? "none (no network)")")
                print("extensions:   \(manifest.extensions.joined(separator: ", ").nonEmpty ?? "none")")
                if !manifest.processes.isEmpty { print("processes:    \(manifest.processes.joined(separator: ", ")) (run through sy.process/1)") }
                print("concurrency:  \(manifest.maxConcurrency.map(String.init) ?? "unlimited")   result retention: \(manifest.resultRetentionSeconds.map { "\($0) s" } ?? "unknown")")
                isolation.printLines()
            } catch { throw fail(error, json: global.json) }
        }

        struct InfoView: Encodable {
            var manifest: PluginManifest
            var isolation: IsolationView
            enum CodingKeys: String, CodingKey { case isolation }
            /// The manifest's own members, plus "isolation".
            func encode(to encoder: Encoder) throws {
                try manifest.encode(to: encoder)
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(isolation, forKey: .isolation)
            }
        }
    }

    /// Where a plugin's code runs, why, its deadlines, and (isolated) what the sandbox enforces here.
    struct IsolationView: Encodable {
        var mode: String
        var reason: String
        var deadlinesMs: [String: Int]
        var memoryMB: Int?
        var sandbox: SandboxReport?
        var summary: [String: String]?
        var problem: String?

        enum CodingKeys: String, CodingKey {
            case mode, reason, sandbox, summary, problem
            case deadlinesMs = "deadlines_ms"
            case memoryMB = "memory_mb"
        }

        init(manifestURL: URL, manifest: PluginManifest, paths: YardPaths, registry: PluginRegistry) {
            let policy = PluginIsolationPolicy(paths: paths, registry: registry)
            let isolation = policy.isolation(for: manifestURL, id: manifest.id)
            mode = isolation.rawValue
            reason = policy.reason(for: manifestURL, id: manifest.id)
            deadlinesMs = PluginDeadlines(manifest: manifest).milliseconds
            if isolation == .process {
                memoryMB = manifest.runnerMemoryMB ?? 4096
                do {
                    let report = try SandboxProbe.run(RunnerConfiguration(scratchRoot: paths.home.appendingPathComponent("tmp/runners")))
                    sandbox = report
                    summary = report.summary
                } catch let error as YardError {
                    problem = "\(error.code.rawValue): \(error.message) \(error.remediation)"
                } catch {
                    problem = "\(error)"
                }
            }
        }

        func printLines() {
            print("isolation:    \(mode) (\(reason))")
            guard mode == PluginIsolation.process.rawValue else {
                print("              runs inside yard: a crash here stops yard; install third-party plugins isolated")
                return
            }
            if let problem { print("sandbox:      unavailable: \(problem)"); return }
            guard let summary, let sandbox else { return }
            print("  network:    \(summary["network"] ?? "?")")
            print("  files:      \(summary["filesystem"] ?? "?")")
            print("  processes:  \(summary["processes"] ?? "?")")
            print("  limits:     \(summary["limits"] ?? "?")")
            for layer in sandbox.degraded { print("  degraded:   \(layer.layer): \(layer.detail)") }
            let deadlines = ["validate", "submit", "poll", "cancel", "health"].map { "\($0) \((deadlinesMs[$0] ?? 0) / 1000) s" }
            print("  deadlines:  \(deadlines.joined(separator: ", "))")
        }
    }

    struct Install: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install a plugin from a package file (.yardpkg) or by id from a registry index.",
            discussion: "Checks the Ed25519 signature against trusted publisher keys, the library's sha256, ABI, platform and toolchain before anything is moved into place; records the result in plugins.lock.json. Installing a newer version upgrades.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "A .yardpkg file, or a plugin id to look up in the index.") var package: String
        @Option(help: "Registry index (index.json) for install by id. Default: Registry/index.json.") var index: String?
        @Option(help: "Exact version to install by id (default: newest that fits this host).") var version: String?
        @Flag(name: .customLong("allow-unsigned"), help: "Accept an unsigned package. For plugins you built yourself only.")
        var allowUnsigned = false
        @Option(help: "Where the plugin's code runs: process (a sandboxed runner; the default) or in-process (inside yard: only for plugins you trust as much as yard). Recorded in plugins.lock.json.")
        var isolation: PluginIsolation = .process

        func run() async throws {
            do {
                let installer = PluginInstaller(paths: global.paths)
                let report: InstallReport
                if package.hasSuffix(".yardpkg") || package.contains("/") {
                    report = try installer.install(package: URL(fileURLWithPath: package), allowUnsigned: allowUnsigned, isolation: isolation)
                } else {
                    report = try await installFromIndex(installer)
                }
                if global.json { printJSON(report); return }
                let verb = report.previousVersion.map { $0 == report.version ? "Reinstalled" : "Upgraded from \($0) to" } ?? "Installed"
                print("\(verb) \(report.id) \(report.version) → \(report.path)")
                print(report.signer.map { "signed by \($0)" } ?? "UNSIGNED (allowed by --allow-unsigned)")
                print(report.isolation == .process ? "runs isolated in a sandboxed runner process" : "runs inside yard (--isolation in-process)")
            } catch { throw fail(error, json: global.json) }
        }

        func installFromIndex(_ installer: PluginInstaller) async throws -> InstallReport {
            let indexURL: URL
            if let index { indexURL = URL(fileURLWithPath: index) } else if let registry = YardPaths.registryDirectory() {
                indexURL = registry.appendingPathComponent("index.json")
            } else {
                throw YardError(.indexInvalid, "No registry index found.", remediation: "Pass --index PATH.")
            }
            let pluginIndex = try PluginIndex.load(indexURL)
            let (release, package) = try pluginIndex.select(id: self.package, version: version)
            let location = PluginIndex.packageLocation(package.url, indexURL: indexURL)
            let local = try await PackageFetcher.fetch(location)
            let actual = try PluginLoader.sha256(of: local)
            guard actual == package.sha256.lowercased() else {
                throw YardError(.pluginCorrupt, "The package for \(self.package) \(release.version) has sha256 \(actual.prefix(16))…, but the index says \(package.sha256.prefix(16))….",
                                remediation: "Do not install it: the download was altered or the index is stale. Try again or ask the registry's maintainer.")
            }
            return try installer.install(package: local, allowUnsigned: allowUnsigned, source: package.url, isolation: isolation)
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a plugin installed in $YARD_HOME.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Plugin id.") var id: String

        func run() throws {
            do {
                let version = try PluginInstaller(paths: global.paths).remove(id: id)
                if global.json { printJSON(["removed": id, "version": version]) } else { print("Removed \(id) \(version).") }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the conformance kit against a plugin; exit status 0 only when every check passes.",
            discussion: """
                Each check that runs plugin code runs in a child process, so a crash or hang is reported as a failed check.
                --standin runs the whole kit against the engine's built-in stand-in, started here and accepting the kit's \
                canary credentials, so no provider account is needed; every request must stay on loopback (a request to, \
                or lookup of, any other host fails the check). Engines with stand-ins: \(PluginTestStandIn.supported.joined(separator: ", ")).
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Plugin id, or a path to its folder or plugin.json.") var plugin: String
        @Option(help: "Engine configuration as JSON, e.g. '{\"base_url\":\"http://127.0.0.1:8080\"}' (with --standin: merged over the stand-in's).") var config: String = "{}"
        @Option(help: "Seconds before a check is declared hung.") var timeout: Double = 30
        @Flag(help: "Run against the engine's built-in stand-in (first-party engines), on loopback only.") var standin = false
        @Option(help: "Run the plugin's code in-process, in a runner process, or both (each check once per mode). Default: where `yard run` would run it.")
        var isolation: IsolationChoice?

        enum IsolationChoice: String, ExpressibleByArgument, CaseIterable {
            case process, inProcess = "in-process", both
        }

        func run() async throws {
            let manifestURL: URL
            let manifest: PluginManifest
            let modes: [PluginIsolation]
            var childConfig = config
            var environment: [String: String] = [:]
            var standIn: PluginTestStandIn?
            do {
                manifestURL = try global.registry.resolve(plugin)
                manifest = try PluginManifest.parse(try Data(contentsOf: manifestURL), source: manifestURL.path)
                switch isolation {
                case .process: modes = [.process]
                case .inProcess: modes = [.inProcess]
                case .both: modes = [.inProcess, .process]
                case nil: modes = [PluginIsolationPolicy(paths: global.paths, registry: global.registry).isolation(for: manifestURL, id: manifest.id)]
                }
                guard let given = (try? JSONValue(parsing: Data(config.utf8)))?.objectValue else {
                    throw YardError("CONFIG_INVALID", "--config is not a JSON object.", remediation: "Pass e.g. --config '{\"base_url\":\"http://127.0.0.1:8080\"}'.", field: "--config")
                }
                if standin {
                    guard let started = try await PluginTestStandIn.start(for: manifest.id) else {
                        throw YardError("STANDIN_UNAVAILABLE", "No built-in stand-in for \(manifest.id).",
                                        remediation: "Start your own stand-in and pass its URLs with --config; built-in ones: \(PluginTestStandIn.supported.joined(separator: ", ")).", field: "--standin")
                    }
                    standIn = started
                    childConfig = String(decoding: JSONValue.object(started.config.merging(given) { _, mine in mine }).serialized(), as: UTF8.self)
                    environment["YARD_NETWORK_GUARD"] = "loopback"
                    NetworkGuard.activate()
                }
            } catch { throw fail(error, json: global.json) }
            let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            let arguments = ["plugin", "check", manifestURL.path, "--config", childConfig], limit = timeout, extra = environment
            // The kit blocks while its children run: off the cooperative pool, which serves the stand-in.
            let report = await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    continuation.resume(returning: ConformanceSuite.run(manifestURL: manifestURL, executable: exe, childArguments: arguments,
                                                                        timeoutSeconds: limit, environment: extra, isolations: modes))
                }
            }
            await standIn?.stop()
            if global.json {
                printJSON(report)
            } else {
                print("Conformance of \(report.plugin) (isolation: \(report.isolation ?? "in-process"))\(standIn.map { " (\($0.summary))" } ?? "")")
                for check in report.checks {
                    let time = check.durationMs.map { String(format: " (%.1f ms)", $0) } ?? ""
                    print("\(check.ok ? "  pass" : "  FAIL")  \(check.id.padding(toLength: max(30, report.checks.map(\.id.count).max() ?? 0), withPad: " ", startingAt: 0)) \(check.detail)\(time)")
                }
                print("\(report.passed) passed, \(report.failed) failed")
            }
            if report.failed > 0 { throw ExitCode(1) }
        }
    }

    /// One conformance check in this process; spawned by `plugin test`.
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run one conformance check (internal; used by `plugin test`).", shouldDisplay: false)
        @Argument var manifest: String
        @Option var check: String
        @Option var config: String = "{}"
        @Option var isolation: PluginIsolation = .inProcess

        func run() throws {
            let config = (try? JSONSerialization.jsonObject(with: Data(self.config.utf8))) as? [String: Any] ?? [:]
            let result = ConformanceChild(manifestURL: URL(fileURLWithPath: manifest), config: config, isolation: isolation).run(check)
            let data = try JSONEncoder().encode(result)
            print(String(decoding: data, as: UTF8.self))
        }
    }

    struct Pack: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Package a built plugin: fills sha256, platform and toolchain into plugin.json and zips it with the library.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The plugin's plugin.json (template).") var manifest: String
        @Option(help: "The built shared library.") var library: String
        @Option(help: "Output .yardpkg file (or folder with --unpacked).") var out: String
        @Option(help: "Private key file from `yard plugin keygen`: sign while packing.") var key: String?
        @Flag(help: "Write a plugin folder instead of an archive (for bundling first-party plugins).") var unpacked = false

        func run() throws {
            do {
                let keyFile = try key.map { try PublisherKeyFile.read(URL(fileURLWithPath: $0)) }
                let m = try PluginPackage.pack(manifestURL: URL(fileURLWithPath: manifest), library: URL(fileURLWithPath: library),
                                               output: URL(fileURLWithPath: out), key: keyFile, unpacked: unpacked)
                if global.json { printJSON(["id": m.id, "version": m.version, "sha256": m.sha256, "out": out, "signed": keyFile != nil ? "yes" : "no"]) } else {
                    print("Packed \(m.id) \(m.version) (\(m.platform), \(m.toolchain)) → \(out)\(keyFile != nil ? ", signed" : "")")
                }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sign a package with an Ed25519 publisher key (adds or replaces signature.json).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The .yardpkg file.") var package: String
        @Option(help: "Private key file from `yard plugin keygen`.") var key: String

        func run() throws {
            do {
                let keyFile = try PublisherKeyFile.read(URL(fileURLWithPath: key))
                try PluginPackage.sign(package: URL(fileURLWithPath: package), key: keyFile)
                if global.json { printJSON(["package": package, "key_id": keyFile.keyID]) } else { print("Signed \(package) with \(keyFile.publisher) (\(keyFile.keyID)).") }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an Ed25519 publisher key pair for signing plugins.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Publisher name shown to people installing your plugins.") var publisher: String
        @Option(help: "Folder to write NAME.private.json (mode 0600) and NAME.public.json into.") var out: String = "."
        @Option(help: "File name stem (default: the publisher, lower-cased).") var name: String?

        func run() throws {
            do {
                let key = PublisherKeyFile.generate(publisher: publisher)
                let stem = name ?? publisher.lowercased().replacingOccurrences(of: " ", with: "-")
                let dir = URL(fileURLWithPath: out)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                let privateURL = dir.appendingPathComponent("\(stem).private.json")
                let publicURL = dir.appendingPathComponent("\(stem).public.json")
                guard !FileManager.default.fileExists(atPath: privateURL.path) else {
                    throw YardError(.keyInvalid, "\(privateURL.path) already exists.", remediation: "Choose another --name or --out; keygen never overwrites a key.")
                }
                guard FileManager.default.createFile(atPath: privateURL.path, contents: try encoder.encode(key), attributes: [.posixPermissions: 0o600]) else {
                    throw YardError(.ioFailed, "Cannot write \(privateURL.path).", remediation: "Check that \(dir.path) is writable.")
                }
                try encoder.encode(key.publicOnly).write(to: publicURL)
                if global.json { printJSON(["key_id": key.keyID, "private": privateURL.path, "public": publicURL.path]) } else {
                    print("Key \(key.keyID) for \(publisher)\n  private: \(privateURL.path) (keep secret)\n  public:  \(publicURL.path) (give to users: `yard plugin trust`)")
                }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Index: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add packages to a registry index (index.json), creating it if needed, for `yard plugin install ID --index`.",
            discussion: """
                Each package's id, version, ABI, platform and toolchain come from its plugin.json; its sha256 is computed. \
                The url written is the package's path relative to the index's folder (serve both folders as they are), or --base-url plus the file name.
                Example:
                  yard plugin pack --manifest plugin.json --library .build/debug/libAcmeImagesAdapter.so --out dist/acme-images.yardpkg --key keys/acme.private.json
                  yard plugin index dist/acme-images.yardpkg --index dist/index.json
                  yard plugin install acme-images --index dist/index.json
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Package files (.yardpkg).") var packages: [String]
        @Option(help: "The index to create or update.") var index: String = "index.json"
        @Option(name: .customLong("base-url"), help: "Where the packages will be served (https://…/); default: paths relative to the index.") var baseURL: String?

        func run() throws {
            do {
                guard !packages.isEmpty else { throw YardError(.usage, "Name at least one package.", remediation: "e.g. `yard plugin index dist/acme.yardpkg --index dist/index.json`.", field: "PACKAGES") }
                let indexURL = URL(fileURLWithPath: index).standardizedFileURL
                var pluginIndex = FileManager.default.fileExists(atPath: indexURL.path) ? try PluginIndex.load(indexURL) : PluginIndex()
                var added: [[String: String]] = []
                for path in packages {
                    let url = URL(fileURLWithPath: path).standardizedFileURL
                    guard FileManager.default.fileExists(atPath: url.path) else {
                        throw YardError(.pluginNotFound, "No package at \(path).", remediation: "Create it with `yard plugin pack`.", field: "PACKAGES")
                    }
                    let manifest = try PluginPackage.manifest(of: url)
                    let folder = indexURL.deletingLastPathComponent().path + "/"
                    let location: String
                    if let baseURL { location = baseURL.hasSuffix("/") ? baseURL + url.lastPathComponent : baseURL + "/" + url.lastPathComponent }
                    else if url.path.hasPrefix(folder) { location = String(url.path.dropFirst(folder.count)) }
                    else { location = url.path }
                    pluginIndex.add(manifest, url: location, sha256: try PluginLoader.sha256(of: url))
                    added.append(["id": manifest.id, "version": manifest.version, "platform": manifest.platform, "url": location])
                }
                try pluginIndex.save(indexURL)
                if global.json { printJSON(IndexReport(index: indexURL.path, added: added)); return }
                for entry in added { print("Listed \(entry["id"] ?? "") \(entry["version"] ?? "") (\(entry["platform"] ?? "")) → \(entry["url"] ?? "")") }
                print("Index: \(indexURL.path)")
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Trust: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Trust a publisher's public key for `plugin install`.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "A NAME.public.json file.") var keyFile: String

        func run() throws {
            do {
                let key = try PublisherKeyFile.read(URL(fileURLWithPath: keyFile)).publicOnly
                let dir = global.paths.trustedKeysDirectory
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(key).write(to: dir.appendingPathComponent("\(key.keyID).json"))
                if global.json { printJSON(["trusted": key.keyID, "publisher": key.publisher]) } else { print("Trusted \(key.publisher) (\(key.keyID)).") }
            } catch { throw fail(error, json: global.json) }
        }
    }
}

struct IndexReport: Encodable {
    var index: String
    var added: [[String: String]]
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
