import Foundation
import SwitchyardJSON

/// One capability's price, as data (a manifest's `pricing`, or a file in
/// Registry/pricing/). Prices per unit may be fractional minor units (a GPU
/// second costs a fraction of a cent); totals round up to whole minor units.
///
/// Units: `request`; `image` (per image, optionally a `table` of size ×
/// quality); `video_second` (per second of output video); `gpu_second` (per
/// second of execution the provider reports, e.g. RunPod `executionTime`).
public struct PriceRule: Sendable, Hashable {
    public var unit: String
    public var currency: String
    public var amountMinor: Decimal
    /// image: size ("1024x1024") → quality ("standard", "hd", "*") → price per image.
    public var table: [String: [String: Decimal]]
    /// video_second: seconds when the inputs name none.
    public var defaultSeconds: Decimal?
    /// gpu_second: the seconds to reserve (an upper bound); absent: the engine's execution timeout.
    public var estimateSeconds: Decimal?
    public var source: String

    public static let units: Set<String> = ["request", "image", "video_second", "gpu_second"]

    public init?(_ value: JSONValue, source: String) {
        guard let object = value.objectValue, let unit = object["unit"]?.stringValue, Self.units.contains(unit) else { return nil }
        self.unit = unit
        currency = object["currency"]?.stringValue ?? "USD"
        amountMinor = object["amount_minor"].flatMap(Self.decimal) ?? 0
        var table: [String: [String: Decimal]] = [:]
        for (size, qualities) in object["table"]?.objectValue ?? [:] {
            if let price = Self.decimal(qualities) { table[size] = ["*": price]; continue }
            table[size] = (qualities.objectValue ?? [:]).compactMapValues(Self.decimal)
        }
        self.table = table
        defaultSeconds = object["default_seconds"].flatMap(Self.decimal)
        estimateSeconds = object["estimate_seconds"].flatMap(Self.decimal)
        self.source = source
    }

    static func decimal(_ value: JSONValue) -> Decimal? {
        if let text = value.stringValue { return Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) }
        guard let number = value.doubleValue else { return nil }
        return Decimal(string: "\(number)", locale: Locale(identifier: "en_US_POSIX"))
    }

    /// The snapshot stored with a reservation, so settlement prices the job
    /// as it was quoted even if the price files change meanwhile.
    public var json: JSONValue {
        var object: [String: JSONValue] = ["unit": .string(unit), "currency": .string(currency), "amount_minor": .string("\(amountMinor)")]
        if !table.isEmpty { object["table"] = .object(table.mapValues { .object($0.mapValues { .string("\($0)") }) }) }
        if let defaultSeconds { object["default_seconds"] = .string("\(defaultSeconds)") }
        if let estimateSeconds { object["estimate_seconds"] = .string("\(estimateSeconds)") }
        return .object(object)
    }

    /// Cost before the job runs (an upper bound for measured units).
    public func estimate(inputs: [String: JSONValue], config: [String: JSONValue]) -> (Decimal, String) {
        switch unit {
        case "image":
            let count = Decimal(Self.imageCount(inputs))
            let price = imagePrice(inputs)
            return (count * price.amount, "\(count) image(s) × \(price.amount) (\(price.key))")
        case "video_second":
            let seconds = Self.seconds(inputs) ?? defaultSeconds ?? 5
            return (seconds * amountMinor, "\(seconds) s of video × \(amountMinor)/s")
        case "gpu_second":
            let timeout = config["execution_timeout_ms"]?.doubleValue.flatMap { Decimal(string: "\($0 / 1000)") }
            let seconds = estimateSeconds ?? timeout ?? 600
            let rate = gpuRate(config)
            return (seconds * rate, "up to \(seconds) GPU-s × \(rate)/s, settled from the reported execution time")
        default:
            return (amountMinor, "per request")
        }
    }

    /// Cost from what the provider reported; nil when it reported nothing measurable.
    public func actual(inputs: [String: JSONValue], config: [String: JSONValue], outputs: [String: JSONValue]) -> (Decimal, String)? {
        switch unit {
        case "image":
            let produced = ["images", "image", "output"].lazy.compactMap { outputs[$0]?.arrayValue?.count }.first
            let count = Decimal(produced ?? Self.imageCount(inputs))
            let price = imagePrice(inputs)
            return (count * price.amount, "\(count) image(s) produced × \(price.amount) (\(price.key))")
        case "video_second":
            guard let seconds = Self.seconds(outputs) ?? outputs["usage"].flatMap({ Self.seconds($0.objectValue ?? [:]) }) ?? Self.seconds(inputs) ?? defaultSeconds else { return nil }
            return (seconds * amountMinor, "\(seconds) s of video × \(amountMinor)/s")
        case "gpu_second":
            let ms = outputs["runpod_metrics"]?["execution_time_ms"]?.doubleValue ?? outputs["usage"]?["execution_ms"]?.doubleValue
                ?? outputs["execution_time_ms"]?.doubleValue
            guard let ms, let seconds = Decimal(string: "\(ms / 1000)") else { return nil }
            let rate = gpuRate(config)
            return (seconds * rate, "\(seconds) GPU-s reported × \(rate)/s")
        default:
            return (amountMinor, "per request")
        }
    }

    /// The engine's configured GPU rate wins: the user knows which GPU the endpoint runs.
    func gpuRate(_ config: [String: JSONValue]) -> Decimal {
        config["gpu_rate_minor_per_second"].flatMap(Self.decimal) ?? amountMinor
    }

    static func imageCount(_ inputs: [String: JSONValue]) -> Int {
        max(1, inputs["num_images"]?.intValue ?? inputs["n"]?.intValue ?? inputs["batch_size"]?.intValue ?? 1)
    }

    static func seconds(_ values: [String: JSONValue]) -> Decimal? {
        for key in ["duration_seconds", "duration", "seconds", "video_seconds"] {
            if let value = values[key], let seconds = decimal(value), seconds > 0 { return seconds }
        }
        return nil
    }

    func imagePrice(_ inputs: [String: JSONValue]) -> (amount: Decimal, key: String) {
        guard !table.isEmpty else { return (amountMinor, "per image") }
        let size = inputs["size"]?.stringValue ?? inputs["image_size"]?.stringValue
            ?? (inputs["width"]?.intValue).flatMap { w in inputs["height"]?.intValue.map { "\(w)x\($0)" } }
            ?? inputs["aspect_ratio"]?.stringValue ?? "default"
        let quality = inputs["quality"]?.stringValue ?? "standard"
        let row = table[size] ?? table["default"] ?? table["*"]
        if let row, let price = row[quality] ?? row["*"] ?? row["standard"] { return (price, "\(size), \(quality)") }
        // Unknown size: the dearest listed price, so the reservation is never short.
        let dearest = table.values.flatMap(\.values).max() ?? amountMinor
        return (dearest, "\(size) unlisted, highest listed price")
    }
}

/// A priced job: what to reserve, in which currency, and why.
public struct PriceQuote: Sendable, Hashable {
    public var amountMinor: Int
    public var currency: String
    public var basis: String
    public var rule: PriceRule?
    public var marginPercent: Decimal

    /// Whole minor units, rounded up after the margin.
    static func minor(_ cost: Decimal, margin: Decimal) -> Int {
        var total = cost * (100 + margin) / 100, rounded = Decimal()
        NSDecimalRound(&rounded, &total, 0, .up)
        return NSDecimalNumber(decimal: rounded).intValue
    }
}

/// Where prices come from, most specific first: $YARD_HOME/pricing/ENGINE.json,
/// then Registry/pricing/ENGINE.json, then the capability's `pricing` in the
/// engine's plugin.json. A file is {"engine", "capabilities": {"CAP": rule}}.
public struct PriceBook: Sendable {
    public var directories: [URL]

    public init(directories: [URL]) { self.directories = directories }

    public static func standard(paths: YardPaths) -> PriceBook {
        PriceBook(directories: [paths.home.appendingPathComponent("pricing")] + [YardPaths.registryDirectory()?.appendingPathComponent("pricing")].compactMap { $0 })
    }

    public func rule(for manifest: PluginManifest, capability: String) -> PriceRule? {
        for directory in directories {
            let file = directory.appendingPathComponent("\(manifest.id).json")
            guard let data = try? Data(contentsOf: file), let document = try? JSONValue(parsing: data),
                  let value = document["capabilities"]?[capability], let rule = PriceRule(value, source: file.lastPathComponent) else { continue }
            return rule
        }
        return manifest.capabilities.first { $0.id == capability }?.pricing.flatMap { PriceRule($0, source: "\(manifest.id) plugin.json") }
    }
}
