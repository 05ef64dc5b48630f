import Foundation
import SwitchyardPluginSDK

/// `modal.deploy`: runs `modal deploy` on the shipped app
/// (Registry/modal/switchyard_app.py, passed as the `app` input) through the
/// host's sy.process/1, parameterised by model and GPU. The Modal token goes
/// to the CLI through the environment of a shell fed on stdin, never on a
/// command line or disk; the ref keeps only what can be stored.
enum ModalDeploy {
    static let capability = "modal.deploy"
    static let install = "Install the Modal CLI with `pip install modal`, sign in with `modal token new`, then copy token_id and token_secret from ~/.modal.toml into `yard secrets set MODAL_TOKEN_ID` and `yard secrets set MODAL_TOKEN_SECRET`."
    static let gpus = ["T4", "L4", "A10", "L40S", "A100-40GB", "A100-80GB", "H100", "H200", "B200"]

    struct Plan {
        var app: String
        var model: String
        var gpu: String
        var appName: String
        var key: String
        /// Check the app file and parameters and show the command; deploy nothing.
        var dryRun: Bool
        var handle = ""

        var ref: JSONValue {
            ["deploy": ["app": .string(app), "model": .string(model), "gpu": .string(gpu), "app_name": .string(appName), "key": .string(key),
                        "dry_run": .bool(dryRun), "handle": .string(handle)]]
        }

        init(inputs: [String: JSONValue], config: [String: JSONValue], job: JobInfo?) throws {
            guard let app = inputs["app"]?["artifact"]?.stringValue else {
                throw PluginError(code: "CONTRACT_MISMATCH", message: "modal.deploy needs the app to deploy as a file.",
                                  remediation: "Pass --input app=@Registry/modal/switchyard_app.py.", field: "$.inputs.app")
            }
            self.app = app
            model = inputs["model"]?.stringValue ?? config["model"]?.stringValue ?? "black-forest-labs/FLUX.1-schnell"
            gpu = inputs["gpu"]?.stringValue ?? config["gpu"]?.stringValue ?? "L40S"
            appName = inputs["app_name"]?.stringValue ?? "switchyard"
            dryRun = inputs["dry_run"]?.boolValue ?? false
            key = ProcessJob.key(job, step: dryRun ? "modal-deploy-dry-run" : "modal-deploy")
        }

        init?(ref: JSONValue) {
            guard let d = ref["deploy"], let app = d["app"]?.stringValue, let model = d["model"]?.stringValue, let gpu = d["gpu"]?.stringValue,
                  let name = d["app_name"]?.stringValue, let key = d["key"]?.stringValue, let handle = d["handle"]?.stringValue else { return nil }
            (self.app, self.model, self.gpu, self.appName, self.key, self.handle) = (app, model, gpu, name, key, handle)
            dryRun = d["dry_run"]?.boolValue ?? false
        }
    }

    static func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// Starts (or, with the same key, finds) the deploy child.
    static func start(_ plan: Plan, context: HostContext) throws -> String {
        if plan.dryRun {
            // The same child and file path as a deploy, with the command printed instead of run.
            let script = """
                test -s "$1" || { echo "the app file is empty" >&2; exit 1; }
                echo "would run: SWITCHYARD_MODEL=\(quoted(plan.model)) SWITCHYARD_GPU=\(quoted(plan.gpu)) SWITCHYARD_APP=\(quoted(plan.appName)) modal deploy app.py"

                """
            return try context.startProcess(ProcessRequest(executable: "sh", args: ["-s", "{input:app.py}"], key: plan.key,
                                                           inputs: ["app.py": plan.app], stdin: script, timeoutMs: 60_000))
        }
        if let missing = try context.missingExecutable("modal") {
            throw PluginError(code: "DEPENDENCY_MISSING", message: "\(missing.message) modal.deploy runs `modal deploy`.", remediation: install)
        }
        guard let id = try context.secret("MODAL_TOKEN_ID"), !id.isEmpty, let secret = try context.secret("MODAL_TOKEN_SECRET"), !secret.isEmpty else {
            throw PluginError(code: "AUTH_MISSING", message: "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET are not set: `modal deploy` needs your Modal token.", remediation: install)
        }
        let script = """
            set -e
            export MODAL_TOKEN_ID=\(quoted(id)) MODAL_TOKEN_SECRET=\(quoted(secret))
            export SWITCHYARD_MODEL=\(quoted(plan.model)) SWITCHYARD_GPU=\(quoted(plan.gpu)) SWITCHYARD_APP=\(quoted(plan.appName))
            exec modal deploy "$1"

            """
        // sh -s reads the script from stdin; "$1" is the app, copied into the child's scratch folder.
        return try context.startProcess(ProcessRequest(executable: "sh", args: ["-s", "{input:app.py}"], key: plan.key,
                                                       inputs: ["app.py": plan.app], stdin: script, timeoutMs: 1_800_000))
    }

    static func submit(_ request: JobRequest, context: HostContext) throws -> SubmitResult {
        var plan = try Plan(inputs: request.inputs, config: request.config, job: request.job)
        plan.handle = try start(plan, context: context)
        context.log(.info, "modal: deploying \(plan.appName) (\(plan.model) on \(plan.gpu))")
        return .ref(plan.ref, nextPollAfterMs: 500)
    }

    static func poll(_ plan: Plan, context: HostContext) throws -> PollResult {
        let status: ProcessStatus
        do {
            status = try context.processStatus(plan.handle)
        } catch let error as PluginError where error.code == "PROCESS_NOT_FOUND" {
            // The host forgot its children in a restart; the same key starts the same deploy again (redeploying is harmless).
            _ = try start(plan, context: context)
            return PollResult(state: .running, message: "deploy restarted after a host restart", nextPollAfterMs: 500)
        }
        switch status.state {
        case .running:
            return PollResult(state: .running, progress: 0.5, message: "modal deploy running", nextPollAfterMs: 1_000)
        case .killed:
            return PollResult(state: .cancelled, message: "modal deploy stopped")
        case .timedOut:
            return PollResult(state: .failed, error: PluginError(code: "ENGINE_TIMEOUT", message: "modal deploy ran past 30 minutes.",
                                                                 remediation: "Check the image build in the Modal dashboard, then deploy again."))
        case .exited where status.exitCode != 0:
            let tail = (status.stderrTail ?? "").split(whereSeparator: \.isNewline).suffix(3).joined(separator: " / ")
            context.log(.error, "modal deploy exited with \(status.exitCode ?? -1):\n\(status.stderrTail ?? "")")
            let auth = tail.lowercased().contains("token")
            return PollResult(state: .failed, error: PluginError(code: auth ? "AUTH_FAILED" : "ENGINE_ERROR",
                                                                 message: "modal deploy failed (exit \(status.exitCode ?? -1)): \(tail)",
                                                                 remediation: auth ? install : "Read the job's log for Modal's message; fix the app or the secret it names, then deploy again."))
        case .exited:
            let text = (status.stdout ?? "") + "\n" + (status.stderrTail ?? "")
            let urls = text.split(whereSeparator: { $0.isWhitespace }).map(String.init)
                .filter { $0.hasPrefix("https://") && $0.contains(".modal.run") }
            var outputs: [String: JSONValue] = ["app_name": .string(plan.appName), "model": .string(plan.model), "gpu": .string(plan.gpu)]
            if plan.dryRun {
                outputs["dry_run"] = true
                outputs["command"] = .string((status.stdout ?? "").trimmingCharacters(in: .whitespacesAndNewlines))
                outputs["modal_cli_installed"] = .bool((try? context.missingExecutable("modal")) == .some(nil))
                return PollResult(state: .succeeded, progress: 1, message: "dry run: nothing deployed", outputs: outputs)
            }
            if let url = urls.first { outputs["app_url"] = .string(url) }
            return PollResult(state: .succeeded, progress: 1, message: urls.first.map { "deployed: set config app_url to \($0)" } ?? "deployed", outputs: outputs)
        }
    }

    static func cancel(_ plan: Plan, context: HostContext) throws -> CancelResult {
        do {
            let killed = try context.cancelProcess(plan.handle)
            return CancelResult(outcome: killed ? .cancelledRunning : .alreadyFinished, charged: .no)
        } catch let error as PluginError where error.code == "PROCESS_NOT_FOUND" {
            return CancelResult(outcome: .notFound, charged: .no)
        }
    }
}
