import KeelCore
package import KeelRPC

/// What keel-health needs to run, filled by its `main` from flags and `KEEL_*` variables.
package struct HealthConfiguration: Sendable {
    /// Where keel-broker serves its Operator API: the task watch, the agent list, and the reports.
    package var broker: Endpoint
    /// How often every agent's launcher is pinged.
    package var pingInterval: Duration
    /// How long one ping may take before it counts as missed. A round whose pings take longer
    /// than ``pingInterval`` delays the next round.
    package var pingTimeout: Duration
    /// How many pings in a row an agent may miss before it is reported unreachable.
    package var pingBudget: Int
    /// The check interval when a task's health check leaves `interval` unset.
    package var defaultCheckInterval: Duration
    /// The check timeout when a task's health check leaves `timeout` unset.
    package var defaultCheckTimeout: Duration
    /// The failure threshold when a task's health check leaves `consecutive_failures` unset.
    package var defaultConsecutiveFailures: Int
    /// The deadline of each call to the broker (reports, agent list, task list).
    package var brokerCallTimeout: Duration
    /// The first wait before reconnecting to the broker's task watch; doubles up to ``reconnectBackoffMax``.
    package var reconnectBackoff: Duration
    /// The longest wait between reconnection attempts.
    package var reconnectBackoffMax: Duration
    /// Connections to launchers unused for this long are closed.
    package var launcherIdleTimeout: Duration

    /// The defaults: broker at 127.0.0.1:5050, pings every 5 s with a budget of 5, checks every
    /// 10 s with a 20 s timeout and 3 consecutive failures.
    package static var defaults: HealthConfiguration {
        HealthConfiguration(
            broker: Endpoint(host: "127.0.0.1", port: 5050),
            pingInterval: .seconds(5),
            pingTimeout: .seconds(3),
            pingBudget: 5,
            defaultCheckInterval: .seconds(10),
            defaultCheckTimeout: .seconds(20),
            defaultConsecutiveFailures: 3,
            brokerCallTimeout: .seconds(5),
            reconnectBackoff: .milliseconds(200),
            reconnectBackoffMax: .seconds(5),
            launcherIdleTimeout: .seconds(120)
        )
    }

    /// Creates a configuration.
    package init(
        broker: Endpoint,
        pingInterval: Duration,
        pingTimeout: Duration,
        pingBudget: Int,
        defaultCheckInterval: Duration,
        defaultCheckTimeout: Duration,
        defaultConsecutiveFailures: Int,
        brokerCallTimeout: Duration,
        reconnectBackoff: Duration,
        reconnectBackoffMax: Duration,
        launcherIdleTimeout: Duration
    ) {
        self.broker = broker
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.pingBudget = pingBudget
        self.defaultCheckInterval = defaultCheckInterval
        self.defaultCheckTimeout = defaultCheckTimeout
        self.defaultConsecutiveFailures = defaultConsecutiveFailures
        self.brokerCallTimeout = brokerCallTimeout
        self.reconnectBackoff = reconnectBackoff
        self.reconnectBackoffMax = reconnectBackoffMax
        self.launcherIdleTimeout = launcherIdleTimeout
    }

    /// Checks the values a flag or variable could have set wrong.
    ///
    /// - Throws: `KeelError.invalidArgument` naming the setting and what to write instead.
    package func validate() throws {
        if pingInterval <= .zero {
            throw KeelError.invalidArgument("the ping interval must be positive, e.g. 5s")
        }
        if pingBudget < 1 {
            throw KeelError.invalidArgument("the ping budget must be at least 1 missed ping, e.g. 5")
        }
        if pingTimeout <= .zero {
            throw KeelError.invalidArgument("the ping timeout must be positive, e.g. 3s")
        }
    }
}
