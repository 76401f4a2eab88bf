package import Foundation
package import JWTKit

/// The claims of a framework token: which framework it speaks for, until when.
///
/// Issued by keel-registry (signed with ES256), verified by keel-broker with the registry's
/// public keys, so the broker needs no round trip per call.
package struct FrameworkClaims: JWTPayload, Equatable {
    /// The issuer every Keel framework token names.
    package static let issuer = "keel-registry"
    /// The audience every Keel framework token names.
    package static let audience = "keel-broker"

    /// The framework id.
    package var sub: SubjectClaim
    package var iss: IssuerClaim
    package var aud: AudienceClaim
    package var iat: IssuedAtClaim
    package var exp: ExpirationClaim
    /// The principal the framework registered as, empty in an open cluster.
    package var principal: String
    /// The roles the framework may use.
    package var roles: [String]

    /// Creates claims for `frameworkID` valid from `issuedAt` until `expiresAt`.
    package init(frameworkID: String, principal: String, roles: [String], issuedAt: Date, expiresAt: Date) {
        self.sub = SubjectClaim(value: frameworkID)
        self.iss = IssuerClaim(value: Self.issuer)
        self.aud = AudienceClaim(value: Self.audience)
        self.iat = IssuedAtClaim(value: issuedAt)
        self.exp = ExpirationClaim(value: expiresAt)
        self.principal = principal
        self.roles = roles
    }

    package func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
        guard iss.value == Self.issuer else {
            throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "the token was not issued by keel-registry")
        }
        try aud.verifyIntendedAudience(includes: Self.audience)
    }
}
