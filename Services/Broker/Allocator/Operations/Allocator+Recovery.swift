package import KeelCore

extension Allocator {
    /// Returns resources that `framework` declined or no longer uses on `agent` to the free pool.
    ///
    /// With `filterUntil`, the framework is not offered those resources on that agent again
    /// before that instant (a decline filter, as Mesos' `refuse_seconds`): the filter applies
    /// while what would be offered is contained in the declined resources. A new filter for the
    /// same framework and agent replaces the previous one.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown agent or framework, and
    /// ``KeelError/Code/failedPrecondition`` (changing nothing) if `resources` are not allocated
    /// to the framework there.
    package mutating func recoverResources(
        framework: FrameworkID, agent: AgentID, resources: Resources, filterUntil: Instant? = nil
    ) throws {
        let agentSlot = try agentSlot(agent)
        let frameworkSlot = try frameworkSlot(framework)
        let held = agents[agentSlot]!.allocations[frameworkSlot] ?? [:]
        let parts = try Self.split(resources, across: held, framework: framework, agent: agent)
        for (role, part) in parts {
            let remaining = held[role]! == part ? Resources() : held[role]! - part
            if remaining.isEmpty {
                agents[agentSlot]!.allocations[frameworkSlot]![role] = nil
            } else {
                agents[agentSlot]!.allocations[frameworkSlot]![role] = remaining
            }
            if agents[agentSlot]!.free.isEmpty {
                agents[agentSlot]!.free = part
            } else {
                agents[agentSlot]!.free += part
            }
            account(ScalarVector(part), framework: frameworkSlot, role: role, adding: false)
            refreshShares(framework: frameworkSlot, role: role)
            if !frameworks[frameworkSlot]!.roles.contains(role),
                frameworks[frameworkSlot]!.allocatedByRole[role]?.isZero ?? true
            {
                untrack(framework: frameworkSlot, role: role)  // it left the role earlier
            }
        }
        if agents[agentSlot]!.allocations[frameworkSlot]?.isEmpty == true {
            agents[agentSlot]!.allocations[frameworkSlot] = nil
        }
        if let filterUntil {
            addFilter(framework: frameworkSlot, agent: agentSlot, resources: resources, until: filterUntil)
        }
    }

    /// Records resources the broker knows are in use (e.g. running tasks found at startup) as
    /// allocated to `framework` on `agent` for `role` (default: its first subscribed role).
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown agent or framework,
    /// ``KeelError/Code/invalidArgument`` for a role the framework is not subscribed to, and
    /// ``KeelError/Code/failedPrecondition`` if the agent does not have them free; nothing
    /// changes on error.
    package mutating func allocate(
        framework: FrameworkID, agent: AgentID, resources: Resources, role: String? = nil
    ) throws {
        let agentSlot = try agentSlot(agent)
        let frameworkSlot = try frameworkSlot(framework)
        let subscribed = frameworks[frameworkSlot]!.roles
        let roleSlot: Int
        if let role {
            guard let slot = roleSlots[role], subscribed.contains(slot) else {
                throw KeelError.invalidArgument("framework '\(framework)' is not subscribed to role '\(role)'")
            }
            roleSlot = slot
        } else {
            roleSlot = subscribed[0]
        }
        try agents[agentSlot]!.free.subtract(resources)
        agents[agentSlot]!.allocations[frameworkSlot, default: [:]][roleSlot, default: Resources()] += resources
        account(ScalarVector(resources), framework: frameworkSlot, role: roleSlot, adding: true)
        refreshShares(framework: frameworkSlot, role: roleSlot)
    }

    /// Splits `resources` over the roles holding them (lowest role slot first), or throws if
    /// the framework does not hold all of them.
    private static func split(
        _ resources: Resources, across held: [Int: Resources], framework: FrameworkID, agent: AgentID
    ) throws -> [(Int, Resources)] {
        if held.count == 1, let (role, holding) = held.first, holding.contains(resources) {
            return [(role, resources)]
        }
        var remaining = resources
        var parts: [(Int, Resources)] = []
        for role in held.keys.sorted() where !remaining.isEmpty {
            let holding = held[role]!
            let part = holding - (holding - remaining)  // the overlap
            guard !part.isEmpty else { continue }
            parts.append((role, part))
            remaining -= part
        }
        guard remaining.isEmpty else {
            throw KeelError.failedPrecondition(
                "cannot recover '\(resources)' from framework '\(framework)' on agent '\(agent)': '\(remaining)' is not allocated to it there"
            )
        }
        return parts
    }

    // MARK: Filters

    /// Installs a decline filter and records whether it applies to the agent's current free
    /// resources, so later cycles can trust it without re-checking.
    mutating func addFilter(framework: Int, agent: Int, resources: Resources, until: Instant) {
        agents[agent]!.syncVersion()
        let version = agents[agent]!.version
        let applies = !agents[agent]!.freeHasReservations && resources.contains(agents[agent]!.free)
        frameworks[framework]!.filters[agent] = Filter(
            resources: resources, until: until, validatedVersion: applies ? version : -1)
        agents[agent]!.filteredBy.insert(framework)
        agents[agent]!.earliestFilterEnd = min(agents[agent]!.earliestFilterEnd, until)
        if !applies { agents[agent]!.filtersValidAt = -1 }
    }

    /// Drops the filter of `framework` on `agent`.
    mutating func removeFilter(framework: Int, agent: Int) {
        frameworks[framework]?.filters[agent] = nil
        agents[agent]!.filteredBy.remove(framework)
    }

    /// Drops the agent's expired filters and recomputes its earliest filter end.
    mutating func expireFilters(agent: Int, now: Instant) {
        var earliest = Instant.distantFuture
        for framework in agents[agent]!.filteredBy.members {
            if let filter = frameworks[framework]?.filters[agent], filter.until > now {
                earliest = min(earliest, filter.until)
            } else {
                removeFilter(framework: framework, agent: agent)
            }
        }
        agents[agent]!.earliestFilterEnd = earliest
    }

    /// Checks every filter on the agent against its current free resources; when all apply,
    /// marks them trusted for this version so a filter bit alone means "filtered".
    mutating func validateFilters(agent: Int) {
        let version = agents[agent]!.version
        let free = agents[agent]!.free
        guard !agents[agent]!.freeHasReservations else { return }
        for framework in agents[agent]!.filteredBy.members {
            guard let filter = frameworks[framework]?.filters[agent] else { return }
            if filter.validatedVersion == version { continue }
            guard filter.resources.contains(free) else { return }
            frameworks[framework]!.filters[agent]!.validatedVersion = version
        }
        agents[agent]!.filtersValidAt = version
    }

    /// Whether the filter of `framework` on `agent` keeps `offerable` (for `role`) from it now.
    mutating func filterApplies(framework: Int, agent: Int, offerable: Resources, now: Instant) -> Bool {
        guard let filter = frameworks[framework]?.filters[agent] else {
            agents[agent]!.filteredBy.remove(framework)
            return false
        }
        if filter.until <= now {
            removeFilter(framework: framework, agent: agent)
            return false
        }
        if filter.validatedVersion == agents[agent]!.version { return true }
        return filter.resources.contains(offerable)
    }
}
