import Foundation
import XCTest
@testable import SwitchyardHost

/// Static checks of the presets against the first-party manifests: no code runs.
final class PresetLintTests: XCTestCase {
    func manifests() throws -> [String: PluginManifest] {
        let plugins = Build.repository.appendingPathComponent("Plugins")
        var result: [String: PluginManifest] = [:]
        for folder in try FileManager.default.contentsOfDirectory(atPath: plugins.path).sorted() {
            let url = plugins.appendingPathComponent(folder).appendingPathComponent("plugin.json")
            guard let data = FileManager.default.contents(atPath: url.path) else { continue }
            let manifest = try PluginManifest.parse(data, source: url.path)
            result[manifest.id] = manifest
        }
        return result
    }

    func presets() throws -> [PipelineDefinition] {
        try PresetLibrary(directory: Build.repository.appendingPathComponent("Registry/presets")).files().map { try PipelineDefinition.load($0) }
    }

    func testEveryEngineInEveryStepListDeclaresThatStepsCapability() throws {
        let manifests = try manifests()
        var problems: [String] = []
        var cells = 0
        for preset in try presets() {
            for step in preset.steps {
                for choice in step.engines {
                    cells += 1
                    guard let manifest = manifests[choice.engine] else {
                        problems.append("\(preset.id).\(step.name): \(choice.engine) is no first-party engine")
                        continue
                    }
                    if !manifest.capabilityIDs.contains(step.capability) {
                        problems.append("\(preset.id).\(step.name): \(choice.engine) does not offer \(step.capability) (it offers \(manifest.capabilityIDs.joined(separator: ", ")))")
                    }
                }
            }
        }
        XCTAssertGreaterThan(cells, 50)
        XCTAssertEqual(problems, [])
    }

    /// A model an engine entry names is in that engine's model table, so the entry is not refused for its own choice.
    func testEveryModelAnEngineEntryNamesIsInTheEnginesTable() throws {
        let manifests = try manifests()
        var problems: [String] = []
        for preset in try presets() {
            for step in preset.steps {
                for choice in step.engines {
                    guard let model = choice.inputs["model"]?.stringValue else { continue }
                    let table = manifests[choice.engine]?.capabilities.first { $0.id == step.capability }?.models?.map(\.id) ?? []
                    if !table.contains(model) { problems.append("\(preset.id).\(step.name): \(choice.engine) has no model \(model) (it has \(table))") }
                }
            }
        }
        XCTAssertEqual(problems, [])
    }
}
