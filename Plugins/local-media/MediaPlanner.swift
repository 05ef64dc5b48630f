import Foundation
import SwitchyardPluginSDK

/// One ffmpeg command for a job, and what poll needs to describe its result.
struct MediaPlan {
    var request: ProcessRequest
    var extra: [String: JSONValue]
}

/// Turns a capability's inputs into an ffmpeg command. Files are named by
/// placeholder ({input:src}, {output:out}); the host substitutes paths.
struct MediaPlanner {
    typealias Probe = (_ artifact: String, _ field: String, _ n: Int) throws -> MediaProbe

    let inputs: [String: JSONValue]
    let capability: String

    /// Export profiles: frame size by name.
    static let profiles: [String: (Int, Int)] = ["vertical_9x16": (1080, 1920), "landscape_16x9": (1920, 1080), "square_1x1": (1080, 1080)]
    /// Named looks for video.grade, as ffmpeg filter chains.
    static let styles: [String: String] = [
        "cinematic": "curves=master='0/0.05 0.25/0.22 0.5/0.5 0.75/0.78 1/0.95',eq=saturation=0.9",
        "teal_orange": "colorbalance=rs=-0.08:bs=0.12:rh=0.12:gh=0.03:bh=-0.10,eq=saturation=1.1",
        "warm": "colorbalance=rm=0.08:bm=-0.08:rh=0.05:bh=-0.05",
        "cool": "colorbalance=rm=-0.06:bm=0.08:rh=-0.04:bh=0.06",
        "vintage": "curves=preset=vintage,eq=saturation=0.8",
        "noir": "hue=s=0,eq=contrast=1.35:brightness=-0.03",
        "bleach_bypass": "eq=saturation=0.45:contrast=1.3",
        "vivid": "vibrance=intensity=0.35,eq=saturation=1.12",
    ]
    static let deflickerModes = ["arithmetic": "am", "geometric": "gm", "harmonic": "hm", "quadratic": "qm",
                                 "cubic": "cm", "power": "pm", "median": "median"]
    /// Largest frame side the engine produces (8K).
    static let maxSide = 8192

    // MARK: validation (no I/O)

    /// File inputs each capability takes; every one must be an artifact in the host's store.
    var fileFields: [String] {
        switch capability {
        case "video.from_image", "image.upscale", "image.denoise": return ["image"]
        case "video.grade": return ["video", "lut"]
        case "video.mux_audio": return ["video", "audio"]
        case "video.concat": return ["clips"]
        case "image.storyboard": return ["images"]
        default: return ["video"]
        }
    }

    func diagnostics() -> [Diagnostic] {
        var found: [Diagnostic] = []
        func refuse(_ field: String, _ message: String, _ fix: String) {
            found.append(Diagnostic(code: "CONTRACT_MISMATCH", message: message, remediation: fix, field: "$.inputs.\(field)"))
        }
        for field in fileFields {
            guard let value = inputs[field] else { continue }
            let items = value.arrayValue ?? [value]
            for (i, item) in items.enumerated() where Self.artifact(item) == nil {
                let name = value.arrayValue == nil ? field : "\(field)[\(i)]"
                refuse(name, "\(name) must be an artifact in the host's store; local engines do not fetch URLs.", "Pass the file itself (--input \(field)=@file).")
            }
        }
        let required: [String: [String]] = ["video.mux_audio": ["video", "audio"], "video.concat": ["clips"], "image.storyboard": ["images"],
                                            "video.export": ["video", "profile"], "video.from_image": ["image"], "image.upscale": ["image"],
                                            "image.denoise": ["image"]]
        for field in required[capability] ?? ["video"] where inputs[field] == nil {
            refuse(field, "\(field) is required.", "Pass --input \(field)=…")
        }
        if capability == "video.export", let profile = inputs["profile"], Self.profiles[profile.stringValue ?? ""] == nil {
            refuse("profile", "profile must be one of \(Self.profiles.keys.sorted().joined(separator: ", ")).", "Pick a delivery profile.")
        }
        if capability == "video.grade", let style = inputs["style"], Self.styles[style.stringValue ?? ""] == nil {
            refuse("style", "style must be one of \(Self.styles.keys.sorted().joined(separator: ", ")).", "Pick a named look.")
        }
        if let scale = inputs["scale"], (scale.doubleValue ?? 0) <= 1 {
            refuse("scale", "scale must be a number above 1.", "Pass e.g. 2.")
        }
        if capability == "image.storyboard", let count = inputs["images"]?.arrayValue?.count, let columns = inputs["columns"]?.intValue, columns > count {
            found.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "columns (\(columns)) is more than the \(count) images; the extra columns stay empty.",
                                    remediation: "Lower columns.", field: "$.inputs.columns", severity: .warning))
        }
        for ignored in ["prompt", "negative_prompt", "seed"] where capability == "video.from_image" && inputs[ignored] != nil {
            found.append(Diagnostic(code: "INPUT_IGNORED", message: "\(ignored) is ignored: this engine moves over the still (motion), it does not generate.",
                                    remediation: "Use motion to choose the camera move.", field: "$.inputs.\(ignored)", severity: .warning))
        }
        return found
    }

    static func artifact(_ value: JSONValue?) -> String? {
        guard let handle = value?["artifact"]?.stringValue, handle.hasPrefix("sha256:") else { return nil }
        return handle
    }

    func number(_ name: String) -> Double? { inputs[name]?.doubleValue }
    func string(_ name: String) -> String? { inputs[name]?.stringValue }

    static func even(_ value: Double) -> Int { max(2, Int((value / 2).rounded()) * 2) }
    static func format(_ value: Double) -> String { String(format: "%.4f", value) }

    static func refusal(_ field: String, _ message: String, _ fix: String) -> PluginError {
        PluginError(code: "CONTRACT_MISMATCH", message: message, remediation: fix, field: "$.inputs.\(field)")
    }

    // MARK: encoding

    var quality: String { string("quality") ?? "standard" }

    /// H.264 yuv420p, moov atom first: plays everywhere and while downloading.
    func videoCodec(fps: Double? = nil) -> [String] {
        let (preset, crf) = quality == "low" ? ("veryfast", "28") : quality == "pro" ? ("slow", "16") : ("fast", "20")
        var args = ["-c:v", "libx264", "-preset", preset, "-crf", crf, "-pix_fmt", "yuv420p", "-profile:v", "high"]
        if let fps { args += ["-g", String(max(1, Int((fps * 2).rounded())))] }
        return args + ["-movflags", "+faststart"]
    }

    var audioCodec: [String] { ["-c:a", "aac", "-b:a", quality == "pro" ? "192k" : "160k", "-ar", "48000"] }

    func ffmpeg(_ args: [String], key: String, inputs files: [String: String], output: ProcessRequest.Output, duration: Double?) -> ProcessRequest {
        ProcessRequest(executable: "ffmpeg", args: ["-hide_banner", "-nostdin", "-y", "-progress", "pipe:1", "-nostats", "-loglevel", "error"] + args,
                       key: key, inputs: files, outputs: ["out": output],
                       progress: duration.map { ProcessRequest.Progress(durationSeconds: $0) })
    }

    static let mp4 = ProcessRequest.Output(fileExtension: "mp4", mediaType: "video/mp4")

    static func imageOutput(_ format: String) -> ProcessRequest.Output {
        switch format {
        case "jpeg": return .init(fileExtension: "jpg", mediaType: "image/jpeg")
        case "webp": return .init(fileExtension: "webp", mediaType: "image/webp")
        default: return .init(fileExtension: "png", mediaType: "image/png")
        }
    }

    static func imageCodec(_ format: String) -> [String] {
        switch format {
        case "jpeg": return ["-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj444p"]
        case "webp": return ["-c:v", "libwebp", "-quality", "90"]
        default: return ["-c:v", "png"]
        }
    }

    // MARK: planning

    func plan(key: String, probe: Probe) throws -> MediaPlan {
        switch capability {
        case "video.from_image": return try fromImage(key: key, probe: probe)
        case "video.grade": return try grade(key: key, probe: probe)
        case "image.upscale", "image.denoise": return try image(key: key, probe: probe)
        case "image.storyboard": return try storyboard(key: key)
        case "video.upscale", "video.deflicker": return try filterVideo(key: key, probe: probe)
        case "video.concat": return try concat(key: key, probe: probe)
        case "video.mux_audio": return try mux(key: key, probe: probe)
        case "video.export": return try export(key: key, probe: probe)
        default:
            throw PluginError(code: "CONTRACT_MISMATCH", message: "local-media does not offer \(capability).", remediation: "See `yard plugin info local-media`.", field: "$.capability")
        }
    }

    func probeVideo(_ field: String, _ value: JSONValue?, n: Int, probe: Probe) throws -> MediaProbe {
        let result = try probe(Self.artifact(value) ?? "", "$.inputs.\(field)", n)
        guard result.hasVideo, let w = result.width, let h = result.height, w > 0, h > 0 else {
            throw Self.refusal(field, "\(field) has no picture.", "Pass a video or image file.")
        }
        return result
    }

    /// Pan and zoom over a still (the Ken Burns effect) with zoompan, on a
    /// frame twice the output size so sub-pixel moves do not jitter.
    func fromImage(key: String, probe: Probe) throws -> MediaPlan {
        let source = try probeVideo("image", inputs["image"], n: 0, probe: probe)
        let fps = Double(inputs["fps"]?.intValue ?? 30)
        let duration = number("duration_seconds") ?? 5
        let frames = max(1, Int((duration * fps).rounded()))
        let short = Double(["480p": 480, "720p": 720, "1080p": 1080][string("resolution") ?? "720p"] ?? 720)
        let (sw, sh) = (Double(source.width!), Double(source.height!))
        let (w, h) = sw <= sh ? (Self.even(short), Self.even(short * sh / sw)) : (Self.even(short * sw / sh), Self.even(short))
        let last = Double(max(frames - 1, 1))
        let centre = (x: "iw/2-(iw/zoom/2)", y: "ih/2-(ih/zoom/2)")
        let (z, x, y): (String, String, String)
        switch string("motion") ?? "zoom_in" {
        case "zoom_out": (z, x, y) = ("1.25-0.25*on/\(last)", centre.x, centre.y)
        case "pan_left": (z, x, y) = ("1.2", "(iw-iw/zoom)*(1-on/\(last))", centre.y)
        case "pan_right": (z, x, y) = ("1.2", "(iw-iw/zoom)*on/\(last)", centre.y)
        case "pan_up": (z, x, y) = ("1.2", centre.x, "(ih-ih/zoom)*(1-on/\(last))")
        case "pan_down": (z, x, y) = ("1.2", centre.x, "(ih-ih/zoom)*on/\(last)")
        default: (z, x, y) = ("1+0.25*on/\(last)", centre.x, centre.y)
        }
        let filter = "scale=\(w * 2):\(h * 2):flags=lanczos,setsar=1,zoompan=z='\(z)':x='\(x)':y='\(y)':d=\(frames):s=\(w)x\(h):fps=\(Int(fps)),format=yuv420p"
        let args = ["-i", "{input:src}", "-vf", filter, "-frames:v", String(frames), "-r", String(Int(fps)), "-an"] + videoCodec(fps: fps) + ["{output:out}"]
        return MediaPlan(request: ffmpeg(args, key: key, inputs: ["src": Self.artifact(inputs["image"])!], output: Self.mp4, duration: Double(frames) / fps),
                         extra: ["kind": "video"])
    }

    /// LUT (blended by lut_strength), named look, eq adjustments, tone curve, then grain.
    func grade(key: String, probe: Probe) throws -> MediaPlan {
        let source = try probeVideo("video", inputs["video"], n: 0, probe: probe)
        var files = ["src": Self.artifact(inputs["video"])!]
        var chain: [String] = []
        var graph = "[0:v]"
        if let lut = Self.artifact(inputs["lut"]) {
            // lut3d picks the parser by file extension.
            files["lut.cube"] = lut
            let strength = number("lut_strength") ?? 1
            if strength >= 1 {
                chain.append("lut3d=file='{input:lut.cube}':interp=tetrahedral")
            } else {
                graph = "[0:v]split[base][toLut];[toLut]lut3d=file='{input:lut.cube}':interp=tetrahedral[luted];"
                    + "[luted][base]blend=all_mode=normal:all_opacity=\(Self.format(strength)),"
            }
        }
        if let style = string("style"), let look = Self.styles[style] { chain.append(look) }
        var eq: [String] = []
        for (name, key) in [("brightness", "brightness"), ("contrast", "contrast"), ("saturation", "saturation"), ("gamma", "gamma")] {
            if let value = number(name) { eq.append("\(key)=\(Self.format(value))") }
        }
        if !eq.isEmpty { chain.append("eq=" + eq.joined(separator: ":")) }
        if let curve = string("tone_map") {
            // Untagged sources are taken as BT.709; zscale needs to know where it starts.
            chain.append("setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv,zscale=t=linear:npl=100,format=gbrpf32le,"
                         + "zscale=p=bt709,tonemap=tonemap=\(curve):desat=0,zscale=t=bt709:m=bt709:r=tv")
        }
        if let grain = number("grain"), grain > 0 {
            chain.append("noise=c0s=\(max(1, Int((grain * 30).rounded()))):c0f=t+u")
        }
        chain.append("format=yuv420p")
        let filter = graph + chain.joined(separator: ",") + "[v]"
        var args = ["-i", "{input:src}", "-filter_complex", filter, "-map", "[v]"]
        if source.hasAudio { args += ["-map", "0:a:0"] + audioCodec }
        args += videoCodec(fps: source.fps) + ["{output:out}"]
        return MediaPlan(request: ffmpeg(args, key: key, inputs: files, output: Self.mp4, duration: source.duration), extra: ["kind": "video"])
    }

    /// Lanczos upscale or non-local-means denoise of a still.
    func image(key: String, probe: Probe) throws -> MediaPlan {
        let source = try probeVideo("image", inputs["image"], n: 0, probe: probe)
        let format = string("output_format") ?? "png"
        let filter: String
        if capability == "image.upscale" {
            let scale = number("scale") ?? 2
            let (w, h) = (Int((Double(source.width!) * scale).rounded()), Int((Double(source.height!) * scale).rounded()))
            guard w <= Self.maxSide, h <= Self.maxSide else {
                throw Self.refusal("scale", "scale \(scale) would make a \(w)x\(h) image; this engine stops at \(Self.maxSide) pixels a side.", "Use a smaller scale.")
            }
            filter = "scale=\(w):\(h):flags=lanczos"
        } else {
            let strength = number("strength") ?? 0.5
            filter = "nlmeans=s=\(Self.format(1 + strength * 9)):p=7:r=15"
        }
        let args = ["-i", "{input:src}", "-vf", filter, "-frames:v", "1", "-update", "1"] + Self.imageCodec(format) + ["{output:out}"]
        return MediaPlan(request: ffmpeg(args, key: key, inputs: ["src": Self.artifact(inputs["image"])!], output: Self.imageOutput(format), duration: nil),
                         extra: ["kind": "image"])
    }

    /// Panels scaled into equal letterboxed cells, tiled in reading order.
    func storyboard(key: String) throws -> MediaPlan {
        let images = (inputs["images"]?.arrayValue ?? []).compactMap(Self.artifact)
        let columns = inputs["columns"]?.intValue ?? Int(Double(images.count).squareRoot().rounded(.up))
        let rows = Int((Double(images.count) / Double(columns)).rounded(.up))
        let cellWidth = inputs["cell_width"]?.intValue ?? 480
        let (aw, ah) = ["9:16": (9.0, 16.0), "1:1": (1.0, 1.0), "4:3": (4.0, 3.0)][string("cell_aspect") ?? "16:9"] ?? (16.0, 9.0)
        let (cw, ch) = (Self.even(Double(cellWidth)), Self.even(Double(cellWidth) * ah / aw))
        let gap = inputs["gap"]?.intValue ?? 8
        let colour = "0x" + (string("background") ?? "#000000").dropFirst()
        var files: [String: String] = [:]
        var args: [String] = []
        var graph: [String] = []
        var labels = ""
        for (i, artifact) in images.enumerated() {
            files["p\(i)"] = artifact
            args += ["-i", "{input:p\(i)}"]
            graph.append("[\(i):v]scale=\(cw):\(ch):force_original_aspect_ratio=decrease:flags=lanczos,pad=\(cw):\(ch):(ow-iw)/2:(oh-ih)/2:color=\(colour),setsar=1,format=rgb24[c\(i)]")
            labels += "[c\(i)]"
        }
        for i in images.count..<(rows * columns) {
            graph.append("color=c=\(colour):s=\(cw)x\(ch):d=0.04,format=rgb24[c\(i)]")
            labels += "[c\(i)]"
        }
        graph.append("\(labels)concat=n=\(rows * columns):v=1:a=0,tile=\(columns)x\(rows):margin=\(gap):padding=\(gap):color=\(colour)[out]")
        let format = string("output_format") ?? "png"
        args += ["-filter_complex", graph.joined(separator: ";"), "-map", "[out]", "-frames:v", "1", "-update", "1"] + Self.imageCodec(format) + ["{output:out}"]
        return MediaPlan(request: ffmpeg(args, key: key, inputs: files, output: Self.imageOutput(format), duration: nil),
                         extra: ["kind": "image", "columns": .number(Double(columns)), "rows": .number(Double(rows))])
    }

    /// Lanczos upscale (with blended frame-rate conversion) or deflicker: one video filter.
    func filterVideo(key: String, probe: Probe) throws -> MediaPlan {
        let source = try probeVideo("video", inputs["video"], n: 0, probe: probe)
        var filters: [String] = []
        var fps = source.fps
        if capability == "video.upscale" {
            let scale = number("scale") ?? 2
            let (w, h) = (Self.even(Double(source.width!) * scale), Self.even(Double(source.height!) * scale))
            guard w <= Self.maxSide, h <= Self.maxSide else {
                throw Self.refusal("scale", "scale \(scale) would make \(w)x\(h) video; this engine stops at \(Self.maxSide) pixels a side.", "Use a smaller scale.")
            }
            filters.append("scale=\(w):\(h):flags=lanczos,setsar=1")
            if let target = inputs["target_fps"]?.intValue {
                filters.append("framerate=fps=\(target)")
                fps = Double(target)
            }
        } else {
            let mode = Self.deflickerModes[string("mode") ?? "arithmetic"] ?? "am"
            filters.append("deflicker=size=\(inputs["window_frames"]?.intValue ?? 5):mode=\(mode)")
        }
        filters.append("format=yuv420p")
        var args = ["-i", "{input:src}", "-map", "0:v:0", "-vf", filters.joined(separator: ",")]
        if source.hasAudio { args += ["-map", "0:a:0"] + audioCodec }
        args += videoCodec(fps: fps) + ["{output:out}"]
        return MediaPlan(request: ffmpeg(args, key: key, inputs: ["src": Self.artifact(inputs["video"])!], output: Self.mp4, duration: source.duration),
                         extra: ["kind": "video"])
    }

    /// Clips normalized to the first one's size and rate, joined by cuts or xfade;
    /// sound joined alongside (silence for clips without any) when any clip has it.
    func concat(key: String, probe: Probe) throws -> MediaPlan {
        let clips = (inputs["clips"]?.arrayValue ?? []).compactMap(Self.artifact)
        let probes = try clips.enumerated().map { i, artifact in try probeVideo("clips[\(i)]", ["artifact": .string(artifact)], n: i, probe: probe) }
        let first = probes[0]
        let (w, h, fps) = (Self.even(Double(first.width!)), Self.even(Double(first.height!)), first.fps ?? 30)
        let durations = probes.map { $0.duration ?? 0 }
        let transition = string("transition") ?? "cut"
        let fade = transition == "cut" ? 0 : (number("transition_seconds") ?? 0.5)
        if fade > 0, let shortest = durations.min(), fade >= shortest {
            throw Self.refusal("transition_seconds", "transition_seconds (\(fade)) must be shorter than the shortest clip (\(Self.format(shortest)) s).", "Shorten the transition.")
        }
        let withSound = probes.contains { $0.hasAudio }
        var files: [String: String] = [:]
        var args: [String] = []
        var graph: [String] = []
        for (i, artifact) in clips.enumerated() {
            files["c\(i)"] = artifact
            args += ["-i", "{input:c\(i)}"]
            graph.append("[\(i):v]scale=\(w):\(h):force_original_aspect_ratio=decrease,pad=\(w):\(h):(ow-iw)/2:(oh-ih)/2,setsar=1,fps=\(Self.format(fps)),format=yuv420p,settb=AVTB[v\(i)]")
            if withSound {
                let d = Self.format(durations[i])
                graph.append(probes[i].hasAudio
                    ? "[\(i):a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,apad,atrim=0:\(d),asetpts=PTS-STARTPTS[a\(i)]"
                    : "anullsrc=r=48000:cl=stereo,atrim=0:\(d),aformat=sample_fmts=fltp:channel_layouts=stereo[a\(i)]")
            }
        }
        if fade == 0 {
            let labels = clips.indices.map { "[v\($0)]" + (withSound ? "[a\($0)]" : "") }.joined()
            graph.append("\(labels)concat=n=\(clips.count):v=1:a=\(withSound ? 1 : 0)[v]" + (withSound ? "[a]" : ""))
        } else {
            let kind = transition == "fade_through_black" ? "fadeblack" : "fade"
            var video = "[v0]", audio = "[a0]", offset = 0.0
            for i in 1..<clips.count {
                offset += durations[i - 1] - fade
                let last = i == clips.count - 1
                graph.append("\(video)[v\(i)]xfade=transition=\(kind):duration=\(Self.format(fade)):offset=\(Self.format(offset))" + (last ? "[v]" : "[x\(i)]"))
                video = "[x\(i)]"
                if withSound {
                    graph.append("\(audio)[a\(i)]acrossfade=d=\(Self.format(fade))" + (last ? "[a]" : "[y\(i)]"))
                    audio = "[y\(i)]"
                }
            }
        }
        args += ["-filter_complex", graph.joined(separator: ";"), "-map", "[v]"]
        if withSound { args += ["-map", "[a]"] + audioCodec }
        args += videoCodec(fps: fps) + ["{output:out}"]
        let total = durations.reduce(0, +) - Double(clips.count - 1) * fade
        return MediaPlan(request: ffmpeg(args, key: key, inputs: files, output: Self.mp4, duration: total), extra: ["kind": "video"])
    }

    /// The new track (gain applied, optionally mixed over the original sound),
    /// cut or padded to the chosen length; the picture is copied when it already
    /// is H.264 yuv420p and needs no extending.
    func mux(key: String, probe: Probe) throws -> MediaPlan {
        let video = try probeVideo("video", inputs["video"], n: 0, probe: probe)
        let audio = try probe(Self.artifact(inputs["audio"]) ?? "", "$.inputs.audio", 1)
        guard audio.hasAudio else { throw Self.refusal("audio", "audio has no sound stream.", "Pass an audio file (wav, mp3, …).") }
        let (dv, da) = (video.duration ?? 0, audio.duration ?? 0)
        let length: Double
        switch string("length") ?? "video" {
        case "audio": length = da
        case "shortest": length = min(dv, da)
        default: length = dv
        }
        let volume = Self.format(number("volume") ?? 1)
        var graph = ["[1:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,volume=\(volume),apad[new]"]
        if inputs["keep_original_audio"]?.boolValue == true, video.hasAudio {
            graph.append("[0:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,apad[old]")
            graph.append("[new][old]amix=inputs=2:duration=first:normalize=0,atrim=0:\(Self.format(length))[a]")
        } else {
            graph.append("[new]atrim=0:\(Self.format(length))[a]")
        }
        let extend = length > dv + 0.05
        // A copied stream cannot be cut between keyframes: shortening re-encodes too.
        let copyable = video.videoCodec == "h264" && video.pixelFormat == "yuv420p" && abs(length - dv) <= 0.05
        var args = ["-i", "{input:src}", "-i", "{input:sound}"]
        if extend {
            graph.append("[0:v]tpad=stop_mode=clone:stop_duration=\(Self.format(length - dv)),format=yuv420p[v]")
            args += ["-filter_complex", graph.joined(separator: ";"), "-map", "[v]", "-map", "[a]"] + videoCodec(fps: video.fps)
        } else {
            args += ["-filter_complex", graph.joined(separator: ";"), "-map", "0:v:0", "-map", "[a]"]
            args += copyable ? ["-c:v", "copy", "-movflags", "+faststart"] : videoCodec(fps: video.fps)
        }
        args += audioCodec + ["-t", Self.format(length), "{output:out}"]
        return MediaPlan(request: ffmpeg(args, key: key, inputs: ["src": Self.artifact(inputs["video"])!, "sound": Self.artifact(inputs["audio"])!],
                                         output: Self.mp4, duration: length),
                         extra: ["kind": "video", "codecs": true])
    }

    /// Frame size and aspect for a platform (crop, pad or blurred pad), H.264
    /// high profile yuv420p, AAC stereo 48 kHz (silence when the source has no
    /// sound, so every export carries both streams), keyframes every 2 s, faststart.
    func export(key: String, probe: Probe) throws -> MediaPlan {
        let source = try probeVideo("video", inputs["video"], n: 0, probe: probe)
        let (w, h) = Self.profiles[string("profile") ?? ""] ?? (1080, 1920)
        let fps = inputs["fps"]?.intValue.map(Double.init) ?? min(source.fps ?? 30, 60)
        let picture: String
        switch string("fit") ?? "crop" {
        case "pad":
            picture = "[0:v]scale=\(w):\(h):force_original_aspect_ratio=decrease:flags=lanczos,pad=\(w):\(h):(ow-iw)/2:(oh-ih)/2:color=black"
        case "blur":
            picture = "[0:v]split[bg][fg];[bg]scale=\(w):\(h):force_original_aspect_ratio=increase,crop=\(w):\(h),boxblur=20:2[back];"
                + "[fg]scale=\(w):\(h):force_original_aspect_ratio=decrease:flags=lanczos[front];[back][front]overlay=(W-w)/2:(H-h)/2"
        default:
            picture = "[0:v]scale=\(w):\(h):force_original_aspect_ratio=increase:flags=lanczos,crop=\(w):\(h)"
        }
        var graph = [picture + ",setsar=1,fps=\(Self.format(fps)),format=yuv420p[v]"]
        var args = ["-i", "{input:src}"]
        if source.hasAudio {
            graph.append("[0:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo[a]")
        } else {
            args += ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo"]
            graph.append("[1:a]aformat=sample_fmts=fltp:channel_layouts=stereo[a]")
        }
        args += ["-filter_complex", graph.joined(separator: ";"), "-map", "[v]", "-map", "[a]", "-shortest"]
        args += videoCodec(fps: fps) + audioCodec + ["-ac", "2"]
        if let duration = source.duration { args += ["-t", Self.format(duration)] }
        args += ["{output:out}"]
        return MediaPlan(request: ffmpeg(args, key: key, inputs: ["src": Self.artifact(inputs["video"])!], output: Self.mp4, duration: source.duration),
                         extra: ["kind": "video", "codecs": true])
    }
}
