/// What keel-registry needs to run, filled by its `main` from flags and `KEEL_*` variables.
package struct RegistryConfiguration: Sendable {
    /// How long a framework token is valid.
    package var tokenTTL: Duration
    /// Principals and their secrets; empty runs the cluster open (no authentication).
    package var credentials: [String: String]

    /// The defaults: 24 h tokens, no credentials.
    package static var defaults: RegistryConfiguration {
        RegistryConfiguration(tokenTTL: .seconds(24 * 3600), credentials: [:])
    }

    /// Creates a configuration.
    package init(tokenTTL: Duration, credentials: [String: String]) {
        self.tokenTTL = tokenTTL
        self.credentials = credentials
    }
}
