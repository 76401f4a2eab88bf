import Foundation
package import GRPCCore
package import KeelAPI
import KeelCore
import KeelRPC
import Logging
import SwiftProtobuf

/// Roles, weights, quota, reservations, agent maintenance and offer explanations on the
/// operator API. Changes answer only once they are in the store.
extension OperatorService {
    package func getRoles(request: Keel_V1_GetRolesRequest, context: ServerContext) async throws -> Keel_V1_GetRolesResponse {
        broker.read { state in .with { $0.roles = state.roleViews() } }
    }

    package func updateWeights(
        request: Keel_V1_UpdateWeightsRequest,
        context: ServerContext
    ) async throws -> Keel_V1_UpdateWeightsResponse {
        try await mappingErrors {
            try await broker.mutateDurably { try $0.updateWeights(request.weights) }
            broker.logger.notice("role weights updated", metadata: [
                "keel.weights": "\(request.weights.map { "\($0.role)=\($0.weight)" }.joined(separator: ","))"
            ])
            broker.requestAllocation()
            return Keel_V1_UpdateWeightsResponse()
        }
    }

    package func getQuota(request: Keel_V1_GetQuotaRequest, context: ServerContext) async throws -> Keel_V1_GetQuotaResponse {
        try await mappingErrors {
            let configs = try broker.read { try $0.quota(roles: request.roles) }
            return .with { $0.configs = configs }
        }
    }

    package func updateQuota(
        request: Keel_V1_UpdateQuotaRequest,
        context: ServerContext
    ) async throws -> Keel_V1_UpdateQuotaResponse {
        try await mappingErrors {
            try await broker.mutateDurably { try $0.updateQuota(request.configs) }
            broker.logger.notice("role quota updated", metadata: [
                "keel.roles": "\(request.configs.map(\.role).joined(separator: ","))"
            ])
            broker.requestAllocation()
            return Keel_V1_UpdateQuotaResponse()
        }
    }

    package func reserveResources(
        request: Keel_V1_ReserveResourcesRequest,
        context: ServerContext
    ) async throws -> Keel_V1_ReserveResourcesResponse {
        let total = try await changeReservations(on: request.agentID, done: "resources reserved") { state, agent in
            try state.reserve(agent: agent, resources: request.resources)
        }
        return .with { $0.totalResources = total }
    }

    package func unreserveResources(
        request: Keel_V1_UnreserveResourcesRequest,
        context: ServerContext
    ) async throws -> Keel_V1_UnreserveResourcesResponse {
        let total = try await changeReservations(on: request.agentID, done: "resources unreserved") { state, agent in
            try state.unreserve(agent: agent, resources: request.resources)
        }
        return .with { $0.totalResources = total }
    }

    /// Applies a reservation change durably, logs it, asks for an allocation cycle and returns
    /// the agent's new total in wire form (dynamic reservations marked).
    private func changeReservations(
        on agent: Keel_V1_AgentID, done: String, _ change: (inout BrokerState, AgentID) throws -> Resources
    ) async throws -> [Keel_V1_Resource] {
        try await mappingErrors {
            let agentID = AgentID(agent.value)
            let total = try await broker.mutateDurably { state in
                try change(&state, agentID).proto(markingDynamic: state.policy.reservations[agentID])
            }
            broker.logger.notice("\(done)", metadata: ["keel.agent_id": "\(agentID)"])
            broker.requestAllocation()
            return total
        }
    }

    package func drainAgent(request: Keel_V1_DrainAgentRequest, context: ServerContext) async throws -> Keel_V1_DrainAgentResponse {
        try await mappingErrors {
            let agentID = AgentID(request.agentID.value)
            try await broker.mutateDurably { try $0.drain(agentID, killTasks: request.killTasks) }
            broker.logger.notice("agent draining", metadata: [
                "keel.agent_id": "\(agentID)", "keel.kill_tasks": "\(request.killTasks)",
            ])
            return Keel_V1_DrainAgentResponse()
        }
    }

    package func reactivateAgent(
        request: Keel_V1_ReactivateAgentRequest,
        context: ServerContext
    ) async throws -> Keel_V1_ReactivateAgentResponse {
        try await mappingErrors {
            let agentID = AgentID(request.agentID.value)
            try await broker.mutateDurably { try $0.reactivate(agentID) }
            broker.logger.notice("agent reactivated", metadata: ["keel.agent_id": "\(agentID)"])
            broker.requestAllocation()
            return Keel_V1_ReactivateAgentResponse()
        }
    }

    package func explainOffers(
        request: Keel_V1_ExplainOffersRequest,
        context: ServerContext
    ) async throws -> Keel_V1_ExplainOffersResponse {
        try await mappingErrors {
            let explanations = try broker.read { try $0.explainOffers(request, now: Date()) }
            return .with { $0.explanations = explanations }
        }
    }
}
