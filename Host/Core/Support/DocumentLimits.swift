import CYaml
import Foundation
import SwitchyardJSON

/// Bounds on a document read from a file, a package or the network, checked
/// before any parser that recurses or expands sees it. YAML composers (Yams
/// included) recurse once per nesting level and expand every alias, so a
/// 5,000-deep flow sequence overflows the stack and a few hundred bytes of
/// nested aliases ("billion laughs") expand to billions of nodes.
public struct DocumentLimits: Sendable, Hashable {
    public var maxBytes: Int
    public var maxDepth: Int
    /// Nodes after every alias is expanded (what a loader would build).
    public var maxNodes: Int

    public init(maxBytes: Int, maxDepth: Int, maxNodes: Int) {
        self.maxBytes = maxBytes
        self.maxDepth = maxDepth
        self.maxNodes = maxNodes
    }

    /// Pipeline files and presets: small, shallow documents people write.
    public static let pipeline = DocumentLimits(maxBytes: 1 << 20, maxDepth: 64, maxNodes: 200_000)
    /// plugin.json, lock files, index documents.
    public static let manifest = DocumentLimits(maxBytes: 4 << 20, maxDepth: 64, maxNodes: 500_000)

    /// DOCUMENT_TOO_LARGE when `size` exceeds the limit.
    public func checkSize(_ size: Int, source: String, field: String? = nil) throws {
        guard size <= maxBytes else {
            throw YardError(.documentTooLarge, "\(source) is \(size) bytes; at most \(maxBytes) are read.",
                            remediation: "Split the document or remove what it does not need; this limit protects the host from hostile files.", field: field)
        }
    }

    func tooDeep(_ source: String, line: Int) -> YardError {
        YardError(.documentTooDeep, "\(source) nests deeper than \(maxDepth) levels\(line > 0 ? " (line \(line))" : "").",
                  remediation: "Flatten the document: no real pipeline or manifest nests that deep.", field: "$")
    }

    /// In YAML the count is after aliases (*name) are expanded: what stops alias bombs.
    func tooManyNodes(_ source: String, line: Int) -> YardError {
        line > 0
            ? YardError(.documentAliasLimit, "\(source) expands to more than \(maxNodes) values once its aliases (*name) are resolved (line \(line)).",
                        remediation: "Write the values out, or use fewer and smaller anchors: this limit stops alias bombs.", field: "$")
            : YardError(.documentTooLarge, "\(source) holds more than \(maxNodes) values.",
                        remediation: "Remove what the document does not need.", field: "$")
    }
}

/// YAML read under `DocumentLimits`: libyaml's event parser (iterative, the
/// one Yams is built on) measures depth and the expanded node count first;
/// only a document within bounds goes on to Yams, whose composer recurses
/// per level and whose constructor expands every alias.
public enum BoundedYAML {
    /// Checks `text` against `limits` without building anything. Throws
    /// DOCUMENT_TOO_LARGE, DOCUMENT_TOO_DEEP or DOCUMENT_ALIAS_LIMIT; a syntax
    /// error is left for the composer to report in its own words.
    public static func check(_ text: String, source: String, limits: DocumentLimits) throws {
        let bytes = Array(text.utf8)
        try limits.checkSize(bytes.count, source: source)
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YardError(.ioFailed, "Could not start the YAML parser.", remediation: "Retry; the host may be out of memory.")
        }
        defer { yaml_parser_delete(&parser) }
        try bytes.withUnsafeBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            // One frame per open collection: how many expanded nodes it holds so far and its anchor.
            var open: [(nodes: Int, anchor: String?)] = []
            var anchored: [String: Int] = [:]
            var total = 0
            func add(_ count: Int, line: Int) throws {
                total += count
                if !open.isEmpty { open[open.count - 1].nodes += count }
                if total > limits.maxNodes { throw limits.tooManyNodes(source, line: line) }
            }
            func anchorName(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
                pointer.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            }
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return }
                defer { yaml_event_delete(&event) }
                let line = Int(event.start_mark.line) + 1
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return
                case YAML_SCALAR_EVENT:
                    try add(1, line: line)
                    if let name = anchorName(event.data.scalar.anchor) { anchored[name] = 1 }
                case YAML_ALIAS_EVENT:
                    let name = anchorName(event.data.alias.anchor) ?? ""
                    try add(anchored[name] ?? 1, line: line)
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    guard open.count < limits.maxDepth else { throw limits.tooDeep(source, line: line) }
                    let anchor = event.type == YAML_SEQUENCE_START_EVENT ? anchorName(event.data.sequence_start.anchor)
                                                                       : anchorName(event.data.mapping_start.anchor)
                    open.append((0, anchor))
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    guard let closed = open.popLast() else { continue }
                    try add(closed.nodes + 1, line: line)
                    if let anchor = closed.anchor { anchored[anchor] = closed.nodes + 1 }
                default:
                    continue
                }
            }
        }
    }
}

extension DocumentLimits {
    /// A JSON document read under these limits: size first, then the strict
    /// parser (iterative, so nesting costs heap, not stack), then depth.
    /// Syntax errors throw JSONParseError for the caller to word.
    public func parseJSON(_ data: Data, source: String, field: String? = nil) throws -> JSONValue {
        try checkSize(data.count, source: source, field: field)
        let value = try JSONValue(parsing: data)
        var stack: [(JSONValue, Int)] = [(value, 0)]
        var nodes = 0
        while let (next, depth) = stack.popLast() {
            nodes += 1
            if nodes > maxNodes { throw tooManyNodes(source, line: 0) }
            switch next {
            case .array(let items):
                guard depth < maxDepth else { throw tooDeep(source, line: 0) }
                for item in items { stack.append((item, depth + 1)) }
            case .object(let members):
                guard depth < maxDepth else { throw tooDeep(source, line: 0) }
                for member in members.values { stack.append((member, depth + 1)) }
            default:
                continue
            }
        }
        return value
    }
}
