import KeelAllocator
import KeelCore
import Testing

/// Changing a framework's roles while it runs (Mesos' UPDATE_FRAMEWORK).
@Suite("Updating a framework's roles")
struct UpdateFrameworkTests {
    @Test("a framework offered for its old role is offered for its new role after the update")
    func newRoleGetsOffers() throws {
        var allocator = try Fixture.allocator(agents: 2, resources: Resources(cpus: 2, mem: 2048))
        let framework = Fixture.framework("f")
        try allocator.addFramework(id: framework, roles: ["old"], now: .zero)
        let first = allocator.allocate(now: .zero)
        #expect(Set(first.map(\.role)) == ["old"])
        try Fixture.declineAll(first, in: &allocator)
        try allocator.updateFramework(id: framework, roles: ["new"])
        let second = allocator.allocate(now: .zero)
        #expect(second.count == 2)
        #expect(Set(second.map(\.role)) == ["new"])
        #expect(allocator.allocatedVector(role: "old").isZero)
    }

    @Test("what a framework holds in a role it left keeps counting there until it comes back, and is not offered again")
    func leftRoleIsTracked() throws {
        var allocator = try Fixture.allocator(agents: 1, resources: Resources(cpus: 4, mem: 4096))
        let framework = Fixture.framework("f")
        try allocator.addFramework(id: framework, roles: ["a"], now: .zero)
        let held = Resources(cpus: 1, mem: 1024)
        try allocator.allocate(framework: framework, agent: Fixture.agent(0), resources: held)
        try allocator.updateFramework(id: framework, roles: ["b"])
        #expect(allocator.allocatedVector(role: "a") == ScalarVector(held))
        let offers = allocator.allocate(now: .zero)
        #expect(offers.map(\.role) == ["b"])
        try Fixture.declineAll(offers, in: &allocator)

        // Once the task ends, role a is empty and the framework is gone from it.
        try allocator.recoverResources(framework: framework, agent: Fixture.agent(0), resources: held)
        #expect(allocator.allocatedVector(role: "a").isZero)
        let afterwards = allocator.allocate(now: .zero)
        #expect(afterwards.map(\.role) == ["b"])
        #expect(afterwards.first.map { ScalarVector($0.resources) } == ScalarVector(Resources(cpus: 4, mem: 4096)))
    }

    @Test("bad role lists are refused and change nothing")
    func badRoles() throws {
        var allocator = try Fixture.allocator(agents: 1, resources: Resources(cpus: 1, mem: 1024))
        let framework = Fixture.framework("f")
        try allocator.addFramework(id: framework, roles: ["a"], now: .zero)
        expectInvalidArgument { try allocator.updateFramework(id: framework, roles: []) }
        expectInvalidArgument { try allocator.updateFramework(id: framework, roles: ["b", "b"]) }
        expectInvalidArgument { try allocator.updateFramework(id: framework, roles: ["b", "/bad"]) }
        #expect(allocator.allocate(now: .zero).map(\.role) == ["a"])
    }
}
