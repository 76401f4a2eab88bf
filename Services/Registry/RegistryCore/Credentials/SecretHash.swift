import Crypto
import _CryptoExtras
import Foundation
import KeelCore

/// A secret stored as a scrypt hash: `scrypt$ln=15,r=8,p=1$<salt>$<hash>` (salt and hash in
/// unpadded base64).
///
/// `ln` is the base-2 logarithm of scrypt's cost N, `r` its block size and `p` its parallelism.
/// The parameters travel with each hash, so they can be raised for new entries while old ones
/// keep verifying.
package struct SecretHash: Sendable, Equatable, CustomStringConvertible {
    /// scrypt's cost parameters.
    package struct Parameters: Sendable, Equatable {
        /// log2 of the CPU/memory cost N.
        package var logRounds: Int
        /// The block size r.
        package var blockSize: Int
        /// The parallelism p.
        package var parallelism: Int

        /// N = 2^15, r = 8, p = 1: 32 MiB and about a tenth of a second per hash.
        package static let standard = Parameters(logRounds: 15, blockSize: 8, parallelism: 1)

        /// Creates parameters.
        package init(logRounds: Int, blockSize: Int, parallelism: Int) {
            self.logRounds = logRounds
            self.blockSize = blockSize
            self.parallelism = parallelism
        }
    }

    /// The algorithm name at the start of every stored hash.
    package static let algorithm = "scrypt"
    private static let saltByteCount = 16
    private static let hashByteCount = 32

    /// The cost parameters this hash was made with.
    package let parameters: Parameters
    /// The random salt.
    package let salt: [UInt8]
    /// The derived key.
    package let hash: [UInt8]

    /// Hashes `secret` with a fresh random salt.
    package init(hashing secret: String, parameters: Parameters = .standard) throws {
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<Self.saltByteCount).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        try self.init(hashing: secret, salt: salt, parameters: parameters)
    }

    /// Hashes `secret` with the given salt.
    package init(hashing secret: String, salt: [UInt8], parameters: Parameters) throws {
        self.parameters = parameters
        self.salt = salt
        self.hash = try Self.derive(secret, salt: salt, parameters: parameters)
    }

    /// Parses a stored hash.
    ///
    /// - Throws: `KeelError` `.invalidArgument` saying which part is malformed.
    package init(parsing text: String) throws {
        let parts = text.split(separator: "$", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4 else {
            throw KeelError.invalidArgument(
                "a secret hash has 4 '$'-separated parts (scrypt$ln=15,r=8,p=1$SALT$HASH), this one has \(parts.count); make it with `keel-registry hash-secret`"
            )
        }
        guard parts[0] == Self.algorithm else {
            throw KeelError.invalidArgument("unsupported secret hash algorithm '\(parts[0])'; only scrypt is supported")
        }
        var values: [String: Int] = [:]
        for field in parts[1].split(separator: ",") {
            let pair = field.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, let value = Int(pair[1]), value > 0 else {
                throw KeelError.invalidArgument("scrypt parameter '\(field)' is not NAME=POSITIVE_INTEGER")
            }
            values[pair[0]] = value
        }
        guard let logRounds = values["ln"], let blockSize = values["r"], let parallelism = values["p"], values.count == 3 else {
            throw KeelError.invalidArgument("scrypt parameters must be exactly ln, r and p (e.g. ln=15,r=8,p=1), got '\(parts[1])'")
        }
        guard (1...24).contains(logRounds), (1...64).contains(blockSize), (1...16).contains(parallelism) else {
            throw KeelError.invalidArgument("scrypt parameters out of range: ln must be 1...24, r 1...64, p 1...16 (got '\(parts[1])')")
        }
        guard let salt = Self.decode(parts[2]), salt.count >= 8 else {
            throw KeelError.invalidArgument("the salt is not base64 of at least 8 bytes")
        }
        guard let hash = Self.decode(parts[3]), hash.count >= 16 else {
            throw KeelError.invalidArgument("the hash is not base64 of at least 16 bytes")
        }
        self.parameters = Parameters(logRounds: logRounds, blockSize: blockSize, parallelism: parallelism)
        self.salt = salt
        self.hash = hash
    }

    /// Whether `secret` hashes to this hash; the comparison takes the same time wherever the
    /// bytes differ.
    package func verify(_ secret: String) -> Bool {
        guard let candidate = try? Self.derive(secret, salt: salt, parameters: parameters, byteCount: hash.count) else {
            return false
        }
        return constantTimeEquals(candidate, hash)
    }

    /// The stored form, `scrypt$ln=..,r=..,p=..$SALT$HASH`.
    package var description: String {
        let p = parameters
        return "\(Self.algorithm)$ln=\(p.logRounds),r=\(p.blockSize),p=\(p.parallelism)$\(Self.encode(salt))$\(Self.encode(hash))"
    }

    private static func derive(
        _ secret: String, salt: [UInt8], parameters: Parameters, byteCount: Int = hashByteCount
    ) throws -> [UInt8] {
        let key = try KDF.Scrypt.deriveKey(
            from: Array(secret.utf8), salt: salt, outputByteCount: byteCount,
            rounds: 1 << parameters.logRounds, blockSize: parameters.blockSize, parallelism: parameters.parallelism
        )
        return key.withUnsafeBytes { Array($0) }
    }

    private static func encode(_ bytes: [UInt8]) -> String {
        var text = Data(bytes).base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }

    private static func decode(_ text: String) -> [UInt8]? {
        guard !text.isEmpty else { return nil }
        let padded = text + String(repeating: "=", count: (4 - text.count % 4) % 4)
        return Data(base64Encoded: padded).map { Array($0) }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
package func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    var difference = UInt8(lhs.count == rhs.count ? 0 : 1)
    for index in 0..<max(lhs.count, rhs.count) {
        difference |= (index < lhs.count ? lhs[index] : 0) ^ (index < rhs.count ? rhs[index] : 0)
    }
    return difference == 0
}
