import Foundation
import GRPCCore
import KeelAPI
import KeelRPC
import KeelSDK
import SwiftProtobuf
import Testing

/// A framework that goes away and comes back inside its failover timeout keeps its tasks; one
/// that stays away longer is torn down and its tasks are killed.
@Suite("Framework failover")
struct FrameworkFailoverTests {
    @Test("tasks survive a framework failover, and die with the framework when its timeout expires")
    func failover() async throws {
        let cluster = try await LocalClusterFixture()
        do {
            try await run(cluster)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    private func run(_ cluster: LocalClusterFixture) async throws {
        let registry = "127.0.0.1:\(cluster.basePort + 2)"
        let broker = "127.0.0.1:\(cluster.basePort)"
        var info = Keel_V1_FrameworkInfo.with {
            $0.name = "failover-test"
            $0.user = "root"
            $0.failoverTimeout = Google_Protobuf_Duration(seconds: 3)
        }
        let taskID = Keel_V1_TaskID.with { $0.value = "survivor" }

        // First process: launch a long task, see it running, then vanish without a teardown.
        let frameworkID = try await SchedulerDriver(configuration: .init(registry: registry, broker: broker, frameworkInfo: info)).run { session in
            var launched = false
            events: for try await event in session.events {
                switch event {
                case .offers(let offers) where !launched:
                    guard let offer = offers.first else { continue }
                    let task = Keel_V1_TaskInfo.with {
                        $0.name = "survivor"
                        $0.taskID = taskID
                        $0.agentID = offer.agentID
                        $0.resources = [.scalar("cpus", 0.1), .scalar("mem", 32)]
                        $0.command.argv.args = ["sleep", "120"]
                    }
                    try await session.launch([task], on: [offer])
                    launched = true
                case .update(let status) where status.state == .taskRunning:
                    break events
                default:
                    break
                }
            }
            return session.frameworkID
        }

        // Second process, same framework id: the task is still running.
        info.id = frameworkID
        let reconciled = try await SchedulerDriver(configuration: .init(registry: registry, broker: broker, frameworkInfo: info)).run { session in
            try await session.reconcile([taskID])
            for try await event in session.events {
                guard let status = event.update else { continue }
                if status.taskID == taskID && status.reason == .reconciliation { return status.state }
            }
            return Keel_V1_TaskState.unspecified
        }
        #expect(reconciled == .taskRunning)

        // Gone for longer than the timeout: torn down, its task killed.
        let killed = LatestOutput()
        try await waitUntil("the task of the expired framework is killed", timeout: .seconds(60)) {
            let tasks = try await cluster.keelResult(["tasks", "--json"])
            killed.set(tasks.stdout)
            return tasks.stdout.contains("TASK_KILLED")
        }
        let again = try? await SchedulerDriver(configuration: .init(registry: registry, broker: broker, frameworkInfo: info)).run { _ in true }
        #expect(again == nil, "a torn-down framework must not subscribe again")
    }
}
