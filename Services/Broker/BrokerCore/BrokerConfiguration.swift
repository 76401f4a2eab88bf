package import KeelCore
package import KeelRPC

/// What keel-broker needs to run, filled by its `main` from flags and `KEEL_*` variables.
package struct BrokerConfiguration: Sendable {
    /// Where keel-registry serves; the broker follows its framework stream and token keys.
    package var registry: Endpoint
    /// How often the allocator makes offers of free resources (it also runs on events).
    package var offerInterval: Duration
    /// How often HEARTBEAT events go to frameworks.
    package var frameworkHeartbeatInterval: Duration
    /// How often launchers must heartbeat on their stream.
    package var agentHeartbeatInterval: Duration
    /// How long declined resources are not re-offered to the same framework by default.
    package var defaultRefuseSeconds: Double
    /// How many statuses each task keeps in its history.
    package var statusHistoryLimit: Int
    /// An offer left unanswered this long is rescinded and its resources re-offered; nil keeps
    /// offers until they are answered.
    package var offerTimeout: Duration?
    /// Who may run tasks as which users and tear down which frameworks; everything is allowed
    /// without an ACL file.
    package var acls: ACLs = .allowAll
    /// After a broker restart, a framework that was registered before gets this long on top of
    /// its failover timeout to subscribe again before it is torn down (its tasks are killed).
    package var frameworkRecoveryGrace: Duration = .seconds(120)

    /// The defaults for a registry at `registry`.
    package static func defaults(registry: Endpoint) -> BrokerConfiguration {
        BrokerConfiguration(
            registry: registry,
            offerInterval: .seconds(1),
            frameworkHeartbeatInterval: .seconds(15),
            agentHeartbeatInterval: .seconds(5),
            defaultRefuseSeconds: 5,
            statusHistoryLimit: 16,
            offerTimeout: .seconds(60)
        )
    }

    /// Creates a configuration.
    package init(
        registry: Endpoint,
        offerInterval: Duration,
        frameworkHeartbeatInterval: Duration,
        agentHeartbeatInterval: Duration,
        defaultRefuseSeconds: Double,
        statusHistoryLimit: Int,
        offerTimeout: Duration?
    ) {
        self.offerTimeout = offerTimeout
        self.registry = registry
        self.offerInterval = offerInterval
        self.frameworkHeartbeatInterval = frameworkHeartbeatInterval
        self.agentHeartbeatInterval = agentHeartbeatInterval
        self.defaultRefuseSeconds = defaultRefuseSeconds
        self.statusHistoryLimit = statusHistoryLimit
    }
}
