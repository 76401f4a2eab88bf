import BrokerCore
import Foundation
import GRPCCore
import KeelAPI
import KeelCore
import KeelRPC
import SwiftProtobuf
import Testing

/// The Operator API's task watch, as keel-health and `keel` follow it.
@Suite("Task watch")
struct TaskWatchTests {
    @Test("a watch of health-checked tasks gets only those, in its snapshot and in later changes; a plain watch gets all")
    func healthCheckedOnly() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "watched", hostname: "node-1") { pair in
                var withCheck = SchedulerFlowTests.task("with-check", agentID: pair.agentID, cpus: 0.1, mem: 32)
                withCheck.healthCheck = .with {
                    $0.type = .tcp
                    $0.tcp.port = 8080
                }
                let plain = SchedulerFlowTests.task("plain", agentID: pair.agentID, cpus: 0.1, mem: 32)
                try await pair.launchOnFirstOffer([plain, withCheck], scheduler: cluster.scheduler)
                pair.sendStatus("plain", .taskRunning, uuid: Data(repeating: 1, count: 16))
                pair.sendStatus("with-check", .taskRunning, uuid: Data(repeating: 2, count: 16))
                _ = try await pair.frameworkInbox.wait(for: "with-check RUNNING") {
                    $0.update.status.taskID.value == "with-check"
                }

                let all = Inbox<Keel_V1_TaskEvent>()
                let checked = Inbox<Keel_V1_TaskEvent>()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    defer { group.cancelAll() }
                    for (inbox, filtered) in [(all, false), (checked, true)] {
                        group.addTask {
                            let request = Keel_V1_WatchTasksRequest.with {
                                $0.includeSnapshot = true
                                $0.healthCheckedOnly = filtered
                            }
                            try await cluster.operator_.watchTasks(request) { response in
                                for try await event in response.messages { inbox.append(event) }
                            }
                        }
                    }
                    // The snapshots.
                    _ = try await all.wait(for: "plain in the snapshot") { $0.task.taskID.value == "plain" }
                    _ = try await all.wait(for: "with-check in the snapshot") { $0.task.taskID.value == "with-check" }
                    let first = try await checked.wait(for: "the snapshot") { _ in true }
                    #expect(first.task.taskID.value == "with-check")
                    #expect(first.launcherAddress.ip == "127.0.0.1")

                    // Later changes: the plain task's comes first, and only the plain watch sees it.
                    pair.sendStatus("plain", .taskFinished, uuid: Data(repeating: 3, count: 16))
                    pair.sendStatus("with-check", .taskFinished, uuid: Data(repeating: 4, count: 16))
                    _ = try await all.wait(for: "plain FINISHED") { $0.task.taskID.value == "plain" && $0.task.state == .taskFinished }
                    _ = try await all.wait(for: "with-check FINISHED") {
                        $0.task.taskID.value == "with-check" && $0.task.state == .taskFinished
                    }
                    _ = try await checked.wait(for: "with-check FINISHED") {
                        $0.task.taskID.value == "with-check" && $0.task.state == .taskFinished
                    }
                    let seen = checked.all.map { "\($0.task.taskID.value) \($0.task.state)" }
                    #expect(seen == ["with-check taskRunning", "with-check taskFinished"])
                }
            }
        }
    }
}
