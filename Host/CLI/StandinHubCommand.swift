import ArgumentParser
import Foundation
import SwitchyardTesting

extension StandinCommand {
    struct HuggingFace: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hf",
            abstract: "The Hugging Face Hub (API, /resolve/, LFS CDN), the inference router and Civitai downloads, with their failure modes.")
        @Option(help: "Port on 127.0.0.1 (0: any free port).") var port = 8789
        @Option(help: "HF_TOKEN it accepts; \"any\" accepts every token.") var token = "hf_STANDIN_read_token_000000000000"
        @Option(help: "Size in bytes of the sample repo's largest weight file.") var weightBytes = 3 << 20
        @Option(help: "Send CDN bodies at this many bytes per second (0: full speed), to try interrupting a pull.") var throttle = 0
        @Option(help: "Answer the next N Hub requests with 429 and Retry-After.") var rateLimit = 0
        @Option(help: "Answer the next N inference calls with 503 'currently loading'.") var loading = 0

        func run() async throws {
            let standIn = HubStandIn(token: token == "any" ? "hf_any" : token)
            standIn.acceptAnyToken = token == "any"
            standIn.addSampleRepos(weightBytes: weightBytes)
            standIn.configure {
                $0.throttleBytesPerSecond = throttle > 0 ? throttle : nil
                $0.rateLimitNext = rateLimit
                $0.loadingNext = loading
            }
            try await standIn.start(port: port)
            StandInBanner.write("""
                Hugging Face stand-in on \(standIn.baseURL) (CDN \(standIn.cdnBaseURL)). Repos: hf-internal-testing/tiny-stable-diffusion-pipe, \
                standin/gated-model (gated), standin/private-model (private); Civitai version 128713.
                  export HF_ENDPOINT=\(standIn.baseURL) CIVITAI_ENDPOINT=\(standIn.baseURL) YARD_ALLOW_PRIVATE_REDIRECTS=1
                  printf %s '\(token == "any" ? "anything" : token)' | yard secrets set HF_TOKEN
                  yard models pull hf-internal-testing/tiny-stable-diffusion-pipe
                  mkdir -p "$YARD_HOME/config" && echo '{"hub_url":"\(standIn.baseURL)","router_url":"\(standIn.baseURL)"}' > "$YARD_HOME/config/huggingface.json"
                Python: HF_ENDPOINT=\(standIn.baseURL) python3 -c "from huggingface_hub import snapshot_download as s; print(s('hf-internal-testing/tiny-stable-diffusion-pipe'))"
                Ctrl-C to stop.
                """)
            await standIn.waitUntilStopped()
        }
    }
}
