package import KeelAPI
package import KeelRPC

/// Where a task's check runs: the task's host (for HTTP, TCP and gRPC ports) and the launcher
/// of its agent (for COMMAND checks).
package struct ProbeTarget: Sendable, Hashable {
    /// The checked task.
    package var key: CheckedTaskKey
    /// The host the task's ports are on: the agent's IP or hostname.
    package var host: String
    /// The launcher API of the task's agent.
    package var launcher: Endpoint

    /// Creates a target.
    package init(key: CheckedTaskKey, host: String, launcher: Endpoint) {
        self.key = key
        self.host = host
        self.launcher = launcher
    }

    /// `host:port` with brackets around IPv6 literals.
    package func address(port: Int) -> String {
        Endpoint(host: host, port: port).description
    }
}

/// The result of running a check once.
package struct ProbeResult: Sendable, Hashable {
    /// Whether the check passed.
    package var healthy: Bool
    /// What was checked and what happened, for operators (e.g. `GET http://10.0.0.5:8080/ returned 503`).
    package var message: String

    /// Creates a result.
    package init(healthy: Bool, message: String) {
        self.healthy = healthy
        self.message = message
    }

    /// A passed check.
    package static func healthy(_ message: String) -> ProbeResult {
        ProbeResult(healthy: true, message: message)
    }

    /// A failed check.
    package static func unhealthy(_ message: String) -> ProbeResult {
        ProbeResult(healthy: false, message: message)
    }
}

/// Runs a health check once. Implementations never throw: every failure is an unhealthy result
/// whose message says why. They should return within `timeout` (the caller enforces it too).
package protocol HealthProbe: Sendable {
    /// Runs `check` against `target`.
    func probe(_ check: Keel_V1_HealthCheck, target: ProbeTarget, timeout: Duration) async -> ProbeResult
}

/// The production probe: dispatches on the check's type to the HTTP, TCP, gRPC and COMMAND probes.
package struct StandardProbe: HealthProbe {
    private let http = HTTPProbe()
    private let tcp = TCPProbe()
    private let grpc = GRPCHealthProbe()
    private let command: CommandProbe

    /// Creates the probe; COMMAND checks go through `launchers`.
    package init(launchers: any LauncherConnector) {
        self.command = CommandProbe(launchers: launchers)
    }

    /// Runs `check` with the probe for its type; unknown types are unhealthy.
    package func probe(_ check: Keel_V1_HealthCheck, target: ProbeTarget, timeout: Duration) async -> ProbeResult {
        switch check.type {
        case .http: await http.probe(check, target: target, timeout: timeout)
        case .tcp: await tcp.probe(check, target: target, timeout: timeout)
        case .grpc: await grpc.probe(check, target: target, timeout: timeout)
        case .command: await command.probe(check, target: target, timeout: timeout)
        case .unspecified, .UNRECOGNIZED:
            .unhealthy("health check type \(check.type.label) is not supported; use COMMAND, HTTP, TCP or GRPC")
        }
    }
}

/// Runs `body`, but gives up after `timeout` with an unhealthy result saying so.
package func withProbeTimeout(
    _ timeout: Duration,
    _ body: @escaping @Sendable () async -> ProbeResult
) async -> ProbeResult {
    await withTaskGroup(of: ProbeResult?.self) { group in
        group.addTask { await body() }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first ?? .unhealthy("the check did not finish within \(timeout.compactDescription)")
    }
}

extension Duration {
    /// A short human form: `250ms`, `5s`, `1.5s`.
    package var compactDescription: String {
        let milliseconds = components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        return "\(Double(milliseconds) / 1000)s"
    }
}
