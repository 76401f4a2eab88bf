import KeelAllocator
import KeelCore
import Testing

@Suite("Quota, weights and reservations")
struct QuotaTests {
    @Test("guarantees are met before fair share")
    func guaranteesFirst() throws {
        var allocator = try Fixture.allocator(agents: 20, resources: Resources(cpus: 1, mem: 512))
        try allocator.addFramework(id: Fixture.framework("best-effort"), roles: ["batch"], now: .zero)
        try allocator.addFramework(id: Fixture.framework("prod"), roles: ["prod"], now: .zero)
        try allocator.setQuota(role: "prod", guarantee: Resources(cpus: 12), limit: nil)
        let offers = allocator.allocate(now: .zero)
        let totals = Fixture.totals(offers)
        #expect(totals[Fixture.framework("prod")]?.cpus == 12_000)
        #expect(totals[Fixture.framework("best-effort")]?.cpus == 8_000)
    }

    @Test("headroom is held for an unmet guarantee")
    func headroom() throws {
        var allocator = try Fixture.allocator(agents: 20, resources: Resources(cpus: 1, mem: 512))
        try allocator.addFramework(id: Fixture.framework("best-effort"), roles: ["batch"], now: .zero)
        try allocator.addFramework(id: Fixture.framework("prod"), roles: ["prod"], now: .zero)
        try allocator.deactivateFramework(id: Fixture.framework("prod"))
        try allocator.setQuota(role: "prod", guarantee: Resources(cpus: 5, mem: 2560), limit: nil)
        let offers = allocator.allocate(now: .zero)
        #expect(Fixture.totals(offers)[Fixture.framework("best-effort")]?.cpus == 15_000)
        let idle = try allocator.agentIDs.first { try allocator.usage(of: $0).allocated.isEmpty }
        let reasons = try allocator.explain(framework: Fixture.framework("best-effort"), agent: #require(idle), now: .zero)
        #expect(reasons.contains(.heldAsHeadroom(role: "batch", guaranteedRoles: ["prod"], dimensions: [.cpus, .mem])))
    }

    @Test("limits are never exceeded, even across cycles and declines")
    func limits() throws {
        var allocator = try Fixture.allocator(agents: 10, resources: Resources(cpus: 4, mem: 4096))
        try allocator.setQuota(role: "capped", guarantee: Resources(cpus: 1), limit: Resources(cpus: 6, mem: 12_288))
        try allocator.setQuota(role: "capped/child", guarantee: nil, limit: Resources(cpus: 100))
        try allocator.addFramework(id: Fixture.framework("c"), roles: ["capped"], now: .zero)
        try allocator.addFramework(id: Fixture.framework("child"), roles: ["capped/child"], now: .zero)
        for second in 0..<5 {
            let offers = allocator.allocate(now: .seconds(Double(second)))
            #expect(allocator.allocatedVector(role: "capped").cpus <= 6_000)
            try Fixture.declineAll(Array(offers.prefix(1)), in: &allocator)
        }
        _ = allocator.allocate(now: .seconds(9))
        #expect(allocator.allocatedVector(role: "capped").cpus == 6_000)
        let agent = try #require(try allocator.agentIDs.first { try allocator.usage(of: $0).allocated.isEmpty })
        let reasons = try allocator.explain(framework: Fixture.framework("c"), agent: agent, now: .zero)
        #expect(reasons == [.quotaLimitReached(role: "capped", limitingRole: "capped", dimensions: [.cpus, .mem])])
    }

    @Test("reserved resources go only to their role and its sub-roles")
    func reservations() throws {
        var allocator = Allocator()
        let total = Resources(cpus: 1, mem: 1024) + Resources(cpus: 2, mem: 2048, role: "db")
        for index in 0..<6 { try allocator.addAgent(id: Fixture.agent(index), total: total, now: .zero) }
        try allocator.addFramework(id: Fixture.framework("web"), roles: ["web"], now: .zero)
        try allocator.addFramework(id: Fixture.framework("db-child"), roles: ["db/replica"], now: .zero)
        for second in 0..<3 {
            let offers = allocator.allocate(now: .seconds(Double(second)))
            for offer in offers where offer.framework == Fixture.framework("web") {
                #expect(offer.resources.reserved.isEmpty)
            }
            try Fixture.declineAll(offers, in: &allocator)
        }
        try allocator.removeFramework(id: Fixture.framework("web"))
        let offers = allocator.allocate(now: .seconds(10))
        let reserved = offers.map { $0.resources.reserved(role: "db").cpus }.reduce(0, +)
        #expect(reserved == 12)
    }

    @Test("invalid weights throw invalidArgument and change nothing")
    func invalidWeights() throws {
        var allocator = Allocator()
        for weight in [0, -1, Double.nan, Double.infinity] {
            expectInvalidArgument { try allocator.setWeight(role: "r", weight: weight) }
        }
        expectInvalidArgument { try allocator.setWeight(role: "bad//role", weight: 2) }
        #expect(allocator.weight(role: "r") == 1)
    }

    @Test("invalid quotas throw invalidArgument and change nothing")
    func invalidQuotas() throws {
        var allocator = Allocator()
        try allocator.setQuota(role: "r", guarantee: Resources(cpus: 1), limit: Resources(cpus: 2))
        let before = allocator.quota(role: "r")
        expectInvalidArgument { try allocator.setQuota(role: "r", guarantee: Resources(cpus: 3), limit: Resources(cpus: 2)) }
        expectInvalidArgument { try allocator.setQuota(role: "r", guarantee: Resources(cpus: 1, role: "r"), limit: nil) }
        expectInvalidArgument {
            try allocator.setQuota(role: "r", guarantee: Resources(ports: [80...81]), limit: nil)
        }
        expectInvalidArgument { try allocator.setQuota(role: "", guarantee: Resources(cpus: 1), limit: nil) }
        expectInvalidArgument { try allocator.setQuota(role: "r", guaranteeAmounts: ["cpus": -1], limitAmounts: nil) }
        expectInvalidArgument {
            try allocator.setQuota(role: "r", guaranteeAmounts: nil, limitAmounts: ["mem": .infinity])
        }
        expectInvalidArgument {
            try allocator.setQuota(role: "r", guaranteeAmounts: ["cpus": 4], limitAmounts: ["cpus": 3])
        }
        #expect(allocator.quota(role: "r") == before)
    }
}
