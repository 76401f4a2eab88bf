import Foundation
import GRPCCore
import JWTKit
import KeelCore

/// Verifies framework tokens against the registry's public keys (a JSON Web Key Set).
///
/// Only ES256 keys are accepted: a token signed with another algorithm, including `none`, is
/// rejected because no key for that algorithm is ever added.
///
/// A framework sends the same token with every call, so the claims of tokens whose signature
/// verified are remembered for the installed key set (a bounded number of them) and only their
/// expiry is checked again; installing other keys forgets them.
package actor TokenVerifier {
    private var keys = JWTKeyCollection()
    private var keySetJSON: String?
    /// Claims of tokens whose signature and claims verified with ``keys``.
    private var verified: [String: FrameworkClaims] = [:]
    /// Bumped when the keys change, so that a verification that began with the old keys is not remembered.
    private var keysGeneration = 0

    /// The most verified tokens remembered; beyond it the memory starts over.
    static let verifiedTokenLimit = 1024

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
        keysGeneration += 1
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
                do {
                    try claims.exp.verifyNotExpired()
                } catch {
                    verified[token] = nil
                    throw error
                }
                return claims
            }
            let generation = keysGeneration
            let claims = try await keys.verify(token, as: FrameworkClaims.self)
            if generation == keysGeneration {
                if verified.count >= Self.verifiedTokenLimit { verified.removeAll(keepingCapacity: true) }
                verified[token] = claims
            }
            return claims
        } catch let error as JWTError where error.failedClaim is ExpirationClaim {
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
