import KeelCore

/// An offer being built: its resources and their scalar amounts.
struct OfferDraft {
    /// The resources to offer.
    var resources: Resources
    /// Their scalar amounts.
    var vector: ScalarVector
}

extension Allocator {
    /// The agent's free resources a framework in `role` may use: unreserved ones plus those
    /// reserved for `role` or a role it is nested in.
    func offerBase(agent: Int, role: Int) -> Resources {
        let free = agents[agent]!.free
        return agents[agent]!.freeHasReservations ? free.allocatable(to: roles[role].name) : free
    }

    /// How much more `role` may get in each dimension before it or an ancestor hits its limit.
    func limitRoom(role: Int) -> ScalarVector {
        var room = ScalarVector.unlimited
        var node = role
        while node > 0 {
            if roles[node].hasLimit {
                room = room.minimum(roles[node].limit - roles[node].subtreeAllocated)
            }
            node = roles[node].parent
        }
        return room
    }

    /// How much unreserved resource `role` may take without eating into headroom kept for
    /// other roles' unmet guarantees (what it takes towards its own guarantee is fine).
    func headroomRoom(role: Int, _ cycle: CycleState) -> ScalarVector {
        guard cycle.enforcesHeadroom else { return .unlimited }
        let guardian = cycle.guardian[role]
        let own = guardian >= 0 ? roles[guardian].unmet : .zero
        return cycle.availableUnreserved - (cycle.requiredHeadroom - own)
    }

    /// `base` cut down to the role's limit room, and (for unreserved resources) to the headroom
    /// room and, in the guarantee stage, to the unmet guarantee; `nil` if only scraps remain.
    /// Reserved resources are taken first; ranges and sets are kept whole.
    func capped(_ base: Resources, role: Int, stage: Stage, _ cycle: CycleState) -> OfferDraft? {
        let vector = ScalarVector(base)
        var room = cycle.hasLimits ? limitRoom(role: role) : .unlimited
        var unreservedRoom = headroomRoom(role: role, cycle)
        if case .guarantee(let guardian) = stage {
            let guarantee = roles[guardian].guarantee
            for dimension in Dimension.allCases where guarantee[dimension] > 0 {
                unreservedRoom[dimension] = min(unreservedRoom[dimension], roles[guardian].unmet[dimension])
            }
        }
        if room == .unlimited && unreservedRoom == .unlimited {
            return isAllocatable(vector) ? OfferDraft(resources: base, vector: vector) : nil
        }
        if vector.isAtMost(room) && (unreservedRoom == .unlimited
            || ScalarVector(base, unreservedOnly: true).isAtMost(unreservedRoom))
        {
            return isAllocatable(vector) ? OfferDraft(resources: base, vector: vector) : nil
        }
        var result = Resources()
        for reservedPass in [true, false] {
            for resource in base where (resource.role != nil) == reservedPass {
                guard case .scalar(let amount) = resource.value, let dimension = Dimension(name: resource.name) else {
                    result += resource
                    continue
                }
                var allowed = min(ScalarVector.millis(amount), room[dimension])
                if !reservedPass { allowed = min(allowed, unreservedRoom[dimension]) }
                guard allowed > 0 else { continue }
                result += Resource.scalar(resource.name, ScalarVector.value(allowed), role: resource.role)
                room[dimension] = Self.reduce(room[dimension], by: allowed)
                if !reservedPass { unreservedRoom[dimension] = Self.reduce(unreservedRoom[dimension], by: allowed) }
            }
        }
        let cut = ScalarVector(result)
        return isAllocatable(cut) ? OfferDraft(resources: result, vector: cut) : nil
    }

    private static func reduce(_ room: Int64, by amount: Int64) -> Int64 {
        room == .max ? .max : max(0, room - amount)
    }

    /// Marks `draft` as allocated to `framework` in `role` on `agent` and records the offer.
    mutating func commit(
        _ draft: OfferDraft, framework: Int, role: Int, agent: Int, stage: Stage, _ cycle: inout CycleState
    ) {
        let free = agents[agent]!.free
        let unreservedVector = cycle.enforcesHeadroom ? ScalarVector(draft.resources, unreservedOnly: true) : .zero
        if free.count == draft.resources.count && free == draft.resources {
            agents[agent]!.free = Resources()
        } else {
            agents[agent]!.free = free - draft.resources
        }
        if let held = agents[agent]!.allocations[framework]?[role], !held.isEmpty {
            agents[agent]!.allocations[framework]![role] = held + draft.resources
        } else {
            agents[agent]!.allocations[framework, default: [:]][role] = draft.resources
        }
        account(draft.vector, framework: framework, role: role, adding: true)
        let guardian = cycle.guardian[role]
        if guardian >= 0 {
            let before = roles[guardian].unmet
            let after = before - draft.vector
            roles[guardian].unmet = after
            cycle.requiredHeadroom = cycle.requiredHeadroom - before + after
        }
        if cycle.enforcesHeadroom { cycle.availableUnreserved -= unreservedVector }
        cycle.pendingRefresh.append((framework, role))
        record(draft.resources, framework: framework, role: role, agent: agent, stage: stage, &cycle)
    }

    /// Appends the offer, merging with a guarantee-stage offer for the same key.
    private func record(
        _ resources: Resources, framework: Int, role: Int, agent: Int, stage: Stage, _ cycle: inout CycleState
    ) {
        let key = CycleState.OfferKey(framework: framework, agent: agent, role: role)
        if !cycle.guaranteeOfferIndex.isEmpty, let index = cycle.guaranteeOfferIndex[key] {
            cycle.offers[index].resources += resources
            return
        }
        if case .guarantee = stage { cycle.guaranteeOfferIndex[key] = cycle.offers.count }
        cycle.offers.append(
            Offer(
                framework: frameworks[framework]!.id, agent: agents[agent]!.id, role: roles[role].name,
                resources: resources))
    }
}
