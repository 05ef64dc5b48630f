import Foundation
import SwitchyardJSON

extension JobEngine {
    /// A `model.download` result is a plan: the plugin resolved the files
    /// (`files[].url`, sizes, digests) and named the secret that authorises
    /// them; the host moves the bytes (docs/adr/0007). The files land in the
    /// model catalog, verified, every hop inside the plugin's allow-list, and
    /// the result then names the absolute directory. A failure leaves the
    /// `.part` files and marks the outputs for a retry on the poll schedule,
    /// which resumes them.
    func materializeModel(_ outputs: [String: JSONValue], jobID: String, plugin: LoadedPlugin) async -> [String: JSONValue] {
        guard let listed = outputs["files"]?.arrayValue, case let files = listed.compactMap(\.objectValue), files.count == listed.count, files.contains(where: { $0["url"]?.stringValue != nil }),
              let vendor = outputs["vendor"]?.stringValue, let repo = outputs["repo"]?.stringValue, let revision = outputs["revision"]?.stringValue,
              (try? store.job(id: jobID))??.capability == "model.download" else { return outputs }
        func failed(_ message: String) -> [String: JSONValue] {
            var copy = outputs
            copy["files"] = [["harvest_error": .string(message)]]
            return copy
        }
        guard let sqlite = store as? SQLiteJobStore else { return failed("MODEL_STORE_UNAVAILABLE: the model catalog needs the SQLite store") }
        // Only a secret the plugin declares may authorise its downloads.
        let secretName = outputs["auth_secret"]?.stringValue
        let token = secretName.flatMap { name in plugin.manifest.secrets.contains { $0.name == name } ? secrets.value(of: name) : nil }
        let planned: [ModelPlan.File] = files.compactMap { file in
            guard let path = file["path"]?.stringValue, ModelSourceResolver.isSafeRelativePath(path), let url = file["url"]?.stringValue else { return nil }
            return ModelPlan.File(path: path, size: file["size"]?.intValue, sha256: file["sha256"]?.stringValue?.lowercased(), gitOID: file["git_oid"]?.stringValue, url: url)
        }
        guard planned.count == files.count else { return failed("CONTRACT_MISMATCH: \(plugin.manifest.id) returned a file path that would leave its model directory") }
        let type = outputs["type"]?.stringValue
            ?? ModelSourceResolver.hubType(pipelineTag: outputs["pipeline_tag"]?.stringValue, tags: outputs["tags"]?.arrayValue?.compactMap(\.stringValue) ?? [], files: planned.map(\.path))
        let plan = ModelPlan(vendor: vendor, repo: repo, revision: revision, type: type, license: outputs["license"]?.stringValue, files: planned,
                             authorization: token.flatMap { $0.isEmpty ? nil : "Bearer \($0)" })
        let downloader = ModelDownloader(catalog: ModelCatalog(store: sqlite, root: ModelCatalog.root(of: paths)), allowPrivateRedirects: self.downloader.allowPrivateRedirects)
        let context = plugin.context
        let store = self.store
        let throttle = ProgressThrottle(intervalNs: 500_000_000)
        do {
            let record = try await downloader.pull(plan, isAllowed: { context.isAllowed($0) }, progress: { p in
                // The job's progress while the host downloads, at most twice a second.
                guard throttle.due(), p.totalBytes > 0 else { return }
                _ = try? store.updateJob(id: jobID) { row in
                    guard !row.phase.isTerminal else { return }
                    row.progress = max(row.progress ?? 0, min(0.99, Double(p.doneBytes) / Double(p.totalBytes)))
                    row.message = "downloading \(p.file): \(p.doneBytes >> 20) of \(p.totalBytes >> 20) MiB"
                }
            })
            try? store.appendEvent(jobID: jobID, kind: "model", message: "\(record.id)@\(record.revision.prefix(12)): \(record.files.count) files verified in \(record.path)", data: nil)
            return ["path": .string(record.path), "revision": .string(record.revision), "total_bytes": .number(Double(record.totalBytes)),
                    "files": .array(record.files.map { file -> JSONValue in
                        var entry: [String: JSONValue] = ["path": .string(file.path), "size": .number(Double(file.size))]
                        if let sha256 = file.sha256 { entry["sha256"] = .string(sha256) }
                        return .object(entry)
                    })]
        } catch let error as YardError {
            return failed("\(error.code.rawValue): \(error.message)")
        } catch {
            return failed("DOWNLOAD_FAILED: \(error)")
        }
    }
}

/// Lets through one call per interval, from any thread.
final class ProgressThrottle: @unchecked Sendable {
    private let lock = NSLock()
    private var last: UInt64 = 0
    let intervalNs: UInt64

    init(intervalNs: UInt64) { self.intervalNs = intervalNs }

    func due() -> Bool {
        let now = DispatchTime.now().uptimeNanoseconds
        return lock.withLock {
            guard now - last >= intervalNs else { return false }
            last = now
            return true
        }
    }
}
