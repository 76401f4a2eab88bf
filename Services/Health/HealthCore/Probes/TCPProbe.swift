package import KeelAPI

/// A TCP check: healthy when a connection to the task's port opens within the timeout.
package struct TCPProbe: HealthProbe {
    /// Creates the probe.
    package init() {}

    /// Opens and closes a connection to the task's port.
    package func probe(_ check: Keel_V1_HealthCheck, target: ProbeTarget, timeout: Duration) async -> ProbeResult {
        let port = Int(check.tcp.port)
        let address = target.address(port: port)
        guard check.hasTcp, port > 0 else {
            return .unhealthy("the TCP check has no port; set tcp.port")
        }
        do {
            let socket = try await ProbeSocket.connect(host: target.host, port: port, deadline: .now + timeout)
            socket.close()
            return .healthy("TCP connect to \(address) succeeded")
        } catch {
            return .unhealthy("TCP connect to \(address) failed: \(error)")
        }
    }
}
