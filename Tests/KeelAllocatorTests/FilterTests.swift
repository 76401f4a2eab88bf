import KeelAllocator
import KeelCore
import Testing

@Suite("Filters, suppression and explanations")
struct FilterTests {
    @Test("declined resources are not re-offered inside the filter, and are after it")
    func declineFilter() throws {
        var allocator = try Fixture.allocator(agents: 3, resources: Resources(cpus: 2, mem: 2048))
        let framework = Fixture.framework("f")
        try allocator.addFramework(id: framework, roles: ["r"], now: .zero)
        let first = allocator.allocate(now: .zero)
        #expect(first.count == 3)
        try Fixture.declineAll(first, in: &allocator, until: .seconds(10))
        #expect(allocator.allocate(now: .seconds(5)).isEmpty)
        let reasons = try allocator.explain(framework: framework, agent: Fixture.agent(0), now: .seconds(5))
        #expect(reasons == [.filtered(until: .seconds(10))])
        let later = allocator.allocate(now: .seconds(10))
        #expect(later.count == 3)
    }

    @Test("a filter does not stop other frameworks, nor resources beyond the declined ones")
    func filterScope() throws {
        var allocator = try Fixture.allocator(agents: 1, resources: Resources(cpus: 4, mem: 4096))
        try allocator.addFramework(id: Fixture.framework("a"), roles: ["r"], now: .zero)
        let offers = allocator.allocate(now: .zero)
        let part = Resources(cpus: 1, mem: 1024)
        // a keeps 3 cpus and declines 1 with a long filter: the 1 cpu is not offered back to a...
        try allocator.recoverResources(
            framework: Fixture.framework("a"), agent: Fixture.agent(0), resources: part, filterUntil: .distantFuture)
        #expect(offers.count == 1)
        #expect(allocator.allocate(now: .seconds(1)).isEmpty)
        // ...but is to b,
        try allocator.addFramework(id: Fixture.framework("b"), roles: ["r"], now: .zero)
        let toB = allocator.allocate(now: .seconds(2))
        #expect(toB.map(\.framework) == [Fixture.framework("b")])
        // and once more than the declined part is free, a is offered again.
        try Fixture.declineAll(toB, in: &allocator)
        try allocator.removeFramework(id: Fixture.framework("b"))
        try allocator.recoverResources(
            framework: Fixture.framework("a"), agent: Fixture.agent(0), resources: part)
        #expect(allocator.allocate(now: .seconds(3)).map(\.framework) == [Fixture.framework("a")])
    }

    @Test("suppress stops offers and revive restores them")
    func suppressRevive() throws {
        var allocator = try Fixture.allocator(agents: 2, resources: Resources(cpus: 1, mem: 1024))
        let framework = Fixture.framework("f")
        try allocator.addFramework(id: framework, roles: ["r"], now: .zero)
        try allocator.suppress(framework: framework)
        #expect(allocator.allocate(now: .zero).isEmpty)
        let reasons = try allocator.explain(framework: framework, agent: Fixture.agent(1), now: .zero)
        #expect(reasons == [.suppressed(role: "r")])
        try allocator.revive(framework: framework, roles: ["r"])
        #expect(allocator.allocate(now: .zero).count == 2)
        expectInvalidArgument { try allocator.suppress(framework: framework, roles: ["other"]) }
    }

    @Test("inactive frameworks and draining agents get and give no offers")
    func inactive() throws {
        var allocator = try Fixture.allocator(agents: 2, resources: Resources(cpus: 1, mem: 1024))
        let framework = Fixture.framework("f")
        try allocator.addFramework(id: framework, roles: ["r"], now: .zero)
        try allocator.deactivateFramework(id: framework)
        #expect(allocator.allocate(now: .zero).isEmpty)
        #expect(try allocator.explain(framework: framework, agent: Fixture.agent(0), now: .zero) == [.frameworkInactive])
        try allocator.activateFramework(id: framework)
        try allocator.deactivateAgent(id: Fixture.agent(0))
        #expect(allocator.allocate(now: .zero).map(\.agent) == [Fixture.agent(1)])
        #expect(try allocator.explain(framework: framework, agent: Fixture.agent(0), now: .zero) == [.agentDraining])
        try allocator.activateAgent(id: Fixture.agent(0))
        #expect(allocator.allocate(now: .zero).map(\.agent) == [Fixture.agent(0)])
    }

    @Test("recovering what was not allocated fails and changes nothing")
    func badRecovery() throws {
        var allocator = try Fixture.allocator(agents: 1, resources: Resources(cpus: 1, mem: 1024))
        try allocator.addFramework(id: Fixture.framework("f"), roles: ["r"], now: .zero)
        let before = try allocator.usage(of: Fixture.agent(0))
        #expect(throws: KeelError.self) {
            try allocator.recoverResources(
                framework: Fixture.framework("f"), agent: Fixture.agent(0), resources: Resources(cpus: 1))
        }
        #expect(try allocator.usage(of: Fixture.agent(0)) == before)
    }
}
