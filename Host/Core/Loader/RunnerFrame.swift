import CRunnerProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One frame of the host ↔ runner protocol (Host/Runner/Protocol/include/
/// switchyard_runner_protocol.h): kind, id, payload.
struct RunnerFrame {
    var kind: UInt8
    var id: UInt64
    var payload: Data

    /// Builds a frame's bytes, size prefix included.
    struct Writer {
        private(set) var bytes = Data()

        init(kind: Int32, id: UInt64) {
            bytes.reserveCapacity(64)
            u32(0)
            u8(UInt8(kind))
            u64(id)
        }

        mutating func u8(_ v: UInt8) { bytes.append(v) }
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
        mutating func data(_ d: Data) {
            u32(UInt32(d.count))
            bytes.append(d)
        }
        mutating func string(_ s: String) { data(Data(s.utf8)) }

        /// The finished frame, with its size filled in.
        mutating func finish() -> Data {
            let size = UInt32(bytes.count - 4).littleEndian
            withUnsafeBytes(of: size) { raw in bytes.replaceSubrange(bytes.startIndex..<bytes.startIndex + 4, with: raw) }
            return bytes
        }
    }

    /// Reads a payload the runner wrote: every field is bounds-checked, since
    /// the runner shares its process with the plugin and is not trusted.
    struct Reader {
        let data: Data
        private var offset: Int
        private(set) var ok = true

        init(_ data: Data) {
            self.data = data
            offset = data.startIndex
        }

        private mutating func take(_ n: Int) -> Data? {
            guard ok, n >= 0, data.endIndex - offset >= n else { ok = false; return nil }
            defer { offset += n }
            return data[offset..<offset + n]
        }

        private mutating func le(_ n: Int) -> UInt64 {
            guard let bytes = take(n) else { return 0 }
            var v: UInt64 = 0
            for (i, b) in bytes.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
            return v
        }

        mutating func u8() -> UInt8 { UInt8(truncatingIfNeeded: le(1)) }
        mutating func u32() -> UInt32 { UInt32(truncatingIfNeeded: le(4)) }
        mutating func i32() -> Int32 { Int32(bitPattern: u32()) }
        mutating func u64() -> UInt64 { le(8) }
        mutating func i64() -> Int64 { Int64(bitPattern: le(8)) }
        mutating func bytes() -> Data {
            let n = Int(u32())
            return take(n) ?? Data()
        }
        var isAtEnd: Bool { offset == data.endIndex }
    }
}

/// Reads whole frames from a file descriptor, refusing what the protocol forbids.
struct RunnerFrameReader {
    let fd: Int32
    /// Frames larger than this end the runner (the plugin's documents are capped in the runner).
    let maxFrameBytes: Int

    enum Failure: Error { case closed, malformed(String) }

    func next() throws -> RunnerFrame {
        var header = [UInt8](repeating: 0, count: 4)
        try header.withUnsafeMutableBytes { raw in try readFully(raw.baseAddress!, 4) }
        let size = Int(UInt32(header[0]) | UInt32(header[1]) << 8 | UInt32(header[2]) << 16 | UInt32(header[3]) << 24)
        guard size >= 9 else { throw Failure.malformed("a frame of \(size) bytes is shorter than its header") }
        guard size <= maxFrameBytes else { throw Failure.malformed("a frame of \(size) bytes is larger than \(maxFrameBytes)") }
        var body = Data(count: size)
        try body.withUnsafeMutableBytes { raw in try readFully(raw.baseAddress!, size) }
        let kind = body[body.startIndex]
        var id: UInt64 = 0
        for i in 0..<8 { id |= UInt64(body[body.startIndex + 1 + i]) << (8 * UInt64(i)) }
        return RunnerFrame(kind: kind, id: id, payload: body.dropFirst(9))
    }

    private func readFully(_ buffer: UnsafeMutableRawPointer, _ count: Int) throws {
        var offset = 0
        while offset < count {
            let n = read(fd, buffer + offset, count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure.closed }
            offset += n
        }
    }
}
