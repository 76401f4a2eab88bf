package import KeelAPI
package import KeelCore
import SwiftProtobuf

extension Resources {
    /// Converts resources from the wire, validating each one.
    ///
    /// - Throws: `KeelError` `.invalidArgument` naming the resource and what is wrong with it
    ///   (type without a value, negative or non-finite scalar, inverted or overlapping ranges).
    package init(proto: [Keel_V1_Resource]) throws {
        try self.init(validating: proto.map { try Resource(proto: $0) })
    }

    /// These resources in wire form, one message per resource.
    package var proto: [Keel_V1_Resource] {
        map(\.proto)
    }
}

extension Resource {
    /// Converts one resource from the wire; the innermost reservation's role becomes `role`.
    package init(proto: Keel_V1_Resource) throws {
        let value: Value
        switch proto.type {
        case .scalar:
            value = .scalar(proto.scalar.value)
        case .ranges:
            let bounds = proto.ranges.range.map { (begin: $0.begin, end: $0.end) }
            value = .ranges(try ValueRanges(validating: bounds, for: proto.name))
        case .set:
            value = .set(Set(proto.set.item))
        case .text, .unspecified, .UNRECOGNIZED:
            throw KeelError.invalidArgument(
                "resource '\(proto.name)' has type \(proto.type); resources must be SCALAR, RANGES or SET"
            )
        }
        let role = proto.reservations.last.map(\.role).flatMap { $0.isEmpty || $0 == ResourceRole.unreserved ? nil : $0 }
        self.init(name: proto.name, value: value, role: role)
        try validate()
    }

    /// This resource in wire form.
    package var proto: Keel_V1_Resource {
        var message = Keel_V1_Resource()
        message.name = name
        switch value {
        case .scalar(let amount):
            message.type = .scalar
            message.scalar.value = amount
        case .ranges(let ranges):
            message.type = .ranges
            message.ranges.range = ranges.ranges.map { range in
                Keel_V1_Value.Range.with {
                    $0.begin = range.lowerBound
                    $0.end = range.upperBound
                }
            }
        case .set(let items):
            message.type = .set
            message.set.item = items.sorted()
        }
        if let role {
            message.reservations = [.with {
                $0.type = .static
                $0.role = role
            }]
        }
        return message
    }
}
