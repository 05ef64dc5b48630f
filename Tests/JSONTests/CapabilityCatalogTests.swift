import Foundation
import XCTest
import SwitchyardJSON

/// Holds the capability catalog (`Registry/capabilities/*.json`) to its documented format
/// (`Registry/capabilities/README.md`) and checks that each schema accepts realistic
/// inputs and rejects the mistakes a pipeline author makes: missing members, wrong types,
/// out-of-range values and unknown members.
///
/// Samples are JSON text so they read like the requests they stand for.
final class CapabilityCatalogTests: XCTestCase {

    // MARK: - Locating the catalog

    /// Tests/JSONTests/<this file> → the repository root.
    static let repoRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let catalogDirectory = repoRoot.appendingPathComponent("Registry/capabilities")

    static let expectedIDs: Set<String> = [
        "image.generate", "image.edit", "image.upscale",
        "video.from_image", "video.from_text", "video.lipsync", "video.upscale", "video.grade", "video.concat",
        "audio.speech", "audio.music", "model.download", "comfy.workflow", "billing.meter",
        "debug.echo", "debug.ping",
        "video.deflicker", "video.mux_audio", "video.export", "image.storyboard", "image.denoise",
    ]

    /// The schema keywords the catalog may use; anything else must start with `x-`.
    /// Narrower than what `JSONSchema` compiles (it also takes `definitions`, `$id`, `$schema`).
    static let allowedKeywords: Set<String> = [
        "type", "enum", "const", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
        "uniqueItems", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
        "maxLength", "pattern", "format", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "$ref", "$defs",
        "default", "title", "description", "examples", "$comment",
    ]
    static let knownAnnotations: Set<String> = ["x-media-types", "x-max-bytes", "x-identity"]

    /// The only object schema allowed to take unknown members: a ComfyUI graph is open-ended.
    static let openObjects: Set<String> = ["comfy.workflow input_schema#/properties/workflow"]

    /// Inputs that carry a real person's face or voice; each needs `consent_given`.
    static let identityInputs: Set<String> = [
        "image.edit#/properties/reference_face",
        "video.lipsync#/properties/face_video",
        "video.lipsync#/properties/face_image",
        "audio.speech#/properties/voice_sample",
    ]

    static let artifact = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

    // MARK: - Samples

    /// Valid inputs per capability; the first is the smallest valid one and seeds the
    /// mechanical "missing required" and "unknown member" checks.
    static let validInputs: [String: [String]] = [
        "image.generate": [
            #"{"prompt": "a red bicycle against a white wall"}"#,
            #"{"prompt": "a lighthouse at dusk", "negative_prompt": "blurry, text", "model": "fal-ai/flux/dev", "width": 1024, "height": 768, "num_images": 4, "steps": 28, "guidance_scale": 3.5, "seed": 4294967295, "output_format": "webp"}"#,
            #"{"prompt": "a panoramic mountain range", "aspect_ratio": "21:9", "seed": 0}"#,
        ],
        "image.edit": [
            #"{"image": {"artifact": "\#(artifact)"}, "prompt": "make it night"}"#,
            #"{"image": {"url": "https://example.com/in.png", "media_type": "image/png"}, "prompt": "give her a red scarf", "negative_prompt": "extra fingers", "mask": {"artifact": "\#(artifact)", "media_type": "image/png", "size": 20480}, "reference_face": {"artifact": "\#(artifact)"}, "consent_given": true, "strength": 0.35, "model": "flux-kontext", "num_images": 1, "steps": 30, "guidance_scale": 7, "seed": 12, "output_format": "png"}"#,
        ],
        "image.upscale": [
            #"{"image": {"artifact": "\#(artifact)"}}"#,
            #"{"image": {"url": "https://example.com/photo.jpg"}, "scale": 4, "face_enhance": true, "model": "real-esrgan", "output_format": "jpeg"}"#,
            #"{"image": {"artifact": "\#(artifact)"}, "scale": 1.5}"#,
        ],
        "video.from_image": [
            #"{"image": {"artifact": "\#(artifact)"}}"#,
            #"{"image": {"artifact": "\#(artifact)", "media_type": "image/jpeg"}, "end_image": {"url": "https://example.com/last.png"}, "prompt": "the camera pushes in slowly", "negative_prompt": "shaky", "model": "kling-v2-1", "duration_seconds": 10, "resolution": "1080p", "fps": 30, "mode": "pro", "cfg_scale": 0.5, "seed": 7}"#,
            #"{"image": {"artifact": "\#(artifact)"}, "motion": "zoom_in", "duration_seconds": 3.5, "fps": 25, "resolution": "720p"}"#,
        ],
        "video.from_text": [
            #"{"prompt": "a paper boat drifting down a rainy street"}"#,
            #"{"prompt": "a paper boat drifting down a rainy street", "negative_prompt": "people", "model": "kling-v2-1", "duration_seconds": 5, "aspect_ratio": "9:16", "resolution": "720p", "fps": 24, "mode": "std", "cfg_scale": 12.5, "seed": 99}"#,
        ],
        "video.lipsync": [
            #"{"face_image": {"artifact": "\#(artifact)"}, "audio": {"artifact": "\#(artifact)"}, "consent_given": true}"#,
            #"{"face_video": {"url": "https://example.com/take3.mp4", "media_type": "video/mp4"}, "audio": {"url": "https://example.com/line.wav"}, "consent_given": true, "sync_mode": "bounce", "model": "lipsync-2"}"#,
        ],
        "video.upscale": [
            #"{"video": {"artifact": "\#(artifact)"}}"#,
            #"{"video": {"artifact": "\#(artifact)"}, "scale": 2, "target_fps": 60, "quality": "pro", "model": "topaz-proteus"}"#,
        ],
        "video.grade": [
            #"{"video": {"artifact": "\#(artifact)"}, "saturation": 0}"#,
            #"{"video": {"artifact": "\#(artifact)"}, "lut": {"artifact": "\#(artifact)", "media_type": "text/plain"}, "lut_strength": 0.8, "brightness": -0.05, "contrast": 1.2, "saturation": 1.1, "gamma": 0.9, "quality": "standard"}"#,
            #"{"video": {"artifact": "\#(artifact)"}, "grain": 0.2}"#,
            #"{"video": {"artifact": "\#(artifact)"}, "style": "teal_orange", "tone_map": "hable", "grain": 0, "contrast": 1.05}"#,
        ],
        "video.concat": [
            #"{"clips": [{"artifact": "\#(artifact)"}, {"url": "https://example.com/b.mp4"}]}"#,
            #"{"clips": [{"artifact": "\#(artifact)"}, {"artifact": "\#(artifact)"}, {"artifact": "\#(artifact)"}], "transition": "crossfade", "transition_seconds": 0.5, "quality": "low"}"#,
            #"{"clips": [{"artifact": "\#(artifact)"}, {"artifact": "\#(artifact)"}], "transition": "cut"}"#,
        ],
        "audio.speech": [
            #"{"text": "Hello."}"#,
            #"{"text": "Welcome aboard.", "voice_sample": {"artifact": "\#(artifact)", "media_type": "audio/wav"}, "consent_given": true, "language": "en-US", "speed": 0.5, "model": "eleven_multilingual_v2", "output_format": "mp3", "sample_rate": 44100}"#,
            #"{"text": "Next stop: Central Station.", "voice": "en-us+f3", "language": "cmn", "speed": 2.0}"#,
        ],
        "audio.music": [
            #"{"prompt": "warm lo-fi hip hop, 80 bpm"}"#,
            #"{"prompt": "upbeat synth-pop", "negative_prompt": "distortion", "lyrics": "We ride the night train home", "instrumental": false, "duration_seconds": 180, "seed": 1, "model": "stable-audio-2", "output_format": "wav"}"#,
            #"{"prompt": "solo piano, rain outside", "instrumental": true, "duration_seconds": 1}"#,
        ],
        "model.download": [
            #"{"repo": "black-forest-labs/FLUX.1-dev"}"#,
            #"{"repo": "stabilityai/stable-diffusion-xl-base-1.0", "vendor": "huggingface", "revision": "refs/pr/3", "files": ["*.safetensors", "text_encoder/*.json"]}"#,
            #"{"repo": "133005/782002", "vendor": "civitai"}"#,
        ],
        "comfy.workflow": [
            #"{"workflow": {}}"#,
            #"{"workflow": {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "model": ["4", 0]}}, "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}}}, "inputs": [{"node": "3", "input": "seed", "value": 1234}, {"node": "6", "input": "text", "value": "a castle"}, {"node": "12:3", "input": "enabled", "value": false}, {"node": "10", "input": "image", "value": {"artifact": "\#(artifact)", "media_type": "image/png"}}], "output_nodes": ["9"]}"#,
        ],
        "billing.meter": [
            #"{"event_name": "video_seconds", "customer_id": "cus_NffrFeUfNV2Hib", "value": 0}"#,
            #"{"event_name": "images.generated", "customer_id": "cus_NffrFeUfNV2Hib", "value": 9007199254740991, "identifier": "job-8f14e45f", "timestamp": "2026-11-03T14:05:00+01:00"}"#,
        ],
        "debug.echo": [
            #"{"text": ""}"#,
            #"{"text": "hello", "polls": 50, "fail_with": "ENGINE_TIMEOUT", "url": "http://127.0.0.1:8080/status"}"#,
        ],
        "debug.ping": [
            #"{}"#,
        ],
        "video.deflicker": [
            #"{"video": {"artifact": "\#(artifact)"}}"#,
            #"{"video": {"artifact": "\#(artifact)"}, "window_frames": 129, "mode": "median", "quality": "pro"}"#,
        ],
        "video.mux_audio": [
            #"{"video": {"artifact": "\#(artifact)"}, "audio": {"artifact": "\#(artifact)"}}"#,
            #"{"video": {"artifact": "\#(artifact)"}, "audio": {"url": "https://example.com/vo.wav", "media_type": "audio/wav"}, "length": "shortest", "volume": 0, "keep_original_audio": true, "quality": "low"}"#,
        ],
        "video.export": [
            #"{"video": {"artifact": "\#(artifact)"}, "profile": "square_1x1"}"#,
            #"{"video": {"artifact": "\#(artifact)"}, "profile": "vertical_9x16", "fit": "pad", "fps": 30, "quality": "standard"}"#,
        ],
        "image.storyboard": [
            #"{"images": [{"artifact": "\#(artifact)"}]}"#,
            ##"{"images": [{"artifact": "\##(artifact)"}, {"url": "https://example.com/2.jpg"}], "columns": 8, "cell_width": 64, "cell_aspect": "9:16", "gap": 0, "background": "#1a1A2b", "output_format": "jpeg"}"##,
        ],
        "image.denoise": [
            #"{"image": {"artifact": "\#(artifact)"}}"#,
            #"{"image": {"url": "https://example.com/noisy.jpg"}, "strength": 1, "output_format": "webp"}"#,
        ],
    ]

    /// Plausible outputs per capability, as adapters report them (echo's is exactly what
    /// `EchoAdapter` emits: the artifact handle carries `size`).
    static let validOutputs: [String: String] = [
        "image.generate": #"{"images": [{"file": {"artifact": "\#(artifact)", "media_type": "image/png", "size": 1234567}, "width": 1024, "height": 768, "seed": 42}], "seed": 42, "model": "fal-ai/flux/dev"}"#,
        "image.edit": #"{"images": [{"file": {"url": "https://cdn.example.com/out.webp", "media_type": "image/webp"}, "width": 1024, "height": 1024}]}"#,
        "image.upscale": #"{"image": {"artifact": "\#(artifact)"}, "width": 4096, "height": 3072}"#,
        "video.from_image": #"{"video": {"artifact": "\#(artifact)", "media_type": "video/mp4", "size": 9000000}, "duration_seconds": 5.04, "width": 1280, "height": 720, "fps": 30}"#,
        "video.from_text": #"{"video": {"artifact": "\#(artifact)"}, "duration_seconds": 10, "seed": 99}"#,
        "video.lipsync": #"{"video": {"artifact": "\#(artifact)"}, "duration_seconds": 3.2, "fps": 29.97}"#,
        "video.upscale": #"{"video": {"artifact": "\#(artifact)"}, "duration_seconds": 12, "width": 3840, "height": 2160, "fps": 60}"#,
        "video.grade": #"{"video": {"artifact": "\#(artifact)"}, "duration_seconds": 12}"#,
        "video.concat": #"{"video": {"artifact": "\#(artifact)"}, "duration_seconds": 24.5, "width": 1920, "height": 1080, "fps": 24}"#,
        "audio.speech": #"{"audio": {"artifact": "\#(artifact)", "media_type": "audio/wav"}, "duration_seconds": 2.4, "sample_rate": 22050}"#,
        "audio.music": #"{"audio": {"artifact": "\#(artifact)", "media_type": "audio/mpeg"}, "duration_seconds": 60, "sample_rate": 44100, "seed": 1}"#,
        "model.download": #"{"path": "/var/lib/switchyard/models/black-forest-labs/FLUX.1-dev", "revision": "0ef5fff789c832c5c7f4e127f94c8b54bbcced44", "files": [{"path": "flux1-dev.safetensors", "size": 23802932552, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}], "total_bytes": 23802932552}"#,
        "comfy.workflow": #"{"files": [{"node": "9", "file": {"artifact": "\#(artifact)", "media_type": "image/png"}}], "prompt_id": "1b9c4b6e-5a4f-4a6e-9f0e-2d0f1c3b7a11"}"#,
        "billing.meter": #"{"identifier": "job-8f14e45f", "event_name": "video_seconds", "customer_id": "cus_NffrFeUfNV2Hib", "value": 10, "timestamp": "2026-11-03T14:05:00Z"}"#,
        "debug.echo": #"{"text": "hi", "sha256": "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4", "file": {"artifact": "\#(artifact)", "media_type": "text/plain", "size": 2}, "http_status": 200, "authenticated": false}"#,
        "debug.ping": #"{"pong": true}"#,
        "video.deflicker": #"{"video": {"artifact": "\#(artifact)", "media_type": "video/mp4"}, "duration_seconds": 4, "width": 640, "height": 360, "fps": 25}"#,
        "video.mux_audio": #"{"video": {"artifact": "\#(artifact)"}, "duration_seconds": 6.02, "video_codec": "h264", "audio_codec": "aac", "pixel_format": "yuv420p"}"#,
        "video.export": #"{"video": {"artifact": "\#(artifact)", "media_type": "video/mp4"}, "duration_seconds": 6, "width": 1080, "height": 1920, "fps": 30, "video_codec": "h264", "audio_codec": "aac", "pixel_format": "yuv420p"}"#,
        "image.storyboard": #"{"image": {"artifact": "\#(artifact)", "media_type": "image/png"}, "width": 1000, "height": 560, "columns": 3, "rows": 2}"#,
        "image.denoise": #"{"image": {"artifact": "\#(artifact)"}, "width": 1024, "height": 768}"#,
    ]

    /// An input that must be rejected, with the violation it must produce.
    struct BadInput {
        let capability: String
        let json: String
        let keyword: String
        let path: String
        init(_ capability: String, _ json: String, _ keyword: String, _ path: String) {
            self.capability = capability
            self.json = json
            self.keyword = keyword
            self.path = path
        }
    }

    static let wrongTypes: [BadInput] = [
        BadInput("image.generate", #"{"prompt": 42}"#, "type", "$.prompt"),
        BadInput("image.generate", #"{"prompt": "x", "num_images": "2"}"#, "type", "$.num_images"),
        BadInput("image.edit", #"{"image": "https://example.com/in.png", "prompt": "x"}"#, "oneOf", "$.image"),
        BadInput("image.edit", #"{"image": {"artifact": "\#(artifact)"}, "prompt": "x", "consent_given": "yes"}"#, "type", "$.consent_given"),
        BadInput("image.upscale", #"{"image": {"artifact": "\#(artifact)"}, "scale": "4x"}"#, "type", "$.scale"),
        BadInput("video.from_image", #"{"image": {"artifact": "\#(artifact)"}, "duration_seconds": "5"}"#, "type", "$.duration_seconds"),
        BadInput("video.from_text", #"{"prompt": ["a", "b"]}"#, "type", "$.prompt"),
        BadInput("video.lipsync", #"{"face_image": {"artifact": "\#(artifact)"}, "audio": {"artifact": "\#(artifact)"}, "consent_given": "true"}"#, "type", "$.consent_given"),
        BadInput("video.upscale", #"{"video": {"artifact": "\#(artifact)"}, "target_fps": 59.94}"#, "type", "$.target_fps"),
        BadInput("video.grade", #"{"video": {"artifact": "\#(artifact)"}, "brightness": "0.1"}"#, "type", "$.brightness"),
        BadInput("video.concat", #"{"clips": {"artifact": "\#(artifact)"}}"#, "type", "$.clips"),
        BadInput("audio.speech", #"{"text": "hi", "speed": "fast"}"#, "type", "$.speed"),
        BadInput("audio.music", #"{"prompt": "jazz", "instrumental": "yes"}"#, "type", "$.instrumental"),
        BadInput("model.download", #"{"repo": "owner/name", "files": "*.safetensors"}"#, "type", "$.files"),
        BadInput("comfy.workflow", #"{"workflow": [1, 2]}"#, "type", "$.workflow"),
        BadInput("comfy.workflow", #"{"workflow": {}, "inputs": {"3": {"seed": 1}}}"#, "type", "$.inputs"),
        BadInput("billing.meter", #"{"event_name": "e", "customer_id": "c", "value": "10"}"#, "type", "$.value"),
        BadInput("debug.echo", #"{"text": 5}"#, "type", "$.text"),
        BadInput("debug.echo", #"{"text": "x", "polls": 1.5}"#, "type", "$.polls"),
        BadInput("debug.ping", #"[]"#, "type", "$"),
        BadInput("video.deflicker", #"{"video": {"artifact": "\#(artifact)"}, "window_frames": 5.5}"#, "type", "$.window_frames"),
        BadInput("video.mux_audio", #"{"video": {"artifact": "\#(artifact)"}, "audio": {"artifact": "\#(artifact)"}, "keep_original_audio": "no"}"#, "type", "$.keep_original_audio"),
        BadInput("video.export", #"{"video": [{"artifact": "\#(artifact)"}], "profile": "square_1x1"}"#, "oneOf", "$.video"),
        BadInput("image.storyboard", #"{"images": {"artifact": "\#(artifact)"}}"#, "type", "$.images"),
        BadInput("image.denoise", #"{"image": {"artifact": "\#(artifact)"}, "strength": "high"}"#, "type", "$.strength"),
    ]

    static let outOfRange: [BadInput] = [
        BadInput("image.generate", #"{"prompt": "x", "num_images": 9}"#, "maximum", "$.num_images"),
        BadInput("image.generate", #"{"prompt": "x", "steps": 0}"#, "minimum", "$.steps"),
        BadInput("image.generate", #"{"prompt": "x", "guidance_scale": 20.5}"#, "maximum", "$.guidance_scale"),
        BadInput("image.generate", #"{"prompt": "x", "width": 4104, "height": 1024}"#, "maximum", "$.width"),
        BadInput("image.generate", #"{"prompt": "x", "aspect_ratio": "2:1"}"#, "enum", "$.aspect_ratio"),
        BadInput("image.edit", #"{"image": {"artifact": "\#(artifact)"}, "prompt": "x", "strength": 1.5}"#, "maximum", "$.strength"),
        BadInput("image.upscale", #"{"image": {"artifact": "\#(artifact)"}, "scale": 1}"#, "exclusiveMinimum", "$.scale"),
        BadInput("image.upscale", #"{"image": {"artifact": "\#(artifact)"}, "scale": 16}"#, "maximum", "$.scale"),
        BadInput("video.from_image", #"{"image": {"artifact": "\#(artifact)"}, "fps": 0}"#, "minimum", "$.fps"),
        BadInput("video.from_image", #"{"image": {"artifact": "\#(artifact)"}, "cfg_scale": -1}"#, "minimum", "$.cfg_scale"),
        BadInput("video.from_text", #"{"prompt": "x", "duration_seconds": 61}"#, "maximum", "$.duration_seconds"),
        BadInput("video.from_text", #"{"prompt": "x", "duration_seconds": 0.5}"#, "minimum", "$.duration_seconds"),
        BadInput("video.from_text", #"{"prompt": "x", "resolution": "4k"}"#, "enum", "$.resolution"),
        BadInput("video.lipsync", #"{"face_image": {"artifact": "\#(artifact)"}, "audio": {"artifact": "\#(artifact)"}, "sync_mode": "stretch"}"#, "enum", "$.sync_mode"),
        BadInput("video.upscale", #"{"video": {"artifact": "\#(artifact)"}, "scale": 5}"#, "maximum", "$.scale"),
        BadInput("video.upscale", #"{"video": {"artifact": "\#(artifact)"}, "target_fps": 240}"#, "maximum", "$.target_fps"),
        BadInput("video.grade", #"{"video": {"artifact": "\#(artifact)"}, "gamma": 0}"#, "minimum", "$.gamma"),
        BadInput("video.grade", #"{"video": {"artifact": "\#(artifact)"}, "saturation": 3.5}"#, "maximum", "$.saturation"),
        BadInput("video.concat", #"{"clips": [{"artifact": "\#(artifact)"}, {"artifact": "\#(artifact)"}], "transition": "crossfade", "transition_seconds": 6}"#, "maximum", "$.transition_seconds"),
        BadInput("video.concat", #"{"clips": [{"artifact": "\#(artifact)"}, {"artifact": "\#(artifact)"}], "transition": "crossfade", "transition_seconds": 0}"#, "exclusiveMinimum", "$.transition_seconds"),
        BadInput("audio.speech", #"{"text": "hi", "speed": 2.5}"#, "maximum", "$.speed"),
        BadInput("audio.speech", #"{"text": "hi", "speed": 0.25}"#, "minimum", "$.speed"),
        BadInput("audio.speech", #"{"text": "hi", "sample_rate": 8000}"#, "enum", "$.sample_rate"),
        BadInput("audio.speech", #"{"text": ""}"#, "minLength", "$.text"),
        BadInput("audio.music", #"{"prompt": "jazz", "duration_seconds": 301}"#, "maximum", "$.duration_seconds"),
        BadInput("model.download", #"{"repo": "owner/name", "files": []}"#, "minItems", "$.files"),
        BadInput("model.download", #"{"repo": "owner/name", "files": ["*.json", "*.json"]}"#, "uniqueItems", "$.files"),
        BadInput("comfy.workflow", #"{"workflow": {}, "output_nodes": []}"#, "minItems", "$.output_nodes"),
        BadInput("comfy.workflow", #"{"workflow": {}, "inputs": [{"node": "", "input": "seed", "value": 1}]}"#, "pattern", "$.inputs[0].node"),
        BadInput("billing.meter", #"{"event_name": "e", "customer_id": "c", "value": -1}"#, "minimum", "$.value"),
        BadInput("debug.echo", #"{"text": "x", "polls": 51}"#, "maximum", "$.polls"),
        BadInput("debug.echo", #"{"text": "x", "polls": -1}"#, "minimum", "$.polls"),
        BadInput("video.deflicker", #"{"video": {"artifact": "\#(artifact)"}, "window_frames": 1}"#, "minimum", "$.window_frames"),
        BadInput("video.mux_audio", #"{"video": {"artifact": "\#(artifact)"}, "audio": {"artifact": "\#(artifact)"}, "volume": 5}"#, "maximum", "$.volume"),
        BadInput("video.export", #"{"video": {"artifact": "\#(artifact)"}, "profile": "4k"}"#, "enum", "$.profile"),
        BadInput("image.storyboard", #"{"images": [{"artifact": "\#(artifact)"}], "columns": 9}"#, "maximum", "$.columns"),
        BadInput("image.storyboard", #"{"images": [{"artifact": "\#(artifact)"}], "background": "red"}"#, "pattern", "$.background"),
        BadInput("image.denoise", #"{"image": {"artifact": "\#(artifact)"}, "strength": 1.5}"#, "maximum", "$.strength"),
        BadInput("video.grade", #"{"video": {"artifact": "\#(artifact)"}, "grain": 2}"#, "maximum", "$.grain"),
        BadInput("video.grade", #"{"video": {"artifact": "\#(artifact)"}, "style": "sepia"}"#, "enum", "$.style"),
        BadInput("video.from_image", #"{"image": {"artifact": "\#(artifact)"}, "motion": "orbit"}"#, "enum", "$.motion"),
    ]

    // MARK: - Helpers

    func json(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> JSONValue {
        do {
            return try JSONValue(parsing: Data(text.utf8))
        } catch {
            XCTFail("sample is not JSON (\(error)): \(text)", file: file, line: line)
            throw error
        }
    }

    /// Every `*.json` in the catalog directory, by file name.
    func catalogFiles() throws -> [String: JSONValue] {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.catalogDirectory.path)
            .filter { $0.hasSuffix(".json") }
        XCTAssertFalse(names.isEmpty, "no catalog files in \(Self.catalogDirectory.path)")
        var files: [String: JSONValue] = [:]
        for name in names {
            let data = try Data(contentsOf: Self.catalogDirectory.appendingPathComponent(name))
            files[name] = try JSONValue(parsing: data)
        }
        return files
    }

    /// Capability documents by id.
    func catalog() throws -> [String: JSONValue] {
        var documents: [String: JSONValue] = [:]
        for (_, document) in try catalogFiles() {
            if let id = document["id"]?.stringValue { documents[id] = document }
        }
        return documents
    }

    func schema(_ id: String, _ member: String = "input_schema", file: StaticString = #filePath, line: UInt = #line) throws -> JSONSchema {
        let document = try XCTUnwrap(try catalog()[id], "no capability \(id) in the catalog", file: file, line: line)
        let schema = try XCTUnwrap(document[member], "\(id) has no \(member)", file: file, line: line)
        return try JSONSchema(schema)
    }

    func assertValid(_ id: String, _ input: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let violations = try schema(id, file: file, line: line).validate(json(input, file: file, line: line))
        XCTAssertEqual(violations, [], "\(id) rejects \(input)", file: file, line: line)
    }

    func assertRejected(_ id: String, _ input: JSONValue, keyword: String, at path: String, member: String = "input_schema",
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let violations = try schema(id, member, file: file, line: line).validate(input)
        XCTAssertTrue(violations.contains { $0.keyword == keyword && $0.path == path },
                      "\(id) \(member): expected a '\(keyword)' violation at \(path) for \(input); got \(violations)",
                      file: file, line: line)
    }

    func assertRejected(_ id: String, _ input: String, keyword: String, at path: String,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        try assertRejected(id, try json(input, file: file, line: line), keyword: keyword, at: path, file: file, line: line)
    }

    /// `object` with `name` set to `value`.
    func setting(_ object: JSONValue, _ name: String, _ value: JSONValue) -> JSONValue {
        var members = object.objectValue ?? [:]
        members[name] = value
        return .object(members)
    }

    /// Calls `visit` with every subschema of `schema` and its JSON pointer, following the
    /// keywords whose values are schemas (and not `enum`, `const`, `examples`, `default`).
    func forEachSubschema(_ schema: JSONValue, at pointer: String = "#", _ visit: (JSONValue, String) -> Void) {
        visit(schema, pointer)
        guard let members = schema.objectValue else { return }
        for (keyword, value) in members.sorted(by: { $0.key < $1.key }) {
            switch keyword {
            case "properties", "$defs":
                for (name, subschema) in (value.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
                    forEachSubschema(subschema, at: "\(pointer)/\(keyword)/\(name)", visit)
                }
            case "items", "additionalProperties", "not", "if", "then", "else":
                forEachSubschema(value, at: "\(pointer)/\(keyword)", visit)
            case "allOf", "anyOf", "oneOf":
                for (index, subschema) in (value.arrayValue ?? []).enumerated() {
                    forEachSubschema(subschema, at: "\(pointer)/\(keyword)/\(index)", visit)
                }
            default:
                break
            }
        }
    }

    /// Every (label, subschema, pointer) in both schemas of every capability.
    func everySubschema() throws -> [(capability: String, member: String, schema: JSONValue, pointer: String)] {
        var found: [(String, String, JSONValue, String)] = []
        for (id, document) in try catalog().sorted(by: { $0.key < $1.key }) {
            for member in ["input_schema", "output_schema"] {
                guard let root = document[member] else { continue }
                forEachSubschema(root) { found.append((id, member, $0, $1)) }
            }
        }
        return found
    }

    // MARK: - File format

    func testCatalogHoldsExactlyTheExpectedCapabilities() throws {
        XCTAssertEqual(Set(try catalog().keys), Self.expectedIDs)
        XCTAssertEqual(try catalogFiles().count, Self.expectedIDs.count, "two files claim the same id")
    }

    func testEveryCatalogFileNameEqualsItsID() throws {
        for (name, document) in try catalogFiles() {
            XCTAssertEqual(document["id"]?.stringValue.map { $0 + ".json" }, name, "\(name) declares id \(document["id"] ?? nil)")
        }
    }

    func testEveryCatalogDocumentHasExactlyTheDocumentedMembers() throws {
        let members: Set<String> = ["id", "version", "title", "description", "input_schema", "output_schema"]
        for (id, document) in try catalog() {
            XCTAssertEqual(Set(document.objectValue?.keys.map { $0 } ?? []), members, id)
            XCTAssertNotNil(id.range(of: #"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"#, options: .regularExpression),
                            "\(id) is not a manifest-compatible capability id")
            let version = try XCTUnwrap(document["version"]?.intValue, "\(id): version must be an integer")
            XCTAssertGreaterThanOrEqual(version, 1, id)
            XCTAssertFalse((document["title"]?.stringValue ?? "").isEmpty, "\(id): title must be a non-empty string")
            XCTAssertFalse((document["description"]?.stringValue ?? "").isEmpty, "\(id): description must be a non-empty string")
        }
    }

    func testEveryCatalogSchemaCompiles() throws {
        for (id, document) in try catalog() {
            for member in ["input_schema", "output_schema"] {
                let schema = try XCTUnwrap(document[member], "\(id) has no \(member)")
                XCTAssertNoThrow(try JSONSchema(schema), "\(id) \(member)")
            }
        }
    }

    func testEveryCatalogSchemaIsAClosedObjectAtTopLevel() throws {
        for (id, document) in try catalog() {
            for member in ["input_schema", "output_schema"] {
                XCTAssertEqual(document[member]?["type"], "object", "\(id) \(member)")
                XCTAssertEqual(document[member]?["additionalProperties"], false, "\(id) \(member)")
            }
        }
    }

    /// Unknown members are how typos (`num_image`) slip through, so every object is closed,
    /// except the ComfyUI graph, whose node ids and types are open-ended.
    func testEveryNestedObjectSchemaForbidsUnknownMembers() throws {
        for (id, member, schema, pointer) in try everySubschema() where schema["type"] == "object" {
            let label = "\(id) \(member)\(pointer)"
            if Self.openObjects.contains(label) {
                XCTAssertNil(schema["additionalProperties"], "\(label) is meant to stay open")
            } else {
                XCTAssertEqual(schema["additionalProperties"], false, label)
            }
        }
    }

    func testCatalogSchemasUseOnlyAllowedKeywords() throws {
        for (id, member, schema, pointer) in try everySubschema() {
            for keyword in schema.objectValue?.keys.map({ $0 }) ?? [] where !keyword.hasPrefix("x-") {
                XCTAssertTrue(Self.allowedKeywords.contains(keyword), "\(id) \(member)\(pointer): keyword '\(keyword)'")
            }
            if let format = schema["format"] {
                XCTAssertTrue(["uri", "date-time"].contains(format.stringValue ?? ""), "\(id) \(member)\(pointer): format \(format)")
            }
            if let reference = schema["$ref"] {
                XCTAssertTrue(reference.stringValue?.hasPrefix("#/$defs/") == true, "\(id) \(member)\(pointer): $ref \(reference)")
            }
        }
    }

    /// An unknown `x-` key is almost always a misspelt annotation the host would ignore.
    func testCatalogUsesOnlyKnownAnnotations() throws {
        for (id, member, schema, pointer) in try everySubschema() {
            for keyword in schema.objectValue?.keys.map({ $0 }) ?? [] where keyword.hasPrefix("x-") {
                XCTAssertTrue(Self.knownAnnotations.contains(keyword), "\(id) \(member)\(pointer): annotation '\(keyword)'")
            }
        }
    }

    /// A catalog default would be injected before an adapter's `limits` are checked, and
    /// providers disagree on defaults; "absent" means "the provider's default" instead.
    func testCatalogDeclaresNoDefaults() throws {
        for (id, member, schema, pointer) in try everySubschema() {
            XCTAssertNil(schema["default"], "\(id) \(member)\(pointer) declares a default")
        }
    }

    // MARK: - Files and identity

    func testEveryFileInputDeclaresMediaTypesAndMaxBytes() throws {
        var fileInputs = 0
        for (id, member, schema, pointer) in try everySubschema() where schema["$ref"] == "#/$defs/file" {
            let label = "\(id) \(member)\(pointer)"
            let mediaTypes = try XCTUnwrap(schema["x-media-types"]?.arrayValue, "\(label) lacks x-media-types")
            XCTAssertFalse(mediaTypes.isEmpty, label)
            for mediaType in mediaTypes {
                XCTAssertNotNil(mediaType.stringValue?.range(of: #"^[a-z0-9.+-]+/[a-z0-9.+-]+$"#, options: .regularExpression), "\(label): \(mediaType)")
            }
            guard member == "input_schema" else { continue }
            fileInputs += 1
            let maxBytes = try XCTUnwrap(schema["x-max-bytes"]?.intValue, "\(label) lacks an integer x-max-bytes")
            XCTAssertGreaterThan(maxBytes, 0, label)
        }
        XCTAssertGreaterThan(fileInputs, 10, "file inputs were not found; has the $defs/file convention changed?")
    }

    func testEveryFileSchemaIsAnArtifactHandleOrAURL() throws {
        for (id, document) in try catalog() {
            for member in ["input_schema", "output_schema"] {
                guard let file = document[member]?["$defs"]?["file"] else { continue }
                let shapes = try XCTUnwrap(file["oneOf"]?.arrayValue, "\(id) \(member): $defs/file must be a oneOf")
                XCTAssertEqual(shapes.map { $0["required"] }, [["artifact"], ["url"]], "\(id) \(member)")
                XCTAssertEqual(shapes[0]["properties"]?["artifact"]?["pattern"], "^sha256:[0-9a-f]{64}$", "\(id) \(member)")
                XCTAssertEqual(shapes[1]["properties"]?["url"]?["format"], "uri", "\(id) \(member)")
            }
        }
    }

    func testIdentityInputsAreExactlyTheFacesAndVoices() throws {
        var found: Set<String> = []
        for (id, member, schema, pointer) in try everySubschema() where schema["x-identity"] != nil {
            XCTAssertEqual(member, "input_schema", "\(id) \(member)\(pointer): x-identity marks inputs only")
            XCTAssertEqual(schema["x-identity"], true, "\(id) \(pointer): x-identity must be true")
            XCTAssertEqual(schema["$ref"], "#/$defs/file", "\(id) \(pointer): identity inputs are files")
            found.insert("\(id)\(pointer)")
        }
        XCTAssertEqual(found, Self.identityInputs)
    }

    func testEveryCapabilityWithAnIdentityInputDeclaresConsentGiven() throws {
        let catalog = try catalog()
        for id in Set(Self.identityInputs.map { String($0.prefix { $0 != "#" }) }) {
            XCTAssertEqual(catalog[id]?["input_schema"]?["properties"]?["consent_given"]?["type"], "boolean", id)
        }
    }

    func testFileInputAcceptsAnOutputHandleWithSize() throws {
        try assertValid("image.upscale", #"{"image": {"artifact": "\#(Self.artifact)", "media_type": "image/png", "size": 1234567}}"#)
    }

    func testFileInputRejectsMalformedArtifactHandle() throws {
        let uppercase = Self.artifact.uppercased().replacingOccurrences(of: "SHA256", with: "sha256")
        try assertRejected("image.upscale", #"{"image": {"artifact": "\#(uppercase)"}}"#, keyword: "oneOf", at: "$.image")
        try assertRejected("image.upscale", #"{"image": {"artifact": "sha256:abc"}}"#, keyword: "oneOf", at: "$.image")
    }

    func testFileInputRejectsBothArtifactAndURL() throws {
        try assertRejected("image.upscale", #"{"image": {"artifact": "\#(Self.artifact)", "url": "https://example.com/a.png"}}"#,
                           keyword: "oneOf", at: "$.image")
    }

    func testFileInputRejectsFileSchemeURL() throws {
        try assertRejected("image.upscale", #"{"image": {"url": "file:///etc/passwd"}}"#, keyword: "oneOf", at: "$.image")
    }

    func testFileInputRejectsMalformedMediaType() throws {
        try assertRejected("image.upscale", #"{"image": {"artifact": "\#(Self.artifact)", "media_type": "png"}}"#,
                           keyword: "oneOf", at: "$.image")
    }

    // MARK: - Valid samples

    func testEveryCapabilityHasSampleInputsAndOutputs() throws {
        XCTAssertEqual(Set(Self.validInputs.keys), Self.expectedIDs)
        XCTAssertEqual(Set(Self.validOutputs.keys), Self.expectedIDs)
        XCTAssertEqual(Set(Self.wrongTypes.map(\.capability)), Self.expectedIDs)
        XCTAssertEqual(Set(Self.outOfRange.map(\.capability)), Self.expectedIDs.subtracting(["debug.ping"]))
    }

    func testEverySampleInputIsValid() throws {
        for (id, samples) in Self.validInputs.sorted(by: { $0.key < $1.key }) {
            for sample in samples {
                try assertValid(id, sample)
            }
        }
    }

    func testEverySchemaExampleIsValid() throws {
        for (id, document) in try catalog() {
            let examples = try XCTUnwrap(document["input_schema"]?["examples"]?.arrayValue, "\(id) has no input examples")
            XCTAssertFalse(examples.isEmpty, id)
            let schema = try JSONSchema(try XCTUnwrap(document["input_schema"]))
            for example in examples {
                XCTAssertEqual(schema.validate(example), [], "\(id) example \(example)")
            }
        }
    }

    func testEverySampleOutputIsValid() throws {
        for (id, sample) in Self.validOutputs.sorted(by: { $0.key < $1.key }) {
            let violations = try schema(id, "output_schema").validate(json(sample))
            XCTAssertEqual(violations, [], "\(id) output \(sample)")
        }
    }

    /// The first-party plugins' manifests must offer catalog capabilities, and their
    /// example inputs must pass the catalog schema before their own limits.
    func testFirstPartyPluginExampleInputsSatisfyTheCatalog() throws {
        let plugins = Self.repoRoot.appendingPathComponent("Plugins")
        let catalog = try catalog()
        var checked = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: plugins.path).sorted() {
            let manifestURL = plugins.appendingPathComponent(name).appendingPathComponent("plugin.json")
            guard let data = FileManager.default.contents(atPath: manifestURL.path) else { continue }
            for capability in try JSONValue(parsing: data)["capabilities"]?.arrayValue ?? [] {
                let id = try XCTUnwrap(capability["id"]?.stringValue, "\(name): capability without id")
                let document = try XCTUnwrap(catalog[id], "\(name) offers \(id), which is not in the catalog")
                guard let example = capability["example_inputs"] else { continue }
                XCTAssertEqual(try JSONSchema(try XCTUnwrap(document["input_schema"])).validate(example), [], "\(name) \(id)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0, "no plugin manifests found under \(plugins.path)")
    }

    // MARK: - Rejections common to every capability

    func testEveryCapabilityRejectsMissingRequiredInputs() throws {
        let catalog = try catalog()
        for (id, samples) in Self.validInputs.sorted(by: { $0.key < $1.key }) {
            let sample = try json(samples[0])
            for name in catalog[id]?["input_schema"]?["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                var members = try XCTUnwrap(sample.objectValue)
                XCTAssertNotNil(members.removeValue(forKey: name), "\(id)'s first sample lacks required \(name)")
                try assertRejected(id, .object(members), keyword: "required", at: "$.\(name)")
            }
        }
    }

    func testEveryCapabilityRejectsUnknownInputMembers() throws {
        for (id, samples) in Self.validInputs.sorted(by: { $0.key < $1.key }) {
            try assertRejected(id, setting(try json(samples[0]), "num_image", 2), keyword: "additionalProperties", at: "$.num_image")
        }
    }

    func testEveryCapabilityRejectsInputsThatAreNotObjects() throws {
        for id in Self.expectedIDs.sorted() {
            for instance: JSONValue in [nil, "prompt", 1, []] {
                try assertRejected(id, instance, keyword: "type", at: "$")
            }
        }
    }

    func testEveryCapabilityRejectsWrongTypes() throws {
        for bad in Self.wrongTypes {
            try assertRejected(bad.capability, bad.json, keyword: bad.keyword, at: bad.path)
        }
    }

    func testEveryCapabilityRejectsOutOfRangeValues() throws {
        for bad in Self.outOfRange {
            try assertRejected(bad.capability, bad.json, keyword: bad.keyword, at: bad.path)
        }
    }

    func testEveryOutputSchemaRejectsUnknownMembers() throws {
        for (id, sample) in Self.validOutputs.sorted(by: { $0.key < $1.key }) {
            try assertRejected(id, setting(try json(sample), "extra", true), keyword: "additionalProperties", at: "$.extra",
                               member: "output_schema")
        }
    }

    func testEveryOutputSchemaRejectsMissingRequiredOutputs() throws {
        let catalog = try catalog()
        for (id, sample) in Self.validOutputs.sorted(by: { $0.key < $1.key }) {
            let required = catalog[id]?["output_schema"]?["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
            XCTAssertFalse(required.isEmpty, "\(id): an output schema should promise something")
            for name in required {
                var members = try XCTUnwrap(try json(sample).objectValue)
                members.removeValue(forKey: name)
                try assertRejected(id, .object(members), keyword: "required", at: "$.\(name)", member: "output_schema")
            }
        }
    }

    // MARK: - image.generate

    func testImageGenerateRejectsWidthNotMultipleOf8() throws {
        try assertRejected("image.generate", #"{"prompt": "x", "width": 1020, "height": 768}"#, keyword: "multipleOf", at: "$.width")
    }

    func testImageGenerateRejectsWidthWithoutHeight() throws {
        try assertRejected("image.generate", #"{"prompt": "x", "width": 1024}"#, keyword: "required", at: "$.height")
    }

    func testImageGenerateRejectsAspectRatioTogetherWithWidthAndHeight() throws {
        try assertRejected("image.generate", #"{"prompt": "x", "aspect_ratio": "1:1", "width": 1024, "height": 1024}"#,
                           keyword: "not", at: "$")
    }

    func testImageGenerateRejectsPromptLongerThan2500Characters() throws {
        try assertValid("image.generate", #"{"prompt": "\#(String(repeating: "a", count: 2500))"}"#)
        try assertRejected("image.generate", ["prompt": .string(String(repeating: "a", count: 2501))], keyword: "maxLength", at: "$.prompt")
    }

    func testImageGenerateRejectsSeedBeyond32Bits() throws {
        try assertRejected("image.generate", #"{"prompt": "x", "seed": 4294967296}"#, keyword: "maximum", at: "$.seed")
    }

    // MARK: - image.edit

    func testImageEditAcceptsReferenceFaceWithConsent() throws {
        try assertValid("image.edit", #"{"image": {"artifact": "\#(Self.artifact)"}, "prompt": "x", "reference_face": {"url": "https://example.com/me.jpg"}, "consent_given": true}"#)
    }

    func testImageEditRejectsMaskThatIsNotAFile() throws {
        try assertRejected("image.edit", #"{"image": {"artifact": "\#(Self.artifact)"}, "prompt": "x", "mask": true}"#,
                           keyword: "oneOf", at: "$.mask")
    }

    // MARK: - video

    func testVideoFromTextRejectsUnknownMode() throws {
        try assertRejected("video.from_text", #"{"prompt": "x", "mode": "turbo"}"#, keyword: "enum", at: "$.mode")
    }

    func testVideoLipsyncRejectsBothFaceSources() throws {
        try assertRejected("video.lipsync",
                           #"{"face_video": {"artifact": "\#(Self.artifact)"}, "face_image": {"artifact": "\#(Self.artifact)"}, "audio": {"artifact": "\#(Self.artifact)"}, "consent_given": true}"#,
                           keyword: "oneOf", at: "$")
    }

    func testVideoLipsyncRejectsMissingFaceSource() throws {
        try assertRejected("video.lipsync", #"{"audio": {"artifact": "\#(Self.artifact)"}, "consent_given": true}"#, keyword: "oneOf", at: "$")
    }

    func testVideoGradeRejectsAGradeThatChangesNothing() throws {
        try assertRejected("video.grade", #"{"video": {"artifact": "\#(Self.artifact)"}, "quality": "pro"}"#, keyword: "anyOf", at: "$")
    }

    func testVideoGradeRejectsLutStrengthWithoutLut() throws {
        try assertRejected("video.grade", #"{"video": {"artifact": "\#(Self.artifact)"}, "contrast": 1.1, "lut_strength": 0.5}"#,
                           keyword: "required", at: "$.lut")
    }

    func testVideoConcatRejectsASingleClip() throws {
        try assertRejected("video.concat", #"{"clips": [{"artifact": "\#(Self.artifact)"}]}"#, keyword: "minItems", at: "$.clips")
    }

    func testVideoConcatRejectsMoreThan100Clips() throws {
        let clip: JSONValue = ["artifact": .string(Self.artifact)]
        try assertRejected("video.concat", ["clips": .array(Array(repeating: clip, count: 101))], keyword: "maxItems", at: "$.clips")
    }

    func testVideoConcatRejectsTransitionSecondsOnACut() throws {
        try assertRejected("video.concat", #"{"clips": [{"artifact": "\#(Self.artifact)"}, {"artifact": "\#(Self.artifact)"}], "transition": "cut", "transition_seconds": 1}"#,
                           keyword: "enum", at: "$.transition")
    }

    // MARK: - audio

    func testAudioSpeechRejectsTextLongerThan5000Characters() throws {
        try assertValid("audio.speech", #"{"text": "\#(String(repeating: "a", count: 5000))"}"#)
        try assertRejected("audio.speech", ["text": .string(String(repeating: "a", count: 5001))], keyword: "maxLength", at: "$.text")
    }

    func testAudioSpeechRejectsVoiceTogetherWithVoiceSample() throws {
        try assertRejected("audio.speech", #"{"text": "hi", "voice": "alloy", "voice_sample": {"artifact": "\#(Self.artifact)"}, "consent_given": true}"#,
                           keyword: "not", at: "$")
    }

    func testAudioSpeechRejectsMalformedLanguageTag() throws {
        try assertRejected("audio.speech", #"{"text": "hi", "language": "English"}"#, keyword: "pattern", at: "$.language")
    }

    func testAudioMusicRejectsLyricsForAnInstrumental() throws {
        try assertRejected("audio.music", #"{"prompt": "jazz", "instrumental": true, "lyrics": "la la"}"#, keyword: "not", at: "$")
    }

    // MARK: - model.download

    func testModelDownloadRejectsRepoWithoutOwner() throws {
        try assertRejected("model.download", #"{"repo": "FLUX.1-dev"}"#, keyword: "pattern", at: "$.repo")
    }

    func testModelDownloadRejectsGlobsEscapingTheRepository() throws {
        try assertRejected("model.download", #"{"repo": "o/n", "files": ["../secrets/*"]}"#, keyword: "not", at: "$.files[0]")
        try assertRejected("model.download", #"{"repo": "o/n", "files": ["unet/../../x"]}"#, keyword: "not", at: "$.files[0]")
        try assertRejected("model.download", #"{"repo": "o/n", "files": ["/etc/*"]}"#, keyword: "pattern", at: "$.files[0]")
    }

    func testModelDownloadRejectsUnknownVendor() throws {
        try assertRejected("model.download", #"{"repo": "o/n", "vendor": "s3"}"#, keyword: "enum", at: "$.vendor")
    }

    // MARK: - comfy.workflow

    func testComfyWorkflowAcceptsAnyGraph() throws {
        try assertValid("comfy.workflow", #"{"workflow": {"anything": {"class_type": "X", "inputs": {}, "_meta": {"title": "t"}}, "extra": [1, "two"]}}"#)
    }

    func testComfyWorkflowRejectsBindingWithoutValue() throws {
        try assertRejected("comfy.workflow", #"{"workflow": {}, "inputs": [{"node": "3", "input": "seed"}]}"#,
                           keyword: "required", at: "$.inputs[0].value")
    }

    func testComfyWorkflowRejectsBindingToNull() throws {
        try assertRejected("comfy.workflow", #"{"workflow": {}, "inputs": [{"node": "3", "input": "seed", "value": null}]}"#,
                           keyword: "oneOf", at: "$.inputs[0].value")
    }

    // MARK: - billing.meter

    func testBillingMeterRejectsFractionalValue() throws {
        try assertRejected("billing.meter", #"{"event_name": "e", "customer_id": "c", "value": 1.5}"#, keyword: "type", at: "$.value")
    }

    func testBillingMeterRejectsTimestampWithoutOffset() throws {
        try assertRejected("billing.meter", #"{"event_name": "e", "customer_id": "c", "value": 1, "timestamp": "2026-11-03T14:05:00"}"#,
                           keyword: "format", at: "$.timestamp")
    }

    func testBillingMeterRejectsEventNameLongerThan100Characters() throws {
        try assertRejected("billing.meter", ["event_name": .string(String(repeating: "e", count: 101)), "customer_id": "c", "value": 1],
                           keyword: "pattern", at: "$.event_name")
    }

    // MARK: - debug

    func testDebugEchoRejectsTextLongerThan10000Characters() throws {
        try assertRejected("debug.echo", ["text": .string(String(repeating: "a", count: 10_001))], keyword: "maxLength", at: "$.text")
    }

    func testDebugPingRejectsAnyMember() throws {
        try assertRejected("debug.ping", #"{"ping": true}"#, keyword: "additionalProperties", at: "$.ping")
    }
}
