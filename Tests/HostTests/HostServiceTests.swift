import CPluginAPI
import Foundation
import SwitchyardTesting
import XCTest
@testable import SwitchyardHost

final class HostServiceTests: TemporaryDirectoryTestCase {
    func testRequestOutsideTheAllowListIsDeniedWithoutLeavingTheProcess() throws {
        let plugin = try PluginLoader.load(manifestURL: try copyPlugin("echo", to: dir), services: fullServices(root: dir))
        let submitted = plugin.call(.submit, request: requestData(["capability": "debug.echo", "inputs": ["text": "x", "polls": 0, "url": "http://203.0.113.9/steal"]]))
        let ref = try XCTUnwrap(submitted.json?["ref"])
        _ = plugin.call(.poll, request: requestData(["ref": ref]))
        let final = plugin.call(.poll, request: requestData(["ref": ref]))
        XCTAssertEqual(final.status, SY_E_FAILED)
        XCTAssertEqual((final.json?["error"] as? [String: Any])?["code"] as? String, "NETWORK_DENIED")
        XCTAssertEqual(plugin.context.deniedRequests, ["http://203.0.113.9/steal"])
        XCTAssertTrue(plugin.context.requestedHosts.isEmpty)
    }

    func testAllowListMatchesExactHostsAndWildcardSubdomainsOnly() throws {
        let manifest = try PluginManifest.parse(Data("""
            {"schema_version":1,"id":"x","version":"1.0.0","abi":"1.0","library":"libx.so",
             "capabilities":[{"id":"debug.ping"}],"network":{"hosts":["api.example.com","*.fal.run"]}}
            """.utf8), source: "test")
        let context = PluginContext(manifest: manifest, services: .none)
        XCTAssertTrue(context.isAllowed("https://api.example.com/v1"))
        XCTAssertTrue(context.isAllowed("https://queue.fal.run/x"))
        XCTAssertFalse(context.isAllowed("https://evil-api.example.com/"))
        XCTAssertFalse(context.isAllowed("https://fal.run.evil.com/"))
        XCTAssertFalse(context.isAllowed("ftp://api.example.com/"))
        XCTAssertFalse(context.isAllowed("file:///etc/passwd"))
    }

    func testSecretValuesAreRedactedFromLogLines() throws {
        let manifest = try PluginManifest.parse(Data("""
            {"schema_version":1,"id":"x","version":"1.0.0","abi":"1.0","library":"libx.so",
             "capabilities":[{"id":"debug.ping"}],"secrets":[{"name":"FAL_KEY"}]}
            """.utf8), source: "test")
        let context = PluginContext(manifest: manifest, services: HostServiceSet(secrets: EnvironmentSecrets(environment: [:], values: ["FAL_KEY": "key-abc-123-secret"])))
        XCTAssertEqual(context.redact("Authorization: Key key-abc-123-secret"), "Authorization: Key [REDACTED:FAL_KEY]")
    }

    func testUndeclaredSecretIsDeniedAndDeclaredOneIsServed() throws {
        let manifest = try copyPlugin("echo", to: dir)
        let plugin = try PluginLoader.load(manifestURL: manifest, services: fullServices(root: dir, secrets: ["ECHO_TOKEN": "tok-1234", "OTHER": "nope-5678"]))
        let table = try XCTUnwrap(ServiceTables.lookup(SY_SERVICE_SECRETS, for: plugin.context)).assumingMemoryBound(to: sy_service_secrets_t.self)
        let get = try XCTUnwrap(table.pointee.get)
        func ask(_ name: String) -> (Int32, String) {
            let ctx = Unmanaged.passRetained(CallContext(plugin: plugin.context, jobID: nil))
            defer { ctx.release() }
            let box = HostSinkBuffer()
            let boxRef = Unmanaged.passRetained(box)
            defer { boxRef.release() }
            var sink = sy_sink_t(struct_size: UInt32(MemoryLayout<sy_sink_t>.size), context: boxRef.toOpaque()) { sink, bytes, size in
                guard let sink, let bytes else { return }
                Unmanaged<HostSinkBuffer>.fromOpaque(sink.pointee.context!).takeUnretainedValue().data.append(UnsafeRawPointer(bytes).assumingMemoryBound(to: UInt8.self), count: size)
            }
            var call = sy_call_t(struct_size: UInt32(MemoryLayout<sy_call_t>.size), host: UnsafePointer(plugin.host), call_id: 1,
                                 job_id: sy_str_t(data: nil, size: 0), host_data: ctx.toOpaque())
            let status = Data(name.utf8).withSyStr { n in withUnsafePointer(to: &call) { c in withUnsafePointer(to: &sink) { get(c, n, $0) } } }
            return (status, String(decoding: box.data, as: UTF8.self))
        }
        XCTAssertEqual(ask("ECHO_TOKEN").0, SY_OK)
        XCTAssertEqual(ask("ECHO_TOKEN").1, "tok-1234")
        XCTAssertEqual(ask("OTHER").0, SY_E_DENIED)
        XCTAssertEqual(ask("OTHER").1, "", "a denied secret's value is never written")
    }

    func testServicesTheHostDoesNotOfferAreNull() throws {
        let plugin = try PluginLoader.load(manifestURL: try copyPlugin("echo", to: dir), services: .none)
        for id in [SY_SERVICE_LOG, SY_SERVICE_HTTP, SY_SERVICE_SECRETS, SY_SERVICE_KV, SY_SERVICE_CRYPTO, "sy.unknown/1"] {
            XCTAssertNil(ServiceTables.lookup(id, for: plugin.context), id)
        }
        // echo still finishes a job without kv or artifacts: it falls back to the clock and reports the missing service.
        let submitted = plugin.call(.submit, request: requestData(["capability": "debug.echo", "inputs": ["text": "x", "polls": 0]]))
        XCTAssertEqual(submitted.status, SY_OK)
    }

    func testJWTIsCompactHS256() {
        let token = JWT.hs256(payload: Data(#"{"iss":"ak"}"#.utf8), secret: Data("sk".utf8))
        let parts = token.split(separator: ".")
        XCTAssertEqual(parts.count, 3)
        XCTAssertEqual(parts[0], "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9")
        XCTAssertFalse(token.contains("="))
    }
}

final class HTTPRedirectTests: TemporaryDirectoryTestCase {
    override var needsStagedPlugins: Bool { false }

    func testTheHTTPServiceNeverFollowsARedirectOnItsOwn() async throws {
        let server = ScriptedHTTPServer { request in
            request.path == "/hop" ? .init(status: 302, headers: ["location": "http://203.0.113.9/elsewhere"]) : .init(status: 200)
        }
        try await server.start()
        defer { Task { await server.stop() } }
        let transport = BlockingHTTPTransport(defaultTimeoutMs: 2_000)
        let url = "\(server.baseURL)/hop"
        let response = try await PluginCallExecutor().run { Result { try transport.perform(HostHTTPRequest(method: "GET", url: url)) } }.get()
        XCTAssertEqual(response.status, 302, "the plugin sees the redirect and must ask again, through the allow-list")
        XCTAssertEqual(response.headers["location"], "http://203.0.113.9/elsewhere")
    }
}
