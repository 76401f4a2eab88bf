package import GRPCCore
package import KeelAPI
import KeelCore
import KeelRPC
import SwiftProtobuf

/// The `keel.v1.HealthChecker` gRPC service: what keel-health is checking and what it found.
package struct HealthQueryService: Keel_V1_HealthChecker.SimpleServiceProtocol {
    private let table: HealthTable

    /// Creates the service over `table`.
    package init(table: HealthTable) {
        self.table = table
    }

    /// The latest verdict of every checked task, or of the tasks with the given ids.
    package func getTaskHealth(
        request: Keel_V1_GetTaskHealthRequest,
        context: ServerContext
    ) async throws -> Keel_V1_GetTaskHealthResponse {
        try await mappingErrors {
            var wanted = Set<String>()
            for id in request.taskIds {
                do {
                    wanted.insert(try TaskID(validating: id.value).value)
                } catch let error as KeelError {
                    throw KeelError.invalidArgument("task_ids has an invalid entry: \(error.message)")
                }
            }
            let tasks = table.tasks(matching: wanted)
            return .with { $0.tasks = tasks }
        }
    }

    /// The liveness of every pinged agent after the latest round.
    package func getAgentLiveness(
        request: Keel_V1_GetAgentLivenessRequest,
        context: ServerContext
    ) async throws -> Keel_V1_GetAgentLivenessResponse {
        try await mappingErrors {
            // The request has no fields; unknown fields from a newer client are ignored.
            let agents = table.agents
            return .with { $0.agents = agents }
        }
    }
}
