import ArgumentParser
import Foundation
import SwitchyardHost
#if canImport(Glibc)
import Glibc
#endif

/// The local model catalog: weights from Hugging Face and Civitai, verified,
/// under $YARD_HOME/models/<vendor>/<repo>/<revision>/ (docs/adr/0007).
struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Pull, list, verify and remove model weights (Hugging Face, Civitai).",
        subcommands: [List.self, Pull.self, Verify.self, Remove.self])

    static func catalog(_ paths: YardPaths) throws -> ModelCatalog {
        ModelCatalog(store: try SQLiteJobStore(path: paths.jobStoreFile), root: ModelCatalog.root(of: paths))
    }

    static func record(_ catalog: ModelCatalog, _ id: String, revision: String?) throws -> ModelRecord {
        let full = id.contains(":") ? id : "huggingface:\(id)"
        guard let record = try catalog.records(id: full, revision: revision).first else {
            throw YardError("MODEL_NOT_FOUND", "No model \(full)\(revision.map { "@\($0)" } ?? "") in the catalog.",
                            remediation: "List models with `yard models list`; fetch one with `yard models pull`.", field: "id")
        }
        return record
    }

    static func size(_ bytes: Int) -> String {
        ByteCountFormatter.string(fromByteCount: Int64(bytes), countStyle: .binary)
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Catalogued models: id, revision, type, size, status.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            do {
                let models = try ModelsCommand.catalog(global.paths).all()
                if global.json { printJSON(models); return }
                if models.isEmpty { print("No models yet. Fetch one with `yard models pull owner/name`."); return }
                print(table(["MODEL", "REVISION", "TYPE", "SIZE", "STATUS", "LICENSE"], models.map {
                    [$0.id, String($0.revision.prefix(12)), $0.type, ModelsCommand.size($0.totalBytes),
                     $0.status.rawValue + ($0.reason.map { " (\($0))" } ?? ""), $0.license ?? ""]
                }))
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Pull: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a model (resumable, verified) into the catalog.",
            discussion: """
                MODEL is owner/name[@revision] or hf:owner/name for Hugging Face, civitai:VERSION_ID[:file] for Civitai. \
                Tokens: HF_TOKEN and CIVITAI_TOKEN (`yard secrets set`). Endpoints: HF_ENDPOINT, CIVITAI_ENDPOINT. \
                Progress goes to stderr; an interrupted pull resumes from its .part files.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "owner/name[@revision], hf:owner/name, civitai:VERSION_ID[:file], or local:group/name (files already in $YARD_HOME/models/local/group/name).") var model: String
        @Option(help: "Branch, tag or commit (Hugging Face); overrides @revision.") var revision: String?
        @Option(name: .customLong("include"), help: "Only files matching this glob, e.g. '*.safetensors' (repeatable).") var include: [String] = []
        @Option(help: "Catalog type (checkpoint, lora, llm, video, audio, …); default: inferred from the model's tags.") var type: String?
        @Option(help: "Hugging Face endpoint (default $HF_ENDPOINT, else https://huggingface.co).") var endpoint: String?
        @Option(help: "Civitai endpoint (default $CIVITAI_ENDPOINT, else https://civitai.com).") var civitaiEndpoint: String?
        @OptionGroup var progressOptions: ProgressOptions

        func run() async throws {
            do {
                var reference = try ModelReference.parse(model)
                if let revision { reference.revision = revision }
                let paths = global.paths
                let resolver = ModelSourceResolver.standard(secrets: SecretVault(paths: paths))
                if let endpoint { resolver.hubEndpoint = endpoint.trimmingCharacters(in: CharacterSet(charactersIn: "/")) }
                if let civitaiEndpoint { resolver.civitaiEndpoint = civitaiEndpoint.trimmingCharacters(in: CharacterSet(charactersIn: "/")) }
                // A Hub or Civitai you pointed at on your own network (a mirror, the stand-in) may
                // redirect within it; a public one may never redirect into it.
                let origin = reference.vendor == .civitai ? resolver.civitaiEndpoint : resolver.hubEndpoint
                let privateOrigin = URLComponents(string: origin)?.host.map(ArtifactDownloader.resolvesToPrivateAddress) ?? false
                let downloader = ModelDownloader(catalog: try ModelsCommand.catalog(paths),
                                                 allowPrivateRedirects: privateOrigin || ProcessInfo.processInfo.environment["YARD_ALLOW_PRIVATE_REDIRECTS"] == "1")
                let include = self.include, type = self.type
                let progressMode = progressOptions.mode
                if reference.vendor == .local {
                    let record = try downloader.registerLocal(reference.name, type: type)
                    if global.json { printJSON(record) } else { print("\(record.id) catalogued: \(record.files.count) files, \(ModelsCommand.size(record.totalBytes))\n  \(record.path)") }
                    return
                }
                let task = Task { () throws -> ModelRecord in
                    let plan = reference.vendor == .civitai ? try await resolver.resolveCivitai(reference, type: type)
                                                            : try await resolver.resolveHub(reference, include: include, type: type)
                    if progressMode != .off { Terminal.err("pulling \(plan.id)@\(plan.revision.prefix(12)): \(plan.files.count) files\n") }
                    let record = try await downloader.pull(plan, progress: { p in
                        guard progressMode != .off else { return }
                        let resumed = p.resumedFrom > 0 ? " (resumed at \(ModelsCommand.size(Int(p.resumedFrom))))" : ""
                        let line = "\(p.file) \(ModelsCommand.size(Int(p.fileBytes)))/\(p.fileSize.map { ModelsCommand.size(Int($0)) } ?? "?")\(resumed)  total \(ModelsCommand.size(Int(p.doneBytes)))/\(ModelsCommand.size(Int(p.totalBytes)))"
                        Terminal.err(progressMode == .live ? "\r\u{1B}[2K" + String(line.prefix(max(20, Terminal.columns - 1))) : line + "\n")
                    })
                    if progressMode == .live { Terminal.err("\n") }
                    return record
                }
                // Ctrl-C / SIGTERM cancel cleanly: the .part files stay for the next pull.
                let signals = [SIGINT, SIGTERM].map { number -> DispatchSourceSignal in
                    signal(number, SIG_IGN)
                    let source = DispatchSource.makeSignalSource(signal: number)
                    source.setEventHandler { task.cancel() }
                    source.resume()
                    return source
                }
                defer { signals.forEach { $0.cancel() } }
                let record = try await task.value
                if global.json { printJSON(record); return }
                print("\(record.id)@\(record.revision) \(record.status.rawValue): \(record.files.count) files, \(ModelsCommand.size(record.totalBytes)), verified\n  \(record.path)")
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Re-hash a model's files against the catalog; exit 1 on any mismatch.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Model id (owner/name, huggingface:owner/name, civitai:MODEL/VERSION); absent: every model.") var id: String?
        @Option(help: "Revision (a commit prefix is enough); default: the newest.") var revision: String?

        struct Report: Encodable {
            var id: String
            var revision: String
            var ok: Bool
            var files: [ModelDownloader.FileCheck]
        }

        func run() throws {
            do {
                let catalog = try ModelsCommand.catalog(global.paths)
                let named = try id.map { [try ModelsCommand.record(catalog, $0, revision: revision)] }
                let records = try named ?? catalog.all()
                let downloader = ModelDownloader(catalog: catalog)
                // A pull that never finished has nothing to verify: it is reported, and only fails a verify that names it.
                let incomplete = records.filter { $0.status != .available }
                let reports = try records.filter { $0.status == .available }.map { record in
                    let checks = try downloader.verify(record)
                    return Report(id: record.id, revision: record.revision, ok: checks.allSatisfy(\.ok), files: checks)
                }
                if global.json { printJSON(reports) } else {
                    if records.isEmpty { print("No models yet. Fetch one with `yard models pull owner/name`.") }
                    for report in reports {
                        print("\(report.ok ? "ok  " : "FAIL") \(report.id)@\(report.revision.prefix(12))")
                        for check in report.files where !check.ok { print("     \(check.path): \(check.problem ?? "mismatch")") }
                    }
                    for record in incomplete {
                        print("skip \(record.id)@\(record.revision.prefix(12)): the pull did not finish (\(record.status.rawValue)\(record.reason.map { ": \($0)" } ?? "")); run `yard models pull` again")
                    }
                    if reports.contains(where: { !$0.ok }) {
                        FileHandle.standardError.write(Data("fix: run `yard models pull` for the failed model again: corrupted files are fetched anew.\n".utf8))
                    }
                }
                if reports.contains(where: { !$0.ok }) || (named != nil && !incomplete.isEmpty) { throw ExitCode(1) }
            } catch let exit as ExitCode { throw exit } catch { throw fail(error, json: global.json) }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a model's files and its catalog entry.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Model id (owner/name, huggingface:owner/name, civitai:MODEL/VERSION, local:group/name; a local model's files are kept).") var id: String
        @Option(help: "Revision to remove (a commit prefix is enough); default: every revision.") var revision: String?

        func run() throws {
            do {
                let catalog = try ModelsCommand.catalog(global.paths)
                let full = id.contains(":") ? id : "huggingface:\(id)"
                let records = try catalog.records(id: full, revision: revision)
                guard !records.isEmpty else { _ = try ModelsCommand.record(catalog, id, revision: revision); return }
                for record in records {
                    // Only ever delete inside the model root, and never files a person put there (local).
                    let directory = URL(fileURLWithPath: record.path).standardizedFileURL
                    if record.vendor != "local", directory.path.hasPrefix(catalog.root.standardizedFileURL.path + "/") { try? FileManager.default.removeItem(at: directory) }
                    try catalog.delete(id: record.id, revision: record.revision)
                }
                if global.json { printJSON(["removed": records.map { "\($0.id)@\($0.revision)" }]) } else {
                    for record in records { print("removed \(record.id)@\(record.revision.prefix(12))") }
                }
            } catch { throw fail(error, json: global.json) }
        }
    }
}
