import Crypto
import Foundation
import ParisRun
import Torch

/// A contributor's Ed25519 key pair (swift-crypto's `Curve25519.Signing`), as `paris keys new` writes it:
///
///     <name>.key   {"kind": "ed25519-private", "name", "private_key": base64 of the 32-byte seed}   mode 0600
///     <name>.pub   {"kind": "ed25519-public",  "name", "public_key": base64 of the 32-byte key}
///
/// The public file is what a run's owner adds to its trust list.
public struct ContributorKey {
    public let name: String
    public let privateKey: Curve25519.Signing.PrivateKey
    public var publicKey: TrustedKey { TrustedKey(name: name, publicKey: privateKey.publicKey.rawRepresentation) }

    /// A fresh key pair.
    public init(name: String) throws {
        guard Self.isValidName(name) else {
            throw ContributionError("a key name is 1–64 letters, digits, '-', '_' or '.', not \"\(name)\"")
        }
        self.name = name
        privateKey = Curve25519.Signing.PrivateKey()
    }

    init(name: String, privateKey: Curve25519.Signing.PrivateKey) {
        self.name = name
        self.privateKey = privateKey
    }

    static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.count) && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }

    /// Writes `<folder>/<name>.key` (mode 0600) and `<folder>/<name>.pub`, refusing to replace either.
    public func write(to folder: URL) throws -> (privateFile: URL, publicFile: URL) {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let key = folder.appendingPathComponent("\(name).key"), pub = folder.appendingPathComponent("\(name).pub")
        for url in [key, pub] where FileManager.default.fileExists(atPath: url.path) {
            throw ContributionError("\(url.path) already exists; a key is never overwritten")
        }
        try JSONObject.write(["kind": "ed25519-private", "name": name,
                              "private_key": privateKey.rawRepresentation.base64EncodedString()], to: key)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key.path)
        try JSONObject.write(publicKey.json, to: pub)
        return (key, pub)
    }

    /// Reads a `.key` file.
    public static func read(_ url: URL) throws -> ContributorKey {
        let dict: [String: Any]
        do { dict = try JSONObject.read(url) } catch { throw ContributionError("\(url.path): \(error)") }
        guard dict["kind"] as? String == "ed25519-private", let name = dict["name"] as? String,
              let b64 = dict["private_key"] as? String, let raw = Data(base64Encoded: b64),
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw ContributionError("\(url.path) is not an Ed25519 private key file written by `paris keys new`")
        }
        return ContributorKey(name: name, privateKey: key)
    }

    /// The Ed25519 signature of `message`.
    public func sign(_ message: Data) throws -> Data { try privateKey.signature(for: message) }
}

/// A public key with the name its owner gave it.
public struct TrustedKey: Equatable, Sendable {
    public let name: String
    /// The raw 32-byte Ed25519 public key.
    public let publicKey: Data

    public init(name: String, publicKey: Data) {
        self.name = name
        self.publicKey = publicKey
    }

    public var base64: String { publicKey.base64EncodedString() }
    var json: [String: Any] { ["kind": "ed25519-public", "name": name, "public_key": base64] }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    public func verifies(_ signature: Data, of message: Data) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else { return false }
        return key.isValidSignature(signature, for: message)
    }

    /// Reads a `.pub` file.
    public static func read(_ url: URL) throws -> TrustedKey {
        let dict: [String: Any]
        do { dict = try JSONObject.read(url) } catch { throw ContributionError("\(url.path): \(error)") }
        guard let key = parse(dict) else {
            throw ContributionError("\(url.path) is not an Ed25519 public key file written by `paris keys new`")
        }
        return key
    }

    static func parse(_ dict: [String: Any]) -> TrustedKey? {
        guard dict["kind"] as? String == "ed25519-public", let name = dict["name"] as? String,
              let b64 = dict["public_key"] as? String, let raw = Data(base64Encoded: b64), raw.count == 32,
              (try? Curve25519.Signing.PublicKey(rawRepresentation: raw)) != nil else { return nil }
        return TrustedKey(name: name, publicKey: raw)
    }
}

/// The owner's list of contributors it trusts: a JSON file `{"keys": [<.pub objects>]}`, or a single `.pub` file.
public struct TrustList {
    public let keys: [TrustedKey]

    public init(keys: [TrustedKey]) { self.keys = keys }

    public static func read(_ url: URL) throws -> TrustList {
        let dict: [String: Any]
        do { dict = try JSONObject.read(url) } catch { throw ContributionError("--trust \(url.path): \(error)") }
        if let key = TrustedKey.parse(dict) { return TrustList(keys: [key]) }
        guard let list = dict["keys"] as? [[String: Any]] else {
            throw ContributionError("--trust \(url.path): expected {\"keys\": [...]} or one public key file")
        }
        var keys: [TrustedKey] = []
        for (i, entry) in list.enumerated() {
            guard let key = TrustedKey.parse(entry) else {
                throw ContributionError("--trust \(url.path): keys[\(i)] is not an Ed25519 public key")
            }
            keys.append(key)
        }
        return TrustList(keys: keys)
    }

    /// The trusted key with these bytes, if any.
    public func key(_ raw: Data) -> TrustedKey? { keys.first { $0.publicKey == raw } }
}

/// A contribution that cannot be packed, verified or admitted; the message says which check failed.
public struct ContributionError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
