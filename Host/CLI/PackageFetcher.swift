import AsyncHTTPClient
import Foundation
import NIOCore
import SwitchyardHost

/// Brings a package named by an index to a local file.
enum PackageFetcher {
    static func fetch(_ location: URL) async throws -> URL {
        if location.isFileURL {
            guard FileManager.default.fileExists(atPath: location.path) else {
                throw YardError(.pluginNotFound, "The index points at \(location.path), which does not exist.", remediation: "Fix the index's url.")
            }
            return location
        }
        try NetworkGuard.check(url: location.absoluteString)
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: location.absoluteString), timeout: .seconds(300))
        guard response.status.code == 200 else {
            throw YardError(.pluginNotFound, "Downloading \(location.absoluteString) answered HTTP \(response.status.code).", remediation: "Check the index's url and the registry.")
        }
        let limit = Int(PluginPackage.Limits.standard.maxPackageBytes)
        if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > limit {
            throw YardError(.packageTooLarge, "\(location.absoluteString) is \(length) bytes; packages are at most \(limit).", remediation: "Do not install it: a plugin package is far smaller.")
        }
        let body: ByteBuffer
        do { body = try await response.body.collect(upTo: limit) } catch is NIOTooManyBytesError {
            throw YardError(.packageTooLarge, "\(location.absoluteString) is larger than \(limit) bytes.", remediation: "Do not install it: a plugin package is far smaller.")
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("yard-\(UUID().uuidString).yardpkg")
        try Data(body.readableBytesView).write(to: file)
        return file
    }
}
