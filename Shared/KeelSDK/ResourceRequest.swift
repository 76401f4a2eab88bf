import Foundation
public import KeelAPI

/// What one task needs from an offer: scalar resources, a number of ports, the role to use, and
/// constraints on the agent's attributes.
///
/// ```swift
/// let request = ResourceRequest(cpus: 0.5, mem: 256, ports: 2, constraints: [try .init(parsing: "rack == r1")])
/// if let offer = request.firstFit(in: offers) {
///     var packer = OfferPacker(offer)
///     let placement = try packer.place(request)
///     let task = Keel_V1_TaskInfo.with {
///         $0.taskID.value = "web-1"; $0.agentID = offer.agentID
///         $0.resources = placement.resources          // includes ports:[31000-31001]
///         $0.command.argv.args = ["serve", "--port", "\(placement.ports[0])"]
///     }
/// }
/// ```
public struct ResourceRequest: Sendable, Hashable {
    /// CPUs (fractions allowed).
    public var cpus: Double
    /// Memory in MiB.
    public var mem: Double
    /// Disk in MiB.
    public var disk: Double
    /// GPUs.
    public var gpus: Double
    /// How many ports, picked from the offered `ports` ranges.
    public var ports: Int
    /// Use only resources allocated to this role (the offer's allocation role), and of those
    /// reserved ones only if reserved for it; nil takes whatever the offer holds.
    public var role: String?
    /// Constraints the offer's agent attributes must all satisfy.
    public var constraints: [AttributeConstraint]

    /// Creates a request.
    public init(
        cpus: Double, mem: Double, disk: Double = 0, gpus: Double = 0, ports: Int = 0, role: String? = nil,
        constraints: [AttributeConstraint] = []
    ) {
        self.cpus = cpus
        self.mem = mem
        self.disk = disk
        self.gpus = gpus
        self.ports = ports
        self.role = role
        self.constraints = constraints
    }

    /// The scalar resources asked for, by name, leaving out zeros.
    var scalars: [(name: String, amount: Double)] {
        [("cpus", cpus), ("mem", mem), ("disk", disk), ("gpus", gpus)].filter { $0.1 > 0 }
    }

    /// The first of `offers` this request fits.
    public func firstFit(in offers: [Keel_V1_Offer]) -> Keel_V1_Offer? {
        offers.first { OfferPacker($0).fits(self) }
    }
}

/// A constraint on an agent attribute, such as `rack == r1` or `zone != b`.
///
/// A text attribute compares as text, a scalar numerically, a set by membership (`==` holds when
/// the set contains the value), ranges by containing the number. An agent without the attribute
/// satisfies `!=` and not `==`.
public struct AttributeConstraint: Sendable, Hashable, CustomStringConvertible {
    /// How the attribute is compared with the value.
    public enum Comparison: String, Sendable, Hashable {
        /// The attribute has the value.
        case equals = "=="
        /// The attribute is missing or does not have the value.
        case notEquals = "!="
    }

    /// The attribute's name.
    public var attribute: String
    /// The comparison.
    public var comparison: Comparison
    /// The value compared with.
    public var value: String

    /// Creates a constraint.
    public init(_ attribute: String, _ comparison: Comparison, _ value: String) {
        self.attribute = attribute
        self.comparison = comparison
        self.value = value
    }

    /// Parses `name == value` or `name != value` (spaces optional).
    ///
    /// - Throws: ``SchedulerError`` ``SchedulerError/Code/invalidConstraint``.
    public init(parsing text: String) throws(SchedulerError) {
        for comparison in [Comparison.notEquals, .equals] {
            guard let range = text.range(of: comparison.rawValue) else { continue }
            let name = text[..<range.lowerBound].trimmingSpaces
            let value = text[range.upperBound...].trimmingSpaces
            guard !name.isEmpty, !value.isEmpty, !value.contains("=") else { break }
            self.init(name, comparison, value)
            return
        }
        throw SchedulerError(
            code: .invalidConstraint,
            message: "'\(text)' is not a constraint; write attribute == value or attribute != value (e.g. rack == r1)"
        )
    }

    public var description: String { "\(attribute) \(comparison.rawValue) \(value)" }

    /// Whether `attributes` (an offer's) satisfy this constraint.
    public func isSatisfied(by attributes: [Keel_V1_Attribute]) -> Bool {
        let matches = attributes.contains { $0.name == attribute && Self.has($0, value) }
        return comparison == .equals ? matches : !matches
    }

    private static func has(_ attribute: Keel_V1_Attribute, _ value: String) -> Bool {
        switch attribute.type {
        case .text: return attribute.text.value == value
        case .scalar: return Double(value).map { abs($0 - attribute.scalar.value) < 1e-9 } ?? false
        case .set: return attribute.set.item.contains(value)
        case .ranges:
            guard let number = UInt64(value) else { return false }
            return attribute.ranges.range.contains { $0.begin <= number && number <= $0.end }
        case .unspecified, .UNRECOGNIZED: return attribute.text.value == value
        }
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
