import Foundation
import GRPCCore
import JWTKit
import KeelCore

/// Verifies framework tokens against the registry's public keys (a JSON Web Key Set).
///
/// Only ES256 keys are accepted: a token signed with another algorithm, including `none`, is
/// rejected because no key for that algorithm is ever added.
///
/// A framework sends the same token with every call until it renews it, and checking an ES256
/// signature is the dearest part of a small call (about a tenth of a millisecond). So the claims
/// of tokens that verified are kept, by the token's exact text, until the keys change; a kept
/// token is still checked for expiry on every call. A token that differs in any byte is a
/// different key and is verified in full.
package actor TokenVerifier {
    /// How many verified tokens are kept (a few per framework: the current one and the renewed).
    static let verifiedCapacity = 4096

    private var keys = JWTKeyCollection()
    private var keySetJSON: String?
    private var verified: [String: FrameworkClaims] = [:]

    /// Creates a verifier with no keys; ``install(jwksJSON:)`` must run before tokens verify.
    package init() {}

    /// Whether keys are installed.
    package var hasKeys: Bool { keySetJSON != nil }

    /// Replaces the keys with the given JSON Web Key Set.
    package func install(jwksJSON: String) async throws {
        guard jwksJSON != keySetJSON else { return }
        let collection = JWTKeyCollection()
        try await collection.add(jwksJSON: jwksJSON)
        keys = collection
        keySetJSON = jwksJSON
        verified.removeAll()
    }

    /// Verifies `token` and returns its claims.
    ///
    /// - Throws: `KeelError` `.unauthenticated` saying why the token was refused.
    package func verify(_ token: String) async throws -> FrameworkClaims {
        guard keySetJSON != nil else {
            throw KeelError(
                code: .unavailable,
                message: "the broker has not loaded the registry's token keys yet; retry in a moment"
            )
        }
        do {
            if let claims = verified[token] {
                try claims.exp.verifyNotExpired()
                return claims
            }
            let claims = try await keys.verify(token, as: FrameworkClaims.self)
            if verified.count >= Self.verifiedCapacity { verified.removeAll() }
            verified[token] = claims
            return claims
        } catch let error as JWTError where error.failedClaim is ExpirationClaim {
            verified[token] = nil
            throw KeelError(
                code: .unauthenticated,
                message: "the framework token has expired; get a new one with the registry's RefreshToken (the KeelSDK driver does this before expiry) or register again",
                cause: error
            )
        } catch {
            throw KeelError(
                code: .unauthenticated,
                message: "the framework token was refused (\(error)); send the token keel-registry issued, unaltered, or register again to get a fresh one",
                cause: error
            )
        }
    }
}
