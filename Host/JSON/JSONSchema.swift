import Foundation

/// A compiled JSON Schema (the draft 2020-12 subset a capability catalog needs).
///
/// Compilation checks the schema itself, so a catalog mistake surfaces when the catalog
/// is loaded rather than as a puzzling validation result later:
/// - every keyword must be supported, ignored-by-design (`default`, `title`, `description`,
///   `examples`, `$schema`, `$id`, `$comment`) or start with `x-` (project annotations such as
///   `x-media-types`, `x-max-bytes`, `x-identity`, `x-file`, which are accepted, not enforced);
/// - each keyword's value must have the shape the specification requires;
/// - `pattern` must compile, and `$ref` must be a local JSON pointer (`#`, `#/$defs/...`,
///   `#/definitions/...` or any other location in this document) that resolves to a schema;
/// - `$ref` chains that loop without descending into the instance (`a → b → a`) are
///   rejected, since validating against them could never finish.
///
/// Semantics that differ from a full implementation, by design:
/// - `pattern` uses `NSRegularExpression` (ICU syntax, unanchored search), not ECMA-262;
/// - `format` asserts only `uri` (http, https or file schemes) and `date-time` (RFC 3339);
///   other formats are ignored;
/// - `enum`, `const` and `uniqueItems` compare values through their canonical
///   serialization: `1` equals `1.0`, and strings compare by Unicode scalars.
public struct JSONSchema: Sendable {
    /// The schema document as given.
    public let document: JSONValue

    let root: SchemaNode
    /// Compiled targets of every `$ref` in the document, keyed by canonical pointer.
    let references: [String: SchemaNode]

    /// Compiles `schema`, throwing the first problem found (keywords are examined in sorted order).
    public init(_ schema: JSONValue) throws(JSONSchemaError) {
        var compiler = SchemaCompiler(document: schema)
        let root = try compiler.compile(schema, at: SchemaPointer.root)
        let references = try compiler.compileReferences()
        try SchemaCompiler.rejectReferenceCycles(root: root, references: references)
        self.document = schema
        self.root = root
        self.references = references
    }

    /// Parses and compiles a schema; malformed JSON throws a `.malformedJSON` error.
    public init(data: Data) throws(JSONSchemaError) {
        let document: JSONValue
        do {
            document = try JSONValue(parsing: data)
        } catch {
            throw JSONSchemaError(kind: .malformedJSON, path: SchemaPointer.root, message: "schema is not valid JSON: \(error)")
        }
        try self.init(document)
    }

    /// Every violation of the schema by `instance`; empty when it is valid.
    ///
    /// Violations are collected rather than stopping at the first, in a deterministic
    /// order. `anyOf` and `oneOf` report a single summarising violation each.
    ///
    /// Work is bounded: nesting deeper than 256 subschema applications reports a `depth`
    /// violation there, and a value needing more than a million subschema applications
    /// yields the single violation `complexity` at `$` (pathological recursive `anyOf`s).
    public func validate(_ instance: JSONValue) -> [SchemaViolation] {
        validate(instance, stepLimit: EvaluationBudget.defaultSteps)
    }

    /// `validate` with a chosen evaluation budget, so tests can reach the limit quickly.
    func validate(_ instance: JSONValue, stepLimit: Int) -> [SchemaViolation] {
        SchemaEvaluator(references: references, failFast: false, budget: EvaluationBudget(steps: stepLimit))
            .evaluateRoot(root, instance)
    }

    /// Whether `instance` satisfies the schema; stops at the first violation.
    public func isValid(_ instance: JSONValue) -> Bool {
        SchemaEvaluator(references: references, failFast: true, budget: EvaluationBudget())
            .evaluateRoot(root, instance)
            .isEmpty
    }
}

/// One way an instance fails its schema.
public struct SchemaViolation: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Where in the instance, JSONPath style: `$` is the instance itself, then `.name` for
    /// members (`['odd name']` when the name is not an ASCII identifier) and `[2]` for
    /// elements, e.g. `$.inputs.duration` or `$.images[2].url`. For `required` it is the path
    /// the missing member would have; for `additionalProperties: false`, the disallowed member.
    public var path: String
    /// The keyword that failed: `type`, `required`, `enum`, `minimum`, `anyOf`, ...
    /// A `false` schema reports `false`; the resource guards report `depth` and `complexity`.
    public var keyword: String
    /// A sentence naming the offending value and what was expected.
    public var message: String

    public init(path: String, keyword: String, message: String) {
        self.path = path
        self.keyword = keyword
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// Why a schema could not be compiled.
public struct JSONSchemaError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, Codable {
        /// `init(data:)` was given text that is not JSON.
        case malformedJSON
        /// A schema position holds something other than an object or a boolean.
        case notASchema
        /// A keyword that is neither supported, ignored by design nor an `x-` extension.
        case unknownKeyword
        /// A keyword whose value has the wrong shape (`type: "strnig"`, `minimum: "3"`).
        case invalidKeywordValue
        /// A `pattern` that is not a valid regular expression.
        case invalidPattern
        /// A `$ref` that is not a local JSON pointer (remote documents, anchors).
        case unsupportedReference
        /// A `$ref` pointing at nothing, or at something that is not a schema.
        case unresolvedReference
        /// `$ref`s that loop without descending into the instance.
        case referenceCycle
    }

    public var kind: Kind
    /// JSON pointer into the schema document of the offending keyword, e.g.
    /// `#/properties/duration/type`.
    public var path: String
    public var message: String

    public init(kind: Kind, path: String, message: String) {
        self.kind = kind
        self.path = path
        self.message = message
    }

    public var description: String { "invalid schema at \(path): \(message)" }
}
