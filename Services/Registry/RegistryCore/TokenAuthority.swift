package import Foundation
import JWTKit
import KeelCore
package import KeelRPC
package import KeelStore
package import Logging

/// Signs framework tokens with the registry's ES256 key and publishes the public half.
///
/// The private key is created on first start and kept in the store, so tokens stay valid across
/// registry restarts and replicas share one key.
package actor TokenAuthority {

    private static let keyPath = "/keel/registry/signing-key"

    private let keys: JWTKeyCollection
    private let keyID: String
    /// The public keys as a JSON Web Key Set, for the broker.
    package let jwksJSON: String
    private let ttl: Duration

    private init(keys: JWTKeyCollection, keyID: String, jwksJSON: String, ttl: Duration) {
        self.keys = keys
        self.keyID = keyID
        self.jwksJSON = jwksJSON
        self.ttl = ttl
    }

    /// Loads the signing key from the store, creating and storing one on first start.
    package static func load(store: any KeyValueStore, tokenTTL: Duration, logger: Logger) async throws -> TokenAuthority {
        let privateKey: ES256PrivateKey
        if let existing = try await store.get(keyPath) {
            privateKey = try ES256PrivateKey(pem: String(decoding: existing.value, as: UTF8.self))
        } else {
            let created = ES256PrivateKey()
            do {
                _ = try await store.compareAndPut(keyPath, value: Array(created.pemRepresentation.utf8), expectedModRevision: nil)
                privateKey = created
                logger.notice("created the token signing key")
            } catch let error as StoreError where error.code == .conflict {
                // Another replica created it first; use theirs.
                guard let stored = try await store.get(keyPath) else { throw error }
                privateKey = try ES256PrivateKey(pem: String(decoding: stored.value, as: UTF8.self))
            }
        }
        guard let parameters = privateKey.publicKey.parameters else {
            throw KeelError(code: .internalError, message: "the signing key has no public parameters")
        }
        let keyID = String(parameters.x.prefix(16))
        let jwk = JWK.ecdsa(.es256, identifier: JWKIdentifier(string: keyID), x: parameters.x, y: parameters.y, curve: .p256)
        let jwks = JWKS(keys: [jwk])
        let json = String(decoding: try JSONEncoder().encode(jwks), as: UTF8.self)
        let collection = JWTKeyCollection()
        await collection.add(ecdsa: privateKey, kid: JWKIdentifier(string: keyID))
        return TokenAuthority(keys: collection, keyID: keyID, jwksJSON: json, ttl: tokenTTL)
    }

    /// A verifier of the tokens this authority issues.
    package func makeVerifier() async throws -> TokenVerifier {
        let verifier = TokenVerifier()
        try await verifier.install(jwksJSON: jwksJSON)
        return verifier
    }

    /// Issues a token for a framework; returns it and when it expires.
    package func issue(frameworkID: String, principal: String, roles: [String], now: Date = Date()) async throws -> (String, Date) {
        let expires = now.addingTimeInterval(Double(ttl.components.seconds))
        let claims = FrameworkClaims(frameworkID: frameworkID, principal: principal, roles: roles, issuedAt: now, expiresAt: expires)
        let token = try await keys.sign(claims, kid: JWKIdentifier(string: keyID))
        return (token, expires)
    }
}
