package import KeelCore

/// The four resource kinds that weighted DRF shares and quota are computed over.
package enum Dimension: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// CPUs.
    case cpus
    /// Memory in MiB.
    case mem
    /// Disk in MiB.
    case disk
    /// Whole GPUs.
    case gpus

    /// The resource name, e.g. `cpus`.
    package var description: String {
        switch self {
        case .cpus: Resource.Name.cpus
        case .mem: Resource.Name.mem
        case .disk: Resource.Name.disk
        case .gpus: Resource.Name.gpus
        }
    }

    /// The dimension for a resource name, if it is one of the four.
    package init?(name: String) {
        switch name {
        case Resource.Name.cpus: self = .cpus
        case Resource.Name.mem: self = .mem
        case Resource.Name.disk: self = .disk
        case Resource.Name.gpus: self = .gpus
        default: return nil
        }
    }
}

/// Amounts of cpus, mem, disk and gpus in thousandths (the same fixed point as ``Resources``),
/// without allocation: the allocator's share and quota bookkeeping runs on these instead of on
/// ``Resources`` arithmetic.
package struct ScalarVector: Hashable, Sendable, CustomStringConvertible {
    /// Thousandths of cpus, mem, disk, gpus, in ``Dimension`` order.
    package var cpus: Int64, mem: Int64, disk: Int64, gpus: Int64

    /// The given amounts in thousandths.
    package init(cpus: Int64 = 0, mem: Int64 = 0, disk: Int64 = 0, gpus: Int64 = 0) {
        self.cpus = cpus
        self.mem = mem
        self.disk = disk
        self.gpus = gpus
    }

    /// All zero.
    package static let zero = ScalarVector()
    /// No bound in any dimension (used for "no limit").
    package static let unlimited = ScalarVector(cpus: .max, mem: .max, disk: .max, gpus: .max)

    /// The scalar amounts of `resources` (all roles, or only unreserved ones).
    package init(_ resources: Resources, unreservedOnly: Bool = false) {
        self.init()
        for resource in resources {
            guard case .scalar(let amount) = resource.value else { continue }
            if unreservedOnly && resource.role != nil { continue }
            guard let dimension = Dimension(name: resource.name) else { continue }
            self[dimension] &+= Self.millis(amount)
        }
    }

    /// The amount in one dimension, in thousandths.
    package subscript(dimension: Dimension) -> Int64 {
        get {
            switch dimension {
            case .cpus: cpus
            case .mem: mem
            case .disk: disk
            case .gpus: gpus
            }
        }
        set {
            switch dimension {
            case .cpus: cpus = newValue
            case .mem: mem = newValue
            case .disk: disk = newValue
            case .gpus: gpus = newValue
            }
        }
    }

    /// Whether every dimension is zero.
    package var isZero: Bool { cpus == 0 && mem == 0 && disk == 0 && gpus == 0 }

    /// Element-wise sum (saturating at `Int64.max`).
    package static func + (lhs: ScalarVector, rhs: ScalarVector) -> ScalarVector {
        lhs.combined(with: rhs) { a, b in
            let (sum, overflow) = a.addingReportingOverflow(b)
            return overflow ? .max : sum
        }
    }

    /// Element-wise difference, saturating at zero (and leaving `.max` "unlimited" entries alone).
    package static func - (lhs: ScalarVector, rhs: ScalarVector) -> ScalarVector {
        lhs.combined(with: rhs) { a, b in a == .max ? .max : Swift.max(0, a &- b) }
    }

    /// Adds `rhs` in place; see `+`.
    package static func += (lhs: inout ScalarVector, rhs: ScalarVector) { lhs = lhs + rhs }
    /// Subtracts `rhs` in place; see `-`.
    package static func -= (lhs: inout ScalarVector, rhs: ScalarVector) { lhs = lhs - rhs }

    /// Element-wise minimum.
    package func minimum(_ other: ScalarVector) -> ScalarVector {
        combined(with: other) { Swift.min($0, $1) }
    }

    /// Whether every dimension is at most the same dimension of `other`.
    package func isAtMost(_ other: ScalarVector) -> Bool {
        cpus <= other.cpus && mem <= other.mem && disk <= other.disk && gpus <= other.gpus
    }

    /// The DRF dominant share: the largest of amount/total over dimensions whose total is positive.
    package func dominantShare(of total: ScalarVector) -> Double {
        var share = 0.0
        for dimension in Dimension.allCases where total[dimension] > 0 {
            share = Swift.max(share, Double(self[dimension]) / Double(total[dimension]))
        }
        return share
    }

    /// The dimensions that are non-zero.
    package var nonZeroDimensions: [Dimension] { Dimension.allCases.filter { self[$0] != 0 } }

    /// e.g. `cpus:2;mem:1024` (zero dimensions omitted, unlimited ones written `inf`).
    package var description: String {
        Dimension.allCases.filter { self[$0] != 0 }.map { dimension in
            let value = self[dimension]
            return "\(dimension):\(value == .max ? "inf" : Self.format(value))"
        }.joined(separator: ";")
    }

    /// A `Double` amount in thousandths, rounded like ``Resources``.
    package static func millis(_ value: Double) -> Int64 {
        guard value.isFinite else { return value > 0 ? .max : 0 }
        let scaled = (value * 1000).rounded(.toNearestOrAwayFromZero)
        if scaled >= 9.2e18 { return .max }
        return Int64(scaled)
    }

    /// Thousandths as a `Double` amount.
    package static func value(_ millis: Int64) -> Double { Double(millis) / 1000 }

    private static func format(_ millis: Int64) -> String {
        millis % 1000 == 0 ? "\(millis / 1000)" : "\(Double(millis) / 1000)"
    }

    private func combined(with other: ScalarVector, _ op: (Int64, Int64) -> Int64) -> ScalarVector {
        ScalarVector(
            cpus: op(cpus, other.cpus), mem: op(mem, other.mem), disk: op(disk, other.disk),
            gpus: op(gpus, other.gpus))
    }
}
