import ArgumentParser
import Foundation
import HealthCore
import KeelObservability
import KeelRPC
import Logging

/// keel-health: the health checker (task health checks and agent liveness pings).
@main
struct HealthCommand: AsyncParsableCommand {
    /// Pins the time zone (``LocalTimeZone``) and puts Swift concurrency on the event loops
    /// (``ConcurrencyExecutor``) before anything runs.
    static func main() async {
        LocalTimeZone.pin()
        ConcurrencyExecutor.install()
        await main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "keel-health",
        abstract: "Keel health checker: runs tasks' health checks, pings every agent's launcher, and reports changes to the broker."
    )

    @Option(help: "gRPC listen address of the health query API. [env: KEEL_LISTEN] (default: 127.0.0.1:5056)")
    var listen: String?

    @Option(help: "Admin HTTP listen address (/metrics, /healthz, /readyz). [env: KEEL_ADMIN_LISTEN] (default: 127.0.0.1:5057)")
    var adminListen: String?

    @Option(help: "keel-broker gRPC address: its task watch, agent list and health reports. [env: KEEL_BROKER] (default: 127.0.0.1:5050)")
    var broker: String?

    @Option(help: "How often every agent's launcher is pinged, e.g. 5s, 500ms. [env: KEEL_PING_INTERVAL] (default: 5s)")
    var pingInterval: String?

    @Option(help: "Missed pings in a row before an agent is reported unreachable. [env: KEEL_PING_BUDGET] (default: 5)")
    var pingBudget: String?

    @OptionGroup var common: CommonDaemonOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let options = EnvironmentOptions(environment)
        let daemon = try common.configuration(
            serviceName: "keel-health",
            adminListen: options.string(adminListen, "KEEL_ADMIN_LISTEN", default: "127.0.0.1:5057"),
            environment: environment
        )
        let listenEndpoint = try Endpoint(parsing: options.string(listen, "KEEL_LISTEN", default: "127.0.0.1:5056"))
        var configuration = HealthConfiguration.defaults
        configuration.broker = try Endpoint(parsing: options.string(broker, "KEEL_BROKER", default: "\(configuration.broker)"))
        configuration.pingInterval = try options.duration(pingInterval, "KEEL_PING_INTERVAL", default: configuration.pingInterval)
        let budgetText = options.string(pingBudget, "KEEL_PING_BUDGET", default: "\(configuration.pingBudget)")
        guard let budget = Int(budgetText), budget >= 1 else {
            throw OptionError("KEEL_PING_BUDGET/--ping-budget '\(budgetText)' is not a count of missed pings: write a whole number >= 1, e.g. 5")
        }
        configuration.pingBudget = budget
        try configuration.validate()

        try await Daemon.run(configuration: daemon) { context in
            try HealthChecker.services(
                configuration: configuration,
                listen: listenEndpoint,
                logger: context.logger,
                onListening: { endpoint in await context.markReady(endpoint.port) }
            )
        }
    }
}
