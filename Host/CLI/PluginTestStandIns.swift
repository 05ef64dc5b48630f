import Foundation
import SwitchyardHost
import SwitchyardJSON
import SwitchyardStandIns

/// The built-in stand-in each first-party engine is tested against by
/// `yard plugin test ENGINE --standin`: started in this process, accepting
/// any credentials (the kit sends canary secrets), with the engine
/// configuration that points every URL the adapter uses at it.
struct PluginTestStandIn {
    var config: [String: JSONValue]
    var summary: String
    var stop: @Sendable () async -> Void

    /// Engines that run locally: no provider to stand in for.
    static let local: Set<String> = ["echo", "c-minimal", "local-media", "local-speech"]

    static var supported: [String] { ["comfyui", "fal", "huggingface", "kling", "modal", "runpod", "stripe-billing"] + local.sorted() }

    static func start(for engine: String) async throws -> PluginTestStandIn? {
        if local.contains(engine) { return PluginTestStandIn(config: [:], summary: "\(engine) runs locally: no stand-in needed", stop: {}) }
        switch engine {
        case "runpod":
            let standIn = RunPodStandIn()
            standIn.acceptAnyKey = true
            // One endpoint per kind of worker, as a user runs them: the kit checks every capability's outputs.
            standIn.addEndpoint("standin-video", worker: .videoURL)
            standIn.addEndpoint("standin-speech", worker: .audioURL)
            standIn.addEndpoint("standin-comfy", worker: .comfyUI)
            let endpoints: JSONValue = ["video.from_image": "standin-video", "video.from_text": "standin-video", "video.upscale": "standin-video",
                                        "audio.speech": "standin-speech", "comfy.workflow": "standin-comfy"]
            try await standIn.start()
            return PluginTestStandIn(config: ["endpoint_id": .string(standIn.endpointID), "base_url": .string(standIn.baseURL),
                                              "rest_url": .string(standIn.restURL), "graphql_url": .string(standIn.graphqlURL), "endpoints": endpoints],
                                     summary: "RunPod stand-in on \(standIn.baseURL)", stop: { await standIn.stop() })
        case "fal":
            let standIn = FalStandIn()
            standIn.acceptAnyKey = true
            try await standIn.start()
            return PluginTestStandIn(config: ["queue_url": .string(standIn.baseURL), "rest_url": .string(standIn.baseURL), "api_url": .string("\(standIn.baseURL)/v1"),
                                              "webhook_jwks_url": .string("\(standIn.baseURL)/.well-known/jwks.json")],
                                     summary: "fal stand-in on \(standIn.baseURL)", stop: { await standIn.stop() })
        case "comfyui":
            // The examples load a checkpoint: this server has the sample models installed.
            let standIn = try ComfyUIStandIn(withModels: true)
            try await standIn.start()
            return PluginTestStandIn(config: ["base_url": .string(standIn.baseURL)], summary: "ComfyUI stand-in on \(standIn.baseURL) (sample models installed)",
                                     stop: { await standIn.stop() })
        case "huggingface":
            let standIn = HubStandIn()
            standIn.acceptAnyToken = true
            standIn.addSampleRepos()
            try await standIn.start()
            return PluginTestStandIn(config: ["hub_url": .string(standIn.baseURL), "router_url": .string(standIn.baseURL)],
                                     summary: "Hugging Face stand-in on \(standIn.baseURL)", stop: { await standIn.stop() })
        case "stripe-billing":
            let standIn = StripeStandIn()
            standIn.acceptAnyKey = true
            try await standIn.start()
            return PluginTestStandIn(config: ["base_url": .string(standIn.baseURL)], summary: "Stripe stand-in on \(standIn.baseURL)", stop: { await standIn.stop() })
        case "kling":
            let standIn = KlingStandIn()
            standIn.acceptAnyKey = true
            try await standIn.start()
            return PluginTestStandIn(config: ["base_url": .string(standIn.baseURL)], summary: "Kling stand-in on \(standIn.baseURL)", stop: { await standIn.stop() })
        case "modal":
            let standIn = ModalStandIn()
            standIn.acceptAnyKey = true
            try await standIn.start()
            return PluginTestStandIn(config: ["app_url": .string(standIn.baseURL)], summary: "Modal app stand-in on \(standIn.baseURL)", stop: { await standIn.stop() })
        default:
            return nil
        }
    }
}
