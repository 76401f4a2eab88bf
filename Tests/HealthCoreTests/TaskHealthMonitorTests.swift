import GRPCCore
import HealthCore
import KeelAPI
import KeelRPC
import SwiftProtobuf
import Testing

@Suite("TaskHealthMonitor: follows the broker's tasks and reports verdict changes")
struct TaskHealthMonitorTests {
    /// Runs a monitor with real probes against a fake broker and launcher until `body` returns.
    private func withMonitor(
        _ body: (FakeBroker, FakeLauncher, HealthTable) async throws -> Void
    ) async throws {
        let broker = FakeBroker()
        let launcher = FakeLauncher()
        let table = HealthTable()
        try await withInProcess([broker, launcher]) { client in
            defer { broker.closeWatches() }
            let monitor = TaskHealthMonitor(
                broker: Keel_V1_Operator.Client(wrapping: client),
                probe: StandardProbe(launchers: InProcessLaunchers(client: client)),
                table: table,
                configuration: Fixtures.configuration(),
                logger: Fixtures.logger
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await monitor.run() }
                try await body(broker, launcher, table)
                group.cancelAll()
            }
        }
    }

    @Test("an HTTP check goes healthy, then unhealthy after the threshold, each reported once")
    func httpVerdicts() async throws {
        let server = try LoopbackServer(status: 200)
        defer { server.stop() }
        try await withMonitor { broker, _, table in
            let key = CheckedTaskKey(frameworkID: "fw-1", taskID: "web")
            broker.send(Fixtures.taskEvent("web", check: Fixtures.httpCheck(port: server.port, failures: 2)))

            let healthy = await eventually { broker.taskReports.count == 1 }
            try #require(healthy)
            let first = broker.taskReports[0]
            #expect(first.taskID.value == "web" && first.frameworkID.value == "fw-1")
            #expect(first.healthy)
            #expect(first.message == "GET http://127.0.0.1:\(server.port)/health returned 200")
            #expect(table.task(key)?.healthy == true)

            server.setStatus(500)
            let unhealthy = await eventually { broker.taskReports.count == 2 }
            try #require(unhealthy)
            #expect(broker.taskReports[1].healthy == false)
            #expect(broker.taskReports[1].consecutiveFailures == 2)

            // More failures keep counting without another report.
            let counting = await eventually { (table.task(key)?.consecutiveFailures ?? 0) >= 5 }
            #expect(counting)
            #expect(broker.taskReports.count == 2)
            #expect(table.task(key)?.healthy == false)

            server.setStatus(204)
            let recovered = await eventually { broker.taskReports.count == 3 }
            try #require(recovered)
            #expect(broker.taskReports[2].healthy)
        }
    }

    @Test("checking stops when the task leaves RUNNING")
    func stopsWhenTaskEnds() async throws {
        let server = try LoopbackServer(status: 200)
        defer { server.stop() }
        try await withMonitor { broker, _, table in
            let key = CheckedTaskKey(frameworkID: "fw-1", taskID: "web")
            let check = Fixtures.httpCheck(port: server.port)
            broker.send(Fixtures.taskEvent("web", check: check))
            // Wait for the verdict to reach the broker, not only the table: the report is sent
            // after the table changes.
            let reported = await eventually { table.task(key)?.healthy == true && broker.taskReports.count == 1 }
            try #require(reported)

            broker.send(Fixtures.taskEvent("web", state: .taskKilled, check: check))
            let stopped = await eventually { table.task(key) == nil }
            #expect(stopped)
            #expect(broker.taskReports.count == 1)
        }
    }

    @Test("tasks without a health check or not RUNNING are not checked")
    func ignoresUnchecked() async throws {
        let server = try LoopbackServer(status: 200)
        defer { server.stop() }
        try await withMonitor { broker, _, table in
            broker.send(Fixtures.taskEvent("plain", check: nil))
            broker.send(Fixtures.taskEvent("staging", state: .taskStaging, check: Fixtures.httpCheck(port: server.port)))
            broker.send(Fixtures.taskEvent("web", check: Fixtures.httpCheck(port: server.port)))
            let checked = await eventually { table.task(CheckedTaskKey(frameworkID: "fw-1", taskID: "web"))?.healthy == true }
            try #require(checked)
            #expect(table.tasks().map(\.taskID.value) == ["web"])
        }
    }

    @Test("a COMMAND check runs through the task's launcher")
    func commandCheck() async throws {
        try await withMonitor { broker, launcher, table in
            let check = Keel_V1_HealthCheck.with {
                $0.type = .command
                $0.command.command.argv.args = ["/bin/true"]
                $0.interval = Fixtures.duration(milliseconds: 30)
                $0.consecutiveFailures = 1
            }
            launcher.setExitCode(1)
            broker.send(Fixtures.taskEvent("job", check: check, launcherPort: 7001))
            let reported = await eventually { broker.taskReports.count == 1 }
            try #require(reported)
            #expect(broker.taskReports[0].healthy == false)
            #expect(broker.taskReports[0].message == "the command exited with 1: exit 1")
            #expect(launcher.checks.first?.taskID.value == "job")
            #expect(table.task(CheckedTaskKey(frameworkID: "fw-1", taskID: "job"))?.checkType == .command)
        }
    }

    @Test("failures inside the grace period are not reported")
    func gracePeriod() async throws {
        let (refusing, port) = try LoopbackServer.refusingPort()
        defer { LoopbackServer.closeDescriptor(refusing) }
        try await withMonitor { broker, _, table in
            let key = CheckedTaskKey(frameworkID: "fw-1", taskID: "slow")
            var check = Fixtures.httpCheck(port: port, failures: 1)
            check.gracePeriod = Fixtures.duration(milliseconds: 3_600_000)
            broker.send(Fixtures.taskEvent("slow", check: check))
            let checked = await eventually { (table.task(key)?.lastMessage ?? "").contains("refused") }
            try #require(checked)
            #expect(table.task(key)?.hasHealthy == false)
            #expect(table.task(key)?.consecutiveFailures == 0)
            #expect(broker.taskReports.isEmpty)
        }
    }
}
