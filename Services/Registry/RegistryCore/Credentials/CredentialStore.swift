import Foundation
import KeelCore
import NIOPosix

/// The principals the registry knows and their hashed secrets, loaded from a credentials file.
///
/// The file has one `PRINCIPAL:HASH` entry per line, where HASH is what
/// `keel-registry hash-secret` prints (`scrypt$ln=15,r=8,p=1$SALT$HASH`). Blank lines and
/// lines starting with `#` are ignored. A principal is letters, digits, `.`, `_`, `-` and `@`.
package struct CredentialStore: Sendable {
    private let hashes: [String: SecretHash]

    /// No principals: the registry runs open.
    package static let empty = CredentialStore(hashes: [:])

    /// Creates a store of the given hashes.
    package init(hashes: [String: SecretHash]) {
        self.hashes = hashes
    }

    /// Whether no principal is configured (the cluster runs open).
    package var isEmpty: Bool { hashes.isEmpty }

    /// The configured principals, sorted.
    package var principals: [String] { hashes.keys.sorted() }

    /// Parses the text of a credentials file; `source` names it in error messages.
    ///
    /// - Throws: `KeelError` `.invalidArgument` naming the line and what is wrong with it.
    package init(parsing text: String, source: String) throws {
        var hashes: [String: SecretHash] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let location = "\(source):\(index + 1)"
            guard let colon = line.firstIndex(of: ":") else {
                throw KeelError.invalidArgument(
                    "\(location): expected PRINCIPAL:HASH; make the hash with `keel-registry hash-secret` (never store the plain secret)"
                )
            }
            let principal = String(line[..<colon])
            let hashText = String(line[line.index(after: colon)...])
            guard Self.isValidPrincipal(principal) else {
                throw KeelError.invalidArgument(
                    "\(location): principal '\(principal)' is not valid; use letters, digits, '.', '_', '-' and '@'"
                )
            }
            guard hashes[principal] == nil else {
                throw KeelError.invalidArgument("\(location): principal '\(principal)' is listed twice; keep one entry per principal")
            }
            do {
                hashes[principal] = try SecretHash(parsing: hashText)
            } catch let error as KeelError {
                throw KeelError.invalidArgument("\(location): the hash of '\(principal)' is malformed: \(error.message)")
            }
        }
        self.hashes = hashes
    }

    /// Loads a credentials file.
    ///
    /// - Throws: `KeelError` `.invalidArgument` when it cannot be read or parsed.
    package static func load(path: String) throws -> CredentialStore {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw KeelError.invalidArgument("cannot read the credentials file \(path): check KEEL_CREDENTIALS_FILE / --credentials-file", cause: error)
        }
        let store = try CredentialStore(parsing: text, source: path)
        guard !store.isEmpty else {
            throw KeelError.invalidArgument(
                "the credentials file \(path) has no entries; add PRINCIPAL:HASH lines or unset KEEL_CREDENTIALS_FILE to run open"
            )
        }
        return store
    }

    /// Whether `secret` is the secret of `principal`.
    ///
    /// An unknown principal costs the hashing work of a configured one, so timing does not tell
    /// which principals exist.
    package func verify(principal: String, secret: String) -> Bool {
        guard let hash = hashes[principal] else {
            _ = hashes.values.first?.verify(secret)
            return false
        }
        return hash.verify(secret)
    }

    /// ``verify(principal:secret:)`` on NIO's thread pool for blocking work. A hash costs tens of
    /// milliseconds of CPU by design (hundreds in a debug build); on an event loop, or on a
    /// thread of Swift's cooperative pool, every other call of the daemon would wait for it.
    package func verifyAside(principal: String, secret: String) async -> Bool {
        do {
            return try await NIOThreadPool.singleton.runIfActive { verify(principal: principal, secret: secret) }
        } catch {
            return false
        }
    }

    /// One entry of a credentials file for `principal`.
    package static func entry(principal: String, hash: SecretHash) -> String {
        "\(principal):\(hash)"
    }

    /// Whether `principal` is a valid principal name.
    package static func isValidPrincipal(_ principal: String) -> Bool {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")
        return !principal.isEmpty && principal.utf8.count <= 256 && principal.allSatisfy { allowed.contains($0) }
    }
}
