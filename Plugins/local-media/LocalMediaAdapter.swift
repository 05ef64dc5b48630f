import Foundation
import SwitchyardPluginSDK

// Local media work with ffmpeg, run through the host's sy.process/1: the
// plugin plans one ffmpeg command per job (probing its inputs with ffprobe
// first), the host runs it and reports progress, and poll probes the result
// so the outputs carry real duration, size and codecs. Free, no keys.

@_cdecl("sy_plugin_entry_v1") public func syPluginEntry(_ host: UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>? { PluginExport.entry(LocalMediaAdapter.self, host: host) }

struct LocalMediaAdapter: EngineAdapter {
    static let capabilities = ["video.from_image", "video.grade", "image.upscale", "image.denoise", "image.storyboard",
                               "video.upscale", "video.deflicker", "video.concat", "video.mux_audio", "video.export"]

    init() {}

    var descriptor: PluginDescriptor {
        PluginDescriptor(id: "local-media", version: "0.1.0", name: "Local media (ffmpeg)", capabilities: Self.capabilities,
                         extensions: [SY_EXTENSION_RECONCILE])
    }

    func validate(_ request: JobRequest, context: HostContext) -> [Diagnostic] {
        guard Self.capabilities.contains(request.capability) else {
            return [Diagnostic(code: "CONTRACT_MISMATCH", message: "local-media does not offer \(request.capability).",
                               remediation: "Use one of \(Self.capabilities.joined(separator: ", ")).", field: "$.capability")]
        }
        return MediaPlanner(inputs: request.inputs, capability: request.capability).diagnostics()
    }

    func submit(_ request: JobRequest, context: HostContext) throws -> SubmitResult {
        if let first = validate(request, context: context).first(where: { $0.severity == .error }) {
            throw PluginError(code: first.code, message: first.message, remediation: first.remediation, field: first.field)
        }
        if let missing = try context.missingExecutable("ffmpeg") ?? context.missingExecutable("ffprobe") { throw missing }
        let key = ProcessJob.key(request.job)
        let plan = try MediaPlanner(inputs: request.inputs, capability: request.capability)
            .plan(key: key, probe: { artifact, field, n in try MediaProbe.run(artifact, key: "\(key)/probe-\(n)", field: field, context: context) })
        context.log(.info, "local-media: \(request.capability) → ffmpeg \(plan.request.args.joined(separator: " "))")
        let ref = try ProcessJob.start(plan.request, extra: .object(plan.extra), context: context)
        return .ref(ref, nextPollAfterMs: 100)
    }

    func poll(_ request: RefRequest, context: HostContext) throws -> PollResult {
        switch try ProcessJob.poll(request.ref, context: context) {
        case .running(let result), .ended(let result):
            return result
        case .succeeded(let status, let extra):
            guard let output = status.outputs?["out"] else {
                return PollResult(state: .failed, error: PluginError(code: "ENGINE_ERROR", message: "ffmpeg finished without writing its output.",
                                                                     remediation: "Check the inputs; the job's log holds ffmpeg's messages."))
            }
            let handle = request.ref["handle"]?.stringValue ?? "adhoc"
            let probe = try MediaProbe.run(output.artifact, key: "\(handle)/result", field: "$.outputs", context: context)
            return PollResult(state: .succeeded, progress: 1, outputs: Self.outputs(output, probe: probe, extra: extra))
        }
    }

    /// The capability's output document: only members its catalog schema has.
    static func outputs(_ output: ArtifactHandle, probe: MediaProbe, extra: JSONValue) -> [String: JSONValue] {
        var file: [String: JSONValue] = ["artifact": .string(output.artifact), "size": .number(Double(output.size))]
        if let type = output.mediaType { file["media_type"] = .string(type) }
        var result: [String: JSONValue] = [:]
        let width = probe.width.map { JSONValue.number(Double($0)) }, height = probe.height.map { JSONValue.number(Double($0)) }
        if extra["kind"]?.stringValue == "image" {
            result = ["image": .object(file), "width": width ?? 1, "height": height ?? 1]
            if let columns = extra["columns"], let rows = extra["rows"] {
                result["columns"] = columns
                result["rows"] = rows
            }
            return result
        }
        result = ["video": .object(file), "duration_seconds": .number(max(probe.duration ?? 0, 0.001))]
        if let width { result["width"] = width }
        if let height { result["height"] = height }
        if let fps = probe.fps { result["fps"] = .number(fps) }
        if extra["codecs"]?.boolValue == true {
            if let codec = probe.videoCodec { result["video_codec"] = .string(codec) }
            if let codec = probe.audioCodec { result["audio_codec"] = .string(codec) }
            if let format = probe.pixelFormat { result["pixel_format"] = .string(format) }
        }
        return result
    }

    /// A host that died between starting the child and storing the ref took
    /// the child with it: nothing was spent, so the job is simply submitted again.
    func reconcile(_ request: JobRequest, context: HostContext) throws -> JSONValue? { nil }

    func cancel(_ request: RefRequest, context: HostContext) throws -> CancelResult {
        try ProcessJob.cancel(request.ref, context: context)
    }

    func health(_ request: ConfigRequest, context: HostContext) -> HealthReport {
        ProcessJob.health(["ffmpeg", "ffprobe"], context: context)
    }
}
