public import KeelAPI

extension Keel_V1_Offer {
    /// The total of the offer's scalar resource `name` (e.g. "cpus", "mem").
    public func scalar(_ name: String) -> Double {
        resources.filter { $0.name == name && $0.type == .scalar }.reduce(0) { $0 + $1.scalar.value }
    }

    /// The offered port ranges.
    public var portRanges: [ClosedRange<UInt64>] {
        resources.filter { $0.name == "ports" && $0.type == .ranges }.flatMap { resource in
            resource.ranges.range.map { $0.begin...$0.end }
        }
    }

    /// Whether the offer has at least `cpus` CPUs and `mem` MiB of memory.
    public func fits(cpus: Double, mem: Double) -> Bool {
        scalar("cpus") + 1e-9 >= cpus && scalar("mem") + 1e-9 >= mem
    }
}

extension Keel_V1_Resource {
    /// A scalar resource, e.g. `.scalar("cpus", 0.5)`.
    public static func scalar(_ name: String, _ value: Double) -> Keel_V1_Resource {
        var resource = Keel_V1_Resource()
        resource.name = name
        resource.type = .scalar
        resource.scalar.value = value
        return resource
    }

    /// A ranges resource, e.g. `.ranges("ports", [31000...31000])`.
    public static func ranges(_ name: String, _ ranges: [ClosedRange<UInt64>]) -> Keel_V1_Resource {
        var resource = Keel_V1_Resource()
        resource.name = name
        resource.type = .ranges
        resource.ranges.range = ranges.map { range in
            var value = Keel_V1_Value.Range()
            value.begin = range.lowerBound
            value.end = range.upperBound
            return value
        }
        return resource
    }
}
