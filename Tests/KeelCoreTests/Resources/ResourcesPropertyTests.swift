import KeelCore
import Testing

/// Property-style tests over random resource bags drawn from a seeded generator.
/// Every test runs `iterations` cases; a failure message names the seed that reproduces it.
@Suite("Resources properties")
struct ResourcesPropertyTests {
    static let iterations: UInt64 = 300

    static let scalarNames = ["cpus", "mem", "disk", "gpus", "custom_scalar"]
    static let rangeNames = ["ports", "custom_ranges"]
    static let setNames = ["devices"]
    static let roles: [String?] = [nil, "a", "a/b", "c"]

    /// A random bag. With a `partition`, range values and set items come from a region reserved
    /// for that partition, so bags from different partitions share no range values or set items.
    static func randomResources(_ generator: inout SeededGenerator, partition: Int? = nil) -> Resources {
        var list: [Resource] = []
        for _ in 0..<Int.random(in: 0...6, using: &generator) {
            let role = roles.randomElement(using: &generator)!
            let part = UInt64(partition ?? Int.random(in: 0...1, using: &generator))
            switch Int.random(in: 0..<3, using: &generator) {
            case 0:
                let name = scalarNames.randomElement(using: &generator)!
                let millis = Int.random(in: 0...50_000, using: &generator)
                list.append(.scalar(name, Double(millis) / 1000, role: role))
            case 1:
                let name = rangeNames.randomElement(using: &generator)!
                var ranges: [ClosedRange<UInt64>] = []
                for _ in 0..<Int.random(in: 1...3, using: &generator) {
                    let begin = part * 1000 + UInt64.random(in: 0...900, using: &generator)
                    ranges.append(begin...(begin + UInt64.random(in: 0...99, using: &generator)))
                }
                list.append(.ranges(name, ValueRanges(ranges), role: role))
            default:
                let items = (0..<Int.random(in: 1...3, using: &generator)).map { _ in
                    "p\(part)-item\(Int.random(in: 0..<8, using: &generator))"
                }
                list.append(.set(setNames[0], Set(items), role: role))
            }
        }
        return Resources(list)
    }

    static func forEachCase(_ body: (UInt64, inout SeededGenerator) throws -> Void) rethrows {
        for seed in 1...iterations {
            var generator = SeededGenerator(seed: seed)
            try body(seed, &generator)
        }
    }

    @Test func addThenSubtractIsIdentityForDisjointBags() throws {
        try Self.forEachCase { seed, generator in
            let a = Self.randomResources(&generator, partition: 0)
            let b = Self.randomResources(&generator, partition: 1)
            let sum = a + b
            let saturated = sum - b
            #expect(saturated == a, "seed \(seed): (\(a) + \(b)) - \(b) = \(saturated)")
            let checked = try sum.subtracting(b)
            #expect(checked == a, "seed \(seed)")
        }
    }

    @Test func sumContainsBothOperands() {
        Self.forEachCase { seed, generator in
            let a = Self.randomResources(&generator)
            let b = Self.randomResources(&generator)
            let sum = a + b
            #expect(sum.contains(a), "seed \(seed): \(sum) should contain \(a)")
            #expect(sum.contains(b), "seed \(seed): \(sum) should contain \(b)")
        }
    }

    @Test func containsIsReflexiveAndEmptyIsContained() {
        Self.forEachCase { seed, generator in
            let a = Self.randomResources(&generator)
            #expect(a.contains(a), "seed \(seed): \(a)")
            #expect(a.contains(Resources()), "seed \(seed)")
            #expect((a - a).isEmpty, "seed \(seed)")
        }
    }

    @Test func additionIsCommutativeAndAssociative() {
        Self.forEachCase { seed, generator in
            let a = Self.randomResources(&generator)
            let b = Self.randomResources(&generator)
            let c = Self.randomResources(&generator)
            #expect(a + b == b + a, "seed \(seed)")
            #expect((a + b) + c == a + (b + c), "seed \(seed)")
        }
    }

    @Test func containsAgreesWithSaturatingSubtraction() {
        var containedCases = 0
        Self.forEachCase { seed, generator in
            let a = Self.randomResources(&generator)
            let b = Self.randomResources(&generator)
            let missing = b - a
            #expect(a.contains(b) == missing.isEmpty, "seed \(seed): a=\(a) b=\(b)")
            if a.contains(b) && !b.isEmpty { containedCases += 1 }
        }
        // The generator must exercise both outcomes for this property to mean anything.
        #expect(containedCases > 0)
        #expect(containedCases < Int(Self.iterations))
    }

    @Test func subtractingContainedPartAndAddingItBackRestores() throws {
        try Self.forEachCase { seed, generator in
            let a = Self.randomResources(&generator)
            let b = Self.randomResources(&generator)
            // `a - (a - b)` is the part of `b` that `a` holds, so it is always contained.
            let part = a - (a - b)
            #expect(a.contains(part), "seed \(seed)")
            let rest = try a.subtracting(part)
            #expect(rest + part == a, "seed \(seed): a=\(a) part=\(part)")
            if !a.contains(b) {
                #expect(throws: KeelError.self) { try a.subtracting(b) }
            }
        }
    }

    @Test func differenceIsContainedInMinuend() {
        Self.forEachCase { seed, generator in
            let a = Self.randomResources(&generator)
            let b = Self.randomResources(&generator)
            #expect(a.contains(a - b), "seed \(seed)")
        }
    }

    @Test func textFormRoundTrips() throws {
        try Self.forEachCase { seed, generator in
            let a = Self.randomResources(&generator)
            let reparsed = try Resources(parsing: a.description)
            #expect(reparsed == a, "seed \(seed): \(a)")
        }
    }

    @Test func resultsStayNormalized() {
        Self.forEachCase { seed, generator in
            let a = Self.randomResources(&generator)
            let b = Self.randomResources(&generator)
            for result in [a + b, a - b] {
                let rebuilt = Resources(Array(result))
                #expect(rebuilt == result, "seed \(seed)")
                let keys = result.map { "\($0.name)|\($0.kind)|\($0.role ?? "*")" }
                #expect(Set(keys).count == keys.count, "seed \(seed): duplicate keys in \(result)")
                let emptyEntries = result.filter(\.isEmpty)
                #expect(emptyEntries.isEmpty, "seed \(seed)")
            }
        }
    }
}
