/// A normalized bag of ``Resource`` values: what an agent has, a task needs, or an offer holds.
///
/// Invariants, maintained by every initializer and operation:
/// - at most one entry per (name, kind, role); adding `cpus:1` to `cpus:2` gives `cpus:3`, while
///   `cpus:1` and `cpus(analytics):1` stay separate;
/// - scalars are rounded to three decimal places (fixed point, like Mesos), so
///   `0.1 + 0.2 == 0.3` exactly;
/// - ranges are coalesced and sets deduplicated; empty entries (scalar 0, no ranges, empty set)
///   are removed;
/// - entries are sorted (well-known names `cpus`, `gpus`, `mem`, `disk`, `ports` first, then
///   custom names alphabetically; unreserved before reserved), so equal bags compare `==` and
///   print identically;
/// - every entry is valid per ``Resource/validate()``.
///
/// The non-throwing initializers silently drop invalid resources, as Mesos does in its
/// arithmetic; use ``init(validating:)`` or ``init(parsing:)`` for untrusted input.
package struct Resources: Hashable, Sendable, RandomAccessCollection, ExpressibleByArrayLiteral {
    private var entries: [Resource]

    /// No resources.
    package init() {
        entries = []
    }

    /// The sum of `resources`; invalid or empty ones are dropped.
    package init(_ resources: some Sequence<Resource>) {
        entries = []
        for resource in resources {
            insert(resource)
        }
    }

    /// The sum of the listed resources; invalid or empty ones are dropped.
    package init(arrayLiteral elements: Resource...) {
        self.init(elements)
    }

    /// The sum of `resources`, throwing ``KeelError/Code/invalidArgument`` at the first resource
    /// that fails ``Resource/validate()`` (the message names it). Duplicates are summed.
    package init(validating resources: some Sequence<Resource>) throws {
        entries = []
        for resource in resources {
            try resource.validate()
            insert(resource, trusted: true)
        }
    }

    /// Unreserved (or, with `role`, reserved) scalar resources in the common units:
    /// CPUs, memory and disk in MiB, whole GPUs, and ports. `nil` arguments are omitted.
    package init(
        cpus: Double? = nil, mem: Double? = nil, disk: Double? = nil, gpus: Double? = nil,
        ports: ValueRanges? = nil, role: String? = nil
    ) {
        var list: [Resource] = []
        if let cpus { list.append(.scalar(Resource.Name.cpus, cpus, role: role)) }
        if let mem { list.append(.scalar(Resource.Name.mem, mem, role: role)) }
        if let disk { list.append(.scalar(Resource.Name.disk, disk, role: role)) }
        if let gpus { list.append(.scalar(Resource.Name.gpus, gpus, role: role)) }
        if let ports { list.append(.ranges(Resource.Name.ports, ports, role: role)) }
        self.init(list)
    }

    // MARK: Collection

    /// The position of the first entry.
    package var startIndex: Int { entries.startIndex }
    /// The position past the last entry.
    package var endIndex: Int { entries.endIndex }
    /// The entry at `position`; entries are in the sorted order described on the type.
    package subscript(position: Int) -> Resource { entries[position] }

    // MARK: Normalized storage

    /// Where `resource`'s (name, kind, role) entry is or would be inserted, and whether it exists.
    private func slot(for resource: Resource) -> (index: Int, found: Bool) {
        for (index, entry) in entries.enumerated() {
            if Self.sameKey(entry, resource) { return (index, true) }
            if Self.precedes(resource, entry) { return (index, false) }
        }
        return (entries.count, false)
    }

    /// Adds `resource` in place; invalid or empty resources are ignored. Pass `trusted: true`
    /// only for entries taken from another `Resources`, which are known to be valid.
    mutating func insert(_ resource: Resource, trusted: Bool = false) {
        guard trusted || (try? resource.validate()) != nil else { return }
        let resource = Self.rounded(resource)
        guard !resource.isEmpty else { return }
        let (index, found) = slot(for: resource)
        guard found else {
            entries.insert(resource, at: index)
            return
        }
        var entry = entries[index]
        switch (entry.value, resource.value) {
        case (.scalar(let lhs), .scalar(let rhs)):
            let sum = FixedPoint.add(FixedPoint.millis(lhs), FixedPoint.millis(rhs))
            entry.value = .scalar(FixedPoint.value(sum))
        case (.ranges(let lhs), .ranges(let rhs)):
            entry.value = .ranges(lhs.union(rhs))
        case (.set(let lhs), .set(let rhs)):
            entry.value = .set(lhs.union(rhs))
        default:
            preconditionFailure("entries with the same key have the same kind")
        }
        entries[index] = entry
    }

    /// Removes as much of `resource` as is present: scalars saturate at zero, ranges and sets
    /// lose the overlapping values. Emptied entries are dropped.
    mutating func remove(_ resource: Resource) {
        let resource = Self.rounded(resource)
        let (index, found) = slot(for: resource)
        guard found else { return }
        var entry = entries[index]
        switch (entry.value, resource.value) {
        case (.scalar(let lhs), .scalar(let rhs)):
            let difference = FixedPoint.subtract(FixedPoint.millis(lhs), FixedPoint.millis(rhs))
            entry.value = .scalar(FixedPoint.value(Swift.max(0, difference)))
        case (.ranges(let lhs), .ranges(let rhs)):
            entry.value = .ranges(lhs.subtracting(rhs))
        case (.set(let lhs), .set(let rhs)):
            entry.value = .set(lhs.subtracting(rhs))
        default:
            preconditionFailure("entries with the same key have the same kind")
        }
        if entry.isEmpty {
            entries.remove(at: index)
        } else {
            entries[index] = entry
        }
    }

    /// The stored entry with `resource`'s (name, kind, role), if any.
    func entry(matching resource: Resource) -> Resource? {
        let (index, found) = slot(for: resource)
        return found ? entries[index] : nil
    }

    private static func rounded(_ resource: Resource) -> Resource {
        guard case .scalar(let amount) = resource.value else { return resource }
        var copy = resource
        copy.value = .scalar(FixedPoint.rounded(amount))
        return copy
    }

    private static func sameKey(_ lhs: Resource, _ rhs: Resource) -> Bool {
        lhs.name == rhs.name && lhs.kind == rhs.kind && lhs.role == rhs.role
    }

    private static func precedes(_ lhs: Resource, _ rhs: Resource) -> Bool {
        let left = (Resource.Name.rank(lhs.name), lhs.name, lhs.kind, lhs.role == nil ? 0 : 1, lhs.role ?? "")
        let right = (Resource.Name.rank(rhs.name), rhs.name, rhs.kind, rhs.role == nil ? 0 : 1, rhs.role ?? "")
        return left < right
    }
}
