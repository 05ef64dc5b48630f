import Foundation
import HTTPTypes
import Hummingbird
import SwitchyardHost
import SwitchyardJSON

/// Live progress: one job, one run, or all of an account's work, as
/// Server-Sent Events from the event log (see `EventStream`).
extension APIRoutes {
    func registerStreams(on api: RouterGroup<APIRequestContext>) {
        api.get("events") { [self] request, context in try streamAccount(request, context) }
        api.get("runs/:id/events") { [self] request, context in try streamRun(request, context) }
    }

    /// A run's `run` frame, when the run is the account's.
    func liveRunView(_ id: String, account: String) throws -> JSONValue? {
        guard try store.ownsRun(id, account: account) else { return nil }
        return try runView(id, runner: PipelineRunner(engine: engine, configs: server.configs))
    }

    func streamJob(_ request: Request, _ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        let job = try ownedJob(parameter(context, "id"), token)
        let account = token.account, id = job.id
        return EventStream.response(channel: context.channel, broadcaster: server.broadcaster, pool: store.pool,
                                    filter: StreamFilter(account: account, jobID: id), after: Self.lastEventID(request),
                                    closing: { [self] in
                                        guard let job = try engine.store.job(id: id), job.phase.isTerminal else { return nil }
                                        return ("job", jobView(job, account: account))
                                    }, runView: { _ in nil })
    }

    func streamRun(_ request: Request, _ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        let id = try ownedRunID(context, token)
        let account = token.account
        let runner = try PipelineRunner(engine: engine, configs: server.configs)
        return EventStream.response(channel: context.channel, broadcaster: server.broadcaster, pool: store.pool,
                                    filter: StreamFilter(account: account, runID: id), after: Self.lastEventID(request),
                                    closing: { [self] in
                                        guard let run = try runner.store.run(id: id), run.state != .running else { return nil }
                                        return ("run", try runView(id, runner: runner))
                                    }, runView: { [self] in try liveRunView($0, account: account) })
    }

    func streamAccount(_ request: Request, _ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        let account = token.account
        return EventStream.response(channel: context.channel, broadcaster: server.broadcaster, pool: store.pool,
                                    filter: StreamFilter(account: account), after: Self.lastEventID(request),
                                    closing: { nil }, runView: { [self] in try liveRunView($0, account: account) })
    }
}
