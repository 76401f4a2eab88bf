import BrokerCore
import Foundation
import GRPCCore
import GRPCInProcessTransport
import KeelAPI
import KeelCore
import KeelRPC
import KeelSDK
import SwiftProtobuf
import Testing

/// The broker's scheduler and agent APIs over gRPC (in process): a launch from offer to
/// acknowledgement, and every kind of bad input refused with the right status and no change.
@Suite("Scheduler flow")
struct SchedulerFlowTests {
    @Test("offer, launch, status update, acknowledgement and kill travel between framework and agent")
    func launchFlow() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "flow", hostname: "node-1") { pair in
                let (frameworkID, token, agentID) = (pair.frameworkID, pair.token, pair.agentID)
                let (agentInbox, frameworkInbox, agentWriter) = (pair.agentInbox, pair.frameworkInbox, pair.agentWriter)
                let offers = try await frameworkInbox.wait(for: "OFFERS") { $0.type == .offers }
                let offer = try #require(offers.offers.offers.first)
                #expect(offer.agentID == agentID)

                let task = Self.task("t1", agentID: agentID, cpus: 0.5, mem: 128)
                let accept = Keel_V1_AcceptRequest.with {
                    $0.frameworkID.value = frameworkID
                    $0.offerIds = [offer.id]
                    $0.operations = [.with {
                        $0.type = .launch
                        $0.launch.taskInfos = [task]
                    }]
                }
                let accepted = try await cluster.scheduler.accept(accept, metadata: bearer(token))
                #expect(accepted.launched.map(\.value) == ["t1"])
                let launch = try await agentInbox.wait(for: "launch") { $0.launch.task.taskID.value == "t1" }
                #expect(launch.launch.frameworkInfo.id.value == frameworkID)

                // The accepted offer is gone.
                let again = try? await cluster.scheduler.accept(accept, metadata: bearer(token))
                #expect(again == nil)

                let uuid = Data((0..<16).map { UInt8($0) })
                agentWriter.yield(.with {
                    $0.statusUpdate.frameworkID.value = frameworkID
                    $0.statusUpdate.status = .with {
                        $0.taskID.value = "t1"
                        $0.state = .taskRunning
                        $0.agentID = agentID
                        $0.uuid = uuid
                        $0.source = .agent
                    }
                })
                let update = try await frameworkInbox.wait(for: "UPDATE RUNNING") { $0.update.status.state == .taskRunning }
                #expect(update.update.status.uuid == uuid)

                let badAck = Keel_V1_AcknowledgeRequest.with {
                    $0.frameworkID.value = frameworkID
                    $0.taskID.value = "t1"
                    $0.uuid = Data([9, 9, 9])
                }
                let badAckError = await Self.rpcError { _ = try await cluster.scheduler.acknowledge(badAck, metadata: bearer(token)) }
                #expect(badAckError == .notFound)

                let ack = Keel_V1_AcknowledgeRequest.with {
                    $0.frameworkID.value = frameworkID
                    $0.agentID = agentID
                    $0.taskID.value = "t1"
                    $0.uuid = uuid
                }
                _ = try await cluster.scheduler.acknowledge(ack, metadata: bearer(token))
                let forwarded = try await agentInbox.wait(for: "acknowledge") { $0.acknowledge.uuid == uuid }
                #expect(forwarded.acknowledge.taskID.value == "t1")

                let tasks = try await cluster.operator_.getTasks(Keel_V1_GetTasksRequest())
                #expect(tasks.tasks.map(\.state) == [.taskRunning])
                // The agent view: the task's resources are allocated; offers are apart.
                let agentView = try #require(try await cluster.operator_.getAgents(.init()).agents.first)
                let allocatedNow = try Resources(proto: agentView.allocatedResources)
                let offeredNow = try Resources(proto: agentView.offeredResources)
                let taskResources = try Resources(parsing: "cpus:0.5;mem:128")
                let rest = try Resources(parsing: "cpus:3.5;mem:3968")
                #expect(allocatedNow == taskResources)
                #expect(offeredNow.isEmpty || offeredNow == rest)

                let kill = Keel_V1_KillRequest.with {
                    $0.frameworkID.value = frameworkID
                    $0.taskID.value = "t1"
                }
                _ = try await cluster.scheduler.kill(kill, metadata: bearer(token))
                _ = try await agentInbox.wait(for: "kill") { $0.kill.taskID.value == "t1" }

            }
        }
    }

    @Test("bad accepts are refused with the right status and leave the offer usable")
    func badAccepts() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "bad-input", hostname: "node-2") { pair in
                let (frameworkID, token, agentID, frameworkInbox) = (pair.frameworkID, pair.token, pair.agentID, pair.frameworkInbox)
                let offer = try #require(try await frameworkInbox.wait(for: "OFFERS") { $0.type == .offers }.offers.offers.first)

                func accept(_ tasks: [Keel_V1_TaskInfo], offers: [Keel_V1_OfferID]? = nil) -> Keel_V1_AcceptRequest {
                    .with {
                        $0.frameworkID.value = frameworkID
                        $0.offerIds = offers ?? [offer.id]
                        $0.operations = [.with {
                            $0.type = .launch
                            $0.launch.taskInfos = tasks
                        }]
                    }
                }
                let cases: [(String, Keel_V1_AcceptRequest, RPCError.Code)] = [
                    ("unknown offer", accept([Self.task("a", agentID: agentID)], offers: [.with { $0.value = "no-such-offer" }]), .notFound),
                    ("beyond the offer", accept([Self.task("b", agentID: agentID, cpus: 1000)]), .invalidArgument),
                    ("negative resources", accept([Self.task("c", agentID: agentID, cpus: -1)]), .invalidArgument),
                    ("empty command", accept([Self.task("d", agentID: agentID, argv: [])]), .invalidArgument),
                    ("bad task id", accept([Self.task("../e", agentID: agentID)]), .invalidArgument),
                    ("duplicate ids", accept([Self.task("f", agentID: agentID), Self.task("f", agentID: agentID)]), .invalidArgument),
                    ("second task too big", accept([Self.task("g", agentID: agentID), Self.task("h", agentID: agentID, mem: 1_000_000)]), .invalidArgument),
                ]
                for (name, request, expected) in cases {
                    let code = await Self.rpcError { _ = try await cluster.scheduler.accept(request, metadata: bearer(token)) }
                    #expect(code == expected, "\(name): got \(String(describing: code))")
                }
                // Nothing was half-applied: no task exists and the same offer still launches.
                let before = try await cluster.operator_.getTasks(Keel_V1_GetTasksRequest())
                #expect(before.tasks.isEmpty)
                let good = try await cluster.scheduler.accept(accept([Self.task("ok", agentID: agentID)]), metadata: bearer(token))
                #expect(good.launched.map(\.value) == ["ok"])

                // Duplicate of a live task id.
                let next = try #require(try await frameworkInbox.wait(for: "more OFFERS", timeout: .seconds(30)) {
                    $0.type == .offers && $0.offers.offers.first?.id != offer.id
                }.offers.offers.first)
                let duplicate = await Self.rpcError {
                    _ = try await cluster.scheduler.accept(accept([Self.task("ok", agentID: agentID)], offers: [next.id]), metadata: bearer(token))
                }
                #expect(duplicate == .alreadyExists)

            }
        }
    }

    @Test("calls without a valid token for the framework are refused")
    func authentication() async throws {
        try await InProcessCluster.with { cluster in
            let (frameworkA, tokenA) = try await cluster.register("a")
            let (frameworkB, _) = try await cluster.register("b")
            let revive = { (id: String) in Keel_V1_ReviveRequest.with { $0.frameworkID.value = id } }

            let missing = await Self.rpcError { _ = try await cluster.scheduler.revive(revive(frameworkA)) }
            #expect(missing == .unauthenticated)
            let garbage = await Self.rpcError { _ = try await cluster.scheduler.revive(revive(frameworkA), metadata: bearer("not-a-token")) }
            #expect(garbage == .unauthenticated)
            let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0."
            let none = await Self.rpcError { _ = try await cluster.scheduler.revive(revive(frameworkA), metadata: bearer(unsigned)) }
            #expect(none == .unauthenticated)
            let tampered = String(tokenA.dropLast(4)) + "AAAA"
            let badSignature = await Self.rpcError { _ = try await cluster.scheduler.revive(revive(frameworkA), metadata: bearer(tampered)) }
            #expect(badSignature == .unauthenticated)
            let wrongFramework = await Self.rpcError { _ = try await cluster.scheduler.revive(revive(frameworkB), metadata: bearer(tokenA)) }
            #expect(wrongFramework == .permissionDenied)
            let unknown = await Self.rpcError { _ = try await cluster.scheduler.revive(revive(""), metadata: bearer(tokenA)) }
            #expect(unknown == .permissionDenied)
        }
    }

    @Test("the registry validates registrations and refuses a torn-down framework")
    func registry() async throws {
        try await InProcessCluster.with { cluster in
            let nameless = Keel_V1_RegisterFrameworkRequest.with { $0.frameworkInfo.user = "root" }
            let noName = await Self.rpcError { _ = try await cluster.registry.registerFramework(nameless) }
            #expect(noName == .invalidArgument)
            let badRole = Keel_V1_RegisterFrameworkRequest.with {
                $0.frameworkInfo.name = "x"
                $0.frameworkInfo.user = "root"
                $0.frameworkInfo.roles = ["eng//web"]
            }
            let badRoleError = await Self.rpcError { _ = try await cluster.registry.registerFramework(badRole) }
            #expect(badRoleError == .invalidArgument)
            let unknownID = Keel_V1_RegisterFrameworkRequest.with {
                $0.frameworkInfo.name = "x"
                $0.frameworkInfo.user = "root"
                $0.frameworkInfo.id.value = "unknown-id"
            }
            let unknownError = await Self.rpcError { _ = try await cluster.registry.registerFramework(unknownID) }
            #expect(unknownError == .notFound)

            let (id, _) = try await cluster.register("torn")
            _ = try await cluster.registry.teardownFramework(.with { $0.frameworkID.value = id })
            let again = Keel_V1_RegisterFrameworkRequest.with {
                $0.frameworkInfo.name = "torn"
                $0.frameworkInfo.user = "root"
                $0.frameworkInfo.id.value = id
            }
            let reregister = await Self.rpcError { _ = try await cluster.registry.registerFramework(again) }
            #expect(reregister == .failedPrecondition)
            let list = try await cluster.registry.listFrameworks(.with { $0.includeCompleted = true })
            #expect(list.records.contains { $0.frameworkInfo.id.value == id && $0.state == .completed })
        }
    }

    @Test("an agent reported unreachable makes its tasks UNREACHABLE (partition aware) or LOST", arguments: [true, false])
    func unreachableAgent(partitionAware: Bool) async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(
                framework: "partition", hostname: "node-3", capabilities: partitionAware ? [.partitionAware] : []
            ) { pair in
                let (frameworkID, token, agentID) = (pair.frameworkID, pair.token, pair.agentID)
                let (frameworkInbox, agentWriter) = (pair.frameworkInbox, pair.agentWriter)
                let offer = try #require(try await frameworkInbox.wait(for: "OFFERS") { $0.type == .offers }.offers.offers.first)
                let accept = Keel_V1_AcceptRequest.with {
                    $0.frameworkID.value = frameworkID
                    $0.offerIds = [offer.id]
                    $0.operations = [.with {
                        $0.type = .launch
                        $0.launch.taskInfos = [Self.task("p1", agentID: agentID)]
                    }]
                }
                _ = try await cluster.scheduler.accept(accept, metadata: bearer(token))
                agentWriter.yield(.with {
                    $0.statusUpdate.frameworkID.value = frameworkID
                    $0.statusUpdate.status = .with {
                        $0.taskID.value = "p1"
                        $0.state = .taskRunning
                        $0.agentID = agentID
                        $0.uuid = Data([1, 2, 3, 4])
                    }
                })
                _ = try await frameworkInbox.wait(for: "RUNNING") { $0.update.status.state == .taskRunning }

                let report = Keel_V1_ReportAgentReachabilityRequest.with {
                    $0.agentID = agentID
                    $0.reachable = false
                    $0.message = "missed 5 pings"
                }
                _ = try await cluster.operator_.reportAgentReachability(report)
                let expected: Keel_V1_TaskState = partitionAware ? .taskUnreachable : .taskLost
                let update = try await frameworkInbox.wait(for: "\(expected)") { $0.update.status.state == expected }
                #expect(update.update.status.reason == .agentDisconnected)
                let agents = try await cluster.operator_.getAgents(Keel_V1_GetAgentsRequest())
                #expect(agents.agents.first?.state == .unreachable)

                let unknown = await Self.rpcError {
                    _ = try await cluster.operator_.reportAgentReachability(.with { $0.agentID.value = "nope" })
                }
                #expect(unknown == .notFound)
            }
        }
    }

    @Test("an offer left unanswered past the offer timeout is rescinded and made again")
    func offerTimeout() async throws {
        try await InProcessCluster.with(offerTimeout: .milliseconds(500)) { cluster in
            try await cluster.withConnectedPair(framework: "slow", hostname: "node-4") { pair in
                let first = try await pair.frameworkInbox.wait(for: "OFFERS") { $0.type == .offers }
                let offerID = try #require(first.offers.offers.first?.id)
                let rescind = try await pair.frameworkInbox.wait(for: "RESCIND") { $0.type == .rescind }
                #expect(rescind.rescind.offerID == offerID)
                let again = try await pair.frameworkInbox.wait(for: "a new offer") {
                    $0.type == .offers && $0.offers.offers.first?.id != offerID
                }
                #expect(again.offers.offers.first?.agentID == pair.agentID)
                let accept = Keel_V1_AcceptRequest.with {
                    $0.frameworkID.value = pair.frameworkID
                    $0.offerIds = [offerID]
                    $0.operations = [.with {
                        $0.type = .launch
                        $0.launch.taskInfos = [Self.task("late", agentID: pair.agentID)]
                    }]
                }
                let late = await Self.rpcError { _ = try await cluster.scheduler.accept(accept, metadata: bearer(pair.token)) }
                #expect(late == .notFound)
            }
        }
    }

    @Test("a task group launches all together on one agent, or not at all")
    func launchGroup() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "grouped", hostname: "node-g") { pair in
                let offer = try #require(try await pair.frameworkInbox.wait(for: "OFFERS") { $0.type == .offers }.offers.offers.first)
                func group(_ tasks: [Keel_V1_TaskInfo]) -> Keel_V1_AcceptRequest {
                    .with {
                        $0.frameworkID.value = pair.frameworkID
                        $0.offerIds = [offer.id]
                        $0.operations = [.with {
                            $0.type = .launchGroup
                            $0.launchGroup.taskGroup.tasks = tasks
                        }]
                    }
                }
                let refused: [(String, Keel_V1_AcceptRequest)] = [
                    ("empty group", group([])),
                    ("one invalid task", group([Self.task("g1", agentID: pair.agentID), Self.task("g2", agentID: pair.agentID, argv: [])])),
                    ("too big together", group([
                        Self.task("g1", agentID: pair.agentID, cpus: 3), Self.task("g2", agentID: pair.agentID, cpus: 3),
                    ])),
                ]
                for (name, request) in refused {
                    let code = await Self.rpcError { _ = try await cluster.scheduler.accept(request, metadata: bearer(pair.token)) }
                    #expect(code == .invalidArgument, "\(name): got \(String(describing: code))")
                }
                let none = try await cluster.operator_.getTasks(.init())
                #expect(none.tasks.isEmpty, "a refused group left tasks behind")

                let accepted = try await cluster.scheduler.accept(
                    group([Self.task("g1", agentID: pair.agentID, cpus: 2), Self.task("g2", agentID: pair.agentID, cpus: 2)]),
                    metadata: bearer(pair.token))
                #expect(accepted.launched.map(\.value) == ["g1", "g2"])
                _ = try await pair.agentInbox.wait(for: "launch g1") { $0.launch.task.taskID.value == "g1" }
                _ = try await pair.agentInbox.wait(for: "launch g2") { $0.launch.task.taskID.value == "g2" }
                let tasks = try await cluster.operator_.getTasks(.init()).tasks
                #expect(Set(tasks.map(\.agentID)) == [pair.agentID])
            }
        }
    }

    @Test("suppress and revive name only roles the framework holds")
    func suppressRoles() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "roles", hostname: "node-s", roles: ["eng", "ops"]) { pair in
                let foreign = await Self.rpcError {
                    _ = try await cluster.scheduler.suppress(.with {
                        $0.frameworkID.value = pair.frameworkID
                        $0.roles = ["finance"]
                    }, metadata: bearer(pair.token))
                }
                #expect(foreign == .invalidArgument)
                _ = try await cluster.scheduler.suppress(.with {
                    $0.frameworkID.value = pair.frameworkID
                    $0.roles = ["eng"]
                }, metadata: bearer(pair.token))
                let partly = try await cluster.operator_.getFrameworks(.init()).frameworks
                #expect(partly.first?.active == true, "suppressing one of two roles keeps the framework active")
                _ = try await cluster.scheduler.suppress(.with {
                    $0.frameworkID.value = pair.frameworkID
                    $0.roles = ["ops"]
                }, metadata: bearer(pair.token))
                let fully = try await cluster.operator_.getFrameworks(.init()).frameworks
                #expect(fully.first?.active == false)
                let explained = try await cluster.operator_.explainOffers(.with { $0.frameworkID.value = pair.frameworkID })
                let reasons = explained.explanations.first?.reasons ?? []
                #expect(reasons.contains { $0.contains("'eng'") } && reasons.contains { $0.contains("'ops'") })
                _ = try await cluster.scheduler.revive(.with { $0.frameworkID.value = pair.frameworkID }, metadata: bearer(pair.token))
                let revived = try await cluster.operator_.getFrameworks(.init()).frameworks
                #expect(revived.first?.active == true)
            }
        }
    }

    // MARK: Helpers

    static func task(
        _ id: String,
        agentID: Keel_V1_AgentID,
        cpus: Double = 0.1,
        mem: Double = 32,
        argv: [String] = ["true"]
    ) -> Keel_V1_TaskInfo {
        .with {
            $0.name = id
            $0.taskID.value = id
            $0.agentID = agentID
            $0.resources = [.scalar("cpus", cpus), .scalar("mem", mem)]
            $0.command.argv.args = argv
        }
    }

    /// The gRPC status code `body` failed with, or nil if it succeeded.
    static func rpcError(_ body: () async throws -> Void) async -> RPCError.Code? {
        do {
            try await body()
            return nil
        } catch let error as RPCError {
            return error.code
        } catch {
            return .unknown
        }
    }
}

@Suite("Superseded subscriptions")
struct SupersededSubscriptionTests {
    @Test("after a failover, calls carrying the old subscription's stream id are refused; the new one's are served")
    func oldStreamRefused() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "failing-over", hostname: "node-f") { pair in
                let first = try await pair.frameworkInbox.wait(for: "SUBSCRIBED") { $0.type == .subscribed }
                let oldStream = first.subscribed.streamID
                #expect(!oldStream.isEmpty)

                // A second process subscribes as the same framework.
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
                    let second = try await newInbox.wait(for: "second SUBSCRIBED") { $0.type == .subscribed }
                    let newStream = second.subscribed.streamID
                    #expect(newStream != oldStream)
                    _ = try await pair.frameworkInbox.wait(for: "ERROR on the old stream") { $0.type == .error }

                    let reconcile = Keel_V1_ReconcileRequest.with { $0.frameworkID.value = frameworkID }
                    var old = bearer(token)
                    old.addString(oldStream, forKey: "keel-stream-id")
                    let refused = await rpcFailure { _ = try await scheduler.reconcile(reconcile, metadata: old) }
                    #expect(refused?.code == .failedPrecondition)
                    #expect(refused?.message.contains("superseded") == true)

                    var current = bearer(token)
                    current.addString(newStream, forKey: "keel-stream-id")
                    let served = await rpcFailure { _ = try await scheduler.reconcile(reconcile, metadata: current) }
                    #expect(served == nil)
                }
            }
        }
    }
}
