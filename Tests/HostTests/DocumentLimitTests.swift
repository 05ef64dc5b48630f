import Foundation
import XCTest
@testable import SwitchyardHost

/// Hostile documents are refused with a code, quickly, and on a small stack:
/// a 5,000-deep YAML flow sequence (which overflowed the composer's stack),
/// a 424-byte billion-laughs file (which expanded for minutes), oversized
/// files and manifests nested past any real use.
final class DocumentLimitTests: TemporaryDirectoryTestCase {
    override var needsStagedPlugins: Bool { false }

    /// Runs `body` on a thread with a 512 KiB stack (a worker thread's size):
    /// unbounded recursion would crash the test run here.
    func onSmallStack(_ body: @escaping @Sendable () -> Void) {
        let finished = DispatchSemaphore(value: 0)
        let thread = Thread {
            body()
            finished.signal()
        }
        thread.stackSize = 512 << 10
        thread.start()
        XCTAssertEqual(finished.wait(timeout: .now() + 30), .success, "did not finish in 30 s")
    }

    func refusal(_ yaml: String) -> YardError? {
        let box = Box()
        onSmallStack {
            do { _ = try PipelineDefinition.parse(yaml: yaml, source: "hostile.yaml") } catch { box.error = error as? YardError }
        }
        return box.error
    }

    final class Box: @unchecked Sendable { var error: YardError? }

    /// Under 424 bytes: nine levels of ten aliases each, 10^10 strings once expanded.
    static let billionLaughs: String = {
        let names = Array("abcdefghij").map(String.init)
        var lines = ["a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
        for i in 1..<names.count {
            lines.append("\(names[i]): &\(names[i]) [" + Array(repeating: "*\(names[i - 1])", count: 10).joined(separator: ",") + "]")
        }
        return lines.joined(separator: "\n") + "\n"
    }()

    func testADeepFlowSequenceIsRefusedNotACrash() {
        let deep = "id: deep\nsteps: " + String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000) + "\n"
        let error = refusal(deep)
        XCTAssertEqual(error?.code, .documentTooDeep, "\(String(describing: error))")
        XCTAssertFalse(error?.remediation.isEmpty ?? true)
    }

    func testDeepBlockNestingIsRefusedToo() {
        var yaml = "id: deep\n"
        for level in 0..<200 { yaml += String(repeating: " ", count: level) + "k\(level):\n" }
        yaml += String(repeating: " ", count: 200) + "leaf: 1\n"
        XCTAssertEqual(refusal(yaml)?.code, .documentTooDeep)
    }

    func testBillionLaughsIsRefusedInUnderASecond() {
        XCTAssertLessThan(Self.billionLaughs.utf8.count, 424)
        let start = Date()
        let error = refusal(Self.billionLaughs)
        XCTAssertEqual(error?.code, .documentAliasLimit, "\(String(describing: error))")
        XCTAssertLessThan(Date().timeIntervalSince(start), 1)
    }

    func testAModestUseOfAnchorsStillParses() throws {
        let yaml = """
            id: anchors
            steps:
              a: &step {capability: debug.echo, engines: [echo], inputs: {text: hi}}
              b: *step
            """
        let definition = try PipelineDefinition.parse(yaml: yaml, source: "anchors.yaml")
        XCTAssertEqual(definition.steps.map(\.name).sorted(), ["a", "b"])
    }

    func testAnOversizedPipelineFileIsRefusedBeforeItIsRead() throws {
        let file = dir.appendingPathComponent("huge.yaml")
        FileManager.default.createFile(atPath: file.path, contents: nil)
        let handle = try FileHandle(forWritingTo: file)
        try handle.truncate(atOffset: UInt64(DocumentLimits.pipeline.maxBytes + 1))
        try handle.close()
        XCTAssertRefusal(.documentTooLarge) { _ = try PipelineDefinition.load(file) }
    }

    func testADeeplyNestedManifestIsRefusedWithACode() {
        let limits = String(repeating: "{\"a\":", count: 400) + "1" + String(repeating: "}", count: 400)
        let manifest = #"{"schema_version":1,"id":"deep","name":"d","version":"1.0.0","abi":"1.0","library":"x.so","platform":"","toolchain":"","sha256":"","capabilities":[{"id":"debug.echo","limits":"# + limits + "}]}"
        XCTAssertRefusal(.documentTooDeep) { _ = try PluginManifest.parse(Data(manifest.utf8), source: "deep/plugin.json") }
    }

    func testJSONLimitsCountEveryValue() {
        let limits = DocumentLimits(maxBytes: 1 << 20, maxDepth: 8, maxNodes: 100)
        XCTAssertNoThrow(try limits.parseJSON(Data("[[[[1]]]]".utf8), source: "ok.json"))
        XCTAssertRefusal(.documentTooLarge) { _ = try limits.parseJSON(Data(("[" + Array(repeating: "1", count: 200).joined(separator: ",") + "]").utf8), source: "wide.json") }
        XCTAssertRefusal(.documentTooDeep) { _ = try limits.parseJSON(Data((String(repeating: "[", count: 9) + String(repeating: "]", count: 9)).utf8), source: "deep.json") }
    }
}
