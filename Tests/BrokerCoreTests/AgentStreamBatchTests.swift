import BrokerCore
import Foundation
import GRPCCore
import KeelAPI
import KeelCore
import KeelRPC
import KeelSDK
import SwiftProtobuf
import Testing

/// Launchers and the broker merge runs of messages on the agent stream (status updates up,
/// launches and acknowledgements down), and the broker merges a framework's status updates,
/// only with a peer that said it takes them.
@Suite("Batched stream messages")
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

    @Test("runs of UPDATE events become UPDATES events in order, only for a subscriber that takes them")
    func frameworkUpdates() {
        func update(_ id: String) -> Keel_V1_Event {
            .with {
                $0.type = .update
                $0.update.status.taskID.value = id
            }
        }
        let heartbeat = Keel_V1_Event.with { $0.type = .heartbeat }
        let events = [update("a"), update("b"), update("c"), heartbeat, update("d")]

        let merged = SchedulerService.merged(events, batches: true)
        #expect(merged.map(\.type) == [.updates, .heartbeat, .update])
        #expect(merged[0].updates.statuses.map(\.taskID.value) == ["a", "b", "c"])
        #expect(merged[2].update.status.taskID.value == "d")
        #expect(SchedulerService.merged(events, batches: false) == events)
    }

    @Test("a subscriber that takes batches gets every status update of a burst, in order, in UPDATE or UPDATES events")
    func subscriberGetsBatches() async throws {
        try await InProcessCluster.with { cluster in
            let (frameworkID, token) = try await cluster.register("batches")
            let agentInbox = Inbox<Keel_V1_BrokerMessage>()
            let events = Inbox<Keel_V1_Event>()
            let (agentOutbox, agentWriter) = AsyncStream.makeStream(of: Keel_V1_AgentMessage.self)
            agentWriter.yield(.with {
                $0.register.agentInfo.hostname = "node-b"
                $0.register.agentInfo.resources = [.scalar("cpus", 4), .scalar("mem", 4096)]
                $0.register.agentInfo.launcherAddress.ip = "127.0.0.1"
            })
            try await withThrowingTaskGroup(of: Void.self) { group in
                defer {
                    agentWriter.finish()
                    group.cancelAll()
                }
                group.addTask {
                    try await cluster.agents.attach(requestProducer: { writer in
                        for await message in agentOutbox { try await writer.write(message) }
                    }, onResponse: { response in
                        for try await message in response.messages { agentInbox.append(message) }
                    })
                }
                let agentID = try await agentInbox.wait(for: "registered") { $0.registered.hasAgentID }.registered.agentID
                group.addTask {
                    let request = Keel_V1_SubscribeRequest.with {
                        $0.frameworkInfo.id.value = frameworkID
                        $0.acceptsUpdateBatches = true
                    }
                    try await cluster.scheduler.subscribe(request, metadata: bearer(token)) { response in
                        for try await event in response.messages { events.append(event) }
                    }
                }
                let offers = try await events.wait(for: "OFFERS") { $0.type == .offers }
                let ids = (0..<40).map { "burst-\($0)" }
                _ = try await cluster.scheduler.accept(.with {
                    $0.frameworkID.value = frameworkID
                    $0.offerIds = [offers.offers.offers[0].id]
                    $0.operations = [.with {
                        $0.type = .launch
                        $0.launch.taskInfos = ids.map { SchedulerFlowTests.task($0, agentID: agentID, cpus: 0.01, mem: 8) }
                    }]
                }, metadata: bearer(token))
                agentWriter.yield(.with {
                    $0.statusUpdates.updates = ids.enumerated().map { index, id in
                        .with {
                            $0.frameworkID.value = frameworkID
                            $0.status = .with {
                                $0.taskID.value = id
                                $0.state = .taskRunning
                                $0.agentID = agentID
                                $0.uuid = Data(repeating: UInt8(index + 1), count: 16)
                            }
                        }
                    }
                })
                _ = try await events.wait(for: "the last update") { event in
                    event.update.status.taskID.value == "burst-39" || event.updates.statuses.last?.taskID.value == "burst-39"
                }
                let delivered = events.all.flatMap { event -> [String] in
                    switch event.type {
                    case .update: [event.update.status.taskID.value]
                    case .updates: event.updates.statuses.map(\.taskID.value)
                    default: []
                    }
                }
                #expect(delivered == ids)
            }
        }
    }
}
