import Foundation
import KeelAllocator
import KeelAPI
import KeelCore
import KeelRPC
import SwiftProtobuf

/// Dynamic reservations, as in Mesos: a RESERVE turns unreserved resources of an agent into
/// resources reserved for a role (offered only to frameworks of that role and its sub-roles);
/// an UNRESERVE turns them back. They are made by operators (the operator API) or by frameworks
/// (RESERVE/UNRESERVE operations in Accept, on resources they were offered), persisted by the
/// broker, and re-applied when the agent re-attaches. Static reservations come from the
/// launcher's configuration and cannot be unreserved.
extension BrokerState {
    /// Reserves `proto` (each resource names its role in `reservations`) on an agent for an
    /// operator; returns the agent's new total.
    ///
    /// Outstanding offers of the agent are rescinded when they hold what is needed. Throws
    /// ``KeelError/Code/notFound`` for an unknown agent, ``KeelError/Code/invalidArgument`` for
    /// resources without a valid role, and ``KeelError/Code/failedPrecondition`` when that much
    /// is not free and unreserved on the agent; nothing changes on error.
    mutating func reserve(agent id: AgentID, resources proto: [Keel_V1_Resource]) throws -> Resources {
        let agent = try knownAgent(id)
        let resources = try Self.reservation(proto, operation: "reserve")
        let source = resources.flattened()
        let free = try allocator.usage(of: id).free
        if !free.unreserved.contains(source) {
            let offered = offers.values.filter { $0.agentID == id }
            let reclaimable = offered.reduce(free) { $0 + $1.resources }
            guard reclaimable.unreserved.contains(source) else {
                throw KeelError.failedPrecondition(
                    "agent \(id) has only '\(reclaimable.unreserved)' free and unreserved, not '\(source)'; reserve less or wait for tasks to end"
                )
            }
            for offer in offered { rescindOffer(offer.id) }
        }
        policy.reservations[id, default: []] += resources
        setTotal(of: id, to: agent.total - source + resources)
        recordReservations(of: id)
        return agents[id]!.total
    }

    /// Returns dynamically reserved `proto` on an agent to the unreserved pool for an operator;
    /// returns the agent's new total.
    ///
    /// Throws ``KeelError/Code/failedPrecondition`` (changing nothing) when the resources are not
    /// dynamically reserved there (static reservations change only with the launcher's
    /// configuration) or are in use by tasks.
    mutating func unreserve(agent id: AgentID, resources proto: [Keel_V1_Resource]) throws -> Resources {
        let agent = try knownAgent(id)
        let resources = try Self.reservation(proto, operation: "unreserve")
        let dynamic = policy.reservations[id] ?? []
        guard dynamic.contains(resources) else {
            throw KeelError.failedPrecondition(
                "'\(resources)' is not dynamically reserved on agent \(id) (its dynamic reservations: '\(dynamic)'); static reservations change only with the launcher's configuration"
            )
        }
        let free = try allocator.usage(of: id).free
        if !free.contains(resources) {
            let offered = offers.values.filter { $0.agentID == id }
            guard offered.reduce(free, { $0 + $1.resources }).contains(resources) else {
                throw KeelError.failedPrecondition(
                    "'\(resources)' on agent \(id) is in use by tasks; unreserve it once they end"
                )
            }
            for offer in offered { rescindOffer(offer.id) }
        }
        policy.reservations[id] = dynamic - resources
        setTotal(of: id, to: agent.total - resources + resources.flattened())
        recordReservations(of: id)
        return agents[id]!.total
    }

    // MARK: Operations in Accept

    /// Checks a RESERVE operation of an Accept against what is left of the offers (`pool`) and
    /// applies it to `pool`; the broker's books change later, in ``applyReservation(_:framework:agent:)``.
    ///
    /// The role must be one the accepted offers were allocated to, and the unreserved amounts
    /// must be in the pool.
    func checkReserve(
        _ proto: [Keel_V1_Resource], pool: inout Resources, offerRoles: Set<String>
    ) throws -> ReservationChange {
        let resources = try Self.reservation(proto, operation: "RESERVE")
        for role in resources.roles where !offerRoles.contains(AllocatorRoles.allocatorRole(role)) {
            throw KeelError.invalidArgument(
                "RESERVE for role '\(role)', but the accepted offers were made to \(offerRoles.map(AllocatorRoles.keelRole).sorted()); reserve for the role of the offer"
            )
        }
        let source = resources.flattened()
        guard pool.unreserved.contains(source) else {
            throw KeelError.invalidArgument(
                "RESERVE of '\(resources)' needs '\(source)' unreserved, but the offers only have '\(pool.unreserved)' unreserved left"
            )
        }
        pool = pool - source + resources
        return ReservationChange(reserving: true, resources: resources)
    }

    /// Checks an UNRESERVE operation of an Accept against the pool and the agent's dynamic
    /// reservations (as changed by earlier operations of the same Accept, in `dynamic`).
    func checkUnreserve(
        _ proto: [Keel_V1_Resource], pool: inout Resources, dynamic: inout Resources, agent: AgentID
    ) throws -> ReservationChange {
        let resources = try Self.reservation(proto, operation: "UNRESERVE")
        guard pool.contains(resources) else {
            throw KeelError.invalidArgument(
                "UNRESERVE of '\(resources)', but the offers only have '\(pool)' left; unreserve resources you were offered"
            )
        }
        guard dynamic.contains(resources) else {
            throw KeelError.invalidArgument(
                "'\(resources)' is not dynamically reserved on agent \(agent); static reservations cannot be unreserved"
            )
        }
        dynamic -= resources
        pool = pool - resources + resources.flattened()
        return ReservationChange(reserving: false, resources: resources)
    }

    /// Applies a checked RESERVE or UNRESERVE of `framework`'s Accept: the agent's total and the
    /// framework's allocation there change from the old form of the resources to the new.
    mutating func applyReservation(_ change: ReservationChange, framework: FrameworkID, agent id: AgentID, role: String) {
        guard let agent = agents[id] else { return }
        let before = change.reserving ? change.resources.flattened() : change.resources
        let after = change.reserving ? change.resources : change.resources.flattened()
        if change.reserving {
            policy.reservations[id, default: []] += change.resources
        } else {
            policy.reservations[id] = (policy.reservations[id] ?? []) - change.resources
        }
        let total = agent.total - before + after
        agents[id]?.total = total
        ledger { allocator in
            try allocator.recoverResources(framework: framework, agent: id, resources: before)
            try allocator.updateAgent(id: id, total: total)
            try allocator.allocate(framework: framework, agent: id, resources: after, role: role)
        }
        recordReservations(of: id)
    }

    /// Re-applies the stored dynamic reservations to an agent's reported resources; what no
    /// longer fits is kept in the store and reported in a warning.
    func effectiveTotal(of id: AgentID, reported: Resources) -> (total: Resources, unapplied: Resources) {
        ClusterPolicy.applying(policy.reservations[id] ?? [], to: reported)
    }

    // MARK: Helpers

    private mutating func setTotal(of id: AgentID, to total: Resources) {
        agents[id]?.total = total
        ledger { try $0.updateAgent(id: id, total: total) }
    }

    private mutating func recordReservations(of id: AgentID) {
        let reserved = policy.reservations[id] ?? []
        if reserved.isEmpty {
            policy.reservations[id] = nil
            pendingWrites.append(.deleteReservations(id))
        } else {
            pendingWrites.append(.putReservations(.with {
                $0.agentID = .with { $0.value = id.value }
                $0.resources = reserved.proto
            }))
        }
    }

    /// Parses the resources of a reserve or unreserve: not empty, valid, each with a role other
    /// than `*`.
    static func reservation(_ proto: [Keel_V1_Resource], operation: String) throws -> Resources {
        guard !proto.isEmpty else {
            throw KeelError.invalidArgument("\(operation) names no resources; give them with their role, e.g. cpus(eng):2")
        }
        for resource in proto {
            guard let role = resource.reservations.last?.role, !role.isEmpty, role != ResourceRole.unreserved else {
                throw KeelError.invalidArgument(
                    "\(operation): resource '\(resource.name)' has no role; give the role to reserve for, e.g. cpus(eng):2"
                )
            }
            try validateRole(role, what: operation)
        }
        let resources = try Resources(proto: proto)
        guard !resources.isEmpty else {
            throw KeelError.invalidArgument("\(operation) names only zero amounts; give positive amounts")
        }
        return resources
    }
}

/// A RESERVE or UNRESERVE of an Accept, checked and waiting to be applied.
struct ReservationChange: Sendable {
    var reserving: Bool
    var resources: Resources
}
