package import KeelCore

/// What an agent holds, as the allocator sees it: `allocated + free == total`, where
/// `allocated` includes resources currently offered.
package struct AgentUsage: Hashable, Sendable {
    /// Everything the agent has.
    package var total: Resources
    /// Allocated to frameworks or offered to them.
    package var allocated: Resources
    /// Neither allocated nor offered.
    package var free: Resources
    /// Whether the agent is offered (not draining).
    package var active: Bool
}

extension Allocator {
    /// Adds an agent with `total` resources, all free.
    ///
    /// Throws ``KeelError/Code/alreadyExists`` if the agent is known.
    package mutating func addAgent(
        id: AgentID, total: Resources, attributes: [String: String] = [:], now: Instant
    ) throws {
        guard agentSlots[id] == nil else {
            throw KeelError.alreadyExists("agent '\(id)' is already known to the allocator; update it instead")
        }
        let state = AgentState(id: id, total: total, attributes: attributes, addedAt: now)
        let slot: Int
        if let reused = freeAgentSlots.popLast() {
            slot = reused
            agents[slot] = state
        } else {
            slot = agents.count
            agents.append(state)
        }
        agentSlots[id] = slot
        clusterTotal += state.totalVector
        sharesDirty = true
    }

    /// Replaces an agent's total resources (e.g. after a reconfiguration); what is allocated
    /// stays allocated and the rest becomes free.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown agent, and
    /// ``KeelError/Code/failedPrecondition`` (changing nothing) if `total` does not contain what
    /// is allocated there.
    package mutating func updateAgent(id: AgentID, total: Resources) throws {
        let slot = try agentSlot(id)
        let allocated = agents[slot]!.allocated
        guard total.contains(allocated) else {
            throw KeelError.failedPrecondition(
                "agent '\(id)' cannot shrink to '\(total)' because '\(allocated)' is allocated there; recover those resources first"
            )
        }
        let oldVector = agents[slot]!.totalVector
        let newVector = ScalarVector(total)
        agents[slot]!.total = total
        agents[slot]!.free = total - allocated
        agents[slot]!.totalVector = newVector
        clusterTotal = clusterTotal - oldVector + newVector
        sharesDirty = true
    }

    /// Removes an agent: its allocations and offers vanish and filters on it are dropped.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown agent.
    package mutating func removeAgent(id: AgentID) throws {
        let slot = try agentSlot(id)
        let agent = agents[slot]!
        for (framework, byRole) in agent.allocations {
            for (role, resources) in byRole {
                account(ScalarVector(resources), framework: framework, role: role, adding: false)
            }
        }
        for framework in agent.filteredBy.members {
            frameworks[framework]?.filters[slot] = nil
        }
        clusterTotal -= agent.totalVector
        sharesDirty = true
        agents[slot] = nil
        agentSlots[id] = nil
        freeAgentSlots.append(slot)
    }

    /// Stops offering the agent's resources (draining or maintenance); allocations stay.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown agent.
    package mutating func deactivateAgent(id: AgentID) throws {
        agents[try agentSlot(id)]!.active = false
    }

    /// Offers the agent's resources again after ``deactivateAgent(id:)``.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown agent.
    package mutating func activateAgent(id: AgentID) throws {
        agents[try agentSlot(id)]!.active = true
    }

    /// The agent's total, allocated (including offered) and free resources.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown agent.
    package func usage(of id: AgentID) throws -> AgentUsage {
        let agent = agents[try agentSlot(id)]!
        return AgentUsage(total: agent.total, allocated: agent.allocated, free: agent.free, active: agent.active)
    }

    /// What `framework` holds (allocated or offered) on `agent`, over all its roles.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown agent or framework.
    package func allocation(of framework: FrameworkID, on agent: AgentID) throws -> Resources {
        let frameworkSlot = try frameworkSlot(framework)
        let byRole = agents[try agentSlot(agent)]!.allocations[frameworkSlot] ?? [:]
        return byRole.values.reduce(Resources(), +)
    }

    /// The IDs of all known agents, sorted.
    package var agentIDs: [AgentID] { agentSlots.keys.sorted() }

    /// Whether the allocator knows the agent (without sorting ``agentIDs``).
    package func knows(agent id: AgentID) -> Bool { agentSlots[id] != nil }

    /// The sum of all agents' scalar resources (the denominator of DRF shares).
    package var clusterTotalVector: ScalarVector { clusterTotal }
}
