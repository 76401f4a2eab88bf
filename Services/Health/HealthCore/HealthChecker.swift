import GRPCCore
import KeelAPI
package import KeelRPC
package import Logging
package import ServiceLifecycle

/// Assembles keel-health: the broker client, the launcher connections, the task checks, the
/// agent pings, and the query API on its gRPC port.
package enum HealthChecker {
    /// The daemon's services, in start order (they stop in reverse order).
    ///
    /// - Parameters:
    ///   - listen: where the `keel.v1.HealthChecker` API is served.
    ///   - onListening: called once the gRPC port is bound (daemons mark themselves ready).
    /// - Throws: `KeelError.invalidArgument` for an invalid configuration.
    package static func services(
        configuration: HealthConfiguration,
        listen: Endpoint,
        logger: Logger,
        onListening: @escaping @Sendable (Endpoint) async throws -> Void = { _ in }
    ) throws -> [any Service] {
        try configuration.validate()
        let brokerClient = try ManagedClient(endpoint: configuration.broker)
        let broker = Keel_V1_Operator.Client(wrapping: brokerClient.client)
        let launchers = LauncherClientPool(idleTimeout: configuration.launcherIdleTimeout)
        let table = HealthTable()
        let tasks = TaskHealthMonitor(
            broker: broker, probe: StandardProbe(launchers: launchers), table: table,
            configuration: configuration, logger: logger
        )
        let agents = AgentLivenessMonitor(
            broker: broker, launchers: launchers, table: table, configuration: configuration, logger: logger
        )
        let server = RPCServer(
            serviceName: "keel-health",
            endpoint: listen,
            services: [HealthQueryService(table: table)],
            logger: logger,
            onListening: onListening
        )
        logger.info("health checker configured", metadata: [
            "keel.broker": "\(configuration.broker)", "keel.ping_interval": "\(configuration.pingInterval.compactDescription)",
            "keel.ping_budget": "\(configuration.pingBudget)",
        ])
        return [brokerClient, launchers, tasks, agents, server]
    }
}
