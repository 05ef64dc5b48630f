import ArgumentParser
import Foundation
import SwitchyardHost

/// `yard artifacts`: find the files jobs produced. An artifact is named by
/// its handle (sha256:…, or a unique prefix of its hex), or by the job or
/// pipeline run that produced it (all its output files, or --output NAME).
struct ArtifactsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "artifacts",
        abstract: "Print the path of, copy out, or open the files jobs and runs produced.",
        discussion: """
            REF is an artifact handle (sha256:…, or enough of its hex to be unique), a job id (job_…) or a run id (run_…).
            Examples:
              yard artifacts path job_3f9c…                # every output file of a job, one "NAME PATH" line each
              yard artifacts get run_81d2… --out clips/    # copy a run's outputs as clips/NAME.EXT
              yard artifacts open sha256:4b1e…             # open with the desktop's default application (xdg-open)
              yard artifacts put photo.png                 # store a file; prints its handle, for inputs like {"artifact":"sha256:…"}
            """,
        subcommands: [Path.self, Get.self, Open.self, Put.self])

    struct Selection: ParsableArguments {
        @Argument(help: "sha256:… (or a unique hex prefix), job_…, or run_….") var reference: String
        @Option(help: "Only this output of the job or run.") var output: String?
    }

    /// One file: its output name (or the handle's short form), path and media type.
    struct Artifact: Encodable {
        var name: String
        var artifact: String
        var path: String
        var mediaType: String?
        enum CodingKeys: String, CodingKey {
            case name, artifact, path
            case mediaType = "media_type"
        }
    }

    static func resolve(_ selection: Selection, global: GlobalOptions) throws -> [Artifact] {
        let paths = global.paths
        let directory = ArtifactDirectory(root: paths.home.appendingPathComponent("artifacts"))
        let store = try SQLiteJobStore(path: paths.jobStoreFile)
        let reference = selection.reference
        var found: [Artifact] = []
        if reference.hasPrefix("job_") || reference.hasPrefix("run_") {
            let outputsJSON: String?
            if reference.hasPrefix("job_") {
                guard let job = try store.job(id: reference) else { throw YardError.jobNotFound(reference) }
                outputsJSON = job.outputsJSON
            } else {
                guard let run = try PipelineRunStore(jobStore: store).run(id: reference) else { throw RunsCommand.notFound(reference) }
                outputsJSON = run.outputsJSON
            }
            let files = OutputFiles.artifacts(outputsJSON)
            found = files.map { Artifact(name: $0.name, artifact: $0.handle, path: directory.path(for: OutputFiles.digest($0.handle)).path, mediaType: $0.mediaType) }
            if let output = selection.output {
                found = found.filter { $0.name == output || $0.name.hasPrefix(output + "-") }
                if found.isEmpty {
                    throw YardError("ARTIFACT_NOT_FOUND", "\(reference) has no output file \(output)." + NameSuggestion.sentence(for: output, among: files.map(\.name)),
                                    remediation: "Its files: \(files.map(\.name).joined(separator: ", ").nonEmpty ?? "none").", field: "--output")
                }
            }
            if found.isEmpty {
                throw YardError("ARTIFACT_NOT_FOUND", "\(reference) has no output files (yet).", remediation: "See `yard \(reference.hasPrefix("job_") ? "jobs" : "runs") show \(reference)`.", field: "REF")
            }
            return found
        }
        let hex = OutputFiles.digest(reference).lowercased()
        guard hex.count >= 6, hex.allSatisfy(\.isHexDigit) else {
            throw YardError(.usage, "\(reference) is not an artifact handle, a job id or a run id.", remediation: "Pass sha256:… (at least 6 hex digits), job_… or run_….", field: "REF")
        }
        let folder = directory.root.appendingPathComponent("sha256").appendingPathComponent(String(hex.prefix(2)))
        let matches = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.count == 64 && $0.hasPrefix(hex) }
        guard matches.count == 1, let digest = matches.first else {
            throw YardError("ARTIFACT_NOT_FOUND", matches.isEmpty ? "No artifact \(reference) in \(directory.root.path)." : "\(reference) matches \(matches.count) artifacts.",
                            remediation: matches.isEmpty ? "Check the handle (`yard jobs show JOB` lists a job's files)." : "Give more of the hex.", field: "REF")
        }
        let mediaType = try? store.artifactMediaType(sha256: digest)
        return [Artifact(name: String(digest.prefix(12)), artifact: "sha256:\(digest)", path: directory.path(for: digest).path, mediaType: mediaType ?? nil)]
    }

    struct Path: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print where the files are (one NAME PATH line each; the path alone for one file).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var selection: Selection

        func run() throws {
            do {
                let files = try ArtifactsCommand.resolve(selection, global: global)
                if global.json { printJSON(files); return }
                if files.count == 1 { print(files[0].path); return }
                for file in files { print("\(file.name)  \(file.path)") }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Copy the files out of the store, named after the output with the media type's extension.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var selection: Selection
        @Option(help: "Folder to copy into (default: the current one), or a file name when there is one file.") var out: String = "."

        func run() throws {
            do {
                let files = try ArtifactsCommand.resolve(selection, global: global)
                let target = URL(fileURLWithPath: out)
                var isDirectory: ObjCBool = false
                let intoFolder = files.count > 1 || out.hasSuffix("/") || (FileManager.default.fileExists(atPath: target.path, isDirectory: &isDirectory) && isDirectory.boolValue)
                if intoFolder { try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true) }
                var copied: [Artifact] = []
                for file in files {
                    let ext = PipelineText.fileExtension(file.mediaType)
                    let destination = intoFolder ? target.appendingPathComponent(ext.isEmpty ? file.name : "\(file.name).\(ext)") : target
                    try? FileManager.default.removeItem(at: destination)
                    do { try FileManager.default.copyItem(at: URL(fileURLWithPath: file.path), to: destination) } catch {
                        throw YardError(.ioFailed, "Cannot copy \(file.name) to \(destination.path): \(YardError.describing(error).message)", remediation: "Check that the folder is writable.", field: "--out")
                    }
                    copied.append(Artifact(name: file.name, artifact: file.artifact, path: destination.path, mediaType: file.mediaType))
                }
                if global.json { printJSON(copied); return }
                for file in copied { print(file.path) }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Put: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store a file in the artifact store and print its handle (sha256:…).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The file.") var file: String
        @Option(name: .customLong("media-type"), help: "Media type (default: from the file's extension).") var mediaType: String?

        func run() throws {
            do {
                let url = URL(fileURLWithPath: file)
                guard let data = FileManager.default.contents(atPath: url.path) else {
                    throw YardError(.usage, "Cannot read \(file).", remediation: "Check the path.", field: "FILE")
                }
                let paths = global.paths
                let type = mediaType ?? RunCommand.mediaType(for: url)
                let digest = try ArtifactDirectory(root: paths.home.appendingPathComponent("artifacts")).put(data, mediaType: type)
                try SQLiteJobStore(path: paths.jobStoreFile).recordArtifact(ArtifactRecord(sha256: digest, size: data.count, mediaType: type, jobID: nil, sourceURL: nil, createdAt: Date()))
                if global.json { printJSON(["artifact": "sha256:\(digest)", "media_type": type, "size": "\(data.count)"]); return }
                print("sha256:\(digest)")
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Open: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Open a file with the desktop's default application (xdg-open).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var selection: Selection

        func run() throws {
            do {
                let files = try ArtifactsCommand.resolve(selection, global: global)
                guard let opener = ["xdg-open", "open"].lazy.compactMap(Self.which).first else {
                    throw YardError("DEPENDENCY_MISSING", "No xdg-open on this machine (no desktop?).",
                                    remediation: "Install it (`sudo apt-get install -y xdg-utils`), or copy the file out: `yard artifacts get \(selection.reference)`. The path: \(files[0].path)")
                }
                for file in files {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: opener)
                    process.arguments = [file.path]
                    try process.run()
                    process.waitUntilExit()
                    if !global.json { print("opened \(file.path)") }
                }
                if global.json { printJSON(files) }
            } catch { throw fail(error, json: global.json) }
        }

        static func which(_ name: String) -> String? {
            for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
                let candidate = "\(folder)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
            return nil
        }
    }
}
