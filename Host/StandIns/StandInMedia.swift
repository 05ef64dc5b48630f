import Foundation

/// Real, small media files the stand-ins answer with, so what an adapter
/// harvests decodes like a provider's result would (ffmpeg and ffprobe read
/// them; the next pipeline step can work on them): H.264 MP4 clips of the
/// lengths video providers render, an MP3 like PlayAI's, WAV speech, PNGs of
/// any size. The clips are 160x90 at 8 fps, so a test spends no time on them.
public enum StandInMedia {
    /// A clip of 5, 6 or 10 seconds (the lengths Kling, fal's Kling and MiniMax render): the nearest at or above `seconds`.
    public static func clip(seconds: Double) -> Data {
        if seconds > 6 { return Data(PackageResources.clip_10s_mp4) }
        if seconds > 5 { return Data(PackageResources.clip_6s_mp4) }
        return Data(PackageResources.clip_5s_mp4)
    }

    /// The length of `clip(seconds:)`.
    public static func clipSeconds(_ seconds: Double) -> Double { seconds > 6 ? 10 : seconds > 5 ? 6 : 5 }

    /// Three seconds of speech-band tone, MPEG-1 layer III (PlayAI answers MP3).
    public static var speechMP3: Data { Data(PackageResources.speech_3s_mp3) }
    public static let speechMP3Seconds = 3.0

    /// `seconds` of a quiet tone as 16-bit mono PCM WAV.
    public static func wav(seconds: Double, sampleRate: Int = 24_000) -> Data {
        let samples = max(1, Int(seconds * Double(sampleRate)))
        var pcm = Data(capacity: samples * 2)
        for i in 0..<samples {
            let value = Int16(sin(Double(i) * 2 * .pi * 220 / Double(sampleRate)) * 2_000)
            pcm.append(UInt8(truncatingIfNeeded: value))
            pcm.append(UInt8(truncatingIfNeeded: value >> 8))
        }
        func le32(_ v: Int) -> [UInt8] { [UInt8(v & 255), UInt8(v >> 8 & 255), UInt8(v >> 16 & 255), UInt8(v >> 24 & 255)] }
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 255), UInt8(v >> 8 & 255)] }
        var wav = Data("RIFF".utf8) + le32(36 + pcm.count) + Data("WAVEfmt ".utf8)
        wav += le32(16) + le16(1) + le16(1) + le32(sampleRate) + le32(sampleRate * 2) + le16(2) + le16(16)
        wav += Data("data".utf8) + le32(pcm.count) + pcm
        return wav
    }

    /// How long a text takes to say at about 2.5 words a second (never under a second).
    public static func speechSeconds(_ text: String) -> Double {
        max(1, Double(text.split(whereSeparator: \.isWhitespace).count) / 2.5)
    }

    /// A real PNG of that size, its colour derived from `seed`.
    public static func png(width: Int, height: Int, seed: String) -> Data {
        TinyPNG.encode(width: max(1, width), height: max(1, height), rgb: TinyPNG.color(of: Data(seed.utf8)))
    }
}
