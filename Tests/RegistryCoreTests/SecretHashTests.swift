import Foundation
import KeelCore
import RegistryCore
import Testing

/// Secrets are stored as scrypt hashes: hashing and verifying round-trip, a wrong secret fails,
/// and a stored hash parses back to the same value.
@Suite("Secret hash")
struct SecretHashTests {
    /// Cheap parameters so the suite stays fast; the format is the same as the standard ones.
    static let fast = SecretHash.Parameters(logRounds: 8, blockSize: 8, parallelism: 1)

    @Test("a hash verifies its own secret and no other")
    func roundTrip() throws {
        let hash = try SecretHash(hashing: "correct horse battery staple", parameters: Self.fast)
        #expect(hash.verify("correct horse battery staple"))
        #expect(!hash.verify("correct horse battery stapl"))
        #expect(!hash.verify("Correct horse battery staple"))
        #expect(!hash.verify(""))
    }

    @Test("the standard parameters round-trip through the stored form")
    func standardParameters() async throws {
        // Seconds of CPU in a debug build: on a thread of its own, not one of the few that run
        // every other test's tasks.
        let (hash, parsed, verified, wrong) = try await Self.aside {
            let hash = try SecretHash(hashing: "s3cret")
            let parsed = try SecretHash(parsing: hash.description)
            return (hash, parsed, parsed.verify("s3cret"), parsed.verify("s3creT"))
        }
        #expect(hash.description.hasPrefix("scrypt$ln=15,r=8,p=1$"))
        #expect(parsed == hash)
        #expect(verified)
        #expect(!wrong)
    }

    /// Runs `work` on a thread of its own.
    static func aside<Result: Sendable>(_ work: @escaping @Sendable () throws -> Result) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Swift.Result { try work() }) }.start()
        }
    }

    @Test("two hashes of one secret differ (random salt) and both verify")
    func randomSalt() throws {
        let first = try SecretHash(hashing: "same", parameters: Self.fast)
        let second = try SecretHash(hashing: "same", parameters: Self.fast)
        #expect(first.salt != second.salt)
        #expect(first.hash != second.hash)
        #expect(first.verify("same") && second.verify("same"))
    }

    @Test("a known vector: the salt and parameters decide the hash")
    func deterministic() throws {
        let salt: [UInt8] = Array(0..<16)
        let first = try SecretHash(hashing: "vector", salt: salt, parameters: Self.fast)
        let second = try SecretHash(hashing: "vector", salt: salt, parameters: Self.fast)
        #expect(first.hash == second.hash)
        #expect(first.hash.count == 32)
        let other = try SecretHash(hashing: "vector", salt: salt, parameters: .init(logRounds: 9, blockSize: 8, parallelism: 1))
        #expect(other.hash != first.hash)
    }

    @Test(
        "malformed stored hashes are refused with a message saying what is wrong",
        arguments: [
            ("scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA", "4 '$'-separated parts"),
            ("bcrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "only scrypt"),
            ("scrypt$ln=15,r=8$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "exactly ln, r and p"),
            ("scrypt$ln=x,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "NAME=POSITIVE_INTEGER"),
            ("scrypt$ln=40,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "out of range"),
            ("scrypt$ln=15,r=8,p=1$!!$AAAAAAAAAAAAAAAAAAAAAA", "salt"),
            ("scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA", "hash is not base64"),
        ]
    )
    func malformed(_ text: String, expected: String) {
        do {
            _ = try SecretHash(parsing: text)
            Issue.record("'\(text)' parsed")
        } catch let error as KeelError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains(expected), "\(error.message)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}
