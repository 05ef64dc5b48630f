import Foundation
import SwitchyardJSON

/// One capability's price, as data (a manifest's `pricing`, or a file in
/// Registry/pricing/). Prices per unit may be fractional minor units (a GPU
/// second costs a fraction of a cent); totals round up to whole minor units.
///
/// Units: `request`; `image` (per image, optionally a `table` of size ×
/// quality); `megapixel` (per megapixel of output); `video_second` (per
/// second of output video); `gpu_second` (per second of execution the
/// provider reports, e.g. RunPod `executionTime`); `provider_unit` (per unit
/// of the provider's own billing units). `variants` change the numbers by
/// the inputs that change the price (mode, resolution, model, GPU), so the
/// estimate follows them: `{"when": {"inputs.mode": "pro"}, "amount_minor": 9.8}`.
public struct PriceRule: Sendable, Hashable {
    public var unit: String
    public var currency: String
    public var amountMinor: Decimal
    /// image: size ("1024x1024") → quality ("standard", "hd", "*") → price per image.
    public var table: [String: [String: Decimal]]
    /// video_second: seconds when the inputs name none.
    public var defaultSeconds: Decimal?
    /// gpu_second: the seconds to reserve (an upper bound); absent: the step model below, else the engine's execution timeout.
    public var estimateSeconds: Decimal?
    /// gpu_second step model: base_seconds + seconds_per_step × steps × max(1, pixels / reference_pixels).
    public var baseSeconds: Decimal?
    public var secondsPerStep: Decimal?
    public var defaultSteps: Decimal?
    public var referencePixels: Decimal?
    /// megapixel: megapixels per image when the inputs give no size.
    public var defaultMegapixels: Decimal?
    /// provider_unit: units to reserve.
    public var estimateUnits: Decimal?
    public var variants: [Variant]
    /// The model the engine uses when a job names none, for `model` conditions.
    public var defaultModel: String?
    public var source: String

    /// Numbers that replace the rule's own when every condition holds. A
    /// condition names `inputs.NAME`, `config.NAME`, `usage.NAME` (settlement
    /// only) or `model` (the chosen model), and a value or a list of values.
    public struct Variant: Sendable, Hashable {
        public var when: [String: [String]]
        public var numbers: [String: Decimal]
    }

    public static let units: Set<String> = ["request", "image", "megapixel", "video_second", "gpu_second", "provider_unit"]
    /// Numbers a variant may replace.
    static let numberFields = ["amount_minor", "default_seconds", "estimate_seconds", "base_seconds", "seconds_per_step", "default_steps",
                               "reference_pixels", "default_megapixels", "estimate_units"]
    /// A price per unit above this (ten million USD in cents) is a typo, not a price: refused.
    public static let maximumPerUnit = Decimal(1_000_000_000)

    /// Why a rule cannot be used. Never silently priced at zero.
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public var field: String
        public var reason: String
        public var description: String { "\(field): \(reason)" }
    }

    public init(_ value: JSONValue, source: String) throws {
        guard let object = value.objectValue else { throw Invalid(field: "pricing", reason: "is not an object") }
        guard let unit = object["unit"]?.stringValue else { throw Invalid(field: "unit", reason: "is missing") }
        guard Self.units.contains(unit) else {
            throw Invalid(field: "unit", reason: "\"\(unit)\" is not one of \(Self.units.sorted().joined(separator: ", "))")
        }
        self.unit = unit
        let currency = object["currency"]?.stringValue ?? "USD"
        guard currency.count == 3, currency.allSatisfy({ $0.isLetter && $0.isUppercase }) else {
            throw Invalid(field: "currency", reason: "\"\(currency)\" is not an ISO 4217 code such as USD")
        }
        self.currency = currency
        amountMinor = try object["amount_minor"].map { try Self.price($0, field: "amount_minor") } ?? 0
        var table: [String: [String: Decimal]] = [:]
        for (size, qualities) in object["table"]?.objectValue ?? [:] {
            if qualities.objectValue == nil { table[size] = ["*": try Self.price(qualities, field: "table.\(size)")]; continue }
            var row: [String: Decimal] = [:]
            for (quality, price) in qualities.objectValue ?? [:] { row[quality] = try Self.price(price, field: "table.\(size).\(quality)") }
            table[size] = row
        }
        self.table = table
        func number(_ name: String) throws -> Decimal? { try object[name].map { try Self.price($0, field: name) } }
        defaultSeconds = try number("default_seconds")
        estimateSeconds = try number("estimate_seconds")
        baseSeconds = try number("base_seconds")
        secondsPerStep = try number("seconds_per_step")
        defaultSteps = try number("default_steps")
        referencePixels = try number("reference_pixels")
        defaultMegapixels = try number("default_megapixels")
        estimateUnits = try number("estimate_units")
        if unit == "provider_unit" && estimateUnits == nil {
            throw Invalid(field: "estimate_units", reason: "is required for provider_unit: it is what a job reserves")
        }
        var variants: [Variant] = []
        for (i, item) in (object["variants"]?.arrayValue ?? []).enumerated() {
            guard let when = item["when"]?.objectValue, !when.isEmpty else { throw Invalid(field: "variants[\(i)].when", reason: "must name at least one condition") }
            var conditions: [String: [String]] = [:]
            for (path, expected) in when {
                guard path == "model" || ["inputs.", "config.", "usage."].contains(where: path.hasPrefix) else {
                    throw Invalid(field: "variants[\(i)].when.\(path)", reason: "must be model, inputs.NAME, config.NAME or usage.NAME")
                }
                let values = (expected.arrayValue ?? [expected]).compactMap(Self.text)
                guard !values.isEmpty else { throw Invalid(field: "variants[\(i)].when.\(path)", reason: "must be a value or a list of values") }
                conditions[path] = values
            }
            var numbers: [String: Decimal] = [:]
            for name in Self.numberFields { if let v = item[name] { numbers[name] = try Self.price(v, field: "variants[\(i)].\(name)") } }
            variants.append(Variant(when: conditions, numbers: numbers))
        }
        self.variants = variants
        defaultModel = object["default_model"]?.stringValue
        self.source = source
    }

    /// A price or quantity: finite, not negative, not absurd. Strings are read as decimals ("0.031").
    static func price(_ value: JSONValue, field: String) throws -> Decimal {
        let decimal: Decimal?
        if let text = value.stringValue {
            decimal = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")).flatMap { $0.isNaN ? nil : $0 }
        } else if let number = value.doubleValue {
            guard number.isFinite else { throw Invalid(field: field, reason: "is not a finite number") }
            decimal = Decimal(string: "\(number)", locale: Locale(identifier: "en_US_POSIX"))
        } else {
            throw Invalid(field: field, reason: "is not a number")
        }
        guard let decimal, !decimal.isNaN else { throw Invalid(field: field, reason: "is not a finite number") }
        guard decimal >= 0 else { throw Invalid(field: field, reason: "is negative (\(decimal)); a price cannot pay the customer") }
        guard decimal <= maximumPerUnit else { throw Invalid(field: field, reason: "is \(decimal), above \(maximumPerUnit) minor units per unit: a typo, not a price") }
        return decimal
    }

    static func decimal(_ value: JSONValue) -> Decimal? { try? price(value, field: "") }

    static func text(_ value: JSONValue) -> String? {
        if let s = value.stringValue { return s }
        if let b = value.boolValue { return b ? "true" : "false" }
        if let d = value.doubleValue { return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)" }
        return nil
    }

    /// The snapshot stored with a reservation, so settlement prices the job
    /// as it was quoted even if the price files change meanwhile.
    public var json: JSONValue {
        var object: [String: JSONValue] = ["unit": .string(unit), "currency": .string(currency), "amount_minor": .string("\(amountMinor)")]
        if !table.isEmpty { object["table"] = .object(table.mapValues { .object($0.mapValues { .string("\($0)") }) }) }
        let numbers: [(String, Decimal?)] = [("default_seconds", defaultSeconds), ("estimate_seconds", estimateSeconds), ("base_seconds", baseSeconds),
                                             ("seconds_per_step", secondsPerStep), ("default_steps", defaultSteps), ("reference_pixels", referencePixels),
                                             ("default_megapixels", defaultMegapixels), ("estimate_units", estimateUnits)]
        for (name, value) in numbers { if let value { object[name] = .string("\(value)") } }
        if let defaultModel { object["default_model"] = .string(defaultModel) }
        if !variants.isEmpty {
            object["variants"] = .array(variants.map { variant in
                var item: [String: JSONValue] = ["when": .object(variant.when.mapValues { .array($0.map(JSONValue.string)) })]
                for (name, value) in variant.numbers { item[name] = .string("\(value)") }
                return .object(item)
            })
        }
        return .object(object)
    }

    /// What the rule is evaluated against: the job's inputs and config, what
    /// the provider measured, and the chosen model.
    public struct Context: Sendable {
        public var capability: String?
        public var inputs: [String: JSONValue]
        public var config: [String: JSONValue]
        public var usage: [String: JSONValue]
        public var defaultModel: String?

        public init(capability: String? = nil, inputs: [String: JSONValue], config: [String: JSONValue], usage: [String: JSONValue] = [:], defaultModel: String? = nil) {
            self.capability = capability
            self.inputs = inputs
            self.config = config
            self.usage = usage
            self.defaultModel = defaultModel
        }

        var model: String? {
            inputs["model"]?.stringValue ?? capability.flatMap { config["models"]?[$0]?.stringValue } ?? config["model"]?.stringValue ?? defaultModel
        }

        func value(_ path: String) -> String? {
            if path == "model" { return model }
            let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return nil }
            let source = parts[0] == "inputs" ? inputs : parts[0] == "config" ? config : usage
            return source[parts[1]].flatMap(PriceRule.text)
        }
    }

    /// The rule with every matching variant applied, in order.
    func resolved(_ context: Context) -> (rule: PriceRule, applied: [String]) {
        var rule = self
        var applied: [String] = []
        for variant in variants where variant.when.allSatisfy({ path, values in context.value(path).map(values.contains) ?? false }) {
            for (name, value) in variant.numbers {
                switch name {
                case "amount_minor": rule.amountMinor = value
                case "default_seconds": rule.defaultSeconds = value
                case "estimate_seconds": rule.estimateSeconds = value
                case "base_seconds": rule.baseSeconds = value
                case "seconds_per_step": rule.secondsPerStep = value
                case "default_steps": rule.defaultSteps = value
                case "reference_pixels": rule.referencePixels = value
                case "default_megapixels": rule.defaultMegapixels = value
                case "estimate_units": rule.estimateUnits = value
                default: break
                }
            }
            applied.append(variant.when.keys.sorted().map { "\($0)=\(context.value($0) ?? "")" }.joined(separator: ", "))
        }
        return (rule, applied)
    }

    /// Cost before the job runs (an upper bound for measured units).
    public func estimate(inputs: [String: JSONValue], config: [String: JSONValue], capability: String? = nil) -> (Decimal, String) {
        let context = Context(capability: capability, inputs: inputs, config: config, defaultModel: defaultModel)
        let (rule, applied) = resolved(context)
        let (cost, basis) = rule.estimateResolved(context)
        return (cost, basis + (applied.isEmpty ? "" : " [\(applied.joined(separator: "; "))]"))
    }

    func estimateResolved(_ context: Context) -> (Decimal, String) {
        let inputs = context.inputs, config = context.config
        switch unit {
        case "image":
            let count = Decimal(Self.imageCount(inputs))
            let price = imagePrice(inputs)
            return (count * price.amount, "\(count) image(s) × \(price.amount) (\(price.key))")
        case "megapixel":
            let count = Decimal(Self.imageCount(inputs))
            let megapixels = Self.megapixels(inputs) ?? defaultMegapixels ?? 1
            return (count * megapixels * amountMinor, "\(count) image(s) × \(megapixels) MP × \(amountMinor)/MP")
        case "video_second":
            let seconds = Self.seconds(inputs) ?? defaultSeconds ?? 5
            return (seconds * amountMinor, "\(seconds) s of video × \(amountMinor)/s")
        case "gpu_second":
            let rate = gpuRate(config)
            if let estimateSeconds {
                return (estimateSeconds * rate, "up to \(estimateSeconds) GPU-s × \(rate)/s, settled from the reported execution time")
            }
            if let perStep = secondsPerStep {
                let steps = (inputs["steps"] ?? inputs["num_inference_steps"]).flatMap(Self.decimal) ?? defaultSteps ?? 1
                let pixels = Self.pixels(inputs)
                let scale = pixels.flatMap { p in referencePixels.map { max(1, p / $0) } } ?? 1
                let seconds = (baseSeconds ?? 0) + perStep * steps * scale
                return (seconds * rate, "up to \(seconds) GPU-s (\(baseSeconds ?? 0) s + \(steps) steps × \(perStep) s\(scale > 1 ? " × \(scale) for the size" : "")) × \(rate)/s, settled from the reported execution time")
            }
            let timeout = config["execution_timeout_ms"]?.doubleValue.flatMap { Decimal(string: "\($0 / 1000)") }
            let seconds = timeout ?? 600
            return (seconds * rate, "up to \(seconds) GPU-s (the execution timeout) × \(rate)/s, settled from the reported execution time")
        case "provider_unit":
            let units = estimateUnits ?? 0
            return (units * amountMinor, "up to \(units) provider units × \(amountMinor)/unit")
        default:
            return (amountMinor, "per request")
        }
    }

    /// Cost of a finished job: from what the provider measured (usage); where
    /// it measured nothing but `charged` is "yes", from the documented rule of
    /// the unit (the provider bills what was requested: a request, the images
    /// or the seconds asked for). Nil when there is nothing to price by —
    /// a GPU second is never guessed.
    public func actual(phase: String, charged: String, inputs: [String: JSONValue], config: [String: JSONValue],
                       outputs: [String: JSONValue], usage: [String: JSONValue], capability: String? = nil) -> (Decimal, String)? {
        let context = Context(capability: capability, inputs: inputs, config: config, usage: usage, defaultModel: defaultModel)
        let (rule, applied) = resolved(context)
        guard let (cost, basis) = rule.actualResolved(phase: phase, charged: charged, context: context, outputs: outputs) else { return nil }
        return (cost, basis + (applied.isEmpty ? "" : " [\(applied.joined(separator: "; "))]"))
    }

    func actualResolved(phase: String, charged: String, context: Context, outputs: [String: JSONValue]) -> (Decimal, String)? {
        let inputs = context.inputs, usage = context.usage
        let succeeded = phase == "succeeded"
        // What the provider bills when it measured nothing: what was asked for, if it did bill.
        let asRequested = succeeded || charged == "yes"
        switch unit {
        case "image":
            let price = imagePrice(inputs)
            if let measured = usage["images"]?.intValue { return (Decimal(measured) * price.amount, "\(measured) image(s) measured × \(price.amount) (\(price.key))") }
            if succeeded, let produced = ["images", "image", "output"].lazy.compactMap({ outputs[$0]?.arrayValue?.count }).first {
                return (Decimal(produced) * price.amount, "\(produced) image(s) produced × \(price.amount) (\(price.key))")
            }
            guard asRequested else { return nil }
            let count = Self.imageCount(inputs)
            return (Decimal(count) * price.amount, "\(count) image(s) as requested × \(price.amount) (\(price.key))")
        case "megapixel":
            if let measured = usage["megapixels"].flatMap(Self.decimal) { return (measured * amountMinor, "\(measured) MP measured × \(amountMinor)/MP") }
            guard asRequested else { return nil }
            let count = Decimal(Self.imageCount(inputs)), megapixels = Self.megapixels(inputs) ?? defaultMegapixels ?? 1
            return (count * megapixels * amountMinor, "\(count) image(s) × \(megapixels) MP as requested × \(amountMinor)/MP")
        case "video_second":
            if let measured = usage["video_seconds"].flatMap(Self.decimal) { return (measured * amountMinor, "\(measured) s of video measured × \(amountMinor)/s") }
            if succeeded, let produced = Self.seconds(outputs) { return (produced * amountMinor, "\(produced) s of video produced × \(amountMinor)/s") }
            guard asRequested, let seconds = Self.seconds(inputs) ?? defaultSeconds else { return nil }
            return (seconds * amountMinor, "\(seconds) s of video as requested × \(amountMinor)/s")
        case "gpu_second":
            guard let ms = usage["execution_ms"]?.doubleValue, ms >= 0, let seconds = Decimal(string: "\(ms / 1000)") else { return nil }
            let rate = gpuRate(context.config)
            return (seconds * rate, "\(seconds) GPU-s measured × \(rate)/s")
        case "provider_unit":
            guard let units = usage["units"].flatMap(Self.decimal) else { return nil }
            return (units * amountMinor, "\(units) provider units measured × \(amountMinor)/unit")
        default:
            guard asRequested else { return nil }
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

    static func pixels(_ inputs: [String: JSONValue]) -> Decimal? {
        if let w = inputs["width"]?.intValue, let h = inputs["height"]?.intValue, w > 0, h > 0 { return Decimal(w) * Decimal(h) }
        if let size = inputs["size"]?.stringValue ?? inputs["image_size"]?.stringValue {
            let parts = size.lowercased().split(separator: "x").compactMap { Int($0) }
            if parts.count == 2 { return Decimal(parts[0]) * Decimal(parts[1]) }
        }
        return nil
    }

    static func megapixels(_ inputs: [String: JSONValue]) -> Decimal? { pixels(inputs).map { $0 / 1_000_000 } }

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

    /// Whole minor units, rounded up after the margin. Nil when the total is
    /// not a number a ledger can hold (it overflows, or is not finite).
    static func minorChecked(_ cost: Decimal, margin: Decimal) -> Int? {
        var total = cost * (100 + margin) / 100, rounded = Decimal()
        guard !total.isNaN, total >= 0 else { return nil }
        NSDecimalRound(&rounded, &total, 0, .up)
        // Int64 holds 9.2e18; keep well inside it so sums of many jobs cannot overflow either.
        guard rounded <= Decimal(1_000_000_000_000_000) else { return nil }
        return NSDecimalNumber(decimal: rounded).intValue
    }

    static func minor(_ cost: Decimal, margin: Decimal) -> Int {
        minorChecked(cost, margin: margin) ?? Int(1_000_000_000_000_000)
    }
}

/// Where prices come from, most specific first: for the chosen model,
/// `models.MODEL` of the capability in $YARD_HOME/pricing/ENGINE.json, then
/// in Registry/pricing/ENGINE.json, then the model's `pricing` in plugin.json;
/// then the capability's rule in those files, then the capability's
/// `pricing` in plugin.json. A file is {"engine", "capabilities": {"CAP": rule}}.
/// A rule that is present but invalid (negative, not finite, unknown unit)
/// is an error: the job is refused with PRICING_INVALID, never priced at 0.
public struct PriceBook: Sendable {
    public var directories: [URL]

    public init(directories: [URL]) { self.directories = directories }

    public static func standard(paths: YardPaths) -> PriceBook {
        PriceBook(directories: [paths.home.appendingPathComponent("pricing")] + [YardPaths.registryDirectory()?.appendingPathComponent("pricing")].compactMap { $0 })
    }

    static func invalid(_ error: PriceRule.Invalid, source: String, capability: String) -> YardError {
        YardError("PRICING_INVALID", "The price of \(capability) in \(source) is unusable: \(error.field) \(error.reason).",
                  remediation: "Fix \(source) (prices are minor units, finite and ≥ 0; see Registry/schemas/pricing.schema.json).", field: error.field)
    }

    public func rule(for manifest: PluginManifest, capability: String, model: String? = nil) throws -> PriceRule? {
        var files: [(URL, JSONValue)] = []
        for directory in directories {
            let file = directory.appendingPathComponent("\(manifest.id).json")
            guard let data = try? Data(contentsOf: file) else { continue }
            guard let document = try? JSONValue(parsing: data) else {
                throw YardError("PRICING_INVALID", "\(file.path) is not valid JSON.", remediation: "Fix or remove the file.", field: file.lastPathComponent)
            }
            files.append((file, document))
        }
        func make(_ value: JSONValue, source: String) throws -> PriceRule {
            do { return try PriceRule(value, source: source) } catch let error as PriceRule.Invalid { throw Self.invalid(error, source: source, capability: capability) }
        }
        let declared = manifest.capabilities.first { $0.id == capability }
        if let model {
            for (file, document) in files {
                if let value = document["capabilities"]?[capability]?["models"]?[model] { return try make(value, source: "\(file.lastPathComponent) models.\(model)") }
            }
            if let value = declared?.models?.first(where: { $0.id == model })?.pricing {
                return try make(value, source: "\(manifest.id) plugin.json model \(model)")
            }
        }
        for (file, document) in files {
            if var value = document["capabilities"]?[capability] {
                if case .object(var object) = value { object.removeValue(forKey: "models"); value = .object(object) }
                return try make(value, source: file.lastPathComponent)
            }
        }
        return try declared?.pricing.map { try make($0, source: "\(manifest.id) plugin.json") }
    }
}
