import ArgumentParser
import Foundation
import SwitchyardHost
import SwitchyardJSON
import SwitchyardStandIns

extension StandinCommand {
    /// The stand-ins scripts/soak.sh kills the host against: RunPod, Kling and
    /// Stripe in one process (which outlives every kill of yard), and a stats
    /// endpoint that says what each provider saw — submissions per job,
    /// meter events per identifier — the provider's side of the soak's ledger.
    struct Soak: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "soak",
            abstract: "RunPod, Kling and Stripe stand-ins in one process, with GET /stats on a control port (for scripts/soak.sh).")
        @Option(help: "Write the stand-ins' URLs and keys (JSON) to this file once they listen.") var urlsFile: String

        func run() async throws {
            let runpod = RunPodStandIn()
            let kling = KlingStandIn()
            kling.configure { $0.queueMs = 200; $0.processingMs = 400 }
            let stripe = StripeStandIn()
            try await runpod.start()
            try await kling.start()
            try await stripe.start()
            let stats = ScriptedHTTPServer { _ in .json(Self.stats(runpod: runpod, kling: kling, stripe: stripe)) }
            try await stats.start()
            let urls: [String: Any] = [
                "runpod": ["base_url": runpod.baseURL, "rest_url": runpod.restURL, "endpoint_id": runpod.endpointID, "api_key": runpod.apiKey],
                "kling": ["base_url": kling.baseURL, "access_key": kling.accessKey, "secret_key": kling.secretKey],
                "stripe": ["base_url": stripe.baseURL, "api_key": stripe.apiKey],
                "stats_url": "\(stats.baseURL)/stats",
            ]
            let data = try JSONSerialization.data(withJSONObject: urls, options: [.sortedKeys])
            let tmp = urlsFile + ".tmp"
            try data.write(to: URL(fileURLWithPath: tmp))
            _ = rename(tmp, urlsFile)
            print("soak stand-ins ready: \(urlsFile)")
            // Stripe checks meter event timestamps against its clock (at most 5
            // minutes ahead): a soak runs longer than that, so its clock follows real time.
            let clock = stripe.clock
            let follower = Task {
                while !Task.isCancelled {
                    let behind = Int64(Date().timeIntervalSince1970 * 1000) - clock.nowUnixMs()
                    if behind > 0 { clock.advance(ms: behind) }
                    try? await Task.sleep(nanoseconds: 1_000_000_000)
                }
            }
            await stats.waitUntilStopped()
            follower.cancel()
        }

        /// What each provider was asked to do, keyed so the soak can match it to the host's jobs.
        static func stats(runpod: RunPodStandIn, kling: KlingStandIn, stripe: StripeStandIn) -> [String: Any] {
            func json(_ data: Data) -> JSONValue? { try? JSONValue(parsing: data) }
            var runs: [String: Int] = [:]
            for request in runpod.requestsSeen where request.method == "POST" && request.path.hasSuffix("/run") {
                let prompt = json(request.body)?["input"]?["prompt"]?.stringValue ?? "?"
                runs[prompt, default: 0] += 1
            }
            var tasks: [String: Int] = [:]
            for request in kling.requestsSeen where request.method == "POST" && request.path.hasPrefix("/v1/videos/") {
                let external = json(request.body)?["external_task_id"]?.stringValue ?? "?"
                tasks[external, default: 0] += 1
            }
            var recorded: [String: Int] = [:]
            for event in stripe.recordedEvents { recorded[event.identifier, default: 0] += 1 }
            var attempts: [String: Int] = [:]
            for request in stripe.meterEventRequestsSeen {
                let form = String(decoding: request.body, as: UTF8.self).split(separator: "&").map { $0.split(separator: "=", maxSplits: 1).map(String.init) }
                let identifier = form.first { $0.first == "identifier" }.flatMap { $0.count > 1 ? $0[1].removingPercentEncoding : nil } ?? "?"
                attempts[identifier, default: 0] += 1
            }
            return ["runpod_submissions_by_prompt": runs, "kling_submissions_by_external_id": tasks,
                    "stripe_recorded_by_identifier": recorded, "stripe_requests_by_identifier": attempts]
        }
    }
}
