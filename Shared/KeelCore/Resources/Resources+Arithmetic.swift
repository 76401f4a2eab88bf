extension Resources {
    /// The sum of two bags, entry by entry (same name, kind and role).
    ///
    /// Scalars add in fixed point; ranges and sets are combined by union, as in Mesos. So
    /// `(a + b) - b == a` holds whenever the ranges and sets of `a` and `b` do not overlap.
    package static func + (lhs: Resources, rhs: Resources) -> Resources {
        var result = lhs
        result += rhs
        return result
    }

    /// Adds `rhs` to `lhs`; see `+`.
    package static func += (lhs: inout Resources, rhs: Resources) {
        for resource in rhs {
            lhs.insert(resource, trusted: true)
        }
    }

    /// `lhs` plus one resource; an invalid `rhs` is ignored (as in Mesos).
    package static func + (lhs: Resources, rhs: Resource) -> Resources {
        var result = lhs
        result += rhs
        return result
    }

    /// Adds one resource to `lhs`; an invalid `rhs` is ignored (as in Mesos).
    package static func += (lhs: inout Resources, rhs: Resource) {
        lhs.insert(rhs)
    }

    /// `lhs` without `rhs`, saturating: scalars stop at zero, ranges and sets lose only the
    /// values they have, and entries absent from `lhs` are ignored.
    ///
    /// Use this when over-subtraction is harmless (e.g. computing "what is left to ask for").
    /// When `rhs` must be part of `lhs` (e.g. allocating from an agent), use ``subtracting(_:)``,
    /// which reports the mistake instead of hiding it.
    package static func - (lhs: Resources, rhs: Resources) -> Resources {
        var result = lhs
        result -= rhs
        return result
    }

    /// Removes `rhs` from `lhs`, saturating; see `-`.
    package static func -= (lhs: inout Resources, rhs: Resources) {
        for resource in rhs {
            lhs.remove(resource)
        }
    }

    /// `lhs` without one resource, saturating; see `-`.
    package static func - (lhs: Resources, rhs: Resource) -> Resources {
        var result = lhs
        result -= rhs
        return result
    }

    /// Removes one resource from `lhs`, saturating; see `-`.
    package static func -= (lhs: inout Resources, rhs: Resource) {
        lhs -= Resources([rhs])
    }

    /// `self` without `other`, requiring that `self` `contains(_:)` `other`.
    ///
    /// Throws ``KeelError/Code/failedPrecondition`` naming the missing part otherwise; that
    /// usually means a bookkeeping bug (e.g. releasing resources that were never allocated).
    package func subtracting(_ other: Resources) throws -> Resources {
        var result = self
        try result.subtract(other)
        return result
    }

    /// Removes `other` from `self`, requiring that `self` contains it; see ``subtracting(_:)``.
    /// On error `self` is left unchanged.
    package mutating func subtract(_ other: Resources) throws {
        guard contains(other) else {
            let missing = other - self
            throw KeelError.failedPrecondition(
                "cannot subtract '\(other)' from '\(self)' because '\(missing)' is not available; subtract only resources that were previously added"
            )
        }
        self -= other
    }

    /// Whether every entry of `other` is covered by the entry with the same name, kind and role
    /// in `self`: at least the scalar amount, a superset of the ranges, a superset of the set.
    ///
    /// Roles must match exactly: unreserved `cpus:4` does not contain `cpus(analytics):1`.
    /// Every bag contains the empty bag and itself.
    package func contains(_ other: Resources) -> Bool {
        other.allSatisfy { covers($0) }
    }

    /// Whether `self` covers `resource`; see `contains(_:)`. An empty resource is
    /// always contained; an invalid one never is.
    package func contains(_ resource: Resource) -> Bool {
        guard (try? resource.validate()) != nil else { return false }
        return covers(resource)
    }

    /// `contains(_:)` for a resource known to be valid.
    private func covers(_ resource: Resource) -> Bool {
        guard !resource.isEmpty else { return true }
        guard let entry = entry(matching: resource) else { return false }
        switch (entry.value, resource.value) {
        case (.scalar(let have), .scalar(let want)):
            return FixedPoint.millis(have) >= FixedPoint.millis(want)
        case (.ranges(let have), .ranges(let want)):
            return have.contains(want)
        case (.set(let have), .set(let want)):
            return want.isSubset(of: have)
        default:
            return false
        }
    }
}
