import Foundation

extension HostContext {
    /// A worker's free-form output as host outputs: http(s) URL strings become
    /// `{"url"}` for the host to download before the provider's retention
    /// ends; `data:` URIs are stored as artifacts at once; anything else is
    /// kept. A non-object output is returned under `"output"`.
    public func harvestableOutputs(_ output: JSONValue) throws -> [String: JSONValue] {
        func convert(_ value: JSONValue) throws -> JSONValue {
            switch value {
            case .string(let s) where s.hasPrefix("https://") || s.hasPrefix("http://"):
                return ["url": .string(s)]
            case .string(let s) where s.hasPrefix("data:"):
                guard let comma = s.firstIndex(of: ","), let bytes = Data(base64Encoded: String(s[s.index(after: comma)...])) else { return value }
                let mediaType = String(s.dropFirst(5).prefix { $0 != ";" && $0 != "," })
                let handle = try putArtifact(bytes, mediaType: mediaType.isEmpty ? "application/octet-stream" : mediaType)
                return ["artifact": .string(handle.artifact), "media_type": .string(mediaType), "size": .number(Double(handle.size))]
            case .array(let items): return .array(try items.map(convert))
            default: return value
            }
        }
        if case .object(let object) = output { return try object.mapValues(convert) }
        return ["output": try convert(output)]
    }
}
