@testable import BrokerCore
import Foundation
import GRPCCore
import KeelAPI
import KeelCore
import KeelRPC
import KeelStore
import SwiftProtobuf
import Synchronization
import Testing

/// Status update acknowledgements between framework, broker and launcher: several in one call,
/// across a framework failover, and for a framework that was torn down.
@Suite("Acknowledgements")
struct AcknowledgementTests {
    @Test("several acknowledgements in one call: applied and forwarded, unknown ones returned, malformed calls refused")
    func batchedAcknowledgements() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "batch-ack", hostname: "node-1") { pair in
                let (frameworkID, token, agentID) = (pair.frameworkID, pair.token, pair.agentID)
                let ids = ["b1", "b2", "b3"]
                try await pair.launchOnFirstOffer(
                    ids.map { SchedulerFlowTests.task($0, agentID: agentID, cpus: 0.1, mem: 32) }, scheduler: cluster.scheduler)
                var uuids: [String: Data] = [:]
                for (index, id) in ids.enumerated() {
                    let uuid = Data((0..<16).map { UInt8($0 + index) })
                    uuids[id] = uuid
                    pair.sendStatus(id, .taskRunning, uuid: uuid)
                    _ = try await pair.frameworkInbox.wait(for: "UPDATE \(id)") { $0.update.status.taskID.value == id }
                }
                func entry(_ id: String, _ uuid: Data) -> Keel_V1_Acknowledgement {
                    .with {
                        $0.agentID = agentID
                        $0.taskID.value = id
                        $0.uuid = uuid
                    }
                }

                // Malformed calls change nothing.
                let mixed = await SchedulerFlowTests.rpcError {
                    _ = try await cluster.scheduler.acknowledge(.with {
                        $0.frameworkID.value = frameworkID
                        $0.taskID.value = "b1"
                        $0.uuid = uuids["b1"]!
                        $0.acknowledgements = [entry("b2", uuids["b2"]!)]
                    }, metadata: bearer(token))
                }
                #expect(mixed == .invalidArgument)
                let noUUID = await SchedulerFlowTests.rpcError {
                    _ = try await cluster.scheduler.acknowledge(.with {
                        $0.frameworkID.value = frameworkID
                        $0.acknowledgements = [entry("b1", uuids["b1"]!), entry("b2", Data())]
                    }, metadata: bearer(token))
                }
                #expect(noUUID == .invalidArgument)

                let response = try await cluster.scheduler.acknowledge(.with {
                    $0.frameworkID.value = frameworkID
                    $0.acknowledgements = [
                        entry("b1", uuids["b1"]!), entry("b2", Data([7, 7, 7])), entry("nope", uuids["b3"]!),
                        entry("b3", uuids["b3"]!),
                    ]
                }, metadata: bearer(token))
                #expect(response.refused.count == 2, "\(response.refused)")
                #expect(response.refused.first?.contains("b2") == true)
                #expect(response.refused.last?.contains("nope") == true)
                let (uuid1, uuid3) = (uuids["b1"], uuids["b3"])
                let first = try await pair.agentInbox.wait(for: "acknowledge b1") { $0.acknowledge.uuid == uuid1 }
                #expect(first.acknowledge.taskID.value == "b1")
                let third = try await pair.agentInbox.wait(for: "acknowledge b3") { $0.acknowledge.uuid == uuid3 }
                #expect(third.acknowledge.taskID.value == "b3")
            }
        }
    }

    @Test("after a teardown the broker acknowledges the framework's updates itself, so a killed task's end gets through")
    func updatesOfATornDownFramework() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "gone", hostname: "node-1") { pair in
                try await pair.launchOnFirstOffer(
                    [SchedulerFlowTests.task("orphan", agentID: pair.agentID, cpus: 0.1, mem: 32)], scheduler: cluster.scheduler)
                // RUNNING reaches the framework, which goes away without acknowledging it.
                let running = Data((0..<16).map { UInt8($0) })
                pair.sendStatus("orphan", .taskRunning, uuid: running)
                _ = try await pair.frameworkInbox.wait(for: "UPDATE RUNNING") { $0.update.status.state == .taskRunning }
                _ = try await cluster.scheduler.teardown(
                    .with { $0.frameworkID.value = pair.frameworkID }, metadata: bearer(pair.token))
                _ = try await pair.agentInbox.wait(for: "kill") { $0.kill.taskID.value == "orphan" }

                // The launcher resends RUNNING, then sends KILLED: the broker acknowledges both.
                pair.sendStatus("orphan", .taskRunning, uuid: running)
                _ = try await pair.agentInbox.wait(for: "acknowledgement of RUNNING") { $0.acknowledge.uuid == running }
                let killed = Data((0..<16).map { UInt8(100 + $0) })
                pair.sendStatus("orphan", .taskKilled, uuid: killed)
                _ = try await pair.agentInbox.wait(for: "acknowledgement of KILLED") { $0.acknowledge.uuid == killed }
                let tasks = try await cluster.operator_.getTasks(Keel_V1_GetTasksRequest())
                #expect(tasks.tasks.first { $0.taskID.value == "orphan" }?.state == .taskKilled)
            }
        }
    }

    @Test("an update the old process never acknowledged reaches the new process when the launcher resends it, and its acknowledgement reaches the launcher")
    func unacknowledgedUpdateReachesNewProcess() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "handover", hostname: "node-h") { pair in
                try await pair.launchOnFirstOffer(
                    [SchedulerFlowTests.task("t-handover", agentID: pair.agentID)], scheduler: cluster.scheduler)
                pair.sendStatus("t-handover", .taskRunning, uuid: Data([42]))
                _ = try await pair.frameworkInbox.wait(for: "RUNNING at the old process") { $0.update.status.uuid == Data([42]) }

                // The old process dies without acknowledging; a new one subscribes.
                let newInbox = Inbox<Keel_V1_Event>()
                let scheduler = cluster.scheduler
                let (frameworkID, token) = (pair.frameworkID, pair.token)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        let request = Keel_V1_SubscribeRequest.with { $0.frameworkInfo.id.value = frameworkID }
                        try await scheduler.subscribe(request, metadata: bearer(token)) { response in
                            for try await event in response.messages { newInbox.append(event) }
                        }
                    }
                    defer { group.cancelAll() }
                    _ = try await newInbox.wait(for: "SUBSCRIBED") { $0.type == .subscribed }
                    // The launcher resends the unacknowledged update.
                    pair.sendStatus("t-handover", .taskRunning, uuid: Data([42]))
                    let resent = try await newInbox.wait(for: "the resent RUNNING") { $0.update.status.uuid == Data([42]) }
                    #expect(resent.update.status.state == .taskRunning)
                    _ = try await scheduler.acknowledge(.with {
                        $0.frameworkID.value = frameworkID
                        $0.taskID.value = "t-handover"
                        $0.uuid = Data([42])
                    }, metadata: bearer(token))
                    _ = try await pair.agentInbox.wait(for: "the acknowledgement") { $0.acknowledge.uuid == Data([42]) }
                }
            }
        }
    }

    @Test("an acknowledgement reaches the launcher only once the broker has stored the update it acknowledges")
    func acknowledgementWaitsForTheStore() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "durable-ack", hostname: "node-d") { pair in
                let (frameworkID, token) = (pair.frameworkID, pair.token)
                try await pair.launchOnFirstOffer(
                    ["stored", "marker"].map { SchedulerFlowTests.task($0, agentID: pair.agentID, cpus: 0.1, mem: 32) },
                    scheduler: cluster.scheduler)
                // Everything before is stored; from now on the store refuses writes.
                try await cluster.broker.mutateDurably { _ in }
                cluster.brokerStore.failing.withLock { $0 = true }
                let finished = Data((0..<16).map { UInt8(200 + $0) })
                pair.sendStatus("stored", .taskFinished, uuid: finished)
                _ = try await pair.frameworkInbox.wait(for: "FINISHED") { $0.update.status.uuid == finished }
                let acknowledge = Keel_V1_AcknowledgeRequest.with {
                    $0.frameworkID.value = frameworkID
                    $0.taskID.value = "stored"
                    $0.uuid = finished
                }
                _ = try await cluster.scheduler.acknowledge(acknowledge, metadata: bearer(token))
                // Once every write queued before this point was tried (and failed), a kill goes
                // down the same stream; whatever the broker sent the launcher before it arrives first.
                await #expect(throws: KeelError.self) { try await cluster.broker.mutateDurably { _ in } }
                _ = try await cluster.scheduler.kill(
                    .with {
                        $0.frameworkID.value = frameworkID
                        $0.taskID.value = "marker"
                    }, metadata: bearer(token))
                _ = try await pair.agentInbox.wait(for: "kill of the marker") { $0.kill.taskID.value == "marker" }
                #expect(!pair.agentInbox.all.contains { $0.acknowledge.uuid == finished }, "acknowledged an update the store does not hold")
                let unstored = try await cluster.brokerStore.get(Broker.taskPrefix + frameworkID + "/stored")
                #expect(try Keel_V1_Task(serializedBytes: #require(unstored).value).state != .taskFinished)

                // The store is back; the launcher resends the update, the framework acknowledges it
                // again, and now the launcher gets the acknowledgement with the update stored.
                cluster.brokerStore.failing.withLock { $0 = false }
                pair.sendStatus("stored", .taskFinished, uuid: finished)
                try await pair.frameworkInbox.wait(for: "the resent FINISHED", count: 2) { $0.update.status.uuid == finished }
                _ = try await cluster.scheduler.acknowledge(acknowledge, metadata: bearer(token))
                _ = try await pair.agentInbox.wait(for: "the acknowledgement") { $0.acknowledge.uuid == finished }
                let stored = try await cluster.brokerStore.get(Broker.taskPrefix + frameworkID + "/stored")
                #expect(try Keel_V1_Task(serializedBytes: #require(stored).value).state == .taskFinished)
            }
        }
    }
}
