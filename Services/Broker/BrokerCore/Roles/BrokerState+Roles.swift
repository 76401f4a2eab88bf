import Foundation
import KeelAllocator
import KeelAPI
import KeelCore
import KeelRPC
import SwiftProtobuf

extension BrokerState {
    // MARK: Weights

    /// Sets the DRF weights of roles, all or nothing, and records them for the store.
    ///
    /// Throws ``KeelError/Code/invalidArgument`` (changing nothing) for an empty request, a
    /// role named twice, an invalid role name, or a weight that is not a finite number > 0.
    mutating func updateWeights(_ weights: [Keel_V1_WeightInfo]) throws {
        guard !weights.isEmpty else {
            throw KeelError.invalidArgument("weights is empty; give at least one role and its weight, e.g. eng=2")
        }
        try Self.checkDistinct(weights.map(\.role), what: "weights")
        var scratch = Allocator()
        for weight in weights {
            try Self.validateRole(weight.role, what: "weight")
            try scratch.setWeight(role: AllocatorRoles.allocatorRole(weight.role), weight: weight.weight)
        }
        for weight in weights {
            let role = AllocatorRoles.allocatorRole(weight.role)
            ledger { try $0.setWeight(role: role, weight: weight.weight) }
            if weight.weight == 1 {
                policy.weights[weight.role] = nil
                pendingWrites.append(.deleteWeight(role: weight.role))
            } else {
                policy.weights[weight.role] = weight.weight
                pendingWrites.append(.putWeight(weight))
            }
        }
    }

    // MARK: Quota

    /// Sets (or, with both maps empty, removes) the quota of roles, all or nothing.
    ///
    /// Throws ``KeelError/Code/invalidArgument`` (changing nothing) for an empty request, a role
    /// named twice, an invalid role, a resource other than cpus/mem/disk/gpus, a negative or
    /// non-finite amount, a guarantee above its limit, or a limit below what is reserved for the
    /// role (and its sub-roles) on the agents.
    mutating func updateQuota(_ configs: [Keel_V1_QuotaConfig]) throws {
        guard !configs.isEmpty else {
            throw KeelError.invalidArgument("configs is empty; give at least one role's quota")
        }
        try Self.checkDistinct(configs.map(\.role), what: "configs")
        var scratch = Allocator()
        for config in configs {
            try Self.validateRole(config.role, what: "quota")
            guard config.role != ResourceRole.unreserved else {
                throw KeelError.invalidArgument("the default role '*' cannot have quota; give quota to a named role")
            }
            try scratch.setQuota(
                role: config.role, guaranteeAmounts: config.guarantees, limitAmounts: config.limits.isEmpty ? nil : config.limits
            )
            let reserved = reservedVector(roleAndSubroles: config.role)
            for (name, limit) in config.limits.sorted(by: { $0.key < $1.key }) {
                guard let dimension = Dimension(name: name) else { continue }
                let held = ScalarVector.value(reserved[dimension])
                if held > limit {
                    throw KeelError.invalidArgument(
                        "quota limit \(name):\(limit) of role '\(config.role)' is below its reservations \(name):\(held); unreserve first or raise the limit"
                    )
                }
            }
        }
        for config in configs {
            let removing = config.guarantees.isEmpty && config.limits.isEmpty
            ledger {
                if removing {
                    try $0.setQuota(role: config.role, guarantee: nil, limit: nil)
                } else {
                    try $0.setQuota(
                        role: config.role, guaranteeAmounts: config.guarantees,
                        limitAmounts: config.limits.isEmpty ? nil : config.limits
                    )
                }
            }
            if removing {
                policy.quotas[config.role] = nil
                pendingWrites.append(.deleteQuota(role: config.role))
            } else {
                policy.quotas[config.role] = config
                pendingWrites.append(.putQuota(config))
            }
        }
    }

    /// The configured quota of `roles` (every role with quota when empty).
    ///
    /// Throws ``KeelError/Code/notFound`` for a named role that has no quota.
    func quota(roles: [String]) throws -> [Keel_V1_QuotaConfig] {
        guard !roles.isEmpty else { return policy.quotas.keys.sorted().map { policy.quotas[$0]! } }
        return try roles.map { role in
            guard let config = policy.quotas[role] else {
                throw KeelError.notFound("role '\(role)' has no quota; set one with UpdateQuota (keel quota set)")
            }
            return config
        }
    }

    // MARK: Roles

    /// Every role the broker knows: subscribed by a framework, reserved for on an agent, or
    /// given a weight or quota.
    func roleViews() -> [Keel_V1_Role] {
        var names = Set(policy.weights.keys).union(policy.quotas.keys)
        var members: [String: [String]] = [:]
        for framework in frameworks.values where !framework.completed {
            for role in framework.info.roles.isEmpty ? [ResourceRole.unreserved] : framework.info.roles {
                names.insert(role)
                members[role, default: []].append(framework.id.value)
            }
        }
        var reserved: [String: Resources] = [:]
        for agent in agents.values where agent.state != .removed {
            for role in agent.total.roles {
                names.insert(role)
                reserved[role, default: []] += agent.total.reserved(role: role)
            }
        }
        return names.sorted().map { name in
            let allocated = allocator.allocatedVector(role: AllocatorRoles.allocatorRole(name))
            return .with {
                $0.name = name
                $0.weight = policy.weights[name] ?? 1
                if let quota = policy.quotas[name] { $0.quota = quota }
                for dimension in Dimension.allCases where allocated[dimension] != 0 {
                    $0.allocated[dimension.description] = ScalarVector.value(allocated[dimension])
                }
                $0.reserved = (reserved[name] ?? []).proto
                $0.frameworks = (members[name] ?? []).sorted().map { id in .with { $0.value = id } }
            }
        }
    }

    /// What is reserved for `role` and the roles nested in it, over all agents.
    func reservedVector(roleAndSubroles role: String) -> ScalarVector {
        var total = ScalarVector.zero
        for agent in agents.values where agent.state != .removed {
            let mine = agent.total.filtered { resource in
                guard let owner = resource.role else { return false }
                return owner == role || owner.hasPrefix(role + "/")
            }
            total += ScalarVector(mine)
        }
        return total
    }

    // MARK: Explain

    /// Why each agent's free resources are (not) offered to the framework, or to each framework
    /// of `role` when no framework is named.
    ///
    /// Throws ``KeelError/Code/invalidArgument`` when neither is given and
    /// ``KeelError/Code/notFound`` for an unknown framework, role or agent.
    func explainOffers(_ request: Keel_V1_ExplainOffersRequest, now: Date) throws -> [Keel_V1_OfferExplanation] {
        let subjects: [FrameworkID]
        if !request.frameworkID.value.isEmpty {
            let id = FrameworkID(request.frameworkID.value)
            guard frameworks[id] != nil, allocator.knows(framework: id) else {
                throw KeelError.notFound("framework \(id) is not known to the broker; list them with keel frameworks")
            }
            subjects = [id]
        } else if !request.role.isEmpty {
            subjects = frameworks.values.filter { entry in
                !entry.completed && (entry.info.roles.isEmpty ? [ResourceRole.unreserved] : entry.info.roles).contains(request.role)
            }.map(\.id).sorted()
            guard !subjects.isEmpty else {
                throw KeelError.notFound("no framework is subscribed to role '\(request.role)'; see keel roles")
            }
        } else {
            throw KeelError.invalidArgument("say whom to explain for: set framework_id or role")
        }
        let agentIDs: [AgentID]
        if !request.agentID.value.isEmpty {
            let id = AgentID(request.agentID.value)
            guard agents[id] != nil, allocator.knows(agent: id) else {
                throw KeelError.notFound("agent \(id) is not known to the broker; list them with keel agents")
            }
            agentIDs = [id]
        } else {
            agentIDs = allocator.agentIDs
        }
        var explanations: [Keel_V1_OfferExplanation] = []
        for framework in subjects {
            for agentID in agentIDs {
                guard let agent = agents[agentID] else { continue }
                // The allocator only knows an agent is deactivated; the broker knows why.
                let reasons = try allocator.explain(framework: framework, agent: agentID, now: Instant(date: now))
                    .map { reason in
                        reason == .agentDraining && agent.state != .draining ? "agent is \(agent.state.name)" : reason.description
                    }
                let free = try allocator.usage(of: agentID).free
                explanations.append(.with {
                    $0.frameworkID = .with { $0.value = framework.value }
                    $0.agentID = .with { $0.value = agentID.value }
                    $0.hostname = agent.info.hostname
                    $0.offerable = reasons.isEmpty
                    $0.reasons = reasons
                    $0.freeResources = free.proto(markingDynamic: policy.reservations[agentID])
                })
            }
        }
        return explanations
    }

    // MARK: Validation helpers

    static func validateRole(_ role: String, what: String) throws {
        guard !role.isEmpty else {
            throw KeelError.invalidArgument("a \(what) entry has no role; name the role, e.g. eng or eng/backend")
        }
        guard role != ResourceRole.unreserved else { return }
        do {
            try ResourceRole.validate(role)
        } catch let error as KeelError {
            throw KeelError.invalidArgument("\(what) names an invalid role: \(error.message)", cause: error)
        }
    }

    static func checkDistinct(_ roles: [String], what: String) throws {
        var seen = Set<String>()
        for role in roles where !seen.insert(role).inserted {
            throw KeelError.invalidArgument("\(what) names role '\(role)' twice; give each role once")
        }
    }
}

extension Keel_V1_Agent.State {
    /// Lower-case name for messages, e.g. "disconnected".
    var name: String {
        switch self {
        case .active: "active"
        case .disconnected: "disconnected"
        case .unreachable: "unreachable"
        case .draining: "draining"
        case .removed: "removed"
        case .unspecified, .UNRECOGNIZED: "in an unknown state"
        }
    }
}
