import Foundation
import XCTest
@testable import SwitchyardHost
#if canImport(Glibc)
import Glibc
#endif

/// `yard serve` reads webhook bodies within a size and a time limit, refuses
/// what its headers already rule out without reading the body, and closes
/// the connection after such a refusal — so one slow or oversized sender
/// cannot hold a connection or the server's memory. Spoken to over raw TCP,
/// as a hostile client would.
final class WebhookIntakeLimitTests: TemporaryDirectoryTestCase {
    var home: URL { dir.appendingPathComponent("home") }
    var serve: Process?
    var port: UInt16 = 0

    override func setUpWithError() throws {
        try super.setUpWithError()
        try requireBuiltYard()
        let process = Process()
        process.executableURL = Build.yard
        process.arguments = ["serve", "--port", "0", "--max-body-bytes", "4096", "--read-timeout-ms", "400"]
        var env = ProcessInfo.processInfo.environment
        env["YARD_HOME"] = home.path
        env["YARD_PLUGIN_PATH"] = ""
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        serve = process
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        let address = try XCTUnwrap(line.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines), "yard serve printed \(line)")
        port = try XCTUnwrap(UInt16(try XCTUnwrap(address.split(separator: ":").last)), "yard serve printed \(line)")
    }

    override func tearDown() {
        serve?.terminate()
        serve?.waitUntilExit()
        super.tearDown()
    }

    /// One TCP connection to the server, with a receive timeout.
    final class Connection {
        let fd: Int32

        init(port: UInt16) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else { throw YardError("SERVE_UNREACHABLE", "Cannot connect to yard serve (errno \(errno)).", remediation: "Run yard serve by hand to see why it does not listen.") }
            var timeout = timeval(tv_sec: 15, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(fd) }

        @discardableResult
        func send(_ text: String) -> Bool {
            let bytes = Array(text.utf8)
            return bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
        }

        /// Everything the server sends until it closes the connection (or 15 s pass: a loaded 2-core machine can starve the server for seconds).
        func readUntilClosed() -> (text: String, closed: Bool) {
            var data = Data()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n == 0 { return (String(decoding: data, as: UTF8.self), true) }
                if n < 0 { return (String(decoding: data, as: UTF8.self), false) }
                data.append(contentsOf: buffer[0..<n])
            }
        }
    }

    func healthy() throws -> Bool {
        let connection = try Connection(port: port)
        connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return connection.readUntilClosed().text.contains("ok")
    }

    func testABodyAnnouncedLargerThanTheLimitIsRefusedAtOnceAndTheConnectionClosed() throws {
        let connection = try Connection(port: port)
        let start = Date()
        connection.send("POST /webhooks/fal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{\"a\":")
        let (text, closed) = connection.readUntilClosed()
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 413"), text)
        XCTAssertTrue(text.contains("WEBHOOK_TOO_LARGE"), text)
        XCTAssertTrue(closed, "the server closed the connection instead of draining a gigabyte")
        XCTAssertLessThan(Date().timeIntervalSince(start), 3)
        XCTAssertTrue(try healthy())
    }

    func testAChunkedBodyPastTheLimitIsCutOff() throws {
        let connection = try Connection(port: port)
        connection.send("POST /webhooks/fal HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        let chunk = String(repeating: "x", count: 1024)
        for _ in 0..<8 { connection.send(String(format: "%x\r\n", chunk.utf8.count) + chunk + "\r\n") }
        let (text, closed) = connection.readUntilClosed()
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 413"), text)
        XCTAssertTrue(text.contains("WEBHOOK_TOO_LARGE"), text)
        XCTAssertTrue(closed)
        XCTAssertTrue(try healthy())
    }

    func testABodyThatDoesNotArriveInTimeIsAnswered408AndTheConnectionClosed() throws {
        let connection = try Connection(port: port)
        let start = Date()
        connection.send("POST /webhooks/fal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":")
        let (text, closed) = connection.readUntilClosed()
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 408"), text)
        XCTAssertTrue(text.contains("WEBHOOK_TIMEOUT"), text)
        XCTAssertTrue(closed)
        XCTAssertGreaterThanOrEqual(elapsed, 0.3)
        XCTAssertLessThan(elapsed, 12, "answered by the 400 ms read timeout, not by the client giving up")
        XCTAssertTrue(try healthy())
    }

    func testADeliveryForAnUnknownEngineIsRefusedWithoutReadingItsBody() throws {
        let connection = try Connection(port: port)
        let start = Date()
        connection.send("POST /webhooks/no-such-engine HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n{")
        let (text, closed) = connection.readUntilClosed()
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 404"), text)
        XCTAssertTrue(text.contains("PLUGIN_NOT_FOUND"), text)
        XCTAssertTrue(closed)
        XCTAssertLessThan(Date().timeIntervalSince(start), 3, "answered without waiting for the 4000 bytes")
    }

    func testAnEngineNamedByAPathIsRefused() throws {
        for path in ["..%2F..%2Ftmp%2Fevil", "%2Ftmp%2Fevil", "..", "Echo"] {
            let connection = try Connection(port: port)
            connection.send("POST /webhooks/\(path) HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            let (text, _) = connection.readUntilClosed()
            XCTAssertTrue(text.hasPrefix("HTTP/1.1 404"), "\(path): \(text)")
        }
    }

    func testManySlowSendersDoNotStopTheServer() throws {
        let slow = try (0..<20).map { _ -> Connection in
            let connection = try Connection(port: port)
            connection.send("POST /webhooks/fal HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            return connection
        }
        XCTAssertTrue(try healthy(), "the server answers while 20 senders stall")
        for connection in slow { _ = connection.readUntilClosed() }
        XCTAssertTrue(try healthy())
    }
}
