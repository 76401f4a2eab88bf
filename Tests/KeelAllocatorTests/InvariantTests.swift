import KeelAllocator
import KeelCore
import Testing

@Suite("Invariants under random operation sequences")
struct InvariantTests {
    /// The state a random run keeps next to the allocator: outstanding offers.
    struct Run {
        var allocator = Allocator()
        var generator: SeededGenerator
        var outstanding: [Offer] = []
        var nextAgent = 0
        var nextFramework = 0
        var now = Instant.zero
        let roleNames = ["a", "b", "a/x", "quota", "res"]

        init(seed: UInt64) { generator = SeededGenerator(seed: seed) }

        mutating func randomResources() -> Resources {
            let cpus = Double(Int.random(in: 1...8, using: &generator))
            let mem = Double(Int.random(in: 1...16, using: &generator)) * 256
            var total = Resources(cpus: cpus, mem: mem, disk: 1024, ports: [31000...31009])
            if Bool.random(using: &generator) { total += Resources(cpus: 1, mem: 512, role: "res") }
            return total
        }

        /// One random operation; errors the allocator reports for valid-but-refused input are fine.
        mutating func step() throws {
            now = now.advanced(bySeconds: 1)
            let agents = allocator.agentIDs
            let frameworks = allocator.frameworkIDs
            switch Int.random(in: 0..<10, using: &generator) {
            case 0:
                try allocator.addAgent(id: Fixture.agent(nextAgent), total: randomResources(), now: now)
                nextAgent += 1
            case 1:
                let roles = Array(roleNames.shuffled(using: &generator).prefix(Int.random(in: 1...2, using: &generator)))
                try allocator.addFramework(id: Fixture.framework("f\(nextFramework)"), roles: roles, now: now)
                nextFramework += 1
            case 2 where !agents.isEmpty:
                let agent = agents.randomElement(using: &generator)!
                try allocator.removeAgent(id: agent)
                outstanding.removeAll { $0.agent == agent }
            case 3 where !frameworks.isEmpty:
                let framework = frameworks.randomElement(using: &generator)!
                try allocator.removeFramework(id: framework)
                outstanding.removeAll { $0.framework == framework }
            case 4 where !outstanding.isEmpty:
                let offer = outstanding.remove(at: Int.random(in: 0..<outstanding.count, using: &generator))
                let until: Instant? = Bool.random(using: &generator) ? now.advanced(bySeconds: 3) : nil
                try allocator.recoverResources(
                    framework: offer.framework, agent: offer.agent, resources: offer.resources, filterUntil: until)
            case 5 where !agents.isEmpty:
                let agent = agents.randomElement(using: &generator)!
                let usage = try allocator.usage(of: agent)
                try allocator.updateAgent(id: agent, total: usage.total + Resources(cpus: 1, mem: 128))
            case 6 where !frameworks.isEmpty:
                let framework = frameworks.randomElement(using: &generator)!
                if Bool.random(using: &generator) { try allocator.suppress(framework: framework) } else {
                    try allocator.revive(framework: framework)
                }
            case 7 where !agents.isEmpty:
                let agent = agents.randomElement(using: &generator)!
                if Bool.random(using: &generator) { try allocator.deactivateAgent(id: agent) } else {
                    try allocator.activateAgent(id: agent)
                }
            default:
                outstanding += allocator.allocate(now: now)
            }
        }

        /// Checks the bookkeeping of every agent.
        func check() throws {
            for agent in allocator.agentIDs {
                let usage = try allocator.usage(of: agent)
                #expect(usage.allocated + usage.free == usage.total)
                #expect(usage.total.contains(usage.allocated))
                var held = Resources()
                for framework in allocator.frameworkIDs {
                    held += try allocator.allocation(of: framework, on: agent)
                }
                #expect(held == usage.allocated)
                let offered = outstanding.filter { $0.agent == agent }.reduce(Resources()) { $0 + $1.resources }
                #expect(usage.allocated.contains(offered))
            }
            let quota = allocator.allocatedVector(role: "quota")
            #expect(quota.cpus <= 10_000 && quota.mem <= 4_096_000)
        }
    }

    @Test("no agent is over-allocated and allocated + free == total", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func bookkeeping(seed: UInt64) throws {
        var run = Run(seed: seed)
        try run.allocator.setQuota(role: "quota", guarantee: Resources(cpus: 4), limit: Resources(cpus: 10, mem: 4096))
        try run.allocator.setWeight(role: "b", weight: 3)
        for _ in 0..<300 {
            try run.step()
            try run.check()
        }
    }

    @Test("reserved resources are only offered to their role or its sub-roles", arguments: [7, 8] as [UInt64])
    func reservedOnlyToRole(seed: UInt64) throws {
        var run = Run(seed: seed)
        for _ in 0..<300 {
            try run.step()
            for offer in run.outstanding {
                for role in offer.resources.roles {
                    #expect(offer.role == role || offer.role.hasPrefix(role + "/"))
                }
            }
        }
    }
}
