import ArgumentParser
import Foundation
import KeelCore
import RegistryCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keel-registry hash-secret`: turns a secret read from stdin into a credentials-file entry.
struct HashSecretCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash-secret",
        abstract: "Read a secret from stdin and print its scrypt hash for the credentials file (KEEL_CREDENTIALS_FILE).",
        discussion: """
            The first line of stdin is the secret (its line ending is not part of it); at a terminal it is \
            asked for without echo. With \
            --principal the output is a whole PRINCIPAL:HASH line; append it to the credentials file. \
            Example: printf '%s' "$SECRET" | keel-registry hash-secret --principal analytics >> /etc/keel/credentials
            """
    )

    @Option(help: "The principal the secret belongs to; prints PRINCIPAL:HASH instead of the hash alone.")
    var principal: String?

    func run() throws {
        if let principal, !CredentialStore.isValidPrincipal(principal) {
            throw ValidationError("principal '\(principal)' is not valid; use letters, digits, '.', '_', '-' and '@'")
        }
        guard let line = Self.readSecret(), !line.isEmpty else {
            throw ValidationError("no secret on stdin; pipe it in, e.g. printf '%s' \"$SECRET\" | keel-registry hash-secret")
        }
        let hash = try SecretHash(hashing: line)
        print(principal.map { CredentialStore.entry(principal: $0, hash: hash) } ?? hash.description)
    }

    /// The first line of stdin; at a terminal, prompts on stderr and does not echo what is typed.
    private static func readSecret() -> String? {
        guard isatty(STDIN_FILENO) == 1 else { return readLine(strippingNewline: true) }
        FileHandle.standardError.write(Data("secret: ".utf8))
        var saved = termios()
        tcgetattr(STDIN_FILENO, &saved)
        var silent = saved
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSANOW, &silent)
        defer {
            tcsetattr(STDIN_FILENO, TCSANOW, &saved)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        return readLine(strippingNewline: true)
    }
}
