import Foundation

/// Structural checks of an ELF shared object before dlopen. dlopen maps
/// segments straight from the file: a truncated library faults the whole
/// process with SIGBUS, so the loader proves every segment lies inside the
/// file first.
enum ELFImage {
    static func check(_ url: URL, id: String) throws {
        func corrupt(_ why: String) -> YardError {
            YardError(.pluginCorrupt, "\(id): \(url.lastPathComponent) is \(why).",
                      remediation: "The file is damaged or not a shared library: reinstall the plugin or rebuild it.", field: "$.library")
        }
        guard let handle = try? FileHandle(forReadingFrom: url) else { throw corrupt("unreadable") }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()).map(Int.init) ?? 0
        try? handle.seek(toOffset: 0)
        guard let header = try? handle.read(upToCount: 64), header.count >= 16,
              header.prefix(4) == Data([0x7F, 0x45, 0x4C, 0x46]) else {
            throw corrupt("not an ELF shared object")
        }
        guard header[4] == 2, header[5] == 1, header.count == 64 else {
            throw corrupt("not a 64-bit little-endian ELF file (this host is \(HostPlatform.platform))")
        }
        func u16(_ d: Data, _ o: Int) -> Int { Int(d[d.startIndex + o]) | Int(d[d.startIndex + o + 1]) << 8 }
        func u64(_ d: Data, _ o: Int) -> Int {
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(d[d.startIndex + o + i]) << (8 * UInt64(i)) }
            return v > UInt64(Int.max) ? Int.max : Int(v)
        }
        guard u16(header, 16) == 3 else { throw corrupt("an ELF file but not a shared object (ET_DYN)") }
        let phoff = u64(header, 32), shoff = u64(header, 40)
        let phentsize = u16(header, 54), phnum = u16(header, 56), shentsize = u16(header, 58), shnum = u16(header, 60)
        guard phentsize >= 56, phoff.addingReportingOverflow(phentsize * phnum).partialValue <= size else {
            throw corrupt("truncated: its program headers end past the file's \(size) bytes")
        }
        if shnum > 0, shoff.addingReportingOverflow(shentsize * shnum).partialValue > size {
            throw corrupt("truncated: its section headers end past the file's \(size) bytes")
        }
        try? handle.seek(toOffset: UInt64(phoff))
        guard let table = try? handle.read(upToCount: phentsize * phnum), table.count == phentsize * phnum else {
            throw corrupt("truncated")
        }
        for i in 0..<phnum {
            let entry = table.subdata(in: i * phentsize..<(i + 1) * phentsize)
            let type = u16(entry, 0)
            guard type == 1 else { continue } // PT_LOAD
            let offset = u64(entry, 8), fileSize = u64(entry, 32)
            let (end, overflow) = offset.addingReportingOverflow(fileSize)
            if overflow || end > size {
                throw corrupt("truncated: a loadable segment ends at byte \(end) of a \(size)-byte file")
            }
        }
    }
}
