package import KeelCore

/// What keel-registry needs to run, filled by its `main` from flags and `KEEL_*` variables.
package struct RegistryConfiguration: Sendable {
    /// How long a framework token is valid; frameworks refresh theirs before it runs out.
    package var tokenTTL: Duration
    /// Principals and their hashed secrets; empty runs the cluster open (no authentication).
    package var credentials: CredentialStore
    /// Which principals may register frameworks with which roles.
    package var acls: ACLs

    /// The defaults: 15 min tokens, no credentials, everything allowed.
    package static var defaults: RegistryConfiguration {
        RegistryConfiguration(tokenTTL: .seconds(15 * 60), credentials: .empty, acls: .allowAll)
    }

    /// Creates a configuration.
    package init(tokenTTL: Duration, credentials: CredentialStore, acls: ACLs) {
        self.tokenTTL = tokenTTL
        self.credentials = credentials
        self.acls = acls
    }
}
