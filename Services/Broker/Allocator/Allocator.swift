import KeelCore

/// Tunables of the ``Allocator``.
package struct AllocatorConfiguration: Hashable, Sendable {
    /// An offer must have at least this many CPUs or at least ``minimumMem`` MiB of memory
    /// (Mesos' minimum allocatable resources), so frameworks are not sent scraps.
    package var minimumCPUs: Double
    /// See ``minimumCPUs``.
    package var minimumMem: Double

    /// Mesos' defaults: 0.01 CPUs or 32 MiB.
    package init(minimumCPUs: Double = 0.01, minimumMem: Double = 32) {
        self.minimumCPUs = minimumCPUs
        self.minimumMem = minimumMem
    }
}

/// The resource broker's allocator: a pure, deterministic hierarchical weighted-DRF allocator
/// with quota (guarantees and limits), reservations, decline filters and suppression, modelled
/// on Mesos' `HierarchicalDRFAllocator`.
///
/// It does no I/O and never reads a clock: time is passed in. The broker keeps one instance in a
/// `Mutex`, feeds it events (agents, frameworks, declines) and calls ``allocate(now:)`` each
/// allocation cycle; the returned offers are already counted as allocated, and come back through
/// ``recoverResources(framework:agent:resources:filterUntil:)`` when declined or unused.
///
/// Policy, per cycle (see `Allocator+Cycle.swift`):
/// 1. quota stage: roles below their guarantee get resources first, up to the guarantee;
/// 2. fair-share stage: for each active agent, walk the role tree in weighted-DRF order (at
///    each level children sorted by dominant share / weight), then the role's frameworks by
///    their dominant share, and offer what the framework may use; unreserved resources are held
///    back as headroom for unmet guarantees, and no role's limit is ever exceeded.
///
/// Resources reserved for role `R` are offered only to frameworks in `R` or a role nested in it
/// (`R/x`), as ``Resources/allocatable(to:)`` and Mesos define it.
package struct Allocator: Sendable {
    /// The tunables.
    package var configuration: AllocatorConfiguration

    var agents: [AgentState?] = []
    var agentSlots: [AgentID: Int] = [:]
    var freeAgentSlots: [Int] = []
    var frameworks: [FrameworkState?] = []
    var frameworkSlots: [FrameworkID: Int] = [:]
    var freeFrameworkSlots: [Int] = []
    var roles: [RoleNode] = [RoleNode(name: "", parent: -1)]
    var roleSlots: [String: Int] = ["": 0]
    /// Sum of all agents' totals: the denominator of every share.
    var clusterTotal = ScalarVector.zero
    /// Set when ``clusterTotal`` or a weight changed: every sort key must be recomputed.
    var sharesDirty = false
    var nextSequence = 0
    /// Number of ``allocate(now:)`` calls; rotates the agent order.
    var cycles = 0

    /// An allocator with no agents, frameworks or roles.
    package init(configuration: AllocatorConfiguration = AllocatorConfiguration()) {
        self.configuration = configuration
    }

    // MARK: Role tree

    /// The slot of `role`, creating it and its ancestors on first use (the name must be valid).
    mutating func roleSlot(_ role: String) -> Int {
        if let slot = roleSlots[role] { return slot }
        let parentName = role.lastIndex(of: "/").map { String(role[..<$0]) } ?? ""
        let parent = roleSlot(parentName)
        let slot = roles.count
        roles.append(RoleNode(name: role, parent: parent))
        roleSlots[role] = slot
        roles[parent].order.upsert(slot, key: 0, tie: slot)
        roles[slot].order.upsert(slot, key: 0, tie: slot)
        return slot
    }

    /// `role` and its ancestors up to (excluding) the root, innermost first.
    func lineage(_ role: Int) -> [Int] {
        var result: [Int] = []
        var node = role
        while node > 0 {
            result.append(node)
            node = roles[node].parent
        }
        return result
    }

    // MARK: Shares

    /// The sort key of framework `framework` within `role`.
    func frameworkKey(_ framework: Int, role: Int) -> Double {
        frameworks[framework]?.allocatedByRole[role]?.dominantShare(of: clusterTotal) ?? 0
    }

    /// The sort key of `member` in `parent`'s order: the node itself stands for its own frameworks.
    func roleKey(_ member: Int, in parent: Int) -> Double {
        let node = roles[member]
        let allocation = member == parent ? node.ownAllocated : node.subtreeAllocated
        return allocation.dominantShare(of: clusterTotal) / node.weight
    }

    /// Re-sorts `framework` in `role` and `role` up the tree after their allocation changed.
    mutating func refreshShares(framework: Int, role: Int) {
        if sharesDirty { return }  // everything is re-sorted before the next use
        if let sequence = frameworks[framework]?.sequence, roles[role].frameworks.contains(framework) {
            roles[role].frameworks.upsert(framework, key: frameworkKey(framework, role: role), tie: sequence)
        }
        roles[role].order.upsert(role, key: roleKey(role, in: role), tie: role)
        var child = role
        var parent = roles[role].parent
        while parent >= 0 {
            roles[parent].order.upsert(child, key: roleKey(child, in: parent), tie: child)
            child = parent
            parent = roles[parent].parent
        }
    }

    /// Recomputes every sort key if the cluster total or a weight changed.
    mutating func resortIfNeeded() {
        guard sharesDirty else { return }
        sharesDirty = false
        for slot in roles.indices {
            let frameworkKeys = roles[slot].frameworks.entries.map { frameworkKey($0.member, role: slot) }
            let roleKeys = roles[slot].order.entries.map { roleKey($0.member, in: slot) }
            roles[slot].frameworks.rekey(frameworkKeys)
            roles[slot].order.rekey(roleKeys)
        }
    }

    /// Adds or removes `vector` to the bookkeeping of `framework` in `role`.
    mutating func account(_ vector: ScalarVector, framework: Int, role: Int, adding: Bool) {
        if adding {
            frameworks[framework]!.allocatedByRole[role, default: .zero] += vector
            roles[role].ownAllocated += vector
        } else {
            frameworks[framework]!.allocatedByRole[role, default: .zero] -= vector
            roles[role].ownAllocated -= vector
        }
        var node = role
        while node >= 0 {
            if adding { roles[node].subtreeAllocated += vector } else { roles[node].subtreeAllocated -= vector }
            node = roles[node].parent
        }
    }

    // MARK: Look-ups

    /// The slot of a known agent, or a ``KeelError/Code/notFound`` error.
    func agentSlot(_ id: AgentID) throws -> Int {
        guard let slot = agentSlots[id] else {
            throw KeelError.notFound("agent '\(id)' is not known to the allocator; add it with addAgent first")
        }
        return slot
    }

    /// The slot of a known framework, or a ``KeelError/Code/notFound`` error.
    func frameworkSlot(_ id: FrameworkID) throws -> Int {
        guard let slot = frameworkSlots[id] else {
            throw KeelError.notFound(
                "framework '\(id)' is not known to the allocator; add it with addFramework first")
        }
        return slot
    }

    /// Whether `resources` are worth offering (at least the minimum CPUs or memory).
    func isAllocatable(_ vector: ScalarVector) -> Bool {
        vector.cpus >= ScalarVector.millis(configuration.minimumCPUs)
            || vector.mem >= ScalarVector.millis(configuration.minimumMem)
    }
}
