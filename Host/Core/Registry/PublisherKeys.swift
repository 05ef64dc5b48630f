import Crypto
import Foundation

/// An Ed25519 publisher key as stored on disk (JSON, base64 raw keys).
/// Trusted public keys live in Registry/keys/ (shipped) and $YARD_HOME/keys/
/// (added by `yard plugin trust`).
public struct PublisherKeyFile: Codable, Sendable {
    public var keyID: String
    public var publisher: String
    public var algorithm: String
    public var publicKey: String
    public var privateKey: String?

    enum CodingKeys: String, CodingKey {
        case publisher, algorithm
        case keyID = "key_id"
        case publicKey = "public_key"
        case privateKey = "private_key"
    }

    /// key_id: the first 16 hex digits of sha256(raw public key).
    public static func keyID(for publicKey: Data) -> String {
        String(SHA256.hash(data: publicKey).map { String(format: "%02x", $0) }.joined().prefix(16))
    }

    public static func generate(publisher: String) -> PublisherKeyFile {
        let key = Curve25519.Signing.PrivateKey()
        let pub = key.publicKey.rawRepresentation
        return PublisherKeyFile(keyID: keyID(for: pub), publisher: publisher, algorithm: "ed25519",
                                publicKey: pub.base64EncodedString(), privateKey: key.rawRepresentation.base64EncodedString())
    }

    public var publicOnly: PublisherKeyFile {
        var copy = self
        copy.privateKey = nil
        return copy
    }

    public static func read(_ url: URL) throws -> PublisherKeyFile {
        guard let data = try? Data(contentsOf: url) else {
            throw YardError(.keyInvalid, "Cannot read the key file \(url.path).", remediation: "Check the path; create keys with `yard plugin keygen`.")
        }
        guard let key = try? JSONDecoder().decode(PublisherKeyFile.self, from: data), key.algorithm == "ed25519",
              let pub = Data(base64Encoded: key.publicKey), pub.count == 32 else {
            throw YardError(.keyInvalid, "\(url.path) is not a Switchyard Ed25519 key file.", remediation: "Create keys with `yard plugin keygen`.")
        }
        return key
    }

    func signingKey() throws -> Curve25519.Signing.PrivateKey {
        guard let b64 = privateKey, let raw = Data(base64Encoded: b64),
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw YardError(.keyInvalid, "The key file for \(keyID) holds no private key.",
                            remediation: "Sign with the .private.json file that `yard plugin keygen` wrote.")
        }
        return key
    }

    func verifyingKey() throws -> Curve25519.Signing.PublicKey {
        guard let raw = Data(base64Encoded: publicKey), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw YardError(.keyInvalid, "Key \(keyID) has a malformed public key.", remediation: "Replace the key file.")
        }
        return key
    }
}

/// signature.json inside a package: a detached Ed25519 signature over the
/// exact bytes of plugin.json, which in turn pins the library's sha256.
public struct PackageSignature: Codable, Sendable {
    public var algorithm: String
    public var keyID: String
    public var publisher: String
    public var signedFile: String
    public var signature: String

    enum CodingKeys: String, CodingKey {
        case algorithm, publisher, signature
        case keyID = "key_id"
        case signedFile = "signed_file"
    }

    public static func sign(_ manifestBytes: Data, with key: PublisherKeyFile) throws -> PackageSignature {
        let signature = try key.signingKey().signature(for: manifestBytes)
        return PackageSignature(algorithm: "ed25519", keyID: key.keyID, publisher: key.publisher,
                                signedFile: "plugin.json", signature: signature.base64EncodedString())
    }
}

public struct TrustStore: Sendable {
    public var keys: [String: PublisherKeyFile]

    public init(directories: [URL]) {
        var keys: [String: PublisherKeyFile] = [:]
        for dir in directories {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            for file in files.sorted() where file.hasSuffix(".json") {
                if let key = try? PublisherKeyFile.read(dir.appendingPathComponent(file)) { keys[key.keyID] = key.publicOnly }
            }
        }
        self.keys = keys
    }

    /// Nil when `signature` is a valid signature of `manifestBytes` by a trusted key; else the refusal.
    public func check(_ signature: PackageSignature, manifestBytes: Data) -> YardError? {
        guard signature.algorithm == "ed25519" else {
            return YardError(.pluginSignatureInvalid, "The package is signed with \(signature.algorithm); only ed25519 is accepted.",
                             remediation: "Re-sign it with `yard plugin sign`.")
        }
        guard let key = keys[signature.keyID] else {
            return YardError(.pluginSignatureInvalid,
                             "The package is signed by key \(signature.keyID) (\(signature.publisher)), which is not trusted here.",
                             remediation: "If you trust this publisher, add their public key with `yard plugin trust KEYFILE`; otherwise do not install it.")
        }
        guard let raw = Data(base64Encoded: signature.signature), let verifying = try? key.verifyingKey(),
              verifying.isValidSignature(raw, for: manifestBytes) else {
            return YardError(.pluginSignatureInvalid,
                             "The signature by \(signature.publisher) (\(signature.keyID)) does not match plugin.json: the package was altered after signing.",
                             remediation: "Do not install it; fetch the package again from its publisher.")
        }
        return nil
    }
}
