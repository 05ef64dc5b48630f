import Foundation
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// `yard run`, as a user types it, against the RunPod and fal stand-ins:
/// the config file and secrets a user sets, progress to a finished job with
/// its image in the artifact store.
final class StandInRunTests: TemporaryDirectoryTestCase {
    func writeConfig(_ home: URL, _ engine: String, _ config: [String: String]) throws {
        let folder = home.appendingPathComponent("config")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("\(engine).json"))
    }

    func assertSucceededWithAnImage(_ result: ProcessResult, _ key: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr, file: file, line: line)
        let view = try XCTUnwrap(result.json as? [String: Any], result.stdout, file: file, line: line)
        XCTAssertEqual(view["state"] as? String, "succeeded", file: file, line: line)
        XCTAssertTrue(result.stdout.contains("sha256:"), "the output was harvested: \(result.stdout)", file: file, line: line)
        XCTAssertFalse(result.stdout.contains(key) || result.stderr.contains(key), "the key never appears in output", file: file, line: line)
    }

    func testYardRunOnRunPodsStandIn() async throws {
        let standIn = RunPodStandIn()
        try await standIn.start()
        defer { Task { await standIn.stop() } }
        let home = dir.appendingPathComponent("home")
        try writeConfig(home, "runpod", ["endpoint_id": standIn.endpointID, "base_url": standIn.baseURL])
        let result = try yard(["run", "image.generate", "--engine", "runpod", "--input", "prompt=a lighthouse", "--json"], home: home,
                              extraEnvironment: ["RUNPOD_API_KEY": standIn.apiKey])
        try assertSucceededWithAnImage(result, standIn.apiKey)
        XCTAssertEqual(standIn.submissions, 1)
    }

    func testYardRunOnFalsStandIn() async throws {
        let standIn = FalStandIn()
        try await standIn.start()
        defer { Task { await standIn.stop() } }
        let home = dir.appendingPathComponent("home")
        try writeConfig(home, "fal", ["queue_url": standIn.baseURL, "rest_url": standIn.baseURL])
        let result = try yard(["run", "image.generate", "--engine", "fal", "--input", "prompt=a red fox", "--input", "model=fal-ai/flux/schnell", "--json"],
                              home: home, extraEnvironment: ["FAL_KEY": standIn.key])
        try assertSucceededWithAnImage(result, standIn.key)
        XCTAssertEqual(standIn.requestsSeen.filter { $0.method == "POST" && $0.path.hasPrefix("/fal-ai/") }.map(\.path), ["/fal-ai/flux/schnell"])
    }
}
