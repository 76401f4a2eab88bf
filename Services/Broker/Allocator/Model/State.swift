package import KeelCore

/// What the allocator knows about one agent.
struct AgentState: Sendable {
    /// The agent's ID.
    let id: AgentID
    /// Everything the agent has.
    var total: Resources
    /// What is neither allocated nor offered; `total == free + allocated`.
    var free: Resources {
        didSet { freeDirty = true }
    }
    /// Attributes (e.g. rack, zone) for future placement constraints.
    var attributes: [String: String]
    /// Whether the agent is offered; a draining (deactivated) agent is not.
    var active = true
    /// When the agent was added.
    var addedAt: Instant
    /// Allocated (including offered) resources by framework slot, then role slot.
    var allocations: [Int: [Int: Resources]] = [:]
    /// The scalar part of ``total``.
    var totalVector: ScalarVector
    /// Framework slots that have a decline filter on this agent.
    var filteredBy = BitSet()
    /// No filter on this agent ends before this instant (may be earlier than the real minimum).
    var earliestFilterEnd = Instant.distantFuture
    /// Bumped whenever ``free`` changes content; filters are validated against a version.
    var version = 0
    /// ``free`` as of ``version``.
    var snapshot: Resources
    /// Whether ``free`` was assigned since the last ``syncVersion()``.
    var freeDirty = false
    /// Every filter on this agent applied at this version (so a set bit alone means "filtered").
    var filtersValidAt = 0

    init(id: AgentID, total: Resources, attributes: [String: String], addedAt: Instant) {
        self.id = id
        self.total = total
        self.free = total
        self.snapshot = total
        self.attributes = attributes
        self.addedAt = addedAt
        self.totalVector = ScalarVector(total)
    }

    /// What is allocated or offered: `total - free`.
    var allocated: Resources { total - free }

    /// Brings ``version`` up to date with ``free``: a version names one content of ``free``, so
    /// offering resources and getting the same ones back does not invalidate filters.
    mutating func syncVersion() {
        guard freeDirty else { return }
        freeDirty = false
        if free != snapshot {
            version += 1
            snapshot = free
        }
    }

    /// Whether ``free`` holds any reservation.
    var freeHasReservations: Bool { free.contains { $0.role != nil } }
}

/// What the allocator knows about one framework.
struct FrameworkState: Sendable {
    /// The framework's ID.
    let id: FrameworkID
    /// Registration order: the DRF tie-breaker.
    let sequence: Int
    /// Role slots the framework is subscribed to, in subscription order.
    var roles: [Int]
    /// Whether the framework is connected; inactive frameworks get no offers.
    var active = true
    /// Role slots for which the framework suppressed offers.
    var suppressed: Set<Int> = []
    /// Scalar allocation (including offers) by role slot.
    var allocatedByRole: [Int: ScalarVector] = [:]
    /// Decline filters by agent slot.
    var filters: [Int: Filter] = [:]
    /// When the framework was added.
    var addedAt: Instant

    /// Whether the framework may be offered resources for `role` right now (ignoring filters).
    func wantsOffers(for role: Int) -> Bool {
        active && !suppressed.contains(role)
    }
}

/// One node of the role tree: a role such as `eng/backend`, or the root (`""`).
struct RoleNode: Sendable {
    /// The full role path; `""` for the root.
    let name: String
    /// The parent's slot; -1 for the root.
    let parent: Int
    /// DRF weight; shares are divided by it.
    var weight = 1.0
    /// Quota guarantee (zero where none).
    var guarantee = ScalarVector.zero
    /// Quota limit (`Int64.max` where none).
    var limit = ScalarVector.unlimited
    /// Scalar allocation of frameworks subscribed to exactly this role.
    var ownAllocated = ScalarVector.zero
    /// Scalar allocation of this role and all its descendants (quota consumption).
    var subtreeAllocated = ScalarVector.zero
    /// Children (role slots) plus this node itself (standing for its own frameworks), by share.
    var order = SortedMembers()
    /// Framework slots subscribed to exactly this role, by their share in it.
    var frameworks = SortedMembers()
    /// Frameworks in this subtree that want offers; recomputed each cycle.
    var eligible = 0
    /// The guarantee still unmet this cycle (zero if none).
    var unmet = ScalarVector.zero

    /// Whether a guarantee is set in any dimension.
    var hasGuarantee: Bool { !guarantee.isZero }
    /// Whether a limit is set in any dimension.
    var hasLimit: Bool { limit != .unlimited }
}

/// Resources offered to one framework on one agent for one role.
package struct Offer: Hashable, Sendable, CustomStringConvertible {
    /// Who the offer is for.
    package var framework: FrameworkID
    /// Where the resources are.
    package var agent: AgentID
    /// The role the resources are allocated to.
    package var role: String
    /// The offered resources.
    package var resources: Resources

    /// Creates an offer.
    package init(framework: FrameworkID, agent: AgentID, role: String, resources: Resources) {
        self.framework = framework
        self.agent = agent
        self.role = role
        self.resources = resources
    }

    /// e.g. `fw-1@agent-3 (eng): cpus:4;mem:1024`.
    package var description: String { "\(framework)@\(agent) (\(role)): \(resources)" }
}
