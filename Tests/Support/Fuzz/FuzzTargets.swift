import Foundation
import SwitchyardHost
import SwitchyardJSON

/// Fuzz targets for the host's parsers of hostile input: plugin manifests,
/// pipeline files, plugin packages and webhook bodies. Each takes arbitrary
/// bytes and either accepts them or refuses them with a `YardError` whose
/// code is one of the target's stable codes and which says what to do. A
/// crash, a hang, any other error or an unexpected code is a finding.
///
/// Two drivers run them: `FuzzTests` (a deterministic mutation fuzzer with a
/// bounded budget, in CI) and `scripts/fuzz.sh` (libFuzzer, coverage-guided,
/// for long runs).
public enum FuzzTargets {
    public struct Finding: Error, CustomStringConvertible {
        public var target: String
        public var message: String
        public var description: String { "\(target): \(message)" }
        public init(target: String, message: String) {
            self.target = target
            self.message = message
        }
    }

    public enum Target: String, CaseIterable, Sendable {
        case manifest, pipeline, package, webhook
    }

    /// Codes each target may refuse with.
    public static let allowedCodes: [Target: Set<String>] = [
        .manifest: ["MANIFEST_INVALID", "DOCUMENT_TOO_DEEP", "DOCUMENT_TOO_LARGE"],
        .pipeline: ["PIPELINE_INVALID", "DOCUMENT_TOO_DEEP", "DOCUMENT_TOO_LARGE", "DOCUMENT_ALIAS_LIMIT"],
        .package: ["PACKAGE_INVALID", "PACKAGE_TOO_LARGE", "MANIFEST_INVALID", "DOCUMENT_TOO_DEEP", "DOCUMENT_TOO_LARGE", "PLUGIN_SIGNATURE_INVALID",
                   "PLUGIN_UNSIGNED", "PLUGIN_INCOMPATIBLE", "PLUGIN_CORRUPT", "PLUGIN_NOT_FOUND", "NAME_INVALID", "IO_FAILED"],
        .webhook: ["WEBHOOK_INVALID", "WEBHOOK_SIGNATURE_INVALID", "WEBHOOK_REPLAYED", "ACCOUNT_NOT_FOUND", "CURRENCY_MISMATCH", "AMOUNT_INVALID"],
    ]

    /// Scratch state one process reuses across inputs (a home for installs, a ledger).
    public final class Scratch: @unchecked Sendable {
        public let root: URL
        let ledger: JobLedger
        let secret = "whsec_fuzz_0000000000000000"
        var installs = 0

        public init(root: URL) throws {
            self.root = root
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            let paths = YardPaths(home: root.appendingPathComponent("ledger-home"))
            let store = try SQLiteJobStore(path: paths.jobStoreFile)
            ledger = JobLedger(store: store, prices: PriceBook(directories: []))
            try? ledger.linkCustomer(account: "acme", customerID: "cus_FUZZ", currency: "USD")
        }
    }

    /// Runs one input through `target`; throws a Finding for anything but acceptance or an allowed refusal.
    public static func run(_ target: Target, _ data: Data, scratch: Scratch) throws {
        do {
            switch target {
            case .manifest:
                _ = try PluginManifest.parse(data, source: "fuzz/plugin.json")
            case .pipeline:
                let text = String(decoding: data, as: UTF8.self)
                if data.first == UInt8(ascii: "{"), let value = try? JSONValue(parsing: data) {
                    _ = try PipelineDefinition.parse(value, source: "fuzz.json")
                } else {
                    _ = try PipelineDefinition.parse(yaml: text, source: "fuzz.yaml")
                }
            case .package:
                scratch.installs += 1
                let home = scratch.root.appendingPathComponent("install-home")
                let file = scratch.root.appendingPathComponent("input.yardpkg")
                try data.write(to: file)
                defer { try? FileManager.default.removeItem(at: home.appendingPathComponent("plugins")) }
                _ = try PluginInstaller(paths: YardPaths(home: home), registryDirectory: nil).install(package: file, allowUnsigned: true)
            case .webhook:
                // Signed with the right secret, so the body gets past the signature to the parser.
                let now = Int64(Date().timeIntervalSince1970)
                let header = StripeSignature.sign(payload: data, secret: scratch.secret, timestamp: now)
                _ = try scratch.ledger.receiveStripeWebhook(payload: data, signatureHeader: header, secret: scratch.secret)
                // And unsigned: refused before the body is read.
                _ = try? scratch.ledger.receiveStripeWebhook(payload: data, signatureHeader: String(decoding: data.prefix(200), as: UTF8.self), secret: scratch.secret)
            }
        } catch let error as YardError {
            guard allowedCodes[target]?.contains(error.code.rawValue) == true else {
                throw Finding(target: target.rawValue, message: "refused with unexpected code \(error.code.rawValue): \(error.message)")
            }
            guard !error.remediation.isEmpty, !error.message.isEmpty else {
                throw Finding(target: target.rawValue, message: "\(error.code.rawValue) without a message or remediation")
            }
        } catch {
            throw Finding(target: target.rawValue, message: "threw a non-YardError: \(error)")
        }
    }
}

/// Deterministic mutations for the in-process driver: byte flips, inserted
/// and deleted runs, duplicated chunks, and the shapes that broke parsers
/// before (deep nesting, alias fans, huge numbers, invalid UTF-8).
public struct FuzzMutator {
    var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// SplitMix64.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }

    static let tokens: [String] = [
        "[", "{", "}", "]", ":", ",", "\"", "'", "&a ", "*a", "<<: *a", "!!binary ", "? ", "- ", "\n", "\t", "\\u0000", "\\ud800",
        "1e999", "-9223372036854775808", "9223372036854775807", "null", "true", "../", "/etc/passwd", "sha256:", "${steps.a.outputs.x}",
        "${inputs.", "%", "\u{FEFF}", "\u{0}", "é", "\u{202E}",
    ]

    public mutating func mutate(_ input: Data, maxSize: Int = 64 << 10) -> Data {
        var bytes = [UInt8](input)
        for _ in 0...below(4) {
            switch below(8) {
            case 0 where !bytes.isEmpty:
                bytes[below(bytes.count)] ^= UInt8(truncatingIfNeeded: 1 << below(8))
            case 1 where !bytes.isEmpty:
                let start = below(bytes.count)
                bytes.removeSubrange(start..<min(bytes.count, start + 1 + below(32)))
            case 2:
                bytes.insert(contentsOf: Array(Self.tokens[below(Self.tokens.count)].utf8), at: below(bytes.count + 1))
            case 3 where bytes.count > 4:
                let start = below(bytes.count), length = 1 + below(min(256, bytes.count - start))
                let chunk = Array(bytes[start..<min(bytes.count, start + length)])
                bytes.insert(contentsOf: chunk, at: below(bytes.count + 1))
            case 4:
                let open = below(2) == 0 ? "[" : "{\"a\":"
                let close = open == "[" ? "]" : "}"
                let depth = 1 + below(6000)
                let at = below(bytes.count + 1)
                bytes.insert(contentsOf: Array((String(repeating: open, count: depth) + "1" + String(repeating: close, count: depth)).utf8), at: at)
            case 5:
                var fan = "x0: &x0 [a,a,a,a,a,a,a,a,a,a]\n"
                for i in 1...(1 + below(9)) { fan += "x\(i): &x\(i) [" + Array(repeating: "*x\(i - 1)", count: 10).joined(separator: ",") + "]\n" }
                bytes.insert(contentsOf: Array(fan.utf8), at: below(bytes.count + 1))
            case 6:
                bytes.insert(UInt8(truncatingIfNeeded: next()), at: below(bytes.count + 1))
            default:
                if !bytes.isEmpty { bytes = Array(bytes.prefix(below(bytes.count + 1))) }
            }
        }
        if bytes.count > maxSize { bytes = Array(bytes.prefix(maxSize)) }
        return Data(bytes)
    }
}
