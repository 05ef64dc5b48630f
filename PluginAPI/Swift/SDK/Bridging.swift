import CPluginAPI
import Foundation

extension String {
    init(syStr s: sy_str_t) {
        guard let data = s.data, s.size > 0 else { self = ""; return }
        self = String(decoding: UnsafeRawBufferPointer(start: data, count: s.size), as: UTF8.self)
    }

    func withSyStr<R>(_ body: (sy_str_t) -> R) -> R {
        var copy = self
        return copy.withUTF8 { buf in
            buf.withMemoryRebound(to: CChar.self) { body(sy_str_t(data: $0.baseAddress, size: $0.count)) }
        }
    }
}

extension Data {
    init(syStr s: sy_str_t) {
        guard let data = s.data, s.size > 0 else { self = Data(); return }
        self = Data(bytes: data, count: s.size)
    }

    func withSyStr<R>(_ body: (sy_str_t) -> R) -> R {
        withUnsafeBytes { raw in
            body(sy_str_t(data: raw.baseAddress?.assumingMemoryBound(to: CChar.self), size: raw.count))
        }
    }
}

/// A sink that accumulates what the other side writes during one call.
final class SinkBuffer {
    var data = Data()

    static func collect(_ body: (UnsafePointer<sy_sink_t>) -> sy_status_t) -> (sy_status_t, Data) {
        let buffer = SinkBuffer()
        let unmanaged = Unmanaged.passRetained(buffer)
        defer { unmanaged.release() }
        var sink = sy_sink_t(struct_size: UInt32(MemoryLayout<sy_sink_t>.size), context: unmanaged.toOpaque()) { sink, bytes, size in
            guard let sink, let context = sink.pointee.context, let bytes, size > 0 else { return }
            Unmanaged<SinkBuffer>.fromOpaque(context).takeUnretainedValue().data.append(
                UnsafeRawPointer(bytes).assumingMemoryBound(to: UInt8.self), count: size)
        }
        let status = withUnsafePointer(to: &sink) { body($0) }
        return (status, buffer.data)
    }
}

func writeSink(_ sink: UnsafePointer<sy_sink_t>?, _ data: Data) {
    guard let sink, sink.pointee.struct_size >= UInt32(SY_SINK_V1_0_SIZE), let write = sink.pointee.write else { return }
    data.withUnsafeBytes { raw in
        write(sink, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
    }
}
