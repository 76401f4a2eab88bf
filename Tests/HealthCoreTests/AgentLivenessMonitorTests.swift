import GRPCCore
import HealthCore
import KeelAPI
import KeelRPC
import SwiftProtobuf
import Testing

@Suite("AgentLivenessMonitor: pings launchers and reports reachability changes once")
struct AgentLivenessMonitorTests {
    private func withMonitor(
        agentID: String = "a1",
        _ body: (FakeBroker, FakeLauncher, HealthTable, InProcessLaunchers) async throws -> Void
    ) async throws {
        let broker = FakeBroker()
        let launcher = FakeLauncher(agentID: agentID)
        let table = HealthTable()
        try await withInProcess([broker, launcher]) { client in
            let launchers = InProcessLaunchers(client: client)
            let monitor = AgentLivenessMonitor(
                broker: Keel_V1_Operator.Client(wrapping: client),
                launchers: launchers,
                table: table,
                configuration: Fixtures.configuration(pingInterval: .milliseconds(20), pingBudget: 3),
                logger: Fixtures.logger
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await monitor.run() }
                try await body(broker, launcher, table, launchers)
                group.cancelAll()
            }
        }
    }

    @Test("missing the budget reports unreachable once; answering again reports reachable once")
    func budget() async throws {
        try await withMonitor { broker, launcher, table, launchers in
            broker.setAgents([Fixtures.agent("a1", launcherPort: 7001), Fixtures.agent("gone", state: .removed, launcherPort: 7002)])
            let pinged = await eventually { table.agents.first?.hasLastPongAt == true }
            try #require(pinged)
            #expect(table.agents.map(\.agentID.value) == ["a1"])
            #expect(launchers.endpoints.allSatisfy { $0 == Endpoint(host: "127.0.0.1", port: 7001) })

            launcher.setAnswering(false)
            let unreachable = await eventually { broker.agentReports.count == 1 }
            try #require(unreachable)
            #expect(broker.agentReports[0].agentID.value == "a1")
            #expect(broker.agentReports[0].reachable == false)
            #expect(broker.agentReports[0].message.contains("missed 3 pings"))

            let stillMissing = await eventually { (table.agents.first?.missedPings ?? 0) >= 6 }
            #expect(stillMissing)
            #expect(broker.agentReports.count == 1)
            #expect(table.agents.first?.reachable == false)
            #expect(table.agents.first?.lastError.contains("unavailable") == true)

            launcher.setAnswering(true)
            let reachable = await eventually { broker.agentReports.count == 2 }
            try #require(reachable)
            #expect(broker.agentReports[1].reachable)
            let reset = await eventually { table.agents.first?.missedPings == 0 }
            #expect(reset)
        }
    }

    @Test("an agent the broker holds UNREACHABLE is reported reachable when it answers")
    func recoversFromBrokerState() async throws {
        try await withMonitor { broker, _, _, _ in
            broker.setAgents([Fixtures.agent("a1", state: .unreachable, launcherPort: 7001)])
            let reported = await eventually { broker.agentReports.count == 1 }
            try #require(reported)
            #expect(broker.agentReports[0].reachable)
        }
    }

    @Test("a launcher that now serves another agent counts as a missed ping")
    func wrongAgent() async throws {
        try await withMonitor(agentID: "someone-else") { broker, _, table, _ in
            broker.setAgents([Fixtures.agent("a1", launcherPort: 7001)])
            let reported = await eventually { broker.agentReports.count == 1 }
            try #require(reported)
            #expect(broker.agentReports[0].reachable == false)
            #expect(table.agents.first?.lastError.contains("now serves agent someone-else") == true)
        }
    }

    @Test("agents that leave the broker's list are dropped")
    func dropsRemovedAgents() async throws {
        try await withMonitor { broker, _, table, _ in
            broker.setAgents([Fixtures.agent("a1", launcherPort: 7001)])
            let listed = await eventually { table.agents.count == 1 }
            try #require(listed)
            broker.setAgents([Fixtures.agent("a1", state: .removed, launcherPort: 7001)])
            let dropped = await eventually { table.agents.isEmpty }
            #expect(dropped)
            #expect(broker.agentReports.isEmpty)
        }
    }
}
