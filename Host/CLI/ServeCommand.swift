import ArgumentParser
import Foundation
import SwitchyardHost
import SwitchyardServer

/// `yard serve`: the host as a service (SwitchyardServer does the work).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the HTTP API (/api/v1, /openapi.json, /metrics), take provider webhooks, and drive the store's jobs and runs.",
        discussion: """
            Listens on 127.0.0.1 unless --host says otherwise; put a TLS-terminating proxy in front when the address is public. \
            API requests carry a token: `yard tokens create --account ACCOUNT --scope read|run|admin`; each token sees only its account's \
            jobs, runs, artifacts and credits. The document of the API is served at /openapi.json.
            While it runs, yard serve holds the store's driver lock and drives every job and pipeline run (what was unfinished at start \
            and what anything submits meanwhile), delivers the billing outbox, and applies webhooks: point a provider at \
            http(s)://YOUR-HOST/webhooks/ENGINE, e.g. set "webhook_url" in $YARD_HOME/config/fal.json. When another process drives \
            the store, yard serve says so, serves reads and submits, and takes over when that process stops.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port; the first line printed names it).") var port = 8790
    @Option(help: "Largest request body (API upload or webhook delivery) accepted, in bytes.") var maxBodyBytes = 10 << 20
    @Option(help: "Seconds between deliveries of pending usage events from the billing outbox (0: only when a settlement commits).")
    var outboxInterval: Double = 30
    @Option(help: "Milliseconds a delivery's body may take to arrive (slow senders are cut off with 408).") var readTimeoutMs = 10_000
    @Option(help: "Seconds an idle connection is kept open.") var idleTimeoutSeconds = 30
    @Option(help: "API requests per second per token (0: no limit); bursts of twice as many pass.") var rateLimit: Double = 20
    @Option(name: .customLong("cors-origin"), help: "An origin (https://app.example.com) whose pages may call the API (repeatable; default: none, CORS off).")
    var corsOrigins: [String] = []
    @Flag(name: .customLong("no-drive"), help: "Only serve: leave driving the store to `yard jobs resume` or the background driver.") var noDrive = false
    @Flag(inversion: .prefixedNo, help: """
        While the store has no live token and the server listens on loopback, make an admin token for account default and print         a link that opens the page signed in (on stderr; default: only when stderr is a terminal).
        """)
    var setupLink: Bool?

    func run() async throws {
        var options = YardServer.Options()
        options.host = host
        options.port = port
        options.maxBodyBytes = maxBodyBytes
        options.readTimeoutMs = readTimeoutMs
        options.idleTimeoutSeconds = idleTimeoutSeconds
        options.rateLimitPerSecond = rateLimit
        options.rateLimitBurst = rateLimit * 2
        options.corsOrigins = corsOrigins
        options.outboxIntervalSeconds = outboxInterval
        options.drive = !noDrive
        let server: YardServer
        do {
            server = try YardServer(engine: JobEngine.standard(paths: global.paths, registry: global.registry), options: options)
        } catch { throw fail(error, json: global.json) }
        let link: String?
        do { link = try setupToken() } catch { throw fail(error, json: global.json) }
        // Written straight to fd 1: a test or supervisor reads the port from this line.
        try await server.run { address in
            FileHandle.standardOutput.write(Data("listening on \(address)\n".utf8))
            if let link {
                // The token rides in the fragment: browsers never send it to a server, and the page drops it from the address bar.
                FileHandle.standardError.write(Data("""
                    Open \(address)/#token=\(link) to set up engines and run presets in your browser.
                    That link holds an admin token for account default, shown once: `yard tokens list` shows it, `yard tokens revoke ID` withdraws it.

                    """.utf8))
            }
        }
    }

    /// A first-run admin token for the page, made only when nothing else can
    /// use the API yet (no live token) and only a local browser can reach it.
    func setupToken() throws -> String? {
        guard setupLink ?? (isatty(STDERR_FILENO) == 1), ["127.0.0.1", "localhost", "::1"].contains(host) else { return nil }
        let store = try TokensCommand.store(global)
        guard try store.tokens().allSatisfy({ $0.revokedAt != nil }) else { return nil }
        return try store.createToken(account: "default", scope: .admin, name: "setup link printed by yard serve").token
    }
}
