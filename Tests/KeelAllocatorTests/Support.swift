import KeelAllocator
import KeelCore
import Testing

/// A small deterministic random number generator (SplitMix64) for property-style tests.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    /// A generator whose sequence is fixed by `seed`.
    init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Shorthands for building test scenarios.
enum Fixture {
    static func agent(_ index: Int) -> AgentID { AgentID("agent-\(index)") }
    static func framework(_ name: String) -> FrameworkID { FrameworkID(name) }

    /// An allocator with `count` agents of `resources` each.
    static func allocator(agents count: Int, resources: Resources) throws -> Allocator {
        var allocator = Allocator()
        for index in 0..<count {
            try allocator.addAgent(id: agent(index), total: resources, now: .zero)
        }
        return allocator
    }

    /// Sums the scalar amounts of `offers` by framework.
    static func totals(_ offers: [Offer]) -> [FrameworkID: ScalarVector] {
        var result: [FrameworkID: ScalarVector] = [:]
        for offer in offers { result[offer.framework, default: .zero] += ScalarVector(offer.resources) }
        return result
    }

    /// Declines every offer (recovering it), with a filter ending at `until` if given.
    static func declineAll(_ offers: [Offer], in allocator: inout Allocator, until: Instant? = nil) throws {
        for offer in offers {
            try allocator.recoverResources(
                framework: offer.framework, agent: offer.agent, resources: offer.resources, filterUntil: until)
        }
    }
}

/// Records an issue unless `body` throws a ``KeelError`` with code `invalidArgument`.
func expectInvalidArgument(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        try body()
        Issue.record("expected an invalidArgument error", sourceLocation: sourceLocation)
    } catch let error as KeelError {
        #expect(error.code == .invalidArgument, sourceLocation: sourceLocation)
        #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}
