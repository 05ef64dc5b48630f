import Foundation
import SwitchyardPluginSDK

// Text to speech on this machine with espeak-ng, run through the host's
// sy.process/1. The text goes in on stdin (never on the command line), the
// WAV comes back as an artifact; its length is read from the WAV header.

@_cdecl("sy_plugin_entry_v1") public func syPluginEntry(_ host: UnsafePointer<sy_host_t>?) -> UnsafePointer<sy_plugin_t>? { PluginExport.entry(LocalSpeechAdapter.self, host: host) }

struct LocalSpeechAdapter: EngineAdapter {
    static let capability = "audio.speech"
    /// espeak-ng speaks about 175 words a minute at speed 1.
    static let baseWordsPerMinute = 175.0
    static let voicePattern = try! NSRegularExpression(pattern: "^[a-z]{2,3}(-[a-z0-9]{1,8})*(\\+[a-z0-9]{1,12})?$")

    init() {}

    var descriptor: PluginDescriptor {
        PluginDescriptor(id: "local-speech", version: "0.1.0", name: "Local speech (espeak-ng)", capabilities: [Self.capability],
                         extensions: [SY_EXTENSION_RECONCILE])
    }

    func validate(_ request: JobRequest, context: HostContext) -> [Diagnostic] {
        guard request.capability == Self.capability else {
            return [Diagnostic(code: "CONTRACT_MISMATCH", message: "local-speech does not offer \(request.capability).",
                               remediation: "Use audio.speech.", field: "$.capability")]
        }
        var found: [Diagnostic] = []
        if request.inputs["text"]?.stringValue?.isEmpty != false {
            found.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "text is required and must not be empty.", remediation: "Pass --input text=…", field: "$.inputs.text"))
        }
        if let voice = request.inputs["voice"] ?? request.inputs["language"].map({ .string($0.stringValue?.lowercased() ?? "") }),
           !matches(voice.stringValue ?? "") {
            found.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "\(voice.stringValue ?? "voice") is not an espeak-ng voice name.",
                                    remediation: "Use a name from `espeak-ng --voices`, e.g. en-us or en-gb+f3.", field: "$.inputs.voice"))
        }
        if let speed = request.inputs["speed"], !(0.5...2.0).contains(speed.doubleValue ?? -1) {
            found.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "speed must be a number from 0.5 to 2.", remediation: "Pass e.g. 1.1.", field: "$.inputs.speed"))
        }
        if request.inputs["voice_sample"] != nil {
            found.append(Diagnostic(code: "CONTRACT_MISMATCH", message: "espeak-ng cannot clone a voice.", remediation: "Pass voice instead, or use an engine that clones voices.", field: "$.inputs.voice_sample"))
        }
        return found
    }

    func matches(_ voice: String) -> Bool {
        Self.voicePattern.firstMatch(in: voice, range: NSRange(voice.startIndex..., in: voice)) != nil
    }

    func submit(_ request: JobRequest, context: HostContext) throws -> SubmitResult {
        if let first = validate(request, context: context).first(where: { $0.severity == .error }) {
            throw PluginError(code: first.code, message: first.message, remediation: first.remediation, field: first.field)
        }
        let voice = request.inputs["voice"]?.stringValue ?? request.inputs["language"]?.stringValue?.lowercased() ?? "en-us"
        let words = Int((Self.baseWordsPerMinute * (request.inputs["speed"]?.doubleValue ?? 1)).rounded())
        // -b 1: stdin is UTF-8; --stdin reads all of it (not line by line); -w: write a WAV file.
        let process = ProcessRequest(executable: "espeak-ng", args: ["-v", voice, "-s", String(words), "-b", "1", "--stdin", "-w", "{output:out}"],
                                     key: ProcessJob.key(request.job), outputs: ["out": .init(fileExtension: "wav", mediaType: "audio/wav")],
                                     stdin: request.inputs["text"]?.stringValue ?? "", timeoutMs: 120_000)
        return .ref(try ProcessJob.start(process, context: context), nextPollAfterMs: 50)
    }

    func poll(_ request: RefRequest, context: HostContext) throws -> PollResult {
        switch try ProcessJob.poll(request.ref, context: context) {
        case .running(let result), .ended(let result):
            return result
        case .succeeded(let status, _):
            guard let audio = status.outputs?["out"] else {
                return PollResult(state: .failed, error: PluginError(code: "ENGINE_ERROR", message: "espeak-ng wrote no audio\(status.stderrTail.map { ": \($0.prefix(200))" } ?? "").",
                                                                     remediation: "Check the voice name with `espeak-ng --voices`."))
            }
            let header = try context.readArtifact(audio.artifact).prefix(4096)
            guard let wave = WaveHeader(header) else {
                return PollResult(state: .failed, error: PluginError(code: "ENGINE_ERROR", message: "espeak-ng's output is not a WAV file.", remediation: "Check the espeak-ng installation."))
            }
            let file: [String: JSONValue] = ["artifact": .string(audio.artifact), "size": .number(Double(audio.size)), "media_type": "audio/wav"]
            return PollResult(state: .succeeded, progress: 1, outputs: [
                "audio": .object(file),
                "duration_seconds": .number(max(wave.durationSeconds(fileSize: audio.size), 0.001)),
                "sample_rate": .number(Double(wave.sampleRate)),
            ])
        }
    }

    /// A host that died between starting the child and storing the ref took
    /// the child with it: nothing was spent, so the job is simply submitted again.
    func reconcile(_ request: JobRequest, context: HostContext) throws -> JSONValue? { nil }

    func cancel(_ request: RefRequest, context: HostContext) throws -> CancelResult {
        try ProcessJob.cancel(request.ref, context: context)
    }

    func health(_ request: ConfigRequest, context: HostContext) -> HealthReport {
        ProcessJob.health(["espeak-ng"], context: context)
    }
}

/// The fmt and data chunks of a RIFF/WAVE file: enough for the duration.
struct WaveHeader {
    var sampleRate: Int
    var byteRate: Int
    var dataOffset: Int
    var dataSize: Int

    init?(_ bytes: Data) {
        let b = [UInt8](bytes)
        guard b.count >= 12, b[0..<4] == [0x52, 0x49, 0x46, 0x46], b[8..<12] == [0x57, 0x41, 0x56, 0x45] else { return nil }
        func u32(_ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 | Int(b[i + 2]) << 16 | Int(b[i + 3]) << 24 }
        var offset = 12
        var rate = 0, byteRate = 0
        while offset + 8 <= b.count {
            let size = u32(offset + 4)
            if b[offset..<offset + 4] == [0x66, 0x6d, 0x74, 0x20], offset + 20 <= b.count {  // "fmt "
                rate = u32(offset + 12)
                byteRate = u32(offset + 16)
            } else if b[offset..<offset + 4] == [0x64, 0x61, 0x74, 0x61] {  // "data"
                guard rate > 0, byteRate > 0 else { return nil }
                sampleRate = rate
                self.byteRate = byteRate
                dataOffset = offset + 8
                dataSize = size
                return
            }
            offset += 8 + size + (size & 1)
        }
        return nil
    }

    /// espeak-ng writing to a file leaves the data size at 0x7fffffff when it
    /// cannot seek back; the file's length is the truth then.
    func durationSeconds(fileSize: Int) -> Double {
        let bytes = min(dataSize, max(fileSize - dataOffset, 0))
        return Double(bytes) / Double(byteRate)
    }
}
