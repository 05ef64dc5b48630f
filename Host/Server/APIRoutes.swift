import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardHost
import SwitchyardJSON

/// The routes under /api/v1. Every handler reads its account from the
/// request's token: an account sees only the jobs, runs, artifacts and
/// credits that are its own, and a job, run or artifact of another account
/// is answered exactly like one that does not exist.
final class APIRoutes: @unchecked Sendable {
    let server: YardServer
    var engine: JobEngine { server.engine }
    var store: APIStore { server.store }
    var paths: YardPaths { server.engine.paths }

    init(server: YardServer) { self.server = server }

    func register(on api: RouterGroup<APIRequestContext>) {
        api.get("capabilities") { [self] _, context in try capabilities(context) }
        api.get("capabilities/:id") { [self] _, context in try capability(context) }
        api.get("engines") { [self] request, context in try await engines(request, context) }
        api.post("engines/:id/test") { [self] _, context in try await testEngine(context, secrets: [:]) }
        api.post("engines/:id/connect") { [self] request, context in try await connect(request, context) }
        api.get("secrets") { [self] _, context in try secretNames(context) }
        api.get("plugins") { [self] _, context in try plugins(context) }
        api.get("plugins/:id") { [self] _, context in try plugin(context) }
        api.get("presets") { [self] _, context in try presets(context) }
        api.get("presets/:name") { [self] _, context in try preset(context) }
        api.post("presets/:name/plan") { [self] request, context in try await planPreset(request, context) }
        api.post("presets/:name/runs") { [self] request, context in try await runPreset(request, context) }
        api.post("jobs") { [self] request, context in try await submit(request, context) }
        api.get("jobs") { [self] request, context in try listJobs(request, context) }
        api.get("jobs/:id") { [self] _, context in try job(context) }
        api.post("jobs/:id/cancel") { [self] _, context in try await cancel(context) }
        api.post("jobs/:id/resume") { [self] _, context in try resume(context) }
        api.get("jobs/:id/events") { [self] request, context in try events(request, context) }
        api.get("jobs/:id/stream") { [self] request, context in try streamJob(request, context) }
        api.get("events/stream") { [self] request, context in try streamAccount(request, context) }
        api.get("runs") { [self] request, context in try listRuns(request, context) }
        api.get("runs/:id") { [self] _, context in try run(context) }
        api.post("runs/:id/cancel") { [self] _, context in try await cancelRun(context) }
        api.post("artifacts") { [self] request, context in try await upload(request, context) }
        api.get("artifacts/:sha256") { [self] request, context in try download(request, context) }
        api.get("credits") { [self] _, context in try credits(context) }
        api.get("credits/history") { [self] request, context in try history(request, context) }
        registerBudgets(on: api)
        registerStreams(on: api)
        registerWebhookEndpoints(on: api)
    }

    // MARK: helpers

    func parameter(_ context: APIRequestContext, _ name: String) -> String { context.parameters.get(name) ?? "" }

    /// The request body as a JSON object (an empty body is an empty object).
    func jsonBody(_ request: Request, _ context: APIRequestContext) async throws -> [String: JSONValue] {
        let buffer = try await request.body.collect(upTo: server.options.maxBodyBytes)
        if buffer.readableBytes == 0 { return [:] }
        do {
            guard let object = try JSONValue(parsing: Data(buffer.readableBytesView)).objectValue else {
                throw APIError("BODY_INVALID", "The request body is not a JSON object.", remediation: "Send a JSON object (Content-Type: application/json).")
            }
            return object
        } catch let error as JSONParseError {
            throw APIError("BODY_INVALID", "The request body is not JSON: \(error).", remediation: "Send a JSON object (Content-Type: application/json).")
        }
    }

    func limit(_ request: Request, default value: Int = 50) throws -> Int {
        guard let text = request.uri.queryParameters.get("limit") else { return value }
        guard let limit = Int(text), (1...500).contains(limit) else {
            throw APIError(.usage, "limit must be a whole number from 1 to 500.", remediation: "Pass e.g. ?limit=50.", field: "limit")
        }
        return limit
    }

    static func validName(_ text: String) -> Bool {
        text.range(of: "^[a-z0-9][a-z0-9._-]{0,63}$", options: .regularExpression) != nil && !text.contains("..")
    }

    /// Every artifact handle in `inputs` must be one the account may use:
    /// another account's upload is refused like a handle that does not exist.
    func checkArtifacts(_ value: JSONValue, account: String, field: String) throws {
        switch value {
        case .object(let members):
            if let handle = members["artifact"]?.stringValue {
                guard let digest = ArtifactDirectory.digest(ofHandle: handle) else { throw APIError(ArtifactDirectory.invalidHandle(handle, field: field)) }
                guard try store.ownsArtifact(digest, account: account) else {
                    throw APIError("ARTIFACT_NOT_FOUND", "No artifact \(handle) for account \(account).",
                                   remediation: "Upload the file with POST /api/v1/artifacts and pass the handle it answers.", field: field)
                }
            }
            for (key, member) in members { try checkArtifacts(member, account: account, field: "\(field).\(key)") }
        case .array(let items):
            for (i, item) in items.enumerated() { try checkArtifacts(item, account: account, field: "\(field)[\(i)]") }
        default: return
        }
    }

    func ownedJob(_ id: String, _ token: APIToken) throws -> JobRecord {
        guard id.hasPrefix("job_"), try store.ownsJob(id, account: token.account), let job = try engine.store.job(id: id) else {
            throw APIError(YardError(.jobNotFound, "No job \(SafePath.shown(id)) for account \(token.account).", remediation: "List the account's jobs with GET /api/v1/jobs.", field: "id"))
        }
        return job
    }

    static let keyPrefix = "api/"
    /// Idempotency keys are kept per account: one account's key never names another's job.
    static func storedKey(_ key: String, account: String) -> String { "\(keyPrefix)\(account)/\(key)" }
    static func shownKey(_ stored: String, account: String) -> String {
        let prefix = storedKey("", account: account)
        return stored.hasPrefix(prefix) ? String(stored.dropFirst(prefix.count)) : stored
    }

    func jobView(_ job: JobRecord, account: String) -> JSONValue {
        var view: [String: JSONValue] = [:]
        view["id"] = .string(job.id)
        view["engine"] = .string(job.pluginID)
        view["engine_version"] = .string(job.pluginVersion)
        view["capability"] = .string(job.capability)
        view["state"] = .string(job.phase.rawValue)
        view["progress"] = job.progress.map(JSONValue.number) ?? JSONValue.null
        view["message"] = job.message.map(JSONValue.string) ?? JSONValue.null
        view["inputs"] = JSONResponse.parsed(job.inputsJSON)
        view["outputs"] = JSONResponse.parsed(job.outputsJSON)
        view["error"] = JSONResponse.parsed(job.errorJSON)
        view["cancel_requested"] = .bool(job.cancelRequested)
        view["cancel_outcome"] = JSONResponse.parsed(job.cancelOutcomeJSON)
        view["idempotency_key"] = .string(Self.shownKey(job.idempotencyKey, account: account))
        view["estimate_minor"] = job.estimateMinor.map { JSONValue.number(Double($0)) } ?? JSONValue.null
        view["attempt"] = .number(Double(job.attempt))
        view["created_at"] = JSONResponse.time(job.createdAt)
        view["updated_at"] = JSONResponse.time(job.updatedAt)
        view["submitted_at"] = JSONResponse.time(job.submittedAt)
        view["finished_at"] = JSONResponse.time(job.finishedAt)
        return .object(view)
    }

    static func eventView(_ event: JobEvent) -> JSONValue {
        .object(["id": .number(Double(event.id ?? 0)), "job_id": .string(event.jobID), "at": JSONResponse.time(event.at),
                 "kind": .string(event.kind), "message": .string(event.message), "data": JSONResponse.parsed(event.dataJSON)])
    }

    // MARK: capabilities

    func capabilities(_ context: APIRequestContext) throws -> Response {
        _ = try context.require(.read)
        let entries = engine.catalog.entries.values.sorted { $0.id < $1.id }
        return JSONResponse.make(.object(["capabilities": .array(entries.map { JSONValue.object(["id": .string($0.id), "title": .string($0.title)]) })]))
    }

    func capability(_ context: APIRequestContext) throws -> Response {
        _ = try context.require(.read)
        let id = parameter(context, "id")
        guard let entry = engine.catalog.entries[id] else {
            throw APIError("CAPABILITY_NOT_FOUND", "No capability \(SafePath.shown(id)).", remediation: "List them with GET /api/v1/capabilities.", field: "id")
        }
        let engines = engine.registry.list().filter { $0.status == .ok && $0.capabilities.contains(id) }.map { JSONValue.string($0.id) }
        return JSONResponse.make(.object(["id": .string(entry.id), "title": .string(entry.title), "input_schema": entry.input.document,
                                          "output_schema": entry.output?.document ?? JSONValue.null, "engines": .array(engines)]))
    }

    // MARK: engines, secrets, plugins (admin: they are the host's, not an account's)

    func engines(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        _ = try context.require(.admin)
        let refresh = request.uri.queryParameters.get("refresh") == "true"
        var rows: [JSONValue] = []
        for installed in engine.registry.list() {
            rows.append(await engineRow(installed, maxAge: refresh ? 0 : engine.policy.healthTTLSeconds))
        }
        return JSONResponse.make(.object(["engines": .array(rows)]))
    }

    /// One row of the health and balance matrix (what `yard engines --json` shows).
    func engineRow(_ installed: InstalledPlugin, maxAge: Double) async -> JSONValue {
        var row: [String: JSONValue] = ["engine": .string(installed.id), "version": .string(installed.version),
                                        "capabilities": .array(installed.capabilities.map(JSONValue.string)),
                                        "status": .string(installed.status.rawValue), "balance": .null, "checked_at": .null,
                                        "code": .null, "message": .null, "remediation": .null, "secrets": .array([])]
        guard installed.status == .ok else {
            row["message"] = installed.problem.map { JSONValue.string($0.message) } ?? JSONValue.null
            row["remediation"] = installed.problem.map { JSONValue.string($0.remediation) } ?? JSONValue.null
            return .object(row)
        }
        do {
            let plugin = try engine.plugin(installed.id)
            let manifest = plugin.manifest
            row["secrets"] = .array(manifest.secrets.map { JSONValue.object(["name": .string($0.name), "required": .bool($0.required),
                                                                     "set": .bool(engine.secrets.value(of: $0.name) != nil)]) })
            let missing = manifest.secrets.filter { $0.required && engine.secrets.value(of: $0.name) == nil }.map(\.name)
            if !missing.isEmpty {
                row["status"] = "auth_missing"
                row["code"] = "AUTH_MISSING"
                row["message"] = .string("missing secrets: \(missing.joined(separator: ", "))")
                row["remediation"] = .string("Connect the engine: POST /api/v1/engines/\(installed.id)/connect with {\"secrets\":{\"\(missing[0])\":\"…\"}}.")
                return .object(row)
            }
            let config = try server.configs.config(for: installed.id)
            let health = await engine.health(of: plugin, config: config, maxAge: maxAge, balance: true)
            row["status"] = .string(health.status == "ok" ? "ok" : health.code == "AUTH_FAILED" ? "auth_failed" : health.status)
            row["checked_at"] = JSONResponse.time(health.checkedAt)
            row["message"] = health.message.map(JSONValue.string) ?? JSONValue.null
            if health.status != "ok" {
                row["code"] = health.code.map(JSONValue.string) ?? JSONValue.null
                row["remediation"] = .string(JobEngine.healthRefusal(health, manifest: manifest, age: Int(Date().timeIntervalSince(health.checkedAt))).remediation)
            }
            if manifest.extensions.contains("sy.balance/1") { row["balance"] = JSONResponse.parsed(health.balanceJSON) }
        } catch {
            let refusal = YardError.describing(error)
            row["status"] = refusal.code.rawValue == "CONFIG_INVALID" ? "config_invalid" : "unloadable"
            row["message"] = .string(refusal.message)
            row["remediation"] = .string(refusal.remediation)
        }
        return .object(row)
    }

    func installed(_ id: String) throws -> InstalledPlugin {
        guard Self.validName(id), let row = engine.registry.list().first(where: { $0.id == id }) else {
            throw APIError(.pluginNotFound, "No engine \(SafePath.shown(id)).", remediation: "List engines with GET /api/v1/engines.", field: "id")
        }
        return row
    }

    /// Connect = store the engine's secrets (encrypted at rest), then test
    /// them. Only secrets the engine declares are taken; values are never
    /// answered back, nor logged.
    func connect(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        _ = try context.require(.admin)
        let row = try installed(parameter(context, "id"))
        let body = try await jsonBody(request, context)
        guard let given = body["secrets"]?.objectValue, !given.isEmpty else {
            throw APIError("BODY_INVALID", "Send the engine's secrets as {\"secrets\":{\"NAME\":\"value\"}}.", remediation: "GET /api/v1/engines lists each engine's secret names.", field: "secrets")
        }
        let manifest = try engine.plugin(row.id).manifest
        let declared = Set(manifest.secrets.map(\.name))
        var values: [(String, String)] = []
        for (name, value) in given.sorted(by: { $0.key < $1.key }) {
            guard declared.contains(name) else {
                throw APIError("SECRET_NOT_DECLARED", "\(row.id) declares no secret \(SafePath.shown(name)).",
                               remediation: "Use one of: \(declared.sorted().joined(separator: ", ")).", field: "secrets.\(name)", status: 400)
            }
            guard let text = value.stringValue, !text.isEmpty, text.utf8.count <= 8192 else {
                throw APIError("BODY_INVALID", "The value of \(name) must be a non-empty string.", remediation: "Send the key as a JSON string.", field: "secrets.\(name)")
            }
            values.append((name, text))
        }
        let vault = SecretVault(paths: paths)
        for (name, text) in values { try vault.set(name, value: text) }
        return try await testEngine(context, secrets: Dictionary(uniqueKeysWithValues: values), stored: values.map(\.0))
    }

    /// Test Connection: a live health and balance check with the engine's
    /// effective configuration, never the cache.
    func testEngine(_ context: APIRequestContext, secrets: [String: String], stored: [String] = []) async throws -> Response {
        _ = try context.require(.admin)
        let row = try installed(parameter(context, "id"))
        let checked = await engineRow(row, maxAge: 0)
        var report = checked.objectValue ?? [:]
        report["ok"] = .bool(report["status"]?.stringValue == "ok")
        report["stored_secrets"] = .array(stored.map(JSONValue.string))
        // A value just stored must not come back in a provider's message.
        var text = String(decoding: JSONValue.object(report).serialized(), as: UTF8.self)
        for value in secrets.values where value.count >= 4 { text = text.replacingOccurrences(of: value, with: "[redacted]") }
        return JSONResponse.make((try? JSONValue(parsing: Data(text.utf8))) ?? .object(report))
    }

    func secretNames(_ context: APIRequestContext) throws -> Response {
        _ = try context.require(.admin)
        let names = SecretVault(paths: paths).names()
        return JSONResponse.make(.object(["secrets": .array(names.map { JSONValue.object(["name": .string($0.name), "from_environment": .bool($0.fromEnvironment)]) })]))
    }

    func plugins(_ context: APIRequestContext) throws -> Response {
        _ = try context.require(.admin)
        let rows = engine.registry.list().map { row -> JSONValue in
            .object(["id": .string(row.id), "version": .string(row.version), "abi": .string(row.abi), "status": .string(row.status.rawValue),
                     "capabilities": .array(row.capabilities.map(JSONValue.string)),
                     "problem": row.problem.map { APIError.document($0)["error"] ?? JSONValue.null } ?? JSONValue.null])
        }
        return JSONResponse.make(.object(["plugins": .array(rows)]))
    }

    func plugin(_ context: APIRequestContext) throws -> Response {
        _ = try context.require(.admin)
        let row = try installed(parameter(context, "id"))
        let manifest = try engine.plugin(row.id).manifest
        return JSONResponse.make(.object([
            "id": .string(manifest.id), "name": .string(manifest.name), "version": .string(manifest.version),
            "vendor": manifest.vendor.map(JSONValue.string) ?? JSONValue.null, "description": manifest.description.map(JSONValue.string) ?? JSONValue.null,
            "abi": .string(manifest.abi), "status": .string(row.status.rawValue),
            "capabilities": .array(manifest.capabilities.map { JSONValue.object(["id": .string($0.id), "limits": $0.limits ?? JSONValue.null]) }),
            "secrets": .array(manifest.secrets.map { JSONValue.object(["name": .string($0.name), "required": .bool($0.required)]) }),
            "extensions": .array(manifest.extensions.map(JSONValue.string)), "config_schema": manifest.configSchema ?? JSONValue.null,
        ]))
    }

    // MARK: presets and runs

    func presetLibrary() throws -> PresetLibrary {
        guard let library = server.presets else {
            throw APIError("PRESET_NOT_FOUND", "This host has no presets folder.", remediation: "Install yard with its Registry (Registry/presets).")
        }
        return library
    }

    /// A preset by name only: a path would let a client load any file on the host.
    func loadPreset(_ context: APIRequestContext) throws -> PipelineDefinition {
        let name = parameter(context, "name")
        guard Self.validName(name) else {
            throw APIError("PRESET_NOT_FOUND", "No preset named \(SafePath.shown(name)).", remediation: "List them with GET /api/v1/presets.", field: "name")
        }
        do { return try presetLibrary().load(name) } catch let error as YardError { throw APIError(error) }
    }

    static func presetView(_ definition: PipelineDefinition) -> JSONValue {
        .object([
            "id": .string(definition.id), "title": .string(definition.title), "description": .string(definition.description),
            "default_quality": .string(definition.defaultQuality),
            "inputs": .array(definition.inputs.values.sorted { $0.name < $1.name }.map {
                .object(["name": .string($0.name), "kind": .string($0.kind.rawValue), "required": .bool($0.required),
                         "default": $0.defaultValue ?? JSONValue.null, "media_types": .array($0.mediaTypes.map(JSONValue.string)), "description": .string($0.description)])
            }),
            "steps": .array(definition.steps.map { JSONValue.object(["name": .string($0.name), "capability": .string($0.capability)]) }),
        ])
    }

    func presets(_ context: APIRequestContext) throws -> Response {
        _ = try context.require(.read)
        let library = try presetLibrary()
        let rows = library.files().compactMap { try? library.load($0.deletingPathExtension().lastPathComponent) }.map(Self.presetView)
        return JSONResponse.make(.object(["presets": .array(rows)]))
    }

    func preset(_ context: APIRequestContext) throws -> Response {
        _ = try context.require(.read)
        return JSONResponse.make(Self.presetView(try loadPreset(context)))
    }

    func planRequest(_ request: Request, _ context: APIRequestContext, account: String) async throws -> (PipelineDefinition, [String: JSONValue], PipelinePlan, [String: JSONValue]) {
        let definition = try loadPreset(context)
        let body = try await jsonBody(request, context)
        let inputs = body["inputs"]?.objectValue ?? [:]
        try checkArtifacts(.object(inputs), account: account, field: "inputs")
        // Planned against the account's own credits, as the run would be billed.
        let plan = await PipelinePlanner(engine: engine, configs: server.configs).plan(definition, inputs: inputs, quality: body["quality"]?.stringValue,
                                                                                     billing: BillingScope(account: account, budgets: []))
        return (definition, inputs, plan, body)
    }

    func planPreset(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let token = try context.require(.read)
        let (_, _, plan, _) = try await planRequest(request, context, account: token.account)
        return JSONResponse.make(JSONResponse.value(plan))
    }

    func runPreset(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let token = try context.require(.run)
        let (definition, inputs, plan, body) = try await planRequest(request, context, account: token.account)
        guard plan.ready else {
            let first = plan.findings.first { $0.severity == .error }
            let error = YardError(.init(rawValue: first?.code ?? "PIPELINE_INVALID"), first?.message ?? "The pipeline is not ready to run.",
                                  remediation: first?.remediation ?? "POST …/plan shows every finding.", field: first?.field)
            var response = try APIError(error, status: 422).response(from: request, context: context)
            response.body = .init(byteBuffer: ByteBuffer(bytes: JSONValue.object(["error": APIError.document(error)["error"] ?? JSONValue.null,
                                                                                    "plan": JSONResponse.value(plan)]).serialized()))
            return response
        }
        let runner = try PipelineRunner(engine: engine, configs: server.configs)
        let prepared = PipelinePlanner.prepareInputs(definition, given: inputs).values
        // Owned before it exists, so its first step's first event already has an owner;
        // billed to the token's account whichever process ends up driving it.
        let runID = PipelineRunner.newRunID()
        try store.own(.run, runID, account: token.account)
        let billing = try runBilling(body: body, account: token.account, runID: runID)
        let run = try runner.create(definition, source: "preset:\(definition.id)", inputs: prepared, quality: plan.quality, noCache: false,
                                    billing: billing, id: runID)
        return JSONResponse.make(.object(["run": try runView(run.id, runner: runner), "plan": JSONResponse.value(plan)]), status: 201)
    }

    func runView(_ id: String, runner: PipelineRunner) throws -> JSONValue {
        guard let run = try runner.store.run(id: id) else { throw APIError(PipelineRunStore.runNotFound(id)) }
        let steps = try runner.store.steps(runID: id)
        return .object([
            "id": .string(run.id), "pipeline": .string(run.pipelineID), "state": .string(run.state.rawValue), "quality": .string(run.quality),
            "inputs": JSONResponse.parsed(run.inputsJSON), "outputs": JSONResponse.parsed(run.outputsJSON), "error": JSONResponse.parsed(run.errorJSON),
            "created_at": JSONResponse.time(run.createdAt), "updated_at": JSONResponse.time(run.updatedAt),
            "finished_at": JSONResponse.time(run.finishedAt),
            "steps": .array(steps.map(Self.stepView)),
        ])
    }

    static func stepView(_ step: PipelineStepRecord) -> JSONValue {
        var view: [String: JSONValue] = [:]
        view["name"] = .string(step.name)
        view["capability"] = .string(step.capability)
        view["state"] = .string(step.state.rawValue)
        view["engine"] = step.engine.map(JSONValue.string) ?? JSONValue.null
        view["job_id"] = step.jobID.map(JSONValue.string) ?? JSONValue.null
        view["cache_hit"] = .bool(step.cacheHit)
        view["outputs"] = JSONResponse.parsed(step.outputsJSON)
        view["error"] = JSONResponse.parsed(step.errorJSON)
        return .object(view)
    }

    func ownedRunID(_ context: APIRequestContext, _ token: APIToken) throws -> String {
        let id = parameter(context, "id")
        guard id.hasPrefix("run_"), try store.ownsRun(id, account: token.account) else {
            throw APIError("RUN_NOT_FOUND", "No run \(SafePath.shown(id)) for account \(token.account).", remediation: "List the account's runs with GET /api/v1/runs.", field: "id")
        }
        return id
    }

    func run(_ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        let id = try ownedRunID(context, token)
        return JSONResponse.make(try runView(id, runner: PipelineRunner(engine: engine, configs: server.configs)))
    }

    func listRuns(_ request: Request, _ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        let runner = try PipelineRunner(engine: engine, configs: server.configs)
        let ids = try store.runIDs(account: token.account, limit: limit(request))
        return JSONResponse.make(.object(["runs": .array(try ids.map { try runView($0, runner: runner) })]))
    }

    func cancelRun(_ context: APIRequestContext) async throws -> Response {
        let token = try context.require(.run)
        let id = try ownedRunID(context, token)
        let runner = try PipelineRunner(engine: engine, configs: server.configs)
        _ = try await runner.cancel(id)
        await engine.deliverUsage()
        return JSONResponse.make(try runView(id, runner: runner))
    }

    // MARK: jobs

    func submit(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let token = try context.require(.run)
        let body = try await jsonBody(request, context)
        guard let engineID = body["engine"]?.stringValue, Self.validName(engineID) else {
            throw APIError("BODY_INVALID", "Name the engine: {\"engine\":\"echo\",\"capability\":\"…\",\"inputs\":{…}}.", remediation: "GET /api/v1/capabilities/ID lists the engines of a capability.", field: "engine")
        }
        guard let capability = body["capability"]?.stringValue, !capability.isEmpty else {
            throw APIError("BODY_INVALID", "Name the capability, e.g. \"capability\":\"image.generate\".", remediation: "GET /api/v1/capabilities lists them.", field: "capability")
        }
        let inputs = body["inputs"]?.objectValue ?? [:]
        try checkArtifacts(.object(inputs), account: token.account, field: "inputs")
        // A configuration names hosts and models the host calls with its own keys: the admin's to change.
        var overrides: [String: JSONValue] = [:]
        if let config = body["config"]?.objectValue, !config.isEmpty {
            _ = try context.require(.admin)
            overrides = config
        }
        var spec = JobSpec(pluginID: engineID, capability: capability, inputs: inputs, config: try server.configs.config(for: engineID, overrides: overrides))
        if let key = request.headers[HTTPField.Name("Idempotency-Key")!] {
            guard !key.isEmpty, key.utf8.count <= 200, key.unicodeScalars.allSatisfy({ $0.value >= 0x21 && $0.value < 0x7f }) else {
                throw APIError("IDEMPOTENCY_KEY_INVALID", "The Idempotency-Key header must be 1 to 200 printable ASCII characters without spaces.",
                               remediation: "Use e.g. a UUID per logical request.", field: "Idempotency-Key")
            }
            spec.idempotencyKey = Self.storedKey(key, account: token.account)
        } else {
            spec.idempotencyKey = Self.storedKey("auto-" + UUID().uuidString.lowercased(), account: token.account)
        }
        spec.billing = BillingScope(account: token.account, budgets: [])
        let existed = try spec.idempotencyKey.flatMap { try engine.store.job(idempotencyKey: $0) } != nil
        let job: JobRecord
        do { job = try await engine.start(spec) } catch let error as YardError { throw APIError(error) }
        try store.own(.job, job.id, account: token.account)
        return JSONResponse.make(jobView(job, account: token.account), status: existed ? 200 : 201,
                                 headers: [.location: "/api/v1/jobs/\(job.id)"])
    }

    /// Cursor: base64url of "created_at|id" of the last job of the page.
    static func cursor(_ position: (createdAt: String, id: String)) -> String {
        Data("\(position.createdAt)|\(position.id)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func parseCursor(_ text: String) throws -> (createdAt: String, id: String) {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard text.count <= 200, let data = Data(base64Encoded: base64), let decoded = String(data: data, encoding: .utf8),
              let bar = decoded.lastIndex(of: "|") else {
            throw APIError("CURSOR_INVALID", "The cursor is not one this server gave.", remediation: "Pass next_cursor from the previous page unchanged.", field: "cursor")
        }
        return (String(decoded[..<bar]), String(decoded[decoded.index(after: bar)...]))
    }

    func listJobs(_ request: Request, _ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        let query = request.uri.queryParameters
        let phase = try query.get("state").map { text -> JobPhase in
            guard let phase = JobPhase(rawValue: text) else {
                throw APIError(.usage, "Unknown state \(SafePath.shown(text)).", remediation: "Use one of \(JobPhase.allCases.map(\.rawValue).joined(separator: ", ")).", field: "state")
            }
            return phase
        }
        let cursor = try query.get("cursor").map(Self.parseCursor)
        let page = try store.jobs(account: token.account, phase: phase, engine: query.get("engine"), capability: query.get("capability"),
                                  limit: limit(request), after: cursor)
        return JSONResponse.make(.object(["jobs": .array(page.jobs.map { jobView($0, account: token.account) }),
                                          "next_cursor": page.next.map { JSONValue.string(Self.cursor($0)) } ?? JSONValue.null]))
    }

    func job(_ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        return JSONResponse.make(jobView(try ownedJob(parameter(context, "id"), token), account: token.account))
    }

    func cancel(_ context: APIRequestContext) async throws -> Response {
        let token = try context.require(.run)
        let job = try ownedJob(parameter(context, "id"), token)
        let cancelled: JobRecord
        do { cancelled = try await engine.cancel(job.id) } catch let error as YardError { throw APIError(error) }
        await engine.deliverUsage()
        return JSONResponse.make(jobView(cancelled, account: token.account))
    }

    /// Resume: the store's driver follows every unfinished job; this says
    /// which process does, or that the job is already finished.
    func resume(_ context: APIRequestContext) throws -> Response {
        let token = try context.require(.run)
        let job = try ownedJob(parameter(context, "id"), token)
        guard !job.phase.isTerminal else {
            throw APIError("JOB_FINISHED", "\(job.id) is \(job.phase.rawValue): there is nothing to resume.",
                           remediation: job.phase == .needsAttention ? "Resolve it with `yard jobs resolve \(job.id)` after checking the provider." : "Submit a new job.")
        }
        let driver: JSONValue = server.daemon?.isDriving == true ? .string("this server") : StoreDriver.driverPID(paths: paths).map { JSONValue.string("pid \($0)") } ?? JSONValue.null
        return JSONResponse.make(.object(["job": jobView(job, account: token.account), "driven_by": driver]), status: 202)
    }

    func events(_ request: Request, _ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        let job = try ownedJob(parameter(context, "id"), token)
        let after = Int64(request.uri.queryParameters.get("after") ?? "0") ?? 0
        let events = try store.events(account: token.account, jobID: job.id, afterID: after, limit: try limit(request, default: 500))
        return JSONResponse.make(.object(["events": .array(events.map(Self.eventView)), "state": .string(job.phase.rawValue)]))
    }

    // MARK: live progress

    static func lastEventID(_ request: Request) -> Int64 {
        request.headers[HTTPField.Name("Last-Event-ID")!].flatMap { Int64($0) } ?? request.uri.queryParameters.get("after").flatMap { Int64($0) } ?? 0
    }

    // MARK: artifacts

    func upload(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let token = try context.require(.run)
        let mediaType = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? "application/octet-stream"
        guard mediaType.range(of: "^[a-z0-9.+-]+/[a-z0-9.+-]+$", options: .regularExpression) != nil else {
            throw APIError("BODY_INVALID", "Content-Type \(SafePath.shown(mediaType)) is not a media type.", remediation: "Send e.g. Content-Type: image/png.", field: "Content-Type")
        }
        let buffer = try await request.body.collect(upTo: server.options.maxBodyBytes)
        guard buffer.readableBytes > 0 else {
            throw APIError("BODY_INVALID", "The upload is empty.", remediation: "Send the file's bytes as the request body.")
        }
        let data = Data(buffer.readableBytesView)
        let digest = try engine.artifacts.put(data, mediaType: mediaType)
        if (try? (engine.store as? SQLiteJobStore)?.artifactMediaType(sha256: digest)) == nil {
            try engine.store.recordArtifact(ArtifactRecord(sha256: digest, size: data.count, mediaType: mediaType, jobID: nil, sourceURL: nil, createdAt: Date()))
        }
        try store.own(.artifact, digest, account: token.account)
        return JSONResponse.make(.object(["artifact": .string("sha256:\(digest)"), "media_type": .string(mediaType), "size": .number(Double(data.count))]),
                                 status: 201, headers: [.location: "/api/v1/artifacts/\(digest)"])
    }

    func download(_ request: Request, _ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        var digest = parameter(context, "sha256")
        if digest.hasPrefix("sha256:") { digest = String(digest.dropFirst(7)) }
        guard ArtifactDirectory.isDigest(digest), try store.ownsArtifact(digest, account: token.account) else {
            throw APIError("ARTIFACT_NOT_FOUND", "No artifact \(SafePath.shown(digest)) for account \(token.account).",
                           remediation: "Use a handle from one of the account's jobs (GET /api/v1/jobs/ID outputs).", field: "sha256")
        }
        let file = engine.artifacts.path(for: digest)
        guard let handle = try? FileHandle(forReadingFrom: file) else {
            throw APIError("ARTIFACT_NOT_FOUND", "Artifact \(digest.prefix(12)) is recorded but its file is gone.", remediation: "Run the job again.")
        }
        defer { try? handle.close() }
        let size = Int((try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? 0)
        let mediaType = (try? (engine.store as? SQLiteJobStore)?.artifactMediaType(sha256: digest)) ?? nil
        var headers: HTTPFields = [.contentType: mediaType ?? "application/octet-stream", .acceptRanges: "bytes",
                                   .eTag: "\"\(digest)\"", .cacheControl: "private, max-age=31536000, immutable"]
        var range = 0..<size
        var status = 200
        if let header = request.headers[.range] {
            guard let requested = ByteRange.parse(header, size: size) else {
                headers[.contentRange] = "bytes */\(size)"
                var error = APIError("RANGE_INVALID", "Range \(SafePath.shown(header)) does not fit a file of \(size) bytes.", remediation: "Ask for bytes=START-END within the file.", field: "Range")
                error.headers = [.contentRange: "bytes */\(size)"]
                throw error
            }
            range = requested
            status = 206
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)"
        }
        try handle.seek(toOffset: UInt64(range.lowerBound))
        let data = try handle.read(upToCount: range.count) ?? Data()
        headers[.contentLength] = "\(data.count)"
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    // MARK: credits

    func ledger() throws -> JobLedger {
        guard let ledger = engine.ledger else {
            throw APIError("BILLING_NOT_CONFIGURED", "This host keeps no credits ledger.", remediation: "Configure billing (README: Credits and billing).")
        }
        return ledger
    }

    func credits(_ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        return JSONResponse.make(JSONResponse.value(try ledger().balance(account: token.account)))
    }

    func history(_ request: Request, _ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        let postings = try ledger().history(account: token.account, limit: limit(request))
        return JSONResponse.make(.object(["account": .string(token.account), "postings": JSONResponse.value(postings)]))
    }
}

/// One `Range: bytes=…` header (a single range), as a half-open range of the file.
enum ByteRange {
    static func parse(_ header: String, size: Int) -> Range<Int>? {
        guard header.hasPrefix("bytes="), size > 0 else { return nil }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let first = spec[..<dash], last = spec[spec.index(after: dash)...]
        if first.isEmpty {
            guard let suffix = Int(last), suffix > 0 else { return nil }
            return max(0, size - suffix)..<size
        }
        guard let start = Int(first), start >= 0, start < size else { return nil }
        if last.isEmpty { return start..<size }
        guard let end = Int(last), end >= start else { return nil }
        return start..<(min(end, size - 1) + 1)
    }
}
