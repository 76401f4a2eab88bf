import GRPCCore
package import KeelAPI
import KeelRPC
import SwiftProtobuf

/// A gRPC check: calls `grpc.health.v1.Health/Check` on the task's port (plaintext HTTP/2) and
/// is healthy when the answer is `SERVING`.
package struct GRPCHealthProbe: HealthProbe {
    /// Creates the probe.
    package init() {}

    /// Calls `Health/Check` for the check's service on the task's port.
    package func probe(_ check: Keel_V1_HealthCheck, target: ProbeTarget, timeout: Duration) async -> ProbeResult {
        let port = Int(check.grpc.port)
        guard check.hasGrpc, port > 0, port <= 65535 else {
            return .unhealthy("the gRPC check has no valid port; set grpc.port")
        }
        let service = check.grpc.service
        let subject = "grpc.health.v1 Check(\(service.isEmpty ? "server" : "'\(service)'")) on \(target.address(port: port))"
        do {
            var options = CallOptions.defaults
            options.timeout = timeout
            options.waitForReady = false
            let status = try await withKeelClient(Endpoint(host: target.host, port: port)) { client in
                try await Grpc_Health_V1_Health.Client(wrapping: client)
                    .check(.with { $0.service = service }, options: options)
                    .status
            }
            let message = "\(subject) answered \(status)"
            return status == .serving ? .healthy(message) : .unhealthy(message)
        } catch let error as RPCError {
            return .unhealthy("\(subject) failed: \(error.code): \(error.message)")
        } catch {
            return .unhealthy("\(subject) failed: \(error)")
        }
    }
}
