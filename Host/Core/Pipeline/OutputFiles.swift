import Foundation
import SwitchyardJSON
#if canImport(Glibc)
import Glibc
#endif

/// Output files of a job or run: where they are in the artifact store, or
/// copied to a folder as NAME.EXT (NAME-1.EXT, NAME-2.EXT… for a list), with
/// the extension taken from the media type.
public enum OutputFiles {
    public static func name(_ key: String, index: Int, of count: Int) -> String { count == 1 ? key : "\(key)-\(index + 1)" }

    /// name → (artifact handle, media type) for every file among the outputs.
    public static func artifacts(_ outputsJSON: String?) -> [(name: String, handle: String, mediaType: String?)] {
        guard let text = outputsJSON, let outputs = (try? JSONValue(parsing: Data(text.utf8)))?.objectValue else { return [] }
        var found: [(String, String, String?)] = []
        for (key, value) in outputs.sorted(by: { $0.key < $1.key }) {
            if let handle = value["artifact"]?.stringValue {
                found.append((key, handle, value["media_type"]?.stringValue))
            } else if let items = value.arrayValue {
                let files = items.filter { $0["artifact"]?.stringValue != nil }
                for (i, item) in files.enumerated() {
                    found.append((name(key, index: i, of: files.count), item["artifact"]?.stringValue ?? "", item["media_type"]?.stringValue))
                }
            }
        }
        return found
    }

    /// name → path in the artifact store (handles that are not the store's own are left out).
    public static func stored(_ outputsJSON: String?, artifacts store: ArtifactDirectory) -> [String: String] {
        Dictionary(artifacts(outputsJSON).compactMap { file in (try? store.file(forHandle: file.handle)).map { (file.name, $0.path) } }) { first, _ in first }
    }

    /// Copies every output file into `directory` (`--output-dir`); name →
    /// copied path. Names and handles are hostile input (a provider's answer,
    /// a stored row): every one is checked before the first file is written —
    /// a name must be one plain file name, a handle "sha256:" + 64 hex — so
    /// nothing lands outside `directory` and only the store's own files are
    /// copied. A symlink already at a target is replaced, never written
    /// through; copies get the mode the user's umask gives, not the store's 0600.
    public static func copy(_ outputsJSON: String?, to directory: URL, artifacts store: ArtifactDirectory) throws -> [String: String] {
        var planned: [(name: String, source: URL, target: URL)] = []
        for file in artifacts(outputsJSON) {
            let field = "$.outputs.\(SafePath.shown(file.name))"
            let source = try store.file(forHandle: file.handle, field: field)
            let ext = fileExtension(file.mediaType)
            planned.append((file.name, source, directory.appendingPathComponent(try SafePath.fileName(ext.isEmpty ? file.name : "\(file.name).\(ext)", field: field))))
        }
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw YardError(.ioFailed, "Cannot create \(directory.path): \(YardError.describing(error).message)", remediation: "Choose a folder you can write.", field: "--output-dir")
        }
        var copied: [String: String] = [:]
        for (name, source, target) in planned {
            try? FileManager.default.removeItem(at: target)
            do {
                try FileManager.default.copyItem(at: source, to: target)
                chmod(target.path, PrivateFiles.userFileMode)
            } catch {
                throw YardError(.ioFailed, "Cannot copy output \(name) to \(target.path): \(YardError.describing(error).message)",
                                remediation: "Check that \(directory.path) is writable.", field: "--output-dir")
            }
            copied[name] = target.path
        }
        return copied
    }

    public static func digest(_ handle: String) -> String { handle.hasPrefix("sha256:") ? String(handle.dropFirst(7)) : handle }

    public static func fileExtension(_ mediaType: String?) -> String {
        switch mediaType {
        case "video/mp4": return "mp4"
        case "video/webm": return "webm"
        case "video/quicktime": return "mov"
        case "image/png": return "png"
        case "image/jpeg": return "jpg"
        case "image/webp": return "webp"
        case "audio/wav": return "wav"
        case "audio/mpeg": return "mp3"
        case "text/plain": return "txt"
        default: return ""
        }
    }
}
