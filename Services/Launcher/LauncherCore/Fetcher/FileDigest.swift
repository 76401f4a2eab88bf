import Crypto
import Foundation

/// SHA-256 of files and bytes, as lowercase hex.
enum FileDigest {
    static func sha256(of data: Data) -> String {
        hex(SHA256.hash(data: data))
    }

    /// Streams the file through SHA-256 in 1 MiB reads.
    static func sha256(ofFile url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return hex(hasher.finalize())
    }

    private static func hex(_ digest: SHA256.Digest) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
