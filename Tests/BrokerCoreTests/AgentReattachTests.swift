import BrokerCore
import Foundation
import GRPCCore
import GRPCInProcessTransport
import KeelAPI
import KeelRPC
import KeelSDK
import SwiftProtobuf
import Testing

/// A launcher that restarts: with its old agent id it keeps its tasks; after a reboot it comes
/// back as a new agent at the same address, and the old agent's tasks are lost.
@Suite("Agent re-attach")
struct AgentReattachTests {
    /// Opens another agent stream registering with `register`; returns its inbox and writer.
    static func attach(
        _ cluster: InProcessCluster, _ register: Keel_V1_AgentMessage.Register,
        in group: inout ThrowingTaskGroup<Void, any Error>
    ) -> (Inbox<Keel_V1_BrokerMessage>, AsyncStream<Keel_V1_AgentMessage>.Continuation) {
        let inbox = Inbox<Keel_V1_BrokerMessage>()
        let (outbox, writer) = AsyncStream.makeStream(of: Keel_V1_AgentMessage.self)
        writer.yield(.with { $0.register = register })
        let agents = cluster.agents
        group.addTask {
            try await agents.attach(requestProducer: { stream in
                for await message in outbox { try await stream.write(message) }
            }, onResponse: { response in
                for try await message in response.messages { inbox.append(message) }
            })
        }
        return (inbox, writer)
    }

    @Test("same id: reported tasks are kept; new id at the same address after a reboot: the old tasks are lost")
    func reattachAndReboot() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(
                framework: "reattach", hostname: "node-r", launcherPort: 7001, bootID: "boot-1"
            ) { pair in
                let offers = try await pair.frameworkInbox.wait(for: "OFFERS") { $0.type == .offers }
                let offer = try #require(offers.offers.offers.first)
                let accept = Keel_V1_AcceptRequest.with {
                    $0.frameworkID.value = pair.frameworkID
                    $0.offerIds = [offer.id]
                    $0.operations = [.with {
                        $0.type = .launch
                        $0.launch.taskInfos = [SchedulerFlowTests.task("t1", agentID: pair.agentID)]
                    }]
                }
                _ = try await cluster.scheduler.accept(accept, metadata: bearer(pair.token))
                _ = try await pair.agentInbox.wait(for: "launch") { $0.launch.task.taskID.value == "t1" }
                pair.agentWriter.yield(.with {
                    $0.statusUpdate.frameworkID.value = pair.frameworkID
                    $0.statusUpdate.status = .with {
                        $0.taskID.value = "t1"
                        $0.state = .taskRunning
                        $0.agentID = pair.agentID
                        $0.uuid = Data([1, 2, 3])
                        $0.source = .agent
                    }
                })
                _ = try await pair.frameworkInbox.wait(for: "RUNNING") { $0.update.status.state == .taskRunning }
                let launchedTask = SchedulerFlowTests.task("t1", agentID: pair.agentID)
                let frameworkID = pair.frameworkID

                try await withThrowingTaskGroup(of: Void.self) { group in
                    defer { group.cancelAll() }
                    // The launcher restarts in the same boot: same id, t1 reported with its
                    // updates still pending (no latest status).
                    var register = Keel_V1_AgentMessage.Register.with {
                        $0.agentInfo.hostname = "node-r"
                        $0.agentInfo.id = pair.agentID
                        $0.agentInfo.resources = [.scalar("cpus", 4), .scalar("mem", 4096)]
                        $0.agentInfo.launcherAddress.ip = "127.0.0.1"
                        $0.agentInfo.launcherAddress.port = 7001
                        $0.agentInfo.bootID = "boot-1"
                        $0.runningTasks = [.with {
                            $0.frameworkID.value = frameworkID
                            $0.task = launchedTask
                        }]
                    }
                    let (sameInbox, sameWriter) = Self.attach(cluster, register, in: &group)
                    let same = try await sameInbox.wait(for: "registered") { $0.registered.hasAgentID }
                    #expect(same.registered.agentID == pair.agentID)
                    let kept = try await cluster.operator_.getTasks(Keel_V1_GetTasksRequest())
                    #expect(kept.tasks.map(\.state) == [.taskRunning])
                    sameWriter.finish()

                    // The node reboots: a new boot id, no agent id, the same address.
                    register.agentInfo.clearID()
                    register.agentInfo.bootID = "boot-2"
                    register.runningTasks = []
                    let (newInbox, newWriter) = Self.attach(cluster, register, in: &group)
                    defer { newWriter.finish() }
                    let fresh = try await newInbox.wait(for: "registered") { $0.registered.hasAgentID }
                    #expect(fresh.registered.agentID != pair.agentID)
                    let lost = try await pair.frameworkInbox.wait(for: "LOST") { $0.update.status.state == .taskLost }
                    #expect(lost.update.status.reason == .agentRestarted)
                    #expect(lost.update.status.message.contains("rebooted"), "\(lost.update.status.message)")
                    let agents = try await cluster.operator_.getAgents(Keel_V1_GetAgentsRequest())
                    let states = Dictionary(uniqueKeysWithValues: agents.agents.map { ($0.agentInfo.id.value, $0.state) })
                    #expect(states[pair.agentID.value] == .removed)
                    #expect(states[fresh.registered.agentID.value] == .active)
                }
            }
        }
    }

    @Test("a task reported running that its framework was told is LOST is killed when the agent re-attaches")
    func lostTaskKilledOnReattach() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "lost", hostname: "node-l", launcherPort: 7002, bootID: "boot-1") { pair in
                let offer = try #require(try await pair.frameworkInbox.wait(for: "OFFERS") { $0.type == .offers }.offers.offers.first)
                let task = SchedulerFlowTests.task("t-lost", agentID: pair.agentID)
                _ = try await cluster.scheduler.accept(.with {
                    $0.frameworkID.value = pair.frameworkID
                    $0.offerIds = [offer.id]
                    $0.operations = [.with {
                        $0.type = .launch
                        $0.launch.taskInfos = [task]
                    }]
                }, metadata: bearer(pair.token))
                pair.agentWriter.yield(.with {
                    $0.statusUpdate.frameworkID.value = pair.frameworkID
                    $0.statusUpdate.status = .with {
                        $0.taskID.value = "t-lost"
                        $0.state = .taskRunning
                        $0.agentID = pair.agentID
                        $0.uuid = Data([4, 5, 6])
                        $0.source = .agent
                    }
                })
                _ = try await pair.frameworkInbox.wait(for: "RUNNING") { $0.update.status.state == .taskRunning }
                // The health checker finds the agent unreachable: the task is LOST for this
                // framework (not partition aware).
                _ = try await cluster.operator_.reportAgentReachability(.with {
                    $0.agentID = pair.agentID
                    $0.reachable = false
                })
                _ = try await pair.frameworkInbox.wait(for: "LOST") { $0.update.status.state == .taskLost }

                // The launcher comes back with the task still running.
                let frameworkID = pair.frameworkID
                let agentID = pair.agentID
                try await withThrowingTaskGroup(of: Void.self) { group in
                    defer { group.cancelAll() }
                    let register = Keel_V1_AgentMessage.Register.with {
                        $0.agentInfo.hostname = "node-l"
                        $0.agentInfo.id = agentID
                        $0.agentInfo.resources = [.scalar("cpus", 4), .scalar("mem", 4096)]
                        $0.agentInfo.launcherAddress.ip = "127.0.0.1"
                        $0.agentInfo.launcherAddress.port = 7002
                        $0.agentInfo.bootID = "boot-1"
                        $0.runningTasks = [.with {
                            $0.frameworkID.value = frameworkID
                            $0.task = task
                        }]
                    }
                    let (inbox, writer) = Self.attach(cluster, register, in: &group)
                    defer { writer.finish() }
                    let kill = try await inbox.wait(for: "kill of the lost task") { $0.kill.taskID.value == "t-lost" }
                    #expect(kill.kill.frameworkID.value == frameworkID)
                }
            }
        }
    }
}
