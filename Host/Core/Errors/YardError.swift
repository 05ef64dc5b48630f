import Foundation

/// Every refusal the host makes: a stable code a script can branch on, a
/// sentence for a person, what to do about it, and the offending field when
/// there is one. Codes are append-only, like the ABI's status codes.
public struct YardError: Error, Sendable, Hashable, Codable, CustomStringConvertible {
    public var code: Code
    public var message: String
    public var remediation: String
    public var field: String?

    public init(_ code: Code, _ message: String, remediation: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.remediation = remediation
        self.field = field
    }

    public var description: String {
        var text = "\(code.rawValue): \(message)"
        if let field { text += " [\(field)]" }
        return text + "\n  fix: \(remediation)"
    }

    public struct Code: RawRepresentable, Sendable, Hashable, Codable, ExpressibleByStringLiteral {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { self.rawValue = value }

        public static let pluginNotFound: Code = "PLUGIN_NOT_FOUND"
        public static let pluginCorrupt: Code = "PLUGIN_CORRUPT"
        public static let pluginIncompatible: Code = "PLUGIN_INCOMPATIBLE"
        public static let pluginSignatureInvalid: Code = "PLUGIN_SIGNATURE_INVALID"
        public static let pluginUnsigned: Code = "PLUGIN_UNSIGNED"
        public static let pluginDuplicateID: Code = "PLUGIN_DUPLICATE_ID"
        public static let pluginEntryFailed: Code = "PLUGIN_ENTRY_FAILED"
        public static let manifestInvalid: Code = "MANIFEST_INVALID"
        public static let manifestMismatch: Code = "MANIFEST_MISMATCH"
        public static let packageInvalid: Code = "PACKAGE_INVALID"
        public static let indexInvalid: Code = "INDEX_INVALID"
        public static let keyInvalid: Code = "KEY_INVALID"
        public static let contractMismatch: Code = "CONTRACT_MISMATCH"
        public static let ioFailed: Code = "IO_FAILED"
        public static let usage: Code = "USAGE"
        public static let jobNotFound: Code = "JOB_NOT_FOUND"
        // Hostile input: paths, documents, packages (docs/adr/0012).
        public static let artifactHandleInvalid: Code = "ARTIFACT_HANDLE_INVALID"
        public static let pathOutsideRoot: Code = "PATH_OUTSIDE_ROOT"
        public static let nameInvalid: Code = "NAME_INVALID"
        public static let documentTooLarge: Code = "DOCUMENT_TOO_LARGE"
        public static let documentTooDeep: Code = "DOCUMENT_TOO_DEEP"
        public static let documentAliasLimit: Code = "DOCUMENT_ALIAS_LIMIT"
        public static let packageTooLarge: Code = "PACKAGE_TOO_LARGE"
        public static let webhookTooLarge: Code = "WEBHOOK_TOO_LARGE"
        public static let webhookTimeout: Code = "WEBHOOK_TIMEOUT"
    }

    public static func jobNotFound(_ id: String) -> YardError {
        if id.hasPrefix("run_") {
            return YardError(.jobNotFound, "\(id) is a pipeline run, not a job.", remediation: "Run `yard runs show \(id)`.", field: "id")
        }
        return YardError(.jobNotFound, "No job \(id).", remediation: "List jobs with `yard jobs list`.", field: "id")
    }

    /// Any error as a refusal a person can act on: a YardError as it is, a
    /// file-system error as IO_FAILED naming the file, anything else INTERNAL.
    public static func describing(_ error: Error) -> YardError {
        if let error = error as? YardError { return error }
        let ns = error as NSError
        if ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain {
            let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
            let reason = (ns.userInfo[NSUnderlyingErrorKey] as? NSError).map { String(cString: strerror(Int32($0.code))) } ?? ns.localizedDescription
            return YardError(.ioFailed, path.map { "Cannot use \($0): \(reason)." } ?? "A file operation failed: \(reason).",
                             remediation: "Check that the folder exists and is writable (the data directory is --home, or $YARD_HOME).", field: path)
        }
        return YardError("INTERNAL", "\(error)", remediation: "Report this with the command you ran.")
    }
}
