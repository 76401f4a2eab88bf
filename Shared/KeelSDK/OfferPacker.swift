public import KeelAPI
import SwiftProtobuf

/// What is left of one offer while tasks are placed on it; places ``ResourceRequest``s and
/// builds the resources for their `TaskInfo`s, with concrete ports.
///
/// Launch everything placed on one packer with one ``SchedulerSession/launch(_:on:refuseSeconds:)``
/// of its ``offer``: what no task takes is declined by that call.
public struct OfferPacker: Sendable {
    /// The offer being packed.
    public let offer: Keel_V1_Offer
    private var remaining: [Keel_V1_Resource]

    /// Starts with all of `offer`.
    public init(_ offer: Keel_V1_Offer) {
        self.offer = offer
        // Reserved resources first, so tasks use their reservations before the shared pool.
        self.remaining = offer.resources.filter { !$0.reservations.isEmpty } + offer.resources.filter { $0.reservations.isEmpty }
    }

    /// The resources not yet placed.
    public var unplaced: [Keel_V1_Resource] { remaining }

    /// Whether `request` fits in what is left.
    public func fits(_ request: ResourceRequest) -> Bool {
        var copy = self
        return (try? copy.place(request)) != nil
    }

    /// Takes what `request` needs from what is left.
    ///
    /// - Returns: the resources to put in the task's `TaskInfo` (each piece keeps the offered
    ///   resource's reservations and allocation), and the ports picked, lowest first.
    /// - Throws: ``SchedulerError`` ``SchedulerError/Code/insufficientResources`` naming what is
    ///   missing or the unmet constraint; nothing is taken then.
    public mutating func place(_ request: ResourceRequest) throws(SchedulerError) -> Placement {
        if let role = request.role, !offer.allocationInfo.role.isEmpty, offer.allocationInfo.role != role {
            throw insufficient("the offer is allocated to role '\(offer.allocationInfo.role)', not '\(role)'")
        }
        for constraint in request.constraints where !constraint.isSatisfied(by: offer.attributes) {
            throw insufficient("agent \(offer.hostname) does not satisfy \(constraint)")
        }
        var pool = remaining
        var taken: [Keel_V1_Resource] = []
        for (name, amount) in request.scalars {
            var needed = amount
            for index in pool.indices where needed > Self.epsilon {
                guard pool[index].name == name, pool[index].type == .scalar, usable(pool[index], for: request.role) else { continue }
                let part = min(pool[index].scalar.value, needed)
                guard part > Self.epsilon else { continue }
                pool[index].scalar.value -= part
                needed -= part
                var piece = pool[index]
                piece.scalar.value = part
                taken.append(piece)
            }
            if needed > Self.epsilon {
                throw insufficient("the offer lacks \(Self.format(needed)) \(name) of \(Self.format(amount))")
            }
        }
        var ports: [UInt64] = []
        if request.ports > 0 {
            for index in pool.indices where ports.count < request.ports {
                guard pool[index].name == "ports", pool[index].type == .ranges, usable(pool[index], for: request.role) else { continue }
                var picked: [UInt64] = []
                var left: [Keel_V1_Value.Range] = []
                for range in pool[index].ranges.range.sorted(by: { $0.begin < $1.begin }) {
                    let want = UInt64(request.ports - ports.count - picked.count)
                    let count = min(want, range.end - range.begin + 1)
                    if count > 0 { picked += (0..<count).map { range.begin + $0 } }
                    if range.begin + count <= range.end {
                        left.append(.with { $0.begin = range.begin + count; $0.end = range.end })
                    }
                }
                guard !picked.isEmpty else { continue }
                pool[index].ranges.range = left
                var piece = pool[index]
                piece.ranges.range = Self.ranges(picked)
                taken.append(piece)
                ports += picked
            }
            if ports.count < request.ports {
                throw insufficient("the offer has \(ports.count) free ports, \(request.ports) asked for")
            }
        }
        remaining = pool.filter { resource in
            switch resource.type {
            case .scalar: resource.scalar.value > Self.epsilon
            case .ranges: !resource.ranges.range.isEmpty
            default: true
            }
        }
        return Placement(resources: taken, ports: ports)
    }

    /// Whether a resource may serve a request for `role`.
    private func usable(_ resource: Keel_V1_Resource, for role: String?) -> Bool {
        guard let role else { return true }
        if resource.hasAllocationInfo, !resource.allocationInfo.role.isEmpty, resource.allocationInfo.role != role {
            return false
        }
        guard let reserved = resource.reservations.last?.role, !reserved.isEmpty, reserved != "*" else { return true }
        return reserved == role
    }

    private func insufficient(_ message: String) -> SchedulerError {
        SchedulerError(code: .insufficientResources, message: "\(message) (offer \(offer.id.value))")
    }

    private static let epsilon = 1e-6

    private static func format(_ value: Double) -> String {
        (value * 1000).rounded() == value.rounded() * 1000 ? "\(Int(value.rounded()))" : "\((value * 1000).rounded() / 1000)"
    }

    /// Sorted ports as the fewest closed ranges.
    private static func ranges(_ ports: [UInt64]) -> [Keel_V1_Value.Range] {
        var result: [Keel_V1_Value.Range] = []
        for port in ports.sorted() {
            if let last = result.last, last.end + 1 == port {
                result[result.count - 1].end = port
            } else {
                result.append(.with { $0.begin = port; $0.end = port })
            }
        }
        return result
    }
}

/// Where a ``ResourceRequest`` was placed in an offer.
public struct Placement: Sendable, Hashable {
    /// The resources for the task's `TaskInfo`.
    public var resources: [Keel_V1_Resource]
    /// The ports picked, lowest first (also in ``resources``).
    public var ports: [UInt64]
}

extension Keel_V1_Offer {
    /// Whether `request` fits in this whole offer.
    public func fits(_ request: ResourceRequest) -> Bool {
        OfferPacker(self).fits(request)
    }
}
