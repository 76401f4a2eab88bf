extension Allocator {
    /// Runs one allocation cycle at `now` and returns the offers, at most one per (framework,
    /// agent, role). Offered resources are counted as allocated until recovered.
    ///
    /// Stage 1 gives roles below their quota guarantee resources up to it; stage 2 walks every
    /// active agent and offers what is left in weighted-DRF order (see ``Allocator``), keeping
    /// unreserved headroom for unmet guarantees and never exceeding a limit. Agents are visited
    /// in slot order starting at a point that rotates every cycle.
    package mutating func allocate(now: Instant) -> [Offer] {
        resortIfNeeded()
        var cycle = CycleState(now: now)
        prepare(&cycle)
        let agentOrder = rotatedAgentOrder()
        cycles += 1
        if cycle.enforcesHeadroom {
            let quotaRoles = roles.indices.filter { cycle.guardian[$0] == $0 }.sorted {
                (roleKey($0, in: roles[$0].parent), $0) < (roleKey($1, in: roles[$1].parent), $1)
            }
            for agent in agentOrder where beginAgent(agent, &cycle) {
                for role in quotaRoles where !roles[role].unmet.isZero && roles[role].eligible > 0 {
                    if walk(node: role, agent: agent, stage: .guarantee(role), &cycle) { break }
                }
                finishAgent(&cycle)
            }
        }
        for agent in agentOrder where beginAgent(agent, &cycle) {
            if cycle.filtersTrusted && cycle.eligible.isSubset(of: agents[agent]!.filteredBy) { continue }
            _ = walk(node: 0, agent: agent, stage: .fairShare, &cycle)
            finishAgent(&cycle)
        }
        return cycle.offers
    }

    /// Agent slots in this cycle's visiting order.
    private func rotatedAgentOrder() -> [Int] {
        let live = agents.indices.filter { agents[$0] != nil }
        guard !live.isEmpty else { return [] }
        let start = cycles % live.count
        return Array(live[start...] + live[..<start])
    }

    /// Computes eligibility, role counts and quota state for the cycle.
    private mutating func prepare(_ cycle: inout CycleState) {
        for role in roles.indices {
            roles[role].eligible = 0
            roles[role].unmet = .zero
        }
        for (slot, framework) in frameworks.enumerated() {
            guard let framework, framework.active else { continue }
            for role in framework.roles where !framework.suppressed.contains(role) {
                cycle.eligible.insert(slot)
                var node = role
                while node >= 0 {
                    roles[node].eligible += 1
                    node = roles[node].parent
                }
            }
        }
        cycle.hasLimits = roles.contains { $0.hasLimit }
        cycle.guardian = Array(repeating: -1, count: roles.count)
        for role in roles.indices.dropFirst() {  // parents come before children
            let parent = roles[role].parent
            let inherited = parent > 0 ? cycle.guardian[parent] : -1
            cycle.guardian[role] = inherited >= 0 ? inherited : (roles[role].hasGuarantee ? role : -1)
        }
        for role in roles.indices where cycle.guardian[role] == role {
            roles[role].unmet = roles[role].guarantee - roles[role].subtreeAllocated
            cycle.requiredHeadroom += roles[role].unmet
        }
        cycle.enforcesHeadroom = !cycle.requiredHeadroom.isZero
        if cycle.enforcesHeadroom {
            for case let agent? in agents where agent.active {
                cycle.availableUnreserved += ScalarVector(agent.free, unreservedOnly: true)
            }
        }
    }

    /// Prepares `agent` for a walk; false if it has nothing to offer.
    private mutating func beginAgent(_ agent: Int, _ cycle: inout CycleState) -> Bool {
        guard agents[agent]?.active == true, !agents[agent]!.free.isEmpty else { return false }
        guard isAllocatable(ScalarVector(agents[agent]!.free)) else { return false }
        agents[agent]!.syncVersion()
        if cycle.now >= agents[agent]!.earliestFilterEnd { expireFilters(agent: agent, now: cycle.now) }
        if agents[agent]!.filtersValidAt != agents[agent]!.version, !agents[agent]!.filteredBy.isEmpty {
            validateFilters(agent: agent)
        }
        cycle.filtersTrusted = agents[agent]!.filtersValidAt == agents[agent]!.version
        return true
    }

    /// Applies the share changes made on the agent just walked.
    private mutating func finishAgent(_ cycle: inout CycleState) {
        for (framework, role) in cycle.pendingRefresh {
            refreshShares(framework: framework, role: role)
        }
        cycle.pendingRefresh.removeAll(keepingCapacity: true)
    }

    /// Visits `node`'s subtree in DRF order, offering on `agent`; true once the agent is used up.
    private mutating func walk(node: Int, agent: Int, stage: Stage, _ cycle: inout CycleState) -> Bool {
        let order = roles[node].order
        for entry in order.entries {
            let member = entry.member
            if member == node {
                let members = roles[node].frameworks
                for framework in members.entries
                where tryOffer(framework: framework.member, role: node, agent: agent, stage: stage, &cycle) {
                    return true
                }
            } else if roles[member].eligible > 0, walk(node: member, agent: agent, stage: stage, &cycle) {
                return true
            }
        }
        return false
    }

    /// Offers `framework` what it may get on `agent` for `role`; true once the agent is used up.
    private mutating func tryOffer(
        framework: Int, role: Int, agent: Int, stage: Stage, _ cycle: inout CycleState
    ) -> Bool {
        let filtered = agents[agent]!.filteredBy.contains(framework)
        if filtered && cycle.filtersTrusted { return false }
        guard frameworks[framework]!.wantsOffers(for: role) else { return false }
        let base = offerBase(agent: agent, role: role)
        guard !base.isEmpty else { return false }
        if filtered && filterApplies(framework: framework, agent: agent, offerable: base, now: cycle.now) {
            return false
        }
        guard let offer = capped(base, role: role, stage: stage, cycle) else { return false }
        commit(offer, framework: framework, role: role, agent: agent, stage: stage, &cycle)
        let left = agents[agent]!.free
        return left.isEmpty || !isAllocatable(ScalarVector(left))
    }
}
