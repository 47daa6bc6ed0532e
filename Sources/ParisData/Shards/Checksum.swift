import Crypto
import Foundation

/// SHA-256 digests as 64 lowercase hex characters, from swift-crypto (BoringSSL): the per-file checksums in a
/// shard's `shard.json` and the trainers' configuration hash. Files are streamed in 1 MiB pieces, so a shard of
/// any size is hashed in constant memory.
public enum Checksum {
    /// The SHA-256 of bytes.
    public static func sha256(_ bytes: some DataProtocol) -> String {
        hex(SHA256.hash(data: bytes))
    }

    /// The SHA-256 of a whole file.
    public static func sha256(file url: URL) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw DatasetImportError("\(url.path): cannot open for checksum")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hex(hasher.finalize())
    }

    private static func hex(_ digest: SHA256.Digest) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
