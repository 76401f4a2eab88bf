/// One named quantity of a machine's capacity, such as `cpus:2`, `mem(analytics):1024` or
/// `ports:[31000-32000]` (the Mesos resource model).
///
/// A resource has a ``name`` (well-known ones are listed in ``Name``; any other valid name is a
/// custom resource), a ``value`` of one of three kinds, and an optional reservation ``role``
/// (`nil` means unreserved, written `*` in Mesos). Memory and disk are measured in MiB.
///
/// A single `Resource` is not normalized or validated; collect resources in ``Resources`` for
/// arithmetic, and call ``validate()`` (or use ``init(validatingName:value:role:)``) on anything
/// that came from a user or the network.
package struct Resource: Hashable, Sendable, CustomStringConvertible {
    /// The kind of a resource's value; two resources only combine when name, kind and role match.
    package enum Kind: Hashable, Sendable, CaseIterable, Comparable, CustomStringConvertible {
        /// A non-negative quantity such as CPUs or MiB of memory.
        case scalar
        /// A set of integers stored as ranges, such as ports.
        case ranges
        /// A set of strings, such as device names.
        case set

        /// `scalar`, `ranges` or `set`.
        package var description: String {
            switch self {
            case .scalar: "scalar"
            case .ranges: "ranges"
            case .set: "set"
            }
        }
    }

    /// The amount of a resource.
    package enum Value: Hashable, Sendable {
        /// A quantity; ``Resources`` keeps it rounded to three decimal places.
        case scalar(Double)
        /// A set of integers such as ports, e.g. `[31000-32000]`.
        case ranges(ValueRanges)
        /// A set of strings such as GPU device names, e.g. `{gpu0,gpu1}`.
        case set(Set<String>)

        /// Which of the three kinds this value is.
        package var kind: Kind {
            switch self {
            case .scalar: .scalar
            case .ranges: .ranges
            case .set: .set
            }
        }
    }

    /// Names of the resources Keel itself understands; their kinds are enforced by ``validate()``.
    package enum Name {
        /// CPU shares (scalar, fractional allowed).
        package static let cpus = "cpus"
        /// Memory in MiB (scalar).
        package static let mem = "mem"
        /// Disk space in MiB (scalar).
        package static let disk = "disk"
        /// Whole GPUs (scalar).
        package static let gpus = "gpus"
        /// TCP/UDP ports (ranges).
        package static let ports = "ports"

        /// The required kind for each well-known name.
        static let requiredKinds: [String: Kind] = [
            cpus: .scalar, mem: .scalar, disk: .scalar, gpus: .scalar, ports: .ranges,
        ]

        /// Sort rank: well-known names first in a fixed, familiar order, then custom names.
        static func rank(_ name: String) -> Int {
            switch name {
            case cpus: 0
            case gpus: 1
            case mem: 2
            case disk: 3
            case ports: 4
            default: 5
            }
        }
    }

    /// The resource name, e.g. `cpus`, `mem`, or a custom name.
    package var name: String
    /// The amount.
    package var value: Value
    /// The role this resource is reserved for, or `nil` if it is unreserved.
    package var role: String?

    /// Creates a resource without validating it. A `role` of `"*"` (the Mesos spelling of
    /// "unreserved") is stored as `nil`.
    package init(name: String, value: Value, role: String? = nil) {
        self.name = name
        self.value = value
        self.role = role == ResourceRole.unreserved ? nil : role
    }

    /// Creates a resource from untrusted input, throwing ``KeelError/Code/invalidArgument``
    /// when ``validate()`` would.
    package init(validatingName name: String, value: Value, role: String? = nil) throws {
        self.init(name: name, value: value, role: role)
        try validate()
    }

    /// A scalar resource, e.g. `.scalar("cpus", 2)`.
    package static func scalar(_ name: String, _ amount: Double, role: String? = nil) -> Resource {
        Resource(name: name, value: .scalar(amount), role: role)
    }

    /// A ranges resource, e.g. `.ranges("ports", [31000...32000])`.
    package static func ranges(_ name: String, _ ranges: ValueRanges, role: String? = nil) -> Resource {
        Resource(name: name, value: .ranges(ranges), role: role)
    }

    /// A set resource, e.g. `.set("gpu_ids", ["gpu0", "gpu1"])`.
    package static func set(_ name: String, _ items: Set<String>, role: String? = nil) -> Resource {
        Resource(name: name, value: .set(items), role: role)
    }

    /// The kind of ``value``.
    package var kind: Kind { value.kind }

    /// Whether the resource is reserved for a role.
    package var isReserved: Bool { role != nil }

    /// Whether the resource amounts to nothing: a scalar that rounds to 0.000, or no ranges or
    /// set items. ``Resources`` never stores empty resources.
    package var isEmpty: Bool {
        switch value {
        case .scalar(let amount): FixedPoint.millis(amount) == 0
        case .ranges(let ranges): ranges.isEmpty
        case .set(let items): items.isEmpty
        }
    }

    /// The Mesos text form, e.g. `cpus:2`, `mem(analytics):1024`, `ports:[31000-32000]`,
    /// `gpu_ids:{gpu0,gpu1}` (set items sorted).
    package var description: String {
        let prefix = role.map { "\(name)(\($0))" } ?? name
        switch value {
        case .scalar(let amount):
            return "\(prefix):\(FixedPoint.format(amount))"
        case .ranges(let ranges):
            return "\(prefix):\(ranges)"
        case .set(let items):
            return "\(prefix):{\(items.sorted().joined(separator: ","))}"
        }
    }
}
