import Foundation
import SwitchyardJSON
#if canImport(Glibc)
import Glibc
#endif

/// `yard run … --output-dir DIR`: the run's output files copied out of the
/// artifact store. Output names and handles are hostile input (a provider's
/// answer, a stored row): every output is checked before the first is
/// written — a name must be one plain file name, a handle "sha256:" + 64 hex
/// — so nothing lands outside DIR and only the store's own files are copied.
/// A symlink already at a target is replaced, never written through.
public enum PipelineOutputFiles {
    /// Copies to DIR/NAME.EXT; returns name → path.
    public static func copy(_ run: PipelineRunRecord, to directory: URL, artifacts: ArtifactDirectory) throws -> [String: String] {
        let outputs = run.outputsJSON.flatMap { try? JSONValue(parsing: Data($0.utf8)) }?.objectValue ?? [:]
        var planned: [(name: String, source: URL, fileName: String)] = []
        for (name, value) in outputs.sorted(by: { $0.key < $1.key }) {
            guard let handle = value["artifact"]?.stringValue else { continue }
            let source = try artifacts.file(forHandle: handle, field: "$.outputs.\(SafePath.shown(name))")
            let ext = fileExtension(value["media_type"]?.stringValue)
            planned.append((name, source, try SafePath.fileName(ext.isEmpty ? name : "\(name).\(ext)", field: "$.outputs.\(SafePath.shown(name))")))
        }
        let fm = FileManager.default
        if !fm.fileExists(atPath: directory.path) {
            try fm.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777 & ~PrivateFiles.userUmask])
        }
        var copied: [String: String] = [:]
        for (name, source, fileName) in planned {
            let target = directory.appendingPathComponent(fileName)
            try? fm.removeItem(at: target)
            do {
                try fm.copyItem(at: source, to: target)
                // The user's own folder: the mode their umask gives, not the store's 0600.
                chmod(target.path, PrivateFiles.userFileMode)
            } catch {
                throw YardError(.ioFailed, "Cannot copy output \(name) to \(target.path): \(error).", remediation: "Check that \(directory.path) is writable.", field: "--output-dir")
            }
            copied[name] = target.path
        }
        return copied
    }

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
