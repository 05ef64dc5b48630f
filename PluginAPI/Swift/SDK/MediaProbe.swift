import Foundation

/// What the bytes of a media file say about themselves: the type from its
/// magic numbers, and the facts catalog outputs carry (pixel size, duration,
/// frame and sample rate). Header parsing only, no decoding and no tools, so
/// every adapter can fill an output the provider left out (worker-comfyui
/// reports no image size, fal no video length). Unknown formats give empty
/// facts; a truncated or hostile file never traps.
public struct MediaFacts: Sendable, Equatable {
    public var mediaType: String?
    public var width: Int?
    public var height: Int?
    public var durationSeconds: Double?
    public var fps: Double?
    public var sampleRate: Int?

    public init(mediaType: String? = nil, width: Int? = nil, height: Int? = nil, durationSeconds: Double? = nil, fps: Double? = nil, sampleRate: Int? = nil) {
        self.mediaType = mediaType
        self.width = width
        self.height = height
        self.durationSeconds = durationSeconds
        self.fps = fps
        self.sampleRate = sampleRate
    }
}

public enum MediaProbe {
    /// The media type the bytes announce, or nil when they announce none this probe knows.
    public static func sniff(_ data: Data) -> String? { facts(data).mediaType }

    public static func facts(_ data: Data) -> MediaFacts {
        let b = Bytes(data)
        if b.matches(0, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            return MediaFacts(mediaType: "image/png", width: b.be32(16).map(Int.init), height: b.be32(20).map(Int.init))
        }
        if b.matches(0, [0xFF, 0xD8, 0xFF]) { return jpeg(b) }
        if b.ascii(0, 6) == "GIF87a" || b.ascii(0, 6) == "GIF89a" {
            return MediaFacts(mediaType: "image/gif", width: b.le16(6).map(Int.init), height: b.le16(8).map(Int.init))
        }
        if b.ascii(0, 4) == "RIFF", b.ascii(8, 4) == "WEBP" { return webp(b) }
        if b.ascii(0, 4) == "RIFF", b.ascii(8, 4) == "WAVE" { return wav(b) }
        if b.ascii(4, 4) == "ftyp" { return isoMedia(b) }
        if b.matches(0, [0x1A, 0x45, 0xDF, 0xA3]) { return MediaFacts(mediaType: "video/webm") }
        if b.ascii(0, 4) == "OggS" { return MediaFacts(mediaType: "audio/ogg") }
        if b.ascii(0, 4) == "fLaC" { return flac(b) }
        if b.ascii(0, 3) == "ID3" || (b.byte(0) == 0xFF && (b.byte(1) ?? 0) & 0xE0 == 0xE0) { return mp3(b) }
        return MediaFacts()
    }

    // MARK: images

    static func jpeg(_ b: Bytes) -> MediaFacts {
        var facts = MediaFacts(mediaType: "image/jpeg")
        var i = 2
        while i + 9 < b.count, b.byte(i) == 0xFF {
            guard let marker = b.byte(i + 1), let length = b.be16(i + 2), length >= 2 else { break }
            // SOF0…SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
            if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker) {
                facts.height = b.be16(i + 5).map(Int.init)
                facts.width = b.be16(i + 7).map(Int.init)
                break
            }
            i += 2 + Int(length)
        }
        return facts
    }

    static func webp(_ b: Bytes) -> MediaFacts {
        var facts = MediaFacts(mediaType: "image/webp")
        switch b.ascii(12, 4) {
        case "VP8 ":
            facts.width = b.le16(26).map { Int($0 & 0x3FFF) }
            facts.height = b.le16(28).map { Int($0 & 0x3FFF) }
        case "VP8L":
            if let bits = b.le32(21) {
                facts.width = Int(bits & 0x3FFF) + 1
                facts.height = Int((bits >> 14) & 0x3FFF) + 1
            }
        case "VP8X":
            facts.width = b.le24(24).map { Int($0) + 1 }
            facts.height = b.le24(27).map { Int($0) + 1 }
        default: break
        }
        return facts
    }

    // MARK: audio

    static func wav(_ b: Bytes) -> MediaFacts {
        var facts = MediaFacts(mediaType: "audio/wav")
        var byteRate: UInt32?
        var i = 12
        while i + 8 <= b.count {
            guard let id = b.ascii(i, 4), let size = b.le32(i + 4) else { break }
            if id == "fmt " {
                facts.sampleRate = b.le32(i + 12).map(Int.init)
                byteRate = b.le32(i + 16)
            } else if id == "data", let rate = byteRate, rate > 0 {
                // A streaming writer may leave the size at its maximum: count what is there.
                let bytes = min(Int(size), b.count - i - 8)
                facts.durationSeconds = Double(bytes) / Double(rate)
                break
            }
            i += 8 + Int(size) + Int(size & 1)
        }
        return facts
    }

    static func flac(_ b: Bytes) -> MediaFacts {
        var facts = MediaFacts(mediaType: "audio/flac")
        // STREAMINFO is the first metadata block: 20 bits rate, 3 channels, 5 bits depth, 36 bits samples.
        guard b.byte(4).map({ $0 & 0x7F }) == 0, let hi = b.be32(18), let lo = b.be32(22) else { return facts }
        let rate = Int(hi >> 12)
        let samples = (UInt64(hi & 0xF) << 32) | UInt64(lo)
        facts.sampleRate = rate
        if rate > 0, samples > 0 { facts.durationSeconds = Double(samples) / Double(rate) }
        return facts
    }

    static func mp3(_ b: Bytes) -> MediaFacts {
        var facts = MediaFacts(mediaType: "audio/mpeg")
        var start = 0
        if b.ascii(0, 3) == "ID3", let s = b.synchsafe32(6) { start = 10 + Int(s) }
        guard let header = b.be32(start), header >> 21 == 0x7FF else { return facts }
        let version = (header >> 19) & 3          // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
        let layer = (header >> 17) & 3            // 1: layer III
        let bitrateIndex = Int((header >> 12) & 0xF), rateIndex = Int((header >> 10) & 3)
        let channelMode = (header >> 6) & 3
        guard layer == 1, version != 1, rateIndex < 3, bitrateIndex > 0, bitrateIndex < 15 else { return facts }
        let rates = version == 3 ? [44100, 48000, 32000] : version == 2 ? [22050, 24000, 16000] : [11025, 12000, 8000]
        let mpeg1Bitrates = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]
        let mpeg2Bitrates = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160]
        let sampleRate = rates[rateIndex]
        let kbps = (version == 3 ? mpeg1Bitrates : mpeg2Bitrates)[bitrateIndex]
        let samplesPerFrame = version == 3 ? 1152 : 576
        facts.sampleRate = sampleRate
        // A Xing/Info (VBR or LAME CBR) header in the first frame counts its frames.
        let side = version == 3 ? (channelMode == 3 ? 17 : 32) : (channelMode == 3 ? 9 : 17)
        let tag = start + 4 + side
        if ["Xing", "Info"].contains(b.ascii(tag, 4) ?? ""), let flags = b.be32(tag + 4), flags & 1 == 1, let frames = b.be32(tag + 8), frames > 0 {
            facts.durationSeconds = Double(frames) * Double(samplesPerFrame) / Double(sampleRate)
        } else if kbps > 0 {
            facts.durationSeconds = Double(b.count - start) * 8 / Double(kbps * 1000)
        }
        return facts
    }

    // MARK: MP4 / QuickTime

    static func isoMedia(_ b: Bytes) -> MediaFacts {
        let brand = b.ascii(8, 4) ?? ""
        var facts = MediaFacts(mediaType: brand == "qt  " ? "video/quicktime" : brand.hasPrefix("M4A") ? "audio/mp4" : "video/mp4")
        guard let moov = b.boxes(in: 0..<b.count).first(where: { $0.type == "moov" }) else { return facts }
        let children = b.boxes(in: moov.body)
        if let mvhd = children.first(where: { $0.type == "mvhd" }), let (scale, duration) = b.timing(mvhd), scale > 0 {
            facts.durationSeconds = Double(duration) / Double(scale)
        }
        for trak in children where trak.type == "trak" {
            let parts = b.boxes(in: trak.body)
            guard let mdia = parts.first(where: { $0.type == "mdia" }) else { continue }
            let media = b.boxes(in: mdia.body)
            guard let hdlr = media.first(where: { $0.type == "hdlr" }), b.ascii(hdlr.body.lowerBound + 8, 4) == "vide" else { continue }
            if let tkhd = parts.first(where: { $0.type == "tkhd" }), tkhd.body.count >= 84 {
                // Width and height are the last two 16.16 fixed-point fields.
                facts.width = b.be32(tkhd.body.upperBound - 8).map { Int($0 >> 16) }
                facts.height = b.be32(tkhd.body.upperBound - 4).map { Int($0 >> 16) }
            }
            if let mdhd = media.first(where: { $0.type == "mdhd" }), let (scale, duration) = b.timing(mdhd), scale > 0, duration > 0,
               let minf = media.first(where: { $0.type == "minf" }),
               let stbl = b.boxes(in: minf.body).first(where: { $0.type == "stbl" }),
               let stts = b.boxes(in: stbl.body).first(where: { $0.type == "stts" }),
               let entries = b.be32(stts.body.lowerBound + 4) {
                var samples: UInt64 = 0
                for e in 0..<min(Int(entries), 100_000) { samples += UInt64(b.be32(stts.body.lowerBound + 8 + e * 8) ?? 0) }
                if samples > 0 {
                    let fps = Double(samples) * Double(scale) / Double(duration)
                    facts.fps = (fps * 1000).rounded() / 1000
                }
            }
            break
        }
        return facts
    }

    /// Bounds-checked reads: every accessor answers nil past the end.
    struct Bytes {
        let data: [UInt8]
        init(_ data: Data) { self.data = [UInt8](data) }
        var count: Int { data.count }

        func byte(_ i: Int) -> UInt8? { i >= 0 && i < data.count ? data[i] : nil }
        func matches(_ i: Int, _ bytes: [UInt8]) -> Bool { i >= 0 && i + bytes.count <= data.count && Array(data[i..<(i + bytes.count)]) == bytes }
        func ascii(_ i: Int, _ n: Int) -> String? {
            guard i >= 0, n >= 0, i + n <= data.count else { return nil }
            return String(decoding: data[i..<(i + n)], as: UTF8.self)
        }
        func be16(_ i: Int) -> UInt16? { i >= 0 && i + 2 <= data.count ? UInt16(data[i]) << 8 | UInt16(data[i + 1]) : nil }
        func le16(_ i: Int) -> UInt16? { i >= 0 && i + 2 <= data.count ? UInt16(data[i + 1]) << 8 | UInt16(data[i]) : nil }
        func le24(_ i: Int) -> UInt32? { i >= 0 && i + 3 <= data.count ? UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 : nil }
        func be32(_ i: Int) -> UInt32? {
            guard i >= 0, i + 4 <= data.count else { return nil }
            return data[i..<(i + 4)].reduce(0) { $0 << 8 | UInt32($1) }
        }
        func le32(_ i: Int) -> UInt32? {
            guard i >= 0, i + 4 <= data.count else { return nil }
            return data[i..<(i + 4)].reversed().reduce(0) { $0 << 8 | UInt32($1) }
        }
        func be64(_ i: Int) -> UInt64? {
            guard let hi = be32(i), let lo = be32(i + 4) else { return nil }
            return UInt64(hi) << 32 | UInt64(lo)
        }
        func synchsafe32(_ i: Int) -> UInt32? {
            guard i >= 0, i + 4 <= data.count else { return nil }
            return data[i..<(i + 4)].reduce(0) { $0 << 7 | UInt32($1 & 0x7F) }
        }

        struct Box {
            var type: String
            var body: Range<Int>
        }

        /// The ISO-BMFF boxes directly inside `range`.
        func boxes(in range: Range<Int>) -> [Box] {
            var result: [Box] = []
            var i = range.lowerBound
            while i + 8 <= range.upperBound, result.count < 10_000 {
                guard let size32 = be32(i), let type = ascii(i + 4, 4) else { break }
                var header = 8
                var size = Int(size32)
                if size32 == 1 {
                    guard let large = be64(i + 8), large <= UInt64(Int.max) else { break }
                    size = Int(large)
                    header = 16
                } else if size32 == 0 {
                    size = range.upperBound - i
                }
                guard size >= header, i + size <= range.upperBound else { break }
                result.append(Box(type: type, body: (i + header)..<(i + size)))
                i += size
            }
            return result
        }

        /// Time scale and duration of an mvhd or mdhd box (version 0 or 1).
        func timing(_ box: Box) -> (UInt32, UInt64)? {
            let start = box.body.lowerBound
            guard let version = byte(start) else { return nil }
            if version == 1 {
                guard let scale = be32(start + 20), let duration = be64(start + 24) else { return nil }
                return (scale, duration)
            }
            guard let scale = be32(start + 12), let duration = be32(start + 16) else { return nil }
            return (scale, UInt64(duration))
        }
    }
}
