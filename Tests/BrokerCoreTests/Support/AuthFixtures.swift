import Foundation
import GRPCCore
import KeelCore
import RegistryCore

/// Credentials and ACLs for authentication and authorization tests.
enum AuthFixtures {
    static let analytics = (principal: "analytics", secret: "analytics-secret")
    static let ops = (principal: "ops", secret: "ops-secret")

    /// A credential store of `analytics` and `ops`, hashed with cheap scrypt parameters.
    static func credentials() throws -> CredentialStore {
        let parameters = SecretHash.Parameters(logRounds: 8, blockSize: 8, parallelism: 1)
        let text = try [analytics, ops].map {
            CredentialStore.entry(principal: $0.principal, hash: try SecretHash(hashing: $0.secret, parameters: parameters))
        }.joined(separator: "\n")
        return try CredentialStore(parsing: text, source: "test-credentials")
    }

    /// A registry configuration requiring the credentials above, with `acls` and `tokenTTL`.
    static func registry(acls: ACLs = .allowAll, tokenTTL: Duration = .seconds(3600)) throws -> RegistryConfiguration {
        RegistryConfiguration(tokenTTL: tokenTTL, credentials: try credentials(), acls: acls)
    }
}

/// The `RPCError` a call failed with, or nil when it succeeded.
func rpcFailure(_ body: () async throws -> Void) async -> RPCError? {
    do {
        try await body()
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        return RPCError(code: .unknown, message: "\(error)")
    }
}

/// base64url without padding, as in a JWT.
func base64URL(_ data: Data) -> String {
    data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// Decodes one base64url JWT segment.
func decodeBase64URL(_ text: String) -> Data? {
    var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
    return Data(base64Encoded: base64)
}
