import Foundation
import SwitchyardPluginSDK

/// What ffprobe says about one file: enough to plan a command and to report outputs.
struct MediaProbe: Sendable {
    var duration: Double?
    var width: Int?
    var height: Int?
    var fps: Double?
    var videoCodec: String?
    var audioCodec: String?
    var pixelFormat: String?
    var hasVideo: Bool { videoCodec != nil }
    var hasAudio: Bool { audioCodec != nil }

    /// Runs ffprobe on an artifact (a short child, waited for in the call).
    static func run(_ artifact: String, key: String, field: String, context: HostContext) throws -> MediaProbe {
        let request = ProcessRequest(executable: "ffprobe",
                                     args: ["-v", "error", "-print_format", "json", "-show_format", "-show_streams", "{input:media}"],
                                     key: key, inputs: ["media": artifact], timeoutMs: 60_000)
        let status = try context.runProcess(request, timeoutMs: 60_000)
        guard status.succeeded, let stdout = status.stdout,
              let doc = try? JSONDecoder().decode(JSONValue.self, from: Data(stdout.utf8)) else {
            throw PluginError(code: "CONTRACT_MISMATCH", message: "\(field) is not a media file ffprobe can read\(status.stderrTail.map { ": \($0.trimmingCharacters(in: .whitespacesAndNewlines).suffix(200))" } ?? "").",
                              remediation: "Pass a valid image, video or audio file.", field: field)
        }
        return MediaProbe(doc)
    }

    init(_ doc: JSONValue) {
        let streams = doc["streams"]?.arrayValue ?? []
        let video = streams.first { $0["codec_type"]?.stringValue == "video" && $0["disposition"]?["attached_pic"]?.intValue != 1 }
        let audio = streams.first { $0["codec_type"]?.stringValue == "audio" }
        duration = doc["format"]?["duration"]?.stringValue.flatMap(Double.init) ?? video?["duration"]?.stringValue.flatMap(Double.init)
        width = video?["width"]?.intValue
        height = video?["height"]?.intValue
        fps = (video?["avg_frame_rate"]?.stringValue).flatMap(Self.rate) ?? (video?["r_frame_rate"]?.stringValue).flatMap(Self.rate)
        videoCodec = video?["codec_name"]?.stringValue
        audioCodec = audio?["codec_name"]?.stringValue
        pixelFormat = video?["pix_fmt"]?.stringValue
    }

    init() {}

    /// "30000/1001" → 29.97; nil for "0/0".
    static func rate(_ text: String) -> Double? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let n = Double(parts[0]), let d = Double(parts[1]), n > 0, d > 0 else { return Double(text) }
        return (n / d * 1000).rounded() / 1000
    }
}
