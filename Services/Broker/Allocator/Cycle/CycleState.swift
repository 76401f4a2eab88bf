/// Which stage of an allocation cycle is running.
enum Stage: Equatable {
    /// Meeting the guarantee of the given (outermost guaranteed) role.
    case guarantee(Int)
    /// Weighted DRF over everything.
    case fairShare
}

/// Scratch state of one ``Allocator/allocate(now:)`` call.
struct CycleState {
    /// The cycle's time.
    let now: Instant
    /// Frameworks that want offers for at least one role.
    var eligible = BitSet()
    /// Whether any role has a limit (otherwise limit caps are skipped).
    var hasLimits = false
    /// For each role slot, the outermost role in its lineage with a guarantee, or -1.
    var guardian: [Int] = []
    /// Sum of unmet guarantees of outermost guaranteed roles: unreserved resources that must
    /// stay free for them.
    var requiredHeadroom = ScalarVector.zero
    /// Free unreserved scalars on active agents not yet offered this cycle (tracked only when
    /// ``requiredHeadroom`` is non-zero).
    var availableUnreserved = ScalarVector.zero
    /// Whether headroom is being enforced this cycle.
    var enforcesHeadroom = false
    /// Whether the filter bits of the current agent can be trusted without looking filters up.
    var filtersTrusted = false
    /// `(framework, role)` pairs whose shares changed on the current agent.
    var pendingRefresh: [(framework: Int, role: Int)] = []
    /// The offers so far.
    var offers: [Offer] = []
    /// Where the guarantee stage's offers are in ``offers``, to merge fair-share additions.
    var guaranteeOfferIndex: [OfferKey: Int] = [:]

    /// Identifies an offer by slots.
    struct OfferKey: Hashable {
        /// Framework slot.
        var framework: Int
        /// Agent slot.
        var agent: Int
        /// Role slot.
        var role: Int
    }

    init(now: Instant) {
        self.now = now
    }
}
