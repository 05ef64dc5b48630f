import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SwitchyardHost
import SwitchyardJSON

/// `yard serve`: the HTTP API under /api/v1, /openapi.json, /healthz,
/// /readyz, /metrics, the provider webhook intake, and — when `drive` is on
/// — the daemon that drives the store. The CLI only parses options and
/// calls `run()`; tests build `router()` and talk to it in process.
public final class YardServer: @unchecked Sendable {
    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port = 8790
        /// Largest request body (API or webhook), in bytes.
        public var maxBodyBytes = 10 << 20
        public var readTimeoutMs = 10_000
        public var idleTimeoutSeconds = 30
        /// Requests per second per token (0: unlimited), and the burst allowed.
        public var rateLimitPerSecond: Double = 20
        public var rateLimitBurst: Double = 40
        /// Origins a browser may call the API from; empty: CORS is off.
        public var corsOrigins: [String] = []
        /// Whether this server drives the store (takes the driver lock).
        public var drive = true
        public var outboxIntervalSeconds: Double = 30
        /// How often a live stream looks for new events.
        public var streamPollSeconds: Double = 0.25
        /// How often finished work is turned into webhook deliveries and due deliveries are sent.
        public var webhookIntervalSeconds: Double = 1
        public init() {}
    }

    public let engine: JobEngine
    public let options: Options
    public let store: APIStore
    public let configs: EngineConfigs
    public let metrics = ServerMetrics()
    public let daemon: StoreDaemon?
    public let presets: PresetLibrary?
    /// The one poller of the event log behind every live stream.
    let broadcaster: EventBroadcaster
    /// Outbound webhooks: endpoints, the durable outbox, the delivery log.
    public let webhooks: WebhookOutbox
    /// Thumbnails and posters of artifacts, made with ffmpeg and kept in the store.
    public let previews: ArtifactPreviews
    let limiter: TokenRateLimiter
    public var log: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }

    public init(engine: JobEngine, options: Options = Options(), presets: PresetLibrary? = PresetLibrary.standard()) throws {
        self.engine = engine
        self.options = options
        self.store = try APIStore(engine: engine)
        self.previews = try ArtifactPreviews(engine: engine, pool: store.pool)
        self.configs = EngineConfigs(paths: engine.paths)
        self.presets = presets
        self.limiter = TokenRateLimiter(perSecond: options.rateLimitPerSecond, burst: options.rateLimitBurst)
        self.broadcaster = EventBroadcaster(pool: store.pool, pollSeconds: options.streamPollSeconds)
        self.webhooks = try WebhookOutbox(pool: store.pool)
        if options.drive {
            let daemon = StoreDaemon(engine: engine, configs: configs)
            daemon.outboxIntervalSeconds = options.outboxIntervalSeconds
            self.daemon = daemon
        } else {
            self.daemon = nil
        }
        let metrics = self.metrics
        engine.pluginCallObserver = { engine, operation, duration, ok in
            metrics.observePluginCall(engine: engine, operation: operation, duration: duration, ok: ok)
        }
    }

    /// The OpenAPI 3.1 document of this API (Host/Server/openapi.json, compiled in).
    public static var openAPIDocument: Data { Data(PackageResources.openapi_json) }

    public func router() -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: StatusCounter(metrics: metrics))
        if !options.corsOrigins.isEmpty {
            router.add(middleware: OriginCORS(origins: Set(options.corsOrigins)))
        }
        router.get("healthz") { _, _ in "ok\n" }
        router.get("readyz") { [self] _, _ -> Response in
            do {
                _ = try engine.store.jobs(limit: 1, phase: nil)
                let driving = JSONValue.bool(daemon?.isDriving ?? false)
                return JSONResponse.make(.object(["ready": .bool(true), "driving": driving,
                                                  "driver_pid": StoreDriver.driverPID(paths: engine.paths).map { JSONValue.number(Double($0)) } ?? JSONValue.null]))
            } catch {
                return JSONResponse.make(APIError.document(YardError("NOT_READY", "The job store cannot be read: \(YardError.describing(error).message)",
                                                                     remediation: "Check $YARD_HOME and its free space.")), status: 503)
            }
        }
        // The web page: one file, compiled in, nothing fetched from elsewhere.
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache",
                                            HTTPField.Name("Content-Security-Policy")!: "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' blob:; media-src 'self' blob:"],
                     body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.page_html)))
        }
        router.get("openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: Self.openAPIDocument)))
        }
        let gate = APIGate(store: store, limiter: limiter, maxBodyBytes: options.maxBodyBytes)
        router.group("metrics").add(middleware: gate).get { [self] _, context -> Response in
            _ = try context.require(.admin)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: metrics.render(store: store, driving: daemon?.isDriving ?? false))))
        }
        let api = router.group("api/v1").add(middleware: gate)
        APIRoutes(server: self).register(on: api)
        previews.register(on: api, store: store)
        DiagnosticsRoute.register(on: api, server: self)
        // Anything else under /api/v1 is a JSON 404 too, never an HTML page.
        for method in [HTTPRequest.Method.get, .post, .put, .delete] {
            api.on("**", method: method) { request, _ -> Response in
                throw APIError("ROUTE_NOT_FOUND", "\(request.method) \(request.uri.path) is not part of this API.", remediation: "See /openapi.json for the routes.")
            }
        }
        WebhookRoutes.register(on: router, engine: engine, paths: engine.paths, limit: options.maxBodyBytes, readTimeoutMs: options.readTimeoutMs)
        return router
    }

    /// The HTTP application (what `run` serves, and what tests drive with HummingbirdTesting).
    public func application(onListening: @escaping @Sendable (String) -> Void = { _ in }) -> some ApplicationProtocol {
        var logger = Logger(label: "switchyard.serve")
        logger.logLevel = .warning
        let host = options.host, port = options.port
        return Application(router: router(), server: .http1(configuration: .init(idleTimeout: .seconds(Int64(options.idleTimeoutSeconds)))),
                           configuration: .init(address: .hostname(host, port: port)),
                           onServerRunning: { channel in onListening("http://\(host):\(channel.localAddress?.port ?? port)") }, logger: logger)
    }

    /// Turns finished jobs and runs into webhook deliveries and sends what is
    /// due, while this server drives the store (one sender per store, so no
    /// delivery goes out twice from two servers).
    func sendWebhooks() async {
        webhooks.log = log
        let routes = APIRoutes(server: self)
        let runner = try? PipelineRunner(engine: engine, configs: configs)
        while !Task.isCancelled {
            if daemon?.isDriving == true {
                do {
                    try webhooks.enqueue(jobView: { routes.jobView($0, account: $1) },
                                         runView: { id in try runner.map { try routes.runView(id, runner: $0) } })
                    try await webhooks.deliverDue()
                } catch {
                    log("webhooks: \(YardError.describing(error).message)")
                }
            }
            try? await Task.sleep(nanoseconds: UInt64(max(0.05, options.webhookIntervalSeconds) * 1e9))
        }
    }

    /// Serves, and drives the store, until cancelled; `onListening` gets the
    /// bound address (the port when 0 was asked for).
    public func run(onListening: @escaping @Sendable (String) -> Void) async throws {
        let app = application(onListening: onListening)
        let daemon = self.daemon
        daemon?.log = log
        try await withThrowingTaskGroup(of: Void.self) { group in
            if let daemon {
                group.addTask { await daemon.run() }
                group.addTask { [self] in await sendWebhooks() }
            }
            group.addTask { try await app.runService() }
            // The server ending (a signal) ends the daemon too.
            _ = try await group.next()
            group.cancelAll()
        }
        broadcaster.shutdown()
    }
}

/// Counts answers by status class for /metrics.
struct StatusCounter: RouterMiddleware {
    typealias Context = APIRequestContext
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            metrics.countRequest(status: Int(response.status.code))
            return response
        } catch let error as HTTPResponseError {
            metrics.countRequest(status: Int(error.status.code))
            throw error
        }
    }
}

/// CORS for the listed origins only (off unless --cors-origin is given):
/// a page on another origin may call the API with a token, and nothing else may.
struct OriginCORS: RouterMiddleware {
    typealias Context = APIRequestContext
    let origins: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin], origins.contains(origin) else { return try await next(request, context) }
        var allowed: HTTPFields = [.accessControlAllowOrigin: origin, .vary: "Origin"]
        if request.method == .options {
            allowed[.accessControlAllowMethods] = "GET, POST, PUT, DELETE, OPTIONS"
            allowed[.accessControlAllowHeaders] = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, Range"
            allowed[.accessControlMaxAge] = "600"
            return Response(status: .noContent, headers: allowed)
        }
        do {
            var response = try await next(request, context)
            for field in allowed { response.headers[field.name] = field.value }
            response.headers[.accessControlExposeHeaders] = "Content-Range, Location, Retry-After"
            return response
        } catch let error as APIError {
            var response = try error.response(from: request, context: context)
            for field in allowed { response.headers[field.name] = field.value }
            return response
        }
    }
}
