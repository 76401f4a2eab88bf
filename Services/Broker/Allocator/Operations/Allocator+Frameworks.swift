package import KeelCore

extension Allocator {
    /// Adds a framework subscribed to `roles` (one or more valid, distinct role names), active.
    ///
    /// Throws ``KeelError/Code/alreadyExists`` if it is known and
    /// ``KeelError/Code/invalidArgument`` for a bad role list, changing nothing.
    package mutating func addFramework(id: FrameworkID, roles roleNames: [String], now: Instant) throws {
        guard frameworkSlots[id] == nil else {
            throw KeelError.alreadyExists("framework '\(id)' is already known to the allocator")
        }
        guard !roleNames.isEmpty else {
            throw KeelError.invalidArgument("framework '\(id)' must subscribe to at least one role, e.g. 'default'")
        }
        guard Set(roleNames).count == roleNames.count else {
            throw KeelError.invalidArgument("framework '\(id)' lists a role twice in \(roleNames); list each role once")
        }
        for role in roleNames { try ResourceRole.validate(role) }
        let roleList = roleNames.map { roleSlot($0) }
        let state = FrameworkState(id: id, sequence: nextSequence, roles: roleList, addedAt: now)
        nextSequence += 1
        let slot: Int
        if let reused = freeFrameworkSlots.popLast() {
            slot = reused
            frameworks[slot] = state
        } else {
            slot = frameworks.count
            frameworks.append(state)
        }
        frameworkSlots[id] = slot
        for role in roleList {
            roles[role].frameworks.upsert(slot, key: 0, tie: state.sequence)
            refreshShares(framework: slot, role: role)
        }
    }

    /// Removes a framework: everything it holds is recovered (without filters) and its
    /// filters are dropped.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown framework.
    package mutating func removeFramework(id: FrameworkID) throws {
        let slot = try frameworkSlot(id)
        for agent in agents.indices {
            guard let byRole = agents[agent]?.allocations.removeValue(forKey: slot) else { continue }
            for (role, resources) in byRole {
                agents[agent]!.free = agents[agent]!.free + resources
                account(ScalarVector(resources), framework: slot, role: role, adding: false)
            }
        }
        for agent in frameworks[slot]!.filters.keys {
            agents[agent]?.filteredBy.remove(slot)
        }
        for role in Set(frameworks[slot]!.roles).union(frameworks[slot]!.allocatedByRole.keys) {
            roles[role].frameworks.remove(slot)
            refreshShares(framework: slot, role: role)
        }
        frameworks[slot] = nil
        frameworkSlots[id] = nil
        freeFrameworkSlots.append(slot)
    }

    /// Changes the roles a framework is subscribed to (Mesos' UPDATE_FRAMEWORK), keeping its
    /// order (the first role is the default of ``allocate(framework:agent:resources:role:)``).
    ///
    /// A role the framework leaves while it still holds resources there stays tracked: what it
    /// holds keeps counting for that role's share and quota until it is recovered, but nothing
    /// more is offered to the framework for it. New roles start unsuppressed.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown framework and
    /// ``KeelError/Code/invalidArgument`` for a bad role list, changing nothing.
    package mutating func updateFramework(id: FrameworkID, roles roleNames: [String]) throws {
        let slot = try frameworkSlot(id)
        guard !roleNames.isEmpty else {
            throw KeelError.invalidArgument("framework '\(id)' must subscribe to at least one role, e.g. 'default'")
        }
        guard Set(roleNames).count == roleNames.count else {
            throw KeelError.invalidArgument("framework '\(id)' lists a role twice in \(roleNames); list each role once")
        }
        for role in roleNames { try ResourceRole.validate(role) }
        let old = frameworks[slot]!.roles
        let new = roleNames.map { roleSlot($0) }
        frameworks[slot]!.roles = new
        for role in new where !old.contains(role) {
            frameworks[slot]!.suppressed.remove(role)
            if !roles[role].frameworks.contains(slot) {
                roles[role].frameworks.upsert(slot, key: 0, tie: frameworks[slot]!.sequence)
            }
            refreshShares(framework: slot, role: role)
        }
        for role in old where !new.contains(role) {
            if frameworks[slot]!.allocatedByRole[role]?.isZero ?? true {
                untrack(framework: slot, role: role)
            } else {
                // Tracked until its resources there come back; never offered for it again.
                frameworks[slot]!.suppressed.insert(role)
            }
        }
    }

    /// Drops `framework` from a role it no longer subscribes to.
    mutating func untrack(framework: Int, role: Int) {
        frameworks[framework]!.suppressed.remove(role)
        frameworks[framework]!.allocatedByRole[role] = nil
        roles[role].frameworks.remove(framework)
        refreshShares(framework: framework, role: role)
    }

    /// Marks a (re)connected framework as eligible for offers.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown framework.
    package mutating func activateFramework(id: FrameworkID) throws {
        frameworks[try frameworkSlot(id)]!.active = true
    }

    /// Marks a disconnected framework: it keeps its allocations but gets no offers.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown framework.
    package mutating func deactivateFramework(id: FrameworkID) throws {
        frameworks[try frameworkSlot(id)]!.active = false
    }

    /// Stops offers to `framework` for `roles` (all its roles when `nil`).
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown framework and
    /// ``KeelError/Code/invalidArgument`` for a role it is not subscribed to, changing nothing.
    package mutating func suppress(framework: FrameworkID, roles roleNames: [String]? = nil) throws {
        let slot = try frameworkSlot(framework)
        let chosen = try subscribedRoles(slot, roleNames)
        frameworks[slot]!.suppressed.formUnion(chosen)
    }

    /// Resumes offers to `framework` for `roles` (all its roles when `nil`) and, as in Mesos,
    /// drops all its decline filters so declined resources can be offered again at once.
    ///
    /// Throws like ``suppress(framework:roles:)``.
    package mutating func revive(framework: FrameworkID, roles roleNames: [String]? = nil) throws {
        let slot = try frameworkSlot(framework)
        let chosen = try subscribedRoles(slot, roleNames)
        frameworks[slot]!.suppressed.subtract(chosen)
        for agent in frameworks[slot]!.filters.keys {
            agents[agent]?.filteredBy.remove(slot)
        }
        frameworks[slot]!.filters.removeAll()
    }

    /// The role slots named by `roleNames` (all when `nil`), which must be subscribed roles.
    private func subscribedRoles(_ framework: Int, _ roleNames: [String]?) throws -> [Int] {
        let subscribed = frameworks[framework]!.roles
        guard let roleNames else { return subscribed }
        return try roleNames.map { name in
            guard let role = roleSlots[name], subscribed.contains(role) else {
                let names = subscribed.map { roles[$0].name }
                throw KeelError.invalidArgument(
                    "framework '\(frameworks[framework]!.id)' is not subscribed to role '\(name)'; its roles are \(names)"
                )
            }
            return role
        }
    }

    /// The IDs of all known frameworks, sorted.
    package var frameworkIDs: [FrameworkID] { frameworkSlots.keys.sorted() }

    /// Whether the allocator knows the framework (without sorting ``frameworkIDs``).
    package func knows(framework id: FrameworkID) -> Bool { frameworkSlots[id] != nil }

    /// The framework's DRF dominant share in `role` (its scalar allocation there over the cluster
    /// total), or over all its roles when `role` is `nil`.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown framework.
    package func dominantShare(of framework: FrameworkID, role: String? = nil) throws -> Double {
        let state = frameworks[try frameworkSlot(framework)]!
        let vector: ScalarVector
        if let role {
            vector = roleSlots[role].flatMap { state.allocatedByRole[$0] } ?? .zero
        } else {
            vector = state.allocatedByRole.values.reduce(ScalarVector.zero, +)
        }
        return vector.dominantShare(of: clusterTotal)
    }

    /// The scalar allocation (including offers) of `role` and the roles nested in it.
    package func allocatedVector(role: String) -> ScalarVector {
        roleSlots[role].map { roles[$0].subtreeAllocated } ?? .zero
    }
}
