package import KeelCore

/// A role's quota as configured: a guarantee (resources the role is promised, allocated before
/// fair share and kept as headroom) and a limit (never exceeded), over cpus, mem, disk and gpus.
package struct Quota: Hashable, Sendable {
    /// Promised amounts; zero where none.
    package var guarantee: ScalarVector
    /// Maximum amounts; `Int64.max` where none.
    package var limit: ScalarVector
}

extension Allocator {
    /// Sets the DRF weight of `role` (default 1): its share is divided by the weight, so a role
    /// of weight 2 gets about twice the resources of a role of weight 1 under contention.
    ///
    /// Throws ``KeelError/Code/invalidArgument`` (changing nothing) for an invalid role or a
    /// weight that is not a finite number greater than zero.
    package mutating func setWeight(role: String, weight: Double) throws {
        try ResourceRole.validate(role)
        guard weight.isFinite, weight > 0 else {
            throw KeelError.invalidArgument(
                "weight of role '\(role)' must be a finite number greater than 0, but \(weight) was given; use 1 for the default"
            )
        }
        roles[roleSlot(role)].weight = weight
        sharesDirty = true
    }

    /// The DRF weight of `role` (1 unless set).
    package func weight(role: String) -> Double {
        roleSlots[role].map { roles[$0].weight } ?? 1
    }

    /// Sets (or with `nil` clears) the guarantee and limit of `role`.
    ///
    /// Only unreserved scalar `cpus`, `mem`, `disk` and `gpus` are accepted; every amount must
    /// be finite and non-negative, and the guarantee must not exceed the limit in any dimension
    /// the limit names. A guarantee is met (and headroom kept) for the outermost role in a
    /// lineage that has one; limits apply at every level (a child never exceeds its parent's).
    ///
    /// Throws ``KeelError/Code/invalidArgument`` with the offending part, changing nothing.
    package mutating func setQuota(role: String, guarantee: Resources?, limit: Resources?) throws {
        try ResourceRole.validate(role)
        let guaranteeVector = try Self.quotaVector(guarantee, role: role, what: "guarantee") ?? .zero
        var limitVector = ScalarVector.unlimited
        if let limit {
            for resource in limit { _ = try Self.quotaDimension(resource, role: role, what: "limit") }
            for dimension in Set(limit.map { Dimension(name: $0.name)! }) {
                limitVector[dimension] = ScalarVector.millis(limit.scalar(named: dimension.description))
            }
        }
        try applyQuota(role: role, guarantee: guaranteeVector, limit: limitVector)
    }

    /// Like ``setQuota(role:guarantee:limit:)`` with raw amounts by resource name (e.g.
    /// `["cpus": 4, "mem": 8192]`), for input that has not been through ``Resources``, which
    /// would silently drop negative or non-finite amounts. Throws the same way.
    package mutating func setQuota(
        role: String, guaranteeAmounts: [String: Double]?, limitAmounts: [String: Double]?
    ) throws {
        try ResourceRole.validate(role)
        let guaranteeVector = try Self.amountsVector(guaranteeAmounts, role: role, what: "guarantee") ?? .zero
        var limitVector = ScalarVector.unlimited
        if let limits = try Self.amountsVector(limitAmounts, role: role, what: "limit") {
            for name in limitAmounts!.keys { limitVector[Dimension(name: name)!] = limits[Dimension(name: name)!] }
        }
        try applyQuota(role: role, guarantee: guaranteeVector, limit: limitVector)
    }

    private mutating func applyQuota(role: String, guarantee guaranteeVector: ScalarVector, limit limitVector: ScalarVector) throws {
        for dimension in Dimension.allCases where guaranteeVector[dimension] > limitVector[dimension] {
            throw KeelError.invalidArgument(
                "quota of role '\(role)': guarantee \(dimension):\(ScalarVector.value(guaranteeVector[dimension])) exceeds limit \(dimension):\(ScalarVector.value(limitVector[dimension])); the guarantee must be at most the limit"
            )
        }
        let slot = roleSlot(role)
        roles[slot].guarantee = guaranteeVector
        roles[slot].limit = limitVector
    }

    /// The quota of `role`, if any is set.
    package func quota(role: String) -> Quota? {
        guard let slot = roleSlots[role], roles[slot].hasGuarantee || roles[slot].hasLimit else { return nil }
        return Quota(guarantee: roles[slot].guarantee, limit: roles[slot].limit)
    }

    private static func quotaVector(_ resources: Resources?, role: String, what: String) throws -> ScalarVector? {
        guard let resources else { return nil }
        var vector = ScalarVector.zero
        for resource in resources {
            let dimension = try quotaDimension(resource, role: role, what: what)
            if case .scalar(let amount) = resource.value { vector[dimension] += ScalarVector.millis(amount) }
        }
        return vector
    }

    private static func amountsVector(_ amounts: [String: Double]?, role: String, what: String) throws -> ScalarVector? {
        guard let amounts else { return nil }
        var vector = ScalarVector.zero
        for (name, amount) in amounts.sorted(by: { $0.key < $1.key }) {
            guard let dimension = Dimension(name: name) else {
                throw KeelError.invalidArgument(
                    "quota \(what) of role '\(role)' names '\(name)'; quota supports only cpus, mem, disk and gpus")
            }
            guard amount.isFinite, amount >= 0, amount <= Resource.maximumScalar else {
                throw KeelError.invalidArgument(
                    "quota \(what) of role '\(role)' has \(name):\(amount); amounts must be finite numbers from 0 to \(Resource.maximumScalar)"
                )
            }
            vector[dimension] = ScalarVector.millis(amount)
        }
        return vector
    }

    private static func quotaDimension(_ resource: Resource, role: String, what: String) throws -> Dimension {
        guard let dimension = Dimension(name: resource.name) else {
            throw KeelError.invalidArgument(
                "quota \(what) of role '\(role)' names '\(resource.name)'; quota supports only cpus, mem, disk and gpus")
        }
        guard resource.role == nil else {
            throw KeelError.invalidArgument(
                "quota \(what) of role '\(role)' has the reserved resource '\(resource)'; quota amounts are unreserved")
        }
        guard case .scalar(let amount) = resource.value, amount.isFinite, amount >= 0 else {
            throw KeelError.invalidArgument(
                "quota \(what) of role '\(role)' has '\(resource)'; amounts must be finite numbers of at least 0")
        }
        return dimension
    }
}
