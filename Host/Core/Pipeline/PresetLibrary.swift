import Foundation
import SwitchyardJSON

/// The presets shipped in Registry/presets (pipeline files named after their
/// id) and the sample inputs in Registry/samples.
public struct PresetLibrary: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    /// Registry/presets of the source tree or installed share directory.
    public static func standard() -> PresetLibrary? {
        YardPaths.registryDirectory().map { PresetLibrary(directory: $0.appendingPathComponent("presets")) }
    }

    public var samplesDirectory: URL { directory.deletingLastPathComponent().appendingPathComponent("samples") }

    public func files() -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }.sorted().map { directory.appendingPathComponent($0) }
    }

    public func file(named id: String) -> URL? {
        files().first { $0.deletingPathExtension().lastPathComponent == id }
    }

    public func load(_ id: String) throws -> PipelineDefinition {
        guard let url = file(named: id) else {
            throw YardError("PRESET_NOT_FOUND", "No preset named \(id)." + NameSuggestion.sentence(for: id, among: files().map { $0.deletingPathExtension().lastPathComponent }),
                            remediation: "List them with `yard presets list` (\(files().map { $0.deletingPathExtension().lastPathComponent }.joined(separator: ", "))).", field: "PRESET")
        }
        return try PipelineDefinition.load(url)
    }

    /// `@samples/NAME` in example inputs names a file in Registry/samples.
    public func resolveSample(_ value: JSONValue) -> JSONValue {
        guard let text = value.stringValue, text.hasPrefix("@samples/") else { return value }
        return .string("@" + samplesDirectory.appendingPathComponent(String(text.dropFirst("@samples/".count))).path)
    }
}

extension PipelineDefinition {
    /// A pipeline named on the command line: a file path, or a preset's id.
    public static func locate(_ reference: String, presets: PresetLibrary?) throws -> (PipelineDefinition, source: String) {
        let fm = FileManager.default
        if fm.fileExists(atPath: reference) {
            return (try load(URL(fileURLWithPath: reference)), reference)
        }
        if let presets, let url = presets.file(named: reference) {
            return (try load(url), "preset \(reference)")
        }
        let names = presets?.files().map { $0.deletingPathExtension().lastPathComponent } ?? []
        throw YardError("PIPELINE_NOT_FOUND", "\(reference) is neither a pipeline file nor a preset." + NameSuggestion.sentence(for: reference, among: names),
                        remediation: "Give the path of a .yaml/.json pipeline, or a preset from `yard presets list`.", field: "FILE")
    }

    /// Whether a command-line argument names a pipeline rather than a capability.
    public static func looksLikePipeline(_ reference: String, presets: PresetLibrary?) -> Bool {
        let lower = reference.lowercased()
        if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") || lower.hasSuffix(".json") || reference.contains("/") { return true }
        return presets?.file(named: reference) != nil
    }
}
