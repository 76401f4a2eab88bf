import BrokerCore
import Foundation
import GRPCCore
import KeelAPI
import KeelCore
import KeelRPC
import SwiftProtobuf
import Testing

/// Launchers and the broker merge runs of messages on the agent stream (status updates up,
/// launches and acknowledgements down), and only with a peer that said it takes them.
@Suite("Batched agent stream messages")
struct AgentStreamBatchTests {
    @Test("status updates sent together are applied in order and forwarded one by one; a launcher that takes batches is told so")
    func batchedStatusUpdates() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "batched", hostname: "node-1", acceptsBatches: true) { pair in
                let registered = try await pair.agentInbox.wait(for: "registered") { $0.registered.hasAgentID }
                #expect(registered.registered.acceptsBatches)
                let ids = ["u1", "u2", "u3"]
                try await pair.launchOnFirstOffer(
                    ids.map { SchedulerFlowTests.task($0, agentID: pair.agentID, cpus: 0.1, mem: 32) }, scheduler: cluster.scheduler)
                // RUNNING then FINISHED of each task, all in one message.
                let updates = ids.enumerated().flatMap { index, id in
                    [Keel_V1_TaskState.taskRunning, .taskFinished].enumerated().map { step, state in
                        Keel_V1_AgentMessage.StatusUpdate.with {
                            $0.frameworkID.value = pair.frameworkID
                            $0.status = .with {
                                $0.taskID.value = id
                                $0.state = state
                                $0.agentID = pair.agentID
                                $0.uuid = Data(repeating: UInt8(index * 2 + step + 1), count: 16)
                            }
                        }
                    }
                }
                pair.agentWriter.yield(.with { $0.statusUpdates.updates = updates })
                _ = try await pair.frameworkInbox.wait(for: "u3 FINISHED") {
                    $0.update.status.taskID.value == "u3" && $0.update.status.state == .taskFinished
                }
                let forwarded = pair.frameworkInbox.all.filter { $0.type == .update }.map {
                    "\($0.update.status.taskID.value) \($0.update.status.state)"
                }
                #expect(forwarded == updates.map { "\($0.status.taskID.value) \($0.status.state)" })
                let tasks = try await cluster.operator_.getTasks(Keel_V1_GetTasksRequest()).tasks
                #expect(tasks.filter { ids.contains($0.taskID.value) }.allSatisfy { $0.state == .taskFinished })
            }
        }
    }

    @Test("runs of launches and acknowledgements are merged in order, other messages stay between them, only for a launcher that takes batches")
    func brokerMerging() {
        func launch(_ id: String) -> Keel_V1_BrokerMessage { .with { $0.launch.task.taskID.value = id } }
        func ack(_ id: String) -> Keel_V1_BrokerMessage { .with { $0.acknowledge.taskID.value = id } }
        let kill = Keel_V1_BrokerMessage.with { $0.kill.taskID.value = "k" }
        let messages = [launch("a"), launch("b"), ack("a"), ack("b"), ack("c"), kill, launch("c"), ack("d")]

        let merged = AgentStreamService.merged(messages, batches: true)
        let shape = merged.map { message -> String in
            switch message.message {
            case .launches(let batch): "launches \(batch.launches.map(\.task.taskID.value))"
            case .launch(let launch): "launch \(launch.task.taskID.value)"
            case .acknowledgements(let batch): "acks \(batch.acknowledgements.map(\.taskID.value))"
            case .acknowledge(let ack): "ack \(ack.taskID.value)"
            case .kill: "kill"
            default: "other"
            }
        }
        #expect(shape == [#"launches ["a", "b"]"#, #"acks ["a", "b", "c"]"#, "kill", "launch c", "ack d"])
        #expect(AgentStreamService.merged(messages, batches: false) == messages)

        let many = (0..<(AgentStreamService.acknowledgementsPerMessage + 5)).map { ack("t\($0)") }
        let split = AgentStreamService.merged(many, batches: true)
        #expect(split.count == 2)
        #expect(split.first?.acknowledgements.acknowledgements.count == AgentStreamService.acknowledgementsPerMessage)
        #expect(split.last?.acknowledgements.acknowledgements.last?.taskID.value == "t\(many.count - 1)")
    }
}
