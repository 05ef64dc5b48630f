import Foundation
import SwitchyardJSON
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

/// The test host third-party adapter authors get from SwitchyardTesting: the
/// real engine around one plugin, driven against a stand-in.
final class AdapterTestHostTests: TemporaryDirectoryTestCase {
    func testAnAdapterRunsThroughTheRealEngineAgainstAStandIn() async throws {
        let standIn = RunPodStandIn()
        try await standIn.start()
        defer { Task { await standIn.stop() } }
        let plugins = dir.appendingPathComponent("plugins")
        try copyPlugin("runpod", to: plugins)
        let host = try AdapterTestHost(plugin: plugins.appendingPathComponent("runpod"), secrets: ["RUNPOD_API_KEY": standIn.apiKey],
                                       config: ["endpoint_id": .string(standIn.endpointID), "base_url": .string(standIn.baseURL)],
                                       catalog: Build.repository.appendingPathComponent("Registry/capabilities"))

        let job = try await host.run("image.generate", ["prompt": "a lighthouse"])
        XCTAssertEqual(job.phase, .succeeded, job.errorJSON ?? "")
        let image = try XCTUnwrap(try host.artifact(host.outputs(job)?["images"]?[0]?["file"]))
        XCTAssertEqual(Array(image.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "the harvested PNG, read back from the store")

        let refused = await host.preflight("image.generate", ["prompt": 42])
        XCTAssertEqual(refused.firstError?.code, "CONTRACT_MISMATCH", "the catalog schema applies")

        standIn.configure { $0.failWith = "CUDA out of memory" }
        let failed = try await host.run("image.generate", ["prompt": "x"])
        XCTAssertEqual(host.errorCode(failed), "ENGINE_ERROR")
        XCTAssertTrue(failed.errorJSON?.contains("CUDA out of memory") == true)
        XCTAssertEqual(standIn.submissions, 2, "the refused job never reached the provider")
    }
}
