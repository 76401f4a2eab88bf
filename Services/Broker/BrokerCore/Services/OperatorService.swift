import Foundation
package import GRPCCore
package import KeelAPI
import Logging
import SwiftProtobuf
import KeelCore
import KeelAllocator
import KeelRPC
import ServiceLifecycle

/// The `keel.v1.Operator` gRPC service: cluster state for people and tools, and the health
/// checker's reports.
package struct OperatorService: Keel_V1_Operator.SimpleServiceProtocol {
    let broker: Broker

    /// Creates the service over `broker`.
    package init(broker: Broker) {
        self.broker = broker
    }

    package func getState(request: Keel_V1_GetStateRequest, context: ServerContext) async throws -> Keel_V1_GetStateResponse {
        broker.read { state in
            .with {
                $0.brokerInfo.version = "0.1.0"
                $0.agents = state.agentViews()
                $0.frameworks = state.frameworks.values.sorted { $0.id < $1.id }.map { state.frameworkProto($0) }
                $0.tasks = state.sortedTasks()
            }
        }
    }

    package func getAgents(request: Keel_V1_GetAgentsRequest, context: ServerContext) async throws -> Keel_V1_GetAgentsResponse {
        broker.read { state in
            .with { $0.agents = state.agentViews() }
        }
    }

    package func getTasks(request: Keel_V1_GetTasksRequest, context: ServerContext) async throws -> Keel_V1_GetTasksResponse {
        let wanted = Set(request.taskIds.map(\.value))
        return broker.read { state in
            .with {
                $0.tasks = state.sortedTasks().filter { task in
                    (!request.hasFrameworkID || request.frameworkID.value.isEmpty || task.frameworkID == request.frameworkID)
                        && (!request.hasAgentID || request.agentID.value.isEmpty || task.agentID == request.agentID)
                        && (wanted.isEmpty || wanted.contains(task.taskID.value))
                }
            }
        }
    }

    package func getFrameworks(
        request: Keel_V1_GetFrameworksRequest,
        context: ServerContext
    ) async throws -> Keel_V1_GetFrameworksResponse {
        broker.read { state in
            .with { $0.frameworks = state.frameworks.values.sorted { $0.id < $1.id }.map { state.frameworkProto($0) } }
        }
    }

    package func watchTasks(
        request: Keel_V1_WatchTasksRequest,
        response: RPCWriter<Keel_V1_TaskEvent>,
        context: ServerContext
    ) async throws {
        let (events, continuation) = AsyncStream.makeStream(of: Keel_V1_TaskEvent.self, bufferingPolicy: .bufferingNewest(10_000))
        let watcher = TaskWatcher(events: continuation, healthCheckedOnly: request.healthCheckedOnly)
        let id = broker.mutate { state in
            let id = state.makeConnectionID()
            if request.includeSnapshot {
                for task in state.sortedTasks() where watcher.wants(task) { continuation.yield(state.taskEvent(task)) }
            }
            state.taskWatchers[id] = watcher
            return id
        }
        defer { _ = broker.mutate { $0.taskWatchers.removeValue(forKey: id) } }
        try await cancelWhenGracefulShutdown {
            for await event in events {
                try await response.write(event)
            }
        }
    }

    package func watchAgents(
        request: Keel_V1_WatchAgentsRequest,
        response: RPCWriter<Keel_V1_AgentEvent>,
        context: ServerContext
    ) async throws {
        // Agents change rarely; a poll of the table every second keeps this simple.
        var last: [String: Keel_V1_Agent] = [:]
        var first = true
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let agents = broker.read { state in state.agentViews() }
            for agent in agents {
                let id = agent.agentInfo.id.value
                var comparable = agent
                comparable.lastSeenAt = .init()
                var previous = last[id]
                previous?.lastSeenAt = .init()
                if previous != comparable {
                    if !first || request.includeSnapshot {
                        try await response.write(.with { $0.agent = agent })
                    }
                }
                last[id] = agent
            }
            first = false
            try await Task.sleep(for: .seconds(1))
        }
    }

    package func reportTaskHealth(
        request: Keel_V1_ReportTaskHealthRequest,
        context: ServerContext
    ) async throws -> Keel_V1_ReportTaskHealthResponse {
        try await mappingErrors {
            guard !request.taskID.value.isEmpty, !request.frameworkID.value.isEmpty else {
                throw KeelError.invalidArgument("task_id and framework_id are required")
            }
            try broker.mutate { try $0.reportHealth(request, now: Date()) }
            return Keel_V1_ReportTaskHealthResponse()
        }
    }

    package func reportAgentReachability(
        request: Keel_V1_ReportAgentReachabilityRequest,
        context: ServerContext
    ) async throws -> Keel_V1_ReportAgentReachabilityResponse {
        try await mappingErrors {
            guard !request.agentID.value.isEmpty else {
                throw KeelError.invalidArgument("agent_id is empty; say which agent the report is about")
            }
            try broker.mutate { state in
                try state.setReachability(AgentID(request.agentID.value), reachable: request.reachable, message: request.message, now: Date())
            }
            broker.logger.notice("agent reachability reported", metadata: [
                "keel.agent_id": "\(request.agentID.value)", "keel.reachable": "\(request.reachable)",
            ])
            return Keel_V1_ReportAgentReachabilityResponse()
        }
    }
}

extension BrokerState {
    /// Every task, by framework then task id.
    func sortedTasks() -> [Keel_V1_Task] {
        tasks.sorted { ($0.key.frameworkID, $0.key.taskID) < ($1.key.frameworkID, $1.key.taskID) }.map(\.value)
    }

    /// The operator API's view of every agent, by id; dynamic reservations are marked DYNAMIC.
    ///
    /// Allocated and offered resources come from the allocator's books (which count offers as
    /// allocated) and the outstanding offers, so the view cannot drift from what is offered.
    func agentViews() -> [Keel_V1_Agent] {
        var offered: [AgentID: Resources] = [:]
        for offer in offers.values { offered[offer.agentID, default: []] += offer.resources }
        return agents.values.sorted { $0.id < $1.id }.map { agent in
            let offers = offered[agent.id] ?? []
            let held = (try? allocator.usage(of: agent.id).allocated) ?? []
            let dynamic = policy.reservations[agent.id]
            return .with {
                $0.agentInfo = agent.info
                $0.state = agent.state
                $0.totalResources = agent.total.proto(markingDynamic: dynamic)
                $0.allocatedResources = (held - offers).proto(markingDynamic: dynamic)
                $0.offeredResources = offers.proto(markingDynamic: dynamic)
                $0.registeredAt = .init(date: agent.registeredAt)
                $0.lastSeenAt = .init(date: agent.lastSeenAt)
            }
        }
    }

    /// The operator API's view of a framework.
    func frameworkProto(_ entry: FrameworkEntry) -> Keel_V1_Framework {
        var allocated = Resources()
        for task in tasks.values where task.frameworkID.value == entry.id.value && !task.state.isTerminal {
            allocated += (try? Resources(proto: task.resources)) ?? []
        }
        let offered = offers.values.filter { $0.frameworkID == entry.id }.reduce(Resources()) { $0 + $1.resources }
        return .with {
            $0.frameworkInfo = entry.info
            $0.connected = entry.connected
            $0.active = entry.connected && !entry.suppressedAll
            $0.completed = entry.completed
            $0.allocatedResources = allocated.proto
            $0.offeredResources = offered.proto
            if let subscribedAt = entry.subscribedAt { $0.subscribedAt = .init(date: subscribedAt) }
        }
    }
}
