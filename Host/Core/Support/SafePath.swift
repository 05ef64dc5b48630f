import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Names that come from outside the host (pipeline output names, model file
/// paths, provider revisions, plugin answers) become file paths only through
/// here: each component is checked, and the result is checked to stay inside
/// its root after symlinks are resolved. Nothing is written outside
/// `--output-dir` or $YARD_HOME.
public enum SafePath {
    /// The longest file name most file systems accept, in bytes.
    public static let maxComponentBytes = 255

    /// Whether `name` is one plain path component: not empty, not `.` or
    /// `..`, no `/`, `\`, NUL or other control characters, at most 255 bytes.
    public static func isPlainComponent(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && name.utf8.count <= maxComponentBytes
            && !name.unicodeScalars.contains { $0 == "/" || $0 == "\\" || $0.value < 0x20 || $0.value == 0x7F }
    }

    /// `name` when it is one plain file name, else NAME_INVALID.
    @discardableResult
    public static func fileName(_ name: String, field: String?) throws -> String {
        guard isPlainComponent(name) else {
            throw YardError(.nameInvalid, "\"\(shown(name))\" is not a plain file name (no /, \\, \"..\", control characters; at most \(maxComponentBytes) bytes).",
                            remediation: "Rename it: letters, digits, '-', '_' and '.' are always safe.", field: field)
        }
        return name
    }

    /// A relative path of plain components (e.g. "unet/model.safetensors").
    public static func components(of relative: String, field: String?) throws -> [String] {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !relative.hasPrefix("/"), !parts.isEmpty, parts.allSatisfy(isPlainComponent) else {
            throw YardError(.nameInvalid, "\"\(shown(relative))\" is not a relative path of plain names (no leading /, no \"..\", no empty parts).",
                            remediation: "Use a path below its folder, such as \"weights/model.bin\".", field: field)
        }
        return parts
    }

    /// `directory/name` for a plain `name`; refuses when `directory` resolves
    /// somewhere `name` would not stay in.
    public static func child(_ name: String, of directory: URL, field: String?) throws -> URL {
        try contained(try fileName(name, field: field), in: directory, field: field)
    }

    /// `root/relative`, every component plain, and every folder on the way
    /// resolving (symlinks followed) to a place inside `root`. The final
    /// component may be an existing symlink only if it also resolves inside.
    public static func contained(_ relative: String, in root: URL, field: String?) throws -> URL {
        let parts = try components(of: relative, field: field)
        let base = resolved(root.standardizedFileURL.path)
        var target = root.standardizedFileURL
        for part in parts { target.appendPathComponent(part) }
        let real = resolved(target.path)
        guard real == base || real.hasPrefix(base.hasSuffix("/") ? base : base + "/") else {
            throw YardError(.pathOutsideRoot, "\(shown(relative)) would be written at \(real), outside \(base) (a symlink on the way points out).",
                            remediation: "Remove the symlink, or choose another folder.", field: field)
        }
        return target
    }

    /// The real path of `path`: its longest existing prefix through
    /// realpath(3) (every symlink resolved), then the components that do not
    /// exist yet (which cannot be symlinks).
    static func resolved(_ path: String) -> String {
        var existing = path
        var missing: [String] = []
        while !existing.isEmpty, existing != "/" {
            if let real = realpath(existing, nil) {
                defer { free(real) }
                let prefix = String(cString: real)
                return ([prefix == "/" ? "" : prefix] + missing.reversed()).joined(separator: "/")
            }
            let url = URL(fileURLWithPath: existing)
            missing.append(url.lastPathComponent)
            existing = url.deletingLastPathComponent().path
        }
        return "/" + missing.reversed().joined(separator: "/")
    }

    public static func shown(_ text: String) -> String {
        let cleaned = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
        return cleaned.count > 80 ? String(cleaned.prefix(80)) + "…" : cleaned
    }
}
