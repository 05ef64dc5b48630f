import ArgumentParser
import Foundation
import SwitchyardHost
import SwitchyardStandIns

extension StandinCommand {
    struct Kling: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kling", abstract: "Kling's video API: JWT auth, text2video/image2video tasks, error codes 1000–5002, 30-day result retention.")
        @Option(help: "Port on 127.0.0.1 (0: any free port).") var port = 8792
        @Option(help: "Access key it accepts; \"any\" accepts every well-formed token (signature unchecked).") var accessKey = "ak_standin_0000000000"
        @Option(help: "Secret key tokens must be signed with.") var secretKey = "sk_standin_secret_0000000000"
        @Option(help: "Tasks in flight before submits answer 1303 (the account's parallel limit).") var parallelLimit = 20
        @Option(help: "Milliseconds a task waits before Kling starts it.") var queueMs: Int64 = 1_000
        @Option(help: "Milliseconds a task renders.") var processingMs: Int64 = 5_000

        func run() async throws {
            let standIn = KlingStandIn(accessKey: accessKey, secretKey: secretKey)
            standIn.acceptAnyKey = accessKey == "any"
            standIn.configure { $0.parallelLimit = parallelLimit; $0.queueMs = max(0, queueMs); $0.processingMs = max(0, processingMs) }
            try await standIn.start(port: port)
            StandInBanner.write("""
                Kling stand-in on \(standIn.baseURL). Point the kling engine at it:
                  yard config set kling base_url=\(standIn.baseURL)
                  printf %s '\(accessKey == "any" ? "any-access-key" : accessKey)' | yard secrets set KLING_ACCESS_KEY
                  printf %s '\(secretKey)' | yard secrets set KLING_SECRET_KEY
                Ctrl-C to stop.
                """)
            await standIn.waitUntilStopped()
        }
    }

    struct Modal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "modal", abstract: "The deployed Switchyard Modal app: proxy auth, spawn, 202 while pending, 303 past 150 s, 7-day expiry.")
        @Option(help: "Port on 127.0.0.1 (0: any free port).") var port = 8793
        @Option(help: "Modal-Key it accepts; \"any\" accepts every non-empty pair.") var key = "wk-standin0000"
        @Option(help: "Modal-Secret it accepts.") var secret = "ws-standin0000secret"
        @Option(help: "Model the app serves.") var model = "black-forest-labs/FLUX.1-schnell"
        @Option(help: "Cold start in milliseconds; over 150000 the first request is answered 303.") var coldStartMs: Int64 = 0
        @Option(help: "Milliseconds a call runs before its result is ready.") var runMs: Int64 = 3_000

        func run() async throws {
            let standIn = ModalStandIn(key: key, secret: secret, model: model)
            standIn.acceptAnyKey = key == "any"
            standIn.configure { $0.coldStartMs = coldStartMs; $0.runMs = max(0, runMs) }
            try await standIn.start(port: port)
            StandInBanner.write("""
                Modal app stand-in on \(standIn.baseURL) (serving \(model)). Point the modal engine at it:
                  yard config set modal app_url=\(standIn.baseURL)
                  printf %s '\(key == "any" ? "wk-any" : key)' | yard secrets set MODAL_KEY
                  printf %s '\(secret)' | yard secrets set MODAL_SECRET
                Ctrl-C to stop.
                """)
            await standIn.waitUntilStopped()
        }
    }
}
