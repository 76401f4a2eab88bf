package import KeelCore

/// Why an agent's resources are not offered to a framework (see
/// ``Allocator/explain(framework:agent:now:)``).
package enum Reason: Hashable, Sendable, CustomStringConvertible {
    /// The framework is disconnected (deactivated).
    case frameworkInactive
    /// The agent is draining (deactivated).
    case agentDraining
    /// The framework suppressed offers for `role`.
    case suppressed(role: String)
    /// The framework declined these resources on this agent with a filter ending at `until`.
    case filtered(until: Instant)
    /// `role` (through `limitingRole`, itself or an ancestor) is at its quota limit in `dimensions`.
    case quotaLimitReached(role: String, limitingRole: String, dimensions: [Dimension])
    /// Unreserved `dimensions` are kept free for the unmet guarantees of `guaranteedRoles`.
    case heldAsHeadroom(role: String, guaranteedRoles: [String], dimensions: [Dimension])
    /// The agent has less than the minimum allocatable amount free for `role` (CPUs and memory).
    case insufficient(role: String, dimensions: [Dimension])

    /// A sentence for humans.
    package var description: String {
        switch self {
        case .frameworkInactive: "framework is inactive (disconnected)"
        case .agentDraining: "agent is draining (deactivated)"
        case .suppressed(let role): "framework suppressed offers for role '\(role)'"
        case .filtered(let until): "framework declined these resources on this agent; filtered until \(until)"
        case .quotaLimitReached(let role, let limiting, let dimensions):
            "role '\(role)' is at the quota limit of '\(limiting)' for \(Self.list(dimensions))"
        case .heldAsHeadroom(let role, let guaranteed, let dimensions):
            "unreserved \(Self.list(dimensions)) held as headroom for the guarantees of \(guaranteed), not for '\(role)'"
        case .insufficient(let role, let dimensions):
            "agent has less than the minimum allocatable \(Self.list(dimensions)) free for role '\(role)'"
        }
    }

    private static func list(_ dimensions: [Dimension]) -> String {
        dimensions.map(\.description).joined(separator: ", ")
    }
}

extension Allocator {
    /// Why `agent`'s free resources would not be offered to `framework` at `now`; empty if they
    /// would (other frameworks may still come first in DRF order). Changes nothing.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown agent or framework.
    package func explain(framework id: FrameworkID, agent agentID: AgentID, now: Instant) throws -> [Reason] {
        let framework = frameworks[try frameworkSlot(id)]!
        let agentSlot = try agentSlot(agentID)
        let agent = agents[agentSlot]!
        var reasons: [Reason] = []
        if !framework.active { reasons.append(.frameworkInactive) }
        if !agent.active { reasons.append(.agentDraining) }
        if let filter = framework.filters[agentSlot], filter.until > now, filter.resources.contains(agent.free) {
            reasons.append(.filtered(until: filter.until))
        }
        let quota = quotaState()
        for role in framework.roles {
            let name = roles[role].name
            if framework.suppressed.contains(role) {
                reasons.append(.suppressed(role: name))
                continue
            }
            let base = offerBase(agent: agentSlot, role: role)
            let vector = ScalarVector(base)
            guard isAllocatable(vector) else {
                reasons.append(.insufficient(role: name, dimensions: [.cpus, .mem]))
                continue
            }
            var node = role
            while node > 0 {
                let room = roles[node].limit - roles[node].subtreeAllocated
                let blocked = Dimension.allCases.filter { vector[$0] > 0 && room[$0] == 0 }
                if !blocked.isEmpty {
                    reasons.append(.quotaLimitReached(role: name, limitingRole: roles[node].name, dimensions: blocked))
                }
                node = roles[node].parent
            }
            guard !quota.required.isZero else { continue }
            let guardian = quota.guardian[role]
            let own = guardian >= 0 ? quota.unmet[guardian] ?? .zero : .zero
            let spare = quota.available - (quota.required - own)
            let unreserved = ScalarVector(base, unreservedOnly: true)
            let held = Dimension.allCases.filter { unreserved[$0] > spare[$0] }
            if !held.isEmpty {
                let others = quota.unmet.filter { $0.key != guardian && !$0.value.isZero }.keys.map { roles[$0].name }
                reasons.append(.heldAsHeadroom(role: name, guaranteedRoles: others.sorted(), dimensions: held))
            }
        }
        return reasons
    }

    /// Unmet guarantees, required headroom and free unreserved resources, as a cycle would see them.
    private func quotaState() -> (guardian: [Int], unmet: [Int: ScalarVector], required: ScalarVector, available: ScalarVector) {
        var guardian = Array(repeating: -1, count: roles.count)
        var unmet: [Int: ScalarVector] = [:]
        var required = ScalarVector.zero
        for role in roles.indices.dropFirst() {
            let parent = roles[role].parent
            let inherited = parent > 0 ? guardian[parent] : -1
            guardian[role] = inherited >= 0 ? inherited : (roles[role].hasGuarantee ? role : -1)
            if guardian[role] == role {
                let missing = roles[role].guarantee - roles[role].subtreeAllocated
                unmet[role] = missing
                required += missing
            }
        }
        var available = ScalarVector.zero
        if !required.isZero {
            for case let agent? in agents where agent.active {
                available += ScalarVector(agent.free, unreservedOnly: true)
            }
        }
        return (guardian, unmet, required, available)
    }
}
