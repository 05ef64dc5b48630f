import ArgumentParser
import Foundation
import SwitchyardHost
import SwitchyardStandIns

/// Provider stand-ins on loopback, to develop pipelines without spending money.
struct StandinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "standin",
        abstract: "Run a provider stand-in on 127.0.0.1 (real protocol, no GPUs, no bills).",
        subcommands: [RunPod.self, Fal.self, ComfyUI.self, HuggingFace.self, Stripe.self, Kling.self, Modal.self, Soak.self])

    struct RunPod: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "runpod", abstract: "A RunPod serverless endpoint: /run, /status, /cancel, /health, with its failure modes.")
        @Option(help: "Port on 127.0.0.1 (0: any free port).") var port = 8787
        @Option(help: "API key it accepts; \"any\" accepts every non-empty key.") var apiKey = "rpa_STANDIN_KEY_0000000000"
        @Option(help: "Endpoint id it serves.") var endpointID = "standin-endpoint"
        @Option(help: "Milliseconds a job waits in the queue before a worker takes it (a cold start).") var queueMs: Int64 = 500
        @Option(help: "Milliseconds a job runs on a worker (its executionTime).") var runMs: Int64 = 2_000
        @Flag(help: "Jobs never leave the queue.") var stuckInQueue = false
        @Option(help: "How the endpoint's worker answers: image-url, sdxl (images as data URIs), comfyui (worker-comfyui 5.x, base64), comfyui-s3 (its S3 links), video-url or audio-url.")
        var worker: RunPodStandIn.Worker = .imageURL

        func run() async throws {
            let standIn = RunPodStandIn(apiKey: apiKey == "any" ? "any" : apiKey, endpointID: endpointID)
            standIn.acceptAnyKey = apiKey == "any"
            standIn.worker = worker
            standIn.configure { $0.queueMs = max(0, queueMs); $0.runMs = max(0, runMs); $0.stuckInQueue = stuckInQueue }
            try await standIn.start(port: port)
            StandInBanner.write("""
                RunPod stand-in on \(standIn.baseURL) (endpoint \(endpointID)). Point the runpod engine at it:
                  yard config set runpod endpoint_id=\(endpointID) base_url=\(standIn.baseURL) rest_url=\(standIn.restURL) graphql_url=\(standIn.graphqlURL)
                  printf %s '\(apiKey == "any" ? "anything" : apiKey)' | yard secrets set RUNPOD_API_KEY
                Ctrl-C to stop.
                """)
            await standIn.waitUntilStopped()
        }
    }

    struct Fal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fal", abstract: "fal's queue and storage API: submit, status, result, cancel, uploads, with its failure modes.")
        @Option(help: "Port on 127.0.0.1 (0: any free port).") var port = 8788
        @Option(help: "FAL_KEY it accepts; \"any\" accepts every key.") var key = "fal-standin-key:secret"
        @Flag(help: "Answer submits with 403 'User is locked. Reason: Exhausted balance'.") var exhaustedBalance = false

        func run() async throws {
            let standIn = FalStandIn(key: key)
            standIn.acceptAnyKey = key == "any"
            standIn.configure { $0.exhaustedBalance = exhaustedBalance }
            try await standIn.start(port: port)
            StandInBanner.write("""
                fal stand-in on \(standIn.baseURL). Point the fal engine at it:
                  yard config set fal queue_url=\(standIn.baseURL) rest_url=\(standIn.baseURL) webhook_jwks_url=\(standIn.baseURL)/.well-known/jwks.json
                  printf %s '\(key == "any" ? "any:key" : key)' | yard secrets set FAL_KEY
                Ctrl-C to stop.
                """)
            await standIn.waitUntilStopped()
        }
    }

    struct Stripe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stripe", abstract: "Stripe's billing API: meter events, credit grants, customer balance, with idempotency keys and 429/5xx faults.")
        @Option(help: "Port on 127.0.0.1 (0: any free port).") var port = 8791
        @Option(help: "Secret key it accepts; \"any\" accepts every key.") var apiKey = "sk_test_STANDIN_0000000000000000"

        func run() async throws {
            let standIn = StripeStandIn(apiKey: apiKey)
            standIn.acceptAnyKey = apiKey == "any"
            try await standIn.start(port: port)
            StandInBanner.write("""
                Stripe stand-in on \(standIn.baseURL). Point the stripe-billing plugin at it:
                  yard config set stripe-billing base_url=\(standIn.baseURL)
                  printf %s '\(apiKey == "any" ? "sk_test_anything" : apiKey)' | yard secrets set STRIPE_API_KEY
                Ctrl-C to stop.
                """)
            await standIn.waitUntilStopped()
        }
    }
}

extension RunPodStandIn.Worker: ExpressibleByArgument {}
