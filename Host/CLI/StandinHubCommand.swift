import ArgumentParser
import Foundation
import SwitchyardStandIns

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
        @Option(help: "Also serve a small public diffusers repo under this id, e.g. stabilityai/sdxl-turbo (repeatable).") var repo: [String] = []

        func run() async throws {
            let standIn = HubStandIn(token: token == "any" ? "hf_any" : token)
            standIn.acceptAnyToken = token == "any"
            standIn.addSampleRepos(weightBytes: weightBytes)
            for (index, id) in repo.enumerated() {
                var extra = HubStandIn.Repo(id: id, files: [
                    .init(path: ".gitattributes", data: Data("*.safetensors filter=lfs diff=lfs merge=lfs -text\n".utf8), lfs: false),
                    .init(path: "README.md", data: Data("---\nlicense: apache-2.0\nlibrary_name: diffusers\n---\n# \(id) (stand-in)\n".utf8), lfs: false),
                    .init(path: "model_index.json", data: Data(#"{"_class_name":"DiffusionPipeline"}"#.utf8), lfs: false),
                    .init(path: "transformer/config.json", data: Data(#"{"in_channels":4}"#.utf8), lfs: false),
                    .init(path: "transformer/diffusion_pytorch_model.safetensors", data: HubStandIn.bytes(weightBytes / 4 + 1, seed: UInt64(101 + index)), lfs: true),
                    .init(path: "vae/config.json", data: Data(#"{"latent_channels":4}"#.utf8), lfs: false),
                ])
                extra.license = "apache-2.0"
                extra.pipelineTag = "text-to-image"
                extra.tags = ["diffusers", "license:apache-2.0"]
                standIn.add(extra)
            }
            standIn.configure {
                $0.throttleBytesPerSecond = throttle > 0 ? throttle : nil
                $0.rateLimitNext = rateLimit
                $0.loadingNext = loading
            }
            try await standIn.start(port: port)
            StandInBanner.write("""
                Hugging Face stand-in on \(standIn.baseURL) (CDN \(standIn.cdnBaseURL)). Repos: hf-internal-testing/tiny-stable-diffusion-pipe, \
                standin/gated-model (gated), standin/private-model (private)\(repo.map { ", \($0)" }.joined()); Civitai version 128713.
                  export HF_ENDPOINT=\(standIn.baseURL) CIVITAI_ENDPOINT=\(standIn.baseURL)
                  printf %s '\(token == "any" ? "anything" : token)' | yard secrets set HF_TOKEN
                  yard models pull hf-internal-testing/tiny-stable-diffusion-pipe
                  yard config set huggingface hub_url=\(standIn.baseURL) router_url=\(standIn.baseURL)
                Python: HF_ENDPOINT=\(standIn.baseURL) python3 -c "from huggingface_hub import snapshot_download as s; print(s('hf-internal-testing/tiny-stable-diffusion-pipe'))"
                Ctrl-C to stop.
                """)
            await standIn.waitUntilStopped()
        }
    }
}
