import KeelAllocator
import KeelCore

/// Builds and runs one benchmark configuration.
enum Scenario {
    /// Mesos' agent: `cpus:24;mem:4096;disk:4096;ports:[31000-32000]`.
    static let agentTotal = Resources(cpus: 24, mem: 4096, disk: 4096, ports: [31000...32000])

    /// Mesos' per-agent initial allocation: `cpus:16;mem:1024;disk:1024` and 16 port fragments.
    static let initialAllocation = Resources(
        cpus: 16, mem: 1024, disk: 1024,
        ports: ValueRanges(portFragments))

    /// 16 two-port fragments of 31000-31063.
    static let portFragments: [ClosedRange<UInt64>] = (0..<16).map { (index: Int) -> ClosedRange<UInt64> in
        let begin = UInt64(31000 + index * 4)
        return begin...(begin + 1)
    }

    static func run(pattern: Pattern, agents: Int, frameworks: Int, cycles: Int) throws -> Report {
        switch pattern {
        case .declineOffers: try declineOffers(agents: agents, frameworks: frameworks, cycles: cycles)
        case .addAndUpdateAgent: try addAndUpdateAgent(agents: agents, frameworks: frameworks, cycles: cycles)
        }
    }

    /// Every framework declines every offer with a filter that outlives the run.
    static func declineOffers(agents: Int, frameworks: Int, cycles: Int) throws -> Report {
        let clock = ContinuousClock()
        var allocator = Allocator()
        let setup = try clock.measure {
            try addFrameworks(frameworks, to: &allocator)
            for index in 0..<agents {
                let agent = AgentID("agent-\(index)")
                try allocator.addAgent(id: agent, total: agentTotal, now: .zero)
                try allocator.allocate(
                    framework: FrameworkID("framework-\(index % frameworks)"), agent: agent,
                    resources: initialAllocation)
            }
        }
        var report = Report(
            pattern: .declineOffers, agents: agents, frameworks: frameworks, cycles: cycles, cycleMilliseconds: [],
            offers: [], eventMilliseconds: [], setupMilliseconds: milliseconds(setup), peakRSSKiB: 0)
        for cycle in 0..<cycles {
            let now = Instant.seconds(Double(cycle + 1))
            var offers: [Offer] = []
            let elapsed = clock.measure { offers = allocator.allocate(now: now) }
            let declines = try clock.measure {
                for offer in offers {
                    try allocator.recoverResources(
                        framework: offer.framework, agent: offer.agent, resources: offer.resources,
                        filterUntil: .distantFuture)
                }
            }
            report.cycleMilliseconds.append(milliseconds(elapsed))
            report.eventMilliseconds.append(milliseconds(declines))
            report.offers.append(offers.count)
        }
        report.peakRSSKiB = peakRSSKiB()
        return report
    }

    /// Adds all agents, then in every cycle updates each agent's total and runs a cycle; offers
    /// are kept (not declined), as in Mesos' AddAndUpdateSlave benchmark.
    static func addAndUpdateAgent(agents: Int, frameworks: Int, cycles: Int) throws -> Report {
        let clock = ContinuousClock()
        var allocator = Allocator()
        let setup = try clock.measure {
            try addFrameworks(frameworks, to: &allocator)
            for index in 0..<agents {
                try allocator.addAgent(id: AgentID("agent-\(index)"), total: agentTotal, now: .zero)
            }
        }
        var report = Report(
            pattern: .addAndUpdateAgent, agents: agents, frameworks: frameworks, cycles: cycles,
            cycleMilliseconds: [], offers: [], eventMilliseconds: [], setupMilliseconds: milliseconds(setup),
            peakRSSKiB: 0)
        var total = agentTotal
        for cycle in 0..<cycles {
            let now = Instant.seconds(Double(cycle + 1))
            var offers: [Offer] = []
            let elapsed = clock.measure { offers = allocator.allocate(now: now) }
            total += Resources(cpus: 1, mem: 128)
            let grown = total
            let updates = try clock.measure {
                for index in 0..<agents {
                    try allocator.updateAgent(id: AgentID("agent-\(index)"), total: grown)
                }
            }
            report.cycleMilliseconds.append(milliseconds(elapsed))
            report.eventMilliseconds.append(milliseconds(updates))
            report.offers.append(offers.count)
        }
        report.peakRSSKiB = peakRSSKiB()
        return report
    }

    private static func addFrameworks(_ count: Int, to allocator: inout Allocator) throws {
        for index in 0..<count {
            try allocator.addFramework(id: FrameworkID("framework-\(index)"), roles: ["bench"], now: .zero)
        }
    }

    static func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
