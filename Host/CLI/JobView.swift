import Foundation
import SwitchyardHost
import SwitchyardJSON

/// A job as `--json` prints it.
struct JobView: Encodable {
    var id, engine, engineVersion, capability, state, idempotencyKey: String
    var progress: Double?
    var message: String?
    var inputs: AnyJSON
    var outputs: AnyJSON?
    var error: AnyJSON?
    var cancelOutcome: AnyJSON?
    var createdAt: Date
    var finishedAt: Date?
    var durationSeconds: Double?
    var estimateMinor: Int?
    /// Estimated, actual and charged cost from the credits ledger.
    var cost: JobCharge?
    /// Where each output file is on disk: the artifact store, or --output-dir.
    var files: [String: String]?

    enum CodingKeys: String, CodingKey {
        case id, engine, capability, state, progress, message, inputs, outputs, error
        case engineVersion = "engine_version"
        case idempotencyKey = "idempotency_key"
        case cancelOutcome = "cancel_outcome"
        case createdAt = "created_at"
        case finishedAt = "finished_at"
        case durationSeconds = "duration_seconds"
        case estimateMinor = "estimate_minor"
        case cost, files
    }

    init(_ job: JobRecord, cost: JobCharge?) {
        self.init(job)
        self.cost = cost
    }

    init(_ job: JobRecord) {
        id = job.id; engine = job.pluginID; engineVersion = job.pluginVersion; capability = job.capability
        state = job.phase.rawValue; idempotencyKey = job.idempotencyKey; progress = job.progress; message = job.message
        inputs = AnyJSON(text: job.inputsJSON) ?? AnyJSON(value: [String: Any]())
        outputs = job.outputsJSON.flatMap { AnyJSON(text: $0) }
        error = job.errorJSON.flatMap { AnyJSON(text: $0) }
        cancelOutcome = job.cancelOutcomeJSON.flatMap { AnyJSON(text: $0) }
        createdAt = job.createdAt; finishedAt = job.finishedAt
        durationSeconds = job.finishedAt.map { $0.timeIntervalSince(job.createdAt) }
        estimateMinor = job.estimateMinor
    }
}

/// Stored JSON text re-emitted as JSON (not as a string) inside Encodable output.
struct AnyJSON: Encodable {
    let value: Any

    init(value: Any) { self.value = value }
    init?(text: String) {
        guard let v = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else { return nil }
        value = v
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch value {
        case is NSNull: try c.encodeNil()
        case let n as NSNumber where String(cString: n.objCType) == "c": try c.encode(n.boolValue)
        case let n as NSNumber: if n.doubleValue.rounded() == n.doubleValue { try c.encode(n.int64Value) } else { try c.encode(n.doubleValue) }
        case let s as String: try c.encode(s)
        case let a as [Any]: try c.encode(a.map { AnyJSON(value: $0) })
        case let o as [String: Any]: try c.encode(o.mapValues { AnyJSON(value: $0) })
        default: try c.encodeNil()
        }
    }
}

extension JobRecord {
    /// Outputs as "name: value" lines; a file as its path (`files`, from
    /// OutputFiles) with its media type and size.
    func outputLines(files: [String: String]) -> [String] {
        guard let text = outputsJSON, let outputs = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else { return [] }
        func fileLine(_ name: String, _ object: [String: Any]) -> String? {
            guard let artifact = object["artifact"] as? String else { return nil }
            let size = (object["size"] as? Int).map { " \($0) bytes," } ?? ""
            return "\(name): \(files[name] ?? artifact) (\(object["media_type"] as? String ?? "?"),\(size) \(artifact.prefix(19))…)"
        }
        var lines: [String] = []
        for key in outputs.keys.sorted() {
            let value = outputs[key] ?? NSNull()
            if let object = value as? [String: Any], let line = fileLine(key, object) {
                lines.append(line)
            } else if let items = value as? [Any], !items.isEmpty, items.allSatisfy({ ($0 as? [String: Any])?["artifact"] is String }) {
                for (i, item) in items.enumerated() { if let line = fileLine(OutputFiles.name(key, index: i, of: items.count), item as? [String: Any] ?? [:]) { lines.append(line) } }
            } else {
                let data = (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys])) ?? Data()
                lines.append("\(key): \(String(decoding: data, as: UTF8.self).prefix(200))")
            }
        }
        return lines
    }

    var errorSummary: String? {
        guard let text = errorJSON, let error = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else { return nil }
        var line = "\(error["code"] as? String ?? "ERROR"): \(error["message"] as? String ?? "")"
        if let fix = error["remediation"] as? String, !fix.isEmpty { line += "\n  fix: \(fix)" }
        if let charged = error["charged"] as? String, charged != "no" { line += "\n  the provider may have billed for this (charged: \(charged))" }
        return line
    }
}
