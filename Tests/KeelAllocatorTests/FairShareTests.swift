import KeelAllocator
import KeelCore
import Testing

@Suite("Weighted DRF")
struct FairShareTests {
    @Test("equal frameworks converge to equal dominant shares")
    func equalFrameworks() throws {
        var allocator = try Fixture.allocator(agents: 30, resources: Resources(cpus: 1, mem: 1024))
        for name in ["a", "b", "c"] {
            try allocator.addFramework(id: Fixture.framework(name), roles: ["web"], now: .zero)
        }
        let offers = allocator.allocate(now: .zero)
        #expect(offers.count == 30)
        let shares = try ["a", "b", "c"].map { try allocator.dominantShare(of: Fixture.framework($0)) }
        for share in shares { #expect(abs(share - 1.0 / 3.0) < 1e-9) }
    }

    @Test("weights 2:1 give shares 2:1")
    func weights() throws {
        var allocator = try Fixture.allocator(agents: 90, resources: Resources(cpus: 2, mem: 2048))
        try allocator.setWeight(role: "heavy", weight: 2)
        try allocator.addFramework(id: Fixture.framework("h"), roles: ["heavy"], now: .zero)
        try allocator.addFramework(id: Fixture.framework("l"), roles: ["light"], now: .zero)
        _ = allocator.allocate(now: .zero)
        let heavy = try allocator.dominantShare(of: Fixture.framework("h"))
        let light = try allocator.dominantShare(of: Fixture.framework("l"))
        #expect(abs(heavy / light - 2) < 0.05)
    }

    @Test("the role tree is sorted level by level")
    func hierarchy() throws {
        var allocator = try Fixture.allocator(agents: 40, resources: Resources(cpus: 1, mem: 1024))
        // eng has two sub-roles with one framework each; ops has one framework. At the top level
        // eng and ops split evenly; inside eng the two frameworks split eng's half.
        try allocator.addFramework(id: Fixture.framework("backend"), roles: ["eng/backend"], now: .zero)
        try allocator.addFramework(id: Fixture.framework("frontend"), roles: ["eng/frontend"], now: .zero)
        try allocator.addFramework(id: Fixture.framework("ops"), roles: ["ops"], now: .zero)
        _ = allocator.allocate(now: .zero)
        #expect(allocator.allocatedVector(role: "eng").cpus == 20_000)
        #expect(allocator.allocatedVector(role: "ops").cpus == 20_000)
        #expect(allocator.allocatedVector(role: "eng/backend").cpus == 10_000)
    }

    @Test("offers are made per framework, agent and role, and not below the minimum")
    func minimumAllocatable() throws {
        var allocator = try Fixture.allocator(agents: 1, resources: Resources(cpus: 0.005, mem: 16, disk: 100))
        try allocator.addFramework(id: Fixture.framework("a"), roles: ["r"], now: .zero)
        #expect(allocator.allocate(now: .zero).isEmpty)
        let reasons = try allocator.explain(framework: Fixture.framework("a"), agent: Fixture.agent(0), now: .zero)
        #expect(reasons == [.insufficient(role: "r", dimensions: [.cpus, .mem])])
    }

    @Test("a framework in several roles is offered in each")
    func multipleRoles() throws {
        var allocator = try Fixture.allocator(agents: 4, resources: Resources(cpus: 1, mem: 1024))
        try allocator.addFramework(id: Fixture.framework("multi"), roles: ["x", "y"], now: .zero)
        try allocator.addFramework(id: Fixture.framework("solo"), roles: ["x"], now: .zero)
        let offers = allocator.allocate(now: .zero)
        #expect(Set(offers.filter { $0.framework == Fixture.framework("multi") }.map(\.role)) == ["x", "y"])
    }
}
