package import GRPCCore
package import KeelAPI
import SwiftProtobuf
import Synchronization

/// The standard gRPC health service (`grpc.health.v1.Health`).
///
/// The empty service name stands for the whole server. Statuses start as `SERVING` for "" and
/// can be changed with ``setStatus(_:for:)``; `Watch` streams changes until the server stops.
package final class HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    private struct State {
        var statuses: [String: Grpc_Health_V1_HealthCheckResponse.ServingStatus] = ["": .serving]
        var watchers: [Int: (service: String, continuation: AsyncStream<Grpc_Health_V1_HealthCheckResponse.ServingStatus>.Continuation)] = [:]
        var nextWatcher = 0
    }

    private let state = Mutex(State())

    /// Creates the service with the server marked `SERVING`.
    package init() {}

    /// Sets the status of `service` ("" is the whole server) and notifies watchers.
    package func setStatus(_ status: Grpc_Health_V1_HealthCheckResponse.ServingStatus, for service: String = "") {
        state.withLock { state in
            state.statuses[service] = status
            for watcher in state.watchers.values where watcher.service == service {
                watcher.continuation.yield(status)
            }
        }
    }

    /// Marks every service `NOT_SERVING` and ends every watch stream; called when the server stops.
    package func shutDown() {
        state.withLock { state in
            for key in state.statuses.keys { state.statuses[key] = .notServing }
            for watcher in state.watchers.values {
                watcher.continuation.yield(.notServing)
                watcher.continuation.finish()
            }
            state.watchers.removeAll()
        }
    }

    package func check(
        request: Grpc_Health_V1_HealthCheckRequest,
        context: ServerContext
    ) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard let status = state.withLock({ $0.statuses[request.service] }) else {
            throw RPCError(code: .notFound, message: "no health status for service '\(request.service)'")
        }
        return .with { $0.status = status }
    }

    package func watch(
        request: Grpc_Health_V1_HealthCheckRequest,
        response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        let (stream, continuation) = AsyncStream.makeStream(of: Grpc_Health_V1_HealthCheckResponse.ServingStatus.self)
        let id = state.withLock { state in
            let id = state.nextWatcher
            state.nextWatcher += 1
            state.watchers[id] = (request.service, continuation)
            continuation.yield(state.statuses[request.service] ?? .serviceUnknown)
            return id
        }
        defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
        for await status in stream {
            try await response.write(.with { $0.status = status })
        }
    }
}
