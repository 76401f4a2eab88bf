import GRPCCore
import KeelAPI
import SwiftProtobuf
import Synchronization

/// A stand-in for keel-broker's Operator service: a task table the test edits (streamed to
/// watchers), an agent list, and the reports it received.
final class FakeBroker: Keel_V1_Operator.SimpleServiceProtocol {
    private struct State {
        var tasks: [String: Keel_V1_TaskEvent] = [:]
        var agents: [Keel_V1_Agent] = []
        var watchers: [Int: AsyncStream<Keel_V1_TaskEvent>.Continuation] = [:]
        var nextWatcher = 0
        var taskReports: [Keel_V1_ReportTaskHealthRequest] = []
        var agentReports: [Keel_V1_ReportAgentReachabilityRequest] = []
    }

    private let state = Mutex(State())

    /// Changes a task in the table and tells every watcher.
    func send(_ event: Keel_V1_TaskEvent) {
        state.withLock { state in
            state.tasks[event.task.frameworkID.value + "/" + event.task.taskID.value] = event
            for watcher in state.watchers.values { watcher.yield(event) }
        }
    }

    /// Ends every open watch (the in-process transport does not cancel server handlers when the
    /// client cancels, so a test must end them before the server can shut down).
    func closeWatches() {
        state.withLock { state in
            for watcher in state.watchers.values { watcher.finish() }
        }
    }

    /// Replaces the agent list.
    func setAgents(_ agents: [Keel_V1_Agent]) {
        state.withLock { $0.agents = agents }
    }

    var taskReports: [Keel_V1_ReportTaskHealthRequest] { state.withLock { $0.taskReports } }
    var agentReports: [Keel_V1_ReportAgentReachabilityRequest] { state.withLock { $0.agentReports } }
    var watcherCount: Int { state.withLock { $0.watchers.count } }

    func getState(request: Keel_V1_GetStateRequest, context: ServerContext) async throws -> Keel_V1_GetStateResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func getAgents(request: Keel_V1_GetAgentsRequest, context: ServerContext) async throws -> Keel_V1_GetAgentsResponse {
        let agents = state.withLock { $0.agents }
        return .with { $0.agents = agents }
    }

    func getTasks(request: Keel_V1_GetTasksRequest, context: ServerContext) async throws -> Keel_V1_GetTasksResponse {
        let tasks = state.withLock { $0.tasks.values.map(\.task) }
        return .with { $0.tasks = tasks }
    }

    func getFrameworks(request: Keel_V1_GetFrameworksRequest, context: ServerContext) async throws -> Keel_V1_GetFrameworksResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func watchTasks(request: Keel_V1_WatchTasksRequest, response: RPCWriter<Keel_V1_TaskEvent>, context: ServerContext) async throws {
        let (events, continuation) = AsyncStream.makeStream(of: Keel_V1_TaskEvent.self)
        let id = state.withLock { state in
            let id = state.nextWatcher
            state.nextWatcher += 1
            if request.includeSnapshot { for event in state.tasks.values { continuation.yield(event) } }
            state.watchers[id] = continuation
            return id
        }
        defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
        for await event in events { try await response.write(event) }
    }

    func watchAgents(request: Keel_V1_WatchAgentsRequest, response: RPCWriter<Keel_V1_AgentEvent>, context: ServerContext) async throws {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func reportTaskHealth(request: Keel_V1_ReportTaskHealthRequest, context: ServerContext) async throws -> Keel_V1_ReportTaskHealthResponse {
        state.withLock { $0.taskReports.append(request) }
        return Keel_V1_ReportTaskHealthResponse()
    }

    func reportAgentReachability(
        request: Keel_V1_ReportAgentReachabilityRequest,
        context: ServerContext
    ) async throws -> Keel_V1_ReportAgentReachabilityResponse {
        state.withLock { $0.agentReports.append(request) }
        return Keel_V1_ReportAgentReachabilityResponse()
    }

    // The health checker does not use the role calls.

    func getRoles(request: Keel_V1_GetRolesRequest, context: ServerContext) async throws -> Keel_V1_GetRolesResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func updateWeights(request: Keel_V1_UpdateWeightsRequest, context: ServerContext) async throws -> Keel_V1_UpdateWeightsResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func getQuota(request: Keel_V1_GetQuotaRequest, context: ServerContext) async throws -> Keel_V1_GetQuotaResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func updateQuota(request: Keel_V1_UpdateQuotaRequest, context: ServerContext) async throws -> Keel_V1_UpdateQuotaResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func reserveResources(
        request: Keel_V1_ReserveResourcesRequest,
        context: ServerContext
    ) async throws -> Keel_V1_ReserveResourcesResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func unreserveResources(
        request: Keel_V1_UnreserveResourcesRequest,
        context: ServerContext
    ) async throws -> Keel_V1_UnreserveResourcesResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func explainOffers(request: Keel_V1_ExplainOffersRequest, context: ServerContext) async throws -> Keel_V1_ExplainOffersResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func drainAgent(request: Keel_V1_DrainAgentRequest, context: ServerContext) async throws -> Keel_V1_DrainAgentResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func reactivateAgent(
        request: Keel_V1_ReactivateAgentRequest,
        context: ServerContext
    ) async throws -> Keel_V1_ReactivateAgentResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }
}
