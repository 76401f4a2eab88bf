import ArgumentParser
import Foundation
import KeelAPI
import SwiftProtobuf

/// The credential a command presents to a registry that requires one: the principal from a
/// `--principal` flag or `KEEL_PRINCIPAL`, the secret from `KEEL_SECRET` (never a flag, so it
/// stays out of process listings and shell history).
enum CLICredential {
    /// nil when no principal is given (an open cluster).
    static func resolve(principal flag: String?) throws -> Keel_V1_Credential? {
        let environment = ProcessInfo.processInfo.environment
        guard let principal = flag ?? environment["KEEL_PRINCIPAL"].flatMap({ $0.isEmpty ? nil : $0 }) else { return nil }
        guard let secret = environment["KEEL_SECRET"], !secret.isEmpty else {
            throw ValidationError("principal '\(principal)' needs its secret in the KEEL_SECRET variable")
        }
        return .with {
            $0.principal = principal
            $0.secret = secret
        }
    }
}
