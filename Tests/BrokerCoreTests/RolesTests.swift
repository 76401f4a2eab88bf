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

/// Roles on the operator API: weights, quota, dynamic reservations (from operators and through
/// Accept), agent drains, their persistence across a broker restart, and offer explanations.
@Suite("Roles, quota, reservations and maintenance")
struct RolesTests {
    @Test("weights and quota are validated, applied all or nothing, and survive a broker restart")
    func weightsAndQuota() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keel-roles-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await InProcessCluster.with(directory: directory) { cluster in
            let operator_ = cluster.operator_
            let badWeights: [(String, [Keel_V1_WeightInfo])] = [
                ("empty", []),
                ("zero", [Self.weight("eng", 0)]),
                ("negative", [Self.weight("eng", -1)]),
                ("not a number", [Self.weight("eng", .nan)]),
                ("infinite", [Self.weight("eng", .infinity)]),
                ("invalid role", [Self.weight("eng//x", 2)]),
                ("no role", [Self.weight("", 2)]),
                ("twice", [Self.weight("eng", 2), Self.weight("eng", 3)]),
                ("one bad of two", [Self.weight("eng", 2), Self.weight("ops", -3)]),
            ]
            for (name, weights) in badWeights {
                let code = await SchedulerFlowTests.rpcError { _ = try await operator_.updateWeights(.with { $0.weights = weights }) }
                #expect(code == .invalidArgument, "\(name): got \(String(describing: code))")
            }
            let badQuota: [(String, Keel_V1_QuotaConfig)] = [
                ("guarantee above limit", Self.quota("eng", guarantees: ["cpus": 4], limits: ["cpus": 2])),
                ("negative", Self.quota("eng", guarantees: ["cpus": -1])),
                ("not finite", Self.quota("eng", limits: ["mem": .infinity])),
                ("unknown resource", Self.quota("eng", guarantees: ["ports": 10])),
                ("default role", Self.quota("*", guarantees: ["cpus": 1])),
                ("invalid role", Self.quota("/eng", guarantees: ["cpus": 1])),
            ]
            for (name, config) in badQuota {
                let code = await SchedulerFlowTests.rpcError { _ = try await operator_.updateQuota(.with { $0.configs = [config] }) }
                #expect(code == .invalidArgument, "\(name): got \(String(describing: code))")
            }
            let rolesAfterRefusals = try await operator_.getRoles(.init()).roles
            #expect(rolesAfterRefusals.isEmpty, "a refused change left a role behind")
            let missing = await SchedulerFlowTests.rpcError { _ = try await operator_.getQuota(.with { $0.roles = ["eng"] }) }
            #expect(missing == .notFound)

            _ = try await operator_.updateWeights(.with { $0.weights = [Self.weight("eng", 2), Self.weight("eng/web", 0.5)] })
            _ = try await operator_.updateQuota(.with {
                $0.configs = [Self.quota("eng", guarantees: ["cpus": 1, "mem": 512], limits: ["cpus": 3])]
            })
            let roles = try await operator_.getRoles(.init()).roles
            #expect(roles.map(\.name) == ["eng", "eng/web"])
            #expect(roles.map(\.weight) == [2, 0.5])
        }
        // A new broker over the same store: the policy is back.
        try await InProcessCluster.with(directory: directory) { cluster in
            let roles = try await cluster.operator_.getRoles(.init()).roles
            #expect(roles.map(\.name) == ["eng", "eng/web"])
            #expect(roles.map(\.weight) == [2, 0.5])
            let quota = try await cluster.operator_.getQuota(.with { $0.roles = ["eng"] }).configs
            #expect(quota.first?.guarantees == ["cpus": 1, "mem": 512])
            #expect(quota.first?.limits == ["cpus": 3])

            // Removing the quota and resetting the weight also survive.
            _ = try await cluster.operator_.updateQuota(.with { $0.configs = [Self.quota("eng")] })
            _ = try await cluster.operator_.updateWeights(.with { $0.weights = [Self.weight("eng", 1)] })
        }
        try await InProcessCluster.with(directory: directory) { cluster in
            let remainingQuota = try await cluster.operator_.getQuota(.init()).configs
            #expect(remainingQuota.isEmpty)
            let remainingRoles = try await cluster.operator_.getRoles(.init()).roles.map(\.name)
            #expect(remainingRoles == ["eng/web"])
        }
    }

    @Test("operators reserve free resources, unreserve only dynamic reservations, and both survive a restart")
    func operatorReservations() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keel-reserve-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let fixedID = Keel_V1_AgentID.with { $0.value = "agent-reserved" }
        try await InProcessCluster.with(directory: directory) { cluster in
            try await cluster.withAgent(hostname: "node-r", id: fixedID, resources: [
                .scalar("cpus", 4), .scalar("mem", 4096), Resource.scalar("cpus", 1, role: "ops").proto,
            ]) { agentID in
                let operator_ = cluster.operator_
                func reserve(_ resources: [Keel_V1_Resource], agent: Keel_V1_AgentID? = nil) async -> RPCError.Code? {
                    await SchedulerFlowTests.rpcError {
                        _ = try await operator_.reserveResources(.with {
                            $0.agentID = agent ?? agentID
                            $0.resources = resources
                        })
                    }
                }
                func unreserve(_ resources: [Keel_V1_Resource]) async -> RPCError.Code? {
                    await SchedulerFlowTests.rpcError {
                        _ = try await operator_.unreserveResources(.with {
                            $0.agentID = agentID
                            $0.resources = resources
                        })
                    }
                }
                #expect(await reserve([Self.reserved("cpus", 10, "eng")]) == .failedPrecondition)
                #expect(await reserve([.scalar("cpus", 1)]) == .invalidArgument)
                #expect(await reserve([]) == .invalidArgument)
                #expect(await reserve([Self.reserved("cpus", 1, "eng//x")]) == .invalidArgument)
                #expect(await reserve([Self.reserved("cpus", 1, "eng")], agent: .with { $0.value = "no-such-agent" }) == .notFound)
                let initial = try await Self.total(cluster, agentID)
                #expect(initial == "cpus:4;cpus(ops):1;mem:4096")

                let response = try await operator_.reserveResources(.with {
                    $0.agentID = agentID
                    $0.resources = [Self.reserved("cpus", 2, "eng"), Self.reserved("mem", 1024, "eng")]
                })
                let dynamic = response.totalResources.filter { $0.reservations.last?.type == .dynamic }
                #expect(Set(dynamic.map(\.name)) == ["cpus", "mem"])
                let reserved = try await Self.total(cluster, agentID)
                #expect(reserved == "cpus:2;cpus(eng):2;cpus(ops):1;mem:3072;mem(eng):1024")

                // Static reservations and more than is reserved cannot be unreserved.
                #expect(await unreserve([Self.reserved("cpus", 1, "ops")]) == .failedPrecondition)
                #expect(await unreserve([Self.reserved("cpus", 3, "eng")]) == .failedPrecondition)
                // A quota limit below what is reserved is refused.
                let belowReservations = await SchedulerFlowTests.rpcError {
                    _ = try await operator_.updateQuota(.with { $0.configs = [Self.quota("eng", limits: ["cpus": 1])] })
                }
                #expect(belowReservations == .invalidArgument)

                _ = try await operator_.unreserveResources(.with {
                    $0.agentID = agentID
                    $0.resources = [Self.reserved("cpus", 1, "eng")]
                })
                let afterUnreserve = try await Self.total(cluster, agentID)
                #expect(afterUnreserve == "cpus:3;cpus(eng):1;cpus(ops):1;mem:3072;mem(eng):1024")
                let roles = try await operator_.getRoles(.init()).roles
                #expect(roles.map(\.name) == ["eng", "ops"])
            }
        }
        let agentID = fixedID
        // After a restart the reservation is applied to the recovered agent and again when it
        // re-attaches with the same resources.
        try await InProcessCluster.with(directory: directory) { cluster in
            let recovered = try await Self.total(cluster, agentID)
            #expect(recovered == "cpus:3;cpus(eng):1;cpus(ops):1;mem:3072;mem(eng):1024")
            try await cluster.withAgent(hostname: "node-r", id: agentID, resources: [
                .scalar("cpus", 4), .scalar("mem", 4096), Resource.scalar("cpus", 1, role: "ops").proto,
            ]) { reattached in
                #expect(reattached == agentID)
                let reattachedTotal = try await Self.total(cluster, agentID)
                #expect(reattachedTotal == "cpus:3;cpus(eng):1;cpus(ops):1;mem:3072;mem(eng):1024")
            }
        }
    }

    @Test("a framework reserves and unreserves offered resources through Accept, and only for its role")
    func reserveThroughAccept() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "reserver", hostname: "node-a", roles: ["eng"]) { pair in
                let (frameworkID, token, agentID, inbox) = (pair.frameworkID, pair.token, pair.agentID, pair.frameworkInbox)
                let offer = try #require(try await inbox.wait(for: "OFFERS") { $0.type == .offers }.offers.offers.first)
                func accept(_ offer: Keel_V1_Offer, _ operations: [Keel_V1_Offer.Operation]) -> Keel_V1_AcceptRequest {
                    .with {
                        $0.frameworkID.value = frameworkID
                        $0.offerIds = [offer.id]
                        $0.operations = operations
                        $0.filters.refuseSeconds = 0
                    }
                }
                let bad: [(String, [Keel_V1_Offer.Operation])] = [
                    ("another role", [Self.reserve([Self.reserved("cpus", 1, "ops")])]),
                    ("beyond the offer", [Self.reserve([Self.reserved("cpus", 100, "eng")])]),
                    ("no role", [Self.reserve([.scalar("cpus", 1)])]),
                    ("not reserved", [Self.unreserve([Self.reserved("cpus", 1, "eng")])]),
                    ("launch beyond the reservation", [
                        Self.reserve([Self.reserved("cpus", 1, "eng")]),
                        Self.launch("big", agentID, [Self.reserved("cpus", 2, "eng"), .scalar("mem", 32)]),
                    ]),
                ]
                for (name, operations) in bad {
                    let code = await SchedulerFlowTests.rpcError {
                        _ = try await cluster.scheduler.accept(accept(offer, operations), metadata: bearer(token))
                    }
                    #expect(code == .invalidArgument, "\(name): got \(String(describing: code))")
                }
                let afterRefusals = try await Self.total(cluster, agentID)
                #expect(afterRefusals == "cpus:4;mem:4096", "a refused accept changed the agent")

                // Reserve two cpus and launch a task on one of them.
                let launched = try await cluster.scheduler.accept(accept(offer, [
                    Self.reserve([Self.reserved("cpus", 2, "eng")]),
                    Self.launch("on-reserved", agentID, [Self.reserved("cpus", 1, "eng"), .scalar("mem", 32)]),
                ]), metadata: bearer(token))
                #expect(launched.launched.map(\.value) == ["on-reserved"])
                let afterReserve = try await Self.total(cluster, agentID)
                #expect(afterReserve == "cpus:2;cpus(eng):2;mem:4096")

                // The free reserved cpu comes back in an offer and is unreserved through Accept.
                let next = try #require(try await inbox.wait(for: "an offer with the reserved cpu") { event in
                    event.type == .offers && event.offers.offers.contains { offered in
                        offered.id != offer.id && offered.resources.contains { $0.reservations.last?.role == "eng" }
                    }
                }.offers.offers.first { $0.id != offer.id })
                _ = try await cluster.scheduler.accept(
                    accept(next, [Self.unreserve([Self.reserved("cpus", 1, "eng")])]), metadata: bearer(token))
                let afterAcceptUnreserve = try await Self.total(cluster, agentID)
                #expect(afterAcceptUnreserve == "cpus:3;cpus(eng):1;mem:4096")
            }
        }
    }

    @Test("explain says why a framework gets no offers from an agent")
    func explain() async throws {
        try await InProcessCluster.with { cluster in
            try await cluster.withConnectedPair(framework: "explained", hostname: "node-e", roles: ["eng"]) { pair in
                let offer = try #require(try await pair.frameworkInbox.wait(for: "OFFERS") { $0.type == .offers }.offers.offers.first)
                _ = try await cluster.scheduler.decline(.with {
                    $0.frameworkID.value = pair.frameworkID
                    $0.offerIds = [offer.id]
                    $0.filters.refuseSeconds = 3600
                }, metadata: bearer(pair.token))
                let request = Keel_V1_ExplainOffersRequest.with { $0.frameworkID.value = pair.frameworkID }
                let declined = try await cluster.operator_.explainOffers(request).explanations
                #expect(declined.count == 1)
                #expect(declined.first?.offerable == false)
                #expect(declined.first?.reasons.contains { $0.contains("filtered until") } == true)

                _ = try await cluster.scheduler.suppress(.with { $0.frameworkID.value = pair.frameworkID }, metadata: bearer(pair.token))
                let byRole = try await cluster.operator_.explainOffers(.with { $0.role = "eng" }).explanations
                #expect(byRole.first?.reasons.contains { $0.contains("suppressed") } == true)

                let unknown = await SchedulerFlowTests.rpcError {
                    _ = try await cluster.operator_.explainOffers(.with { $0.frameworkID.value = "no-such-framework" })
                }
                #expect(unknown == .notFound)
                let nobody = await SchedulerFlowTests.rpcError { _ = try await cluster.operator_.explainOffers(.init()) }
                #expect(nobody == .invalidArgument)
            }
        }
    }

    @Test("a drained agent's offers are rescinded, its tasks killed on request, and it is offered again once reactivated")
    func drainAndReactivate() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keel-drain-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let agentID = Keel_V1_AgentID.with { $0.value = "agent-drained" }
        try await InProcessCluster.with(directory: directory) { cluster in
            try await cluster.withConnectedPair(framework: "drained", hostname: "node-d", agentID: agentID) { pair in
                let offer = try #require(try await pair.frameworkInbox.wait(for: "OFFERS") { $0.type == .offers }.offers.offers.first)
                let accept = Keel_V1_AcceptRequest.with {
                    $0.frameworkID.value = pair.frameworkID
                    $0.offerIds = [offer.id]
                    $0.operations = [Self.launch("doomed", agentID, [.scalar("cpus", 1), .scalar("mem", 32)])]
                    $0.filters.refuseSeconds = 0
                }
                _ = try await cluster.scheduler.accept(accept, metadata: bearer(pair.token))
                let second = try #require(try await pair.frameworkInbox.wait(for: "a second offer") {
                    $0.type == .offers && $0.offers.offers.first?.id != offer.id
                }.offers.offers.first)

                let unknown = await SchedulerFlowTests.rpcError {
                    _ = try await cluster.operator_.drainAgent(.with { $0.agentID.value = "no-such-agent" })
                }
                #expect(unknown == .notFound)
                let notDrained = await SchedulerFlowTests.rpcError {
                    _ = try await cluster.operator_.reactivateAgent(.with { $0.agentID = agentID })
                }
                #expect(notDrained == .failedPrecondition)

                _ = try await cluster.operator_.drainAgent(.with {
                    $0.agentID = agentID
                    $0.killTasks = true
                })
                let rescind = try await pair.frameworkInbox.wait(for: "RESCIND") { $0.type == .rescind }
                #expect(rescind.rescind.offerID == second.id)
                _ = try await pair.agentInbox.wait(for: "kill") { $0.kill.taskID.value == "doomed" }
                let agents = try await cluster.operator_.getAgents(.init()).agents
                #expect(agents.map(\.state) == [.draining])
                let explained = try await cluster.operator_.explainOffers(.with { $0.frameworkID.value = pair.frameworkID })
                #expect(explained.explanations.first?.reasons.contains { $0.contains("draining") } == true)
            }
        }
        // The drain survives a broker restart and the agent's re-attachment.
        try await InProcessCluster.with(directory: directory) { cluster in
            let recovered = try await cluster.operator_.getAgents(.init()).agents
            #expect(recovered.map(\.state) == [.draining])
            try await cluster.withConnectedPair(framework: "after", hostname: "node-d", agentID: agentID) { pair in
                let reattached = try await cluster.operator_.getAgents(.init()).agents
                #expect(reattached.map(\.state) == [.draining])
                _ = try await cluster.operator_.reactivateAgent(.with { $0.agentID = agentID })
                let offer = try await pair.frameworkInbox.wait(for: "OFFERS after reactivation") { $0.type == .offers }
                #expect(offer.offers.offers.first?.agentID == agentID)
                let active = try await cluster.operator_.getAgents(.init()).agents
                #expect(active.map(\.state) == [.active])
            }
        }
    }

    @Test("an agent replaced after a reboot is gone after a broker restart, with its reservations and drain")
    func replacedAgentForgotten() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keel-replaced-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let oldID = Keel_V1_AgentID.with { $0.value = "agent-before-reboot" }
        let resources: [Keel_V1_Resource] = [.scalar("cpus", 4), .scalar("mem", 4096)]
        try await InProcessCluster.with(directory: directory) { cluster in
            try await cluster.withAgent(hostname: "node-b", id: oldID, resources: resources, launcherPort: 7000, bootID: "boot-1") { _ in
                _ = try await cluster.operator_.reserveResources(.with {
                    $0.agentID = oldID
                    $0.resources = [Self.reserved("cpus", 1, "eng")]
                })
                _ = try await cluster.operator_.drainAgent(.with { $0.agentID = oldID })
            }
            try await cluster.withAgent(hostname: "node-b", resources: resources, launcherPort: 7000, bootID: "boot-2") { newID in
                #expect(newID != oldID)
                let agents = try await cluster.operator_.getAgents(.init()).agents
                #expect(agents.first { $0.agentInfo.id == oldID }?.state == .removed)
            }
        }
        try await InProcessCluster.with(directory: directory) { cluster in
            let agents = try await cluster.operator_.getAgents(.init()).agents
            #expect(agents.count == 1)
            #expect(!agents.contains { $0.agentInfo.id == oldID })
            let roles = try await cluster.operator_.getRoles(.init()).roles
            #expect(roles.isEmpty, "the removed agent's reservation is gone: \(roles.map(\.name))")
        }
    }

    // MARK: Helpers

    static func weight(_ role: String, _ weight: Double) -> Keel_V1_WeightInfo {
        .with {
            $0.role = role
            $0.weight = weight
        }
    }

    static func quota(_ role: String, guarantees: [String: Double] = [:], limits: [String: Double] = [:]) -> Keel_V1_QuotaConfig {
        .with {
            $0.role = role
            $0.guarantees = guarantees
            $0.limits = limits
        }
    }

    static func reserved(_ name: String, _ amount: Double, _ role: String) -> Keel_V1_Resource {
        var resource = Keel_V1_Resource.scalar(name, amount)
        resource.reservations = [.with {
            $0.type = .dynamic
            $0.role = role
        }]
        return resource
    }

    static func reserve(_ resources: [Keel_V1_Resource]) -> Keel_V1_Offer.Operation {
        .with {
            $0.type = .reserve
            $0.reserve.resources = resources
        }
    }

    static func unreserve(_ resources: [Keel_V1_Resource]) -> Keel_V1_Offer.Operation {
        .with {
            $0.type = .unreserve
            $0.unreserve.resources = resources
        }
    }

    static func launch(_ id: String, _ agentID: Keel_V1_AgentID, _ resources: [Keel_V1_Resource]) -> Keel_V1_Offer.Operation {
        var task = SchedulerFlowTests.task(id, agentID: agentID)
        task.resources = resources
        return .with {
            $0.type = .launch
            $0.launch.taskInfos = [task]
        }
    }

    /// The agent's total resources in text form, e.g. `cpus:2;cpus(eng):2`.
    static func total(_ cluster: InProcessCluster, _ agentID: Keel_V1_AgentID) async throws -> String {
        let agents = try await cluster.operator_.getAgents(.init()).agents
        let agent = try #require(agents.first { $0.agentInfo.id == agentID })
        return try Resources(proto: agent.totalResources).description
    }
}

extension InProcessCluster {
    /// Attaches an agent with `resources` (and `id`, to re-attach) and runs `body` with its id
    /// while the stream is open.
    func withAgent<T: Sendable>(
        hostname: String,
        id: Keel_V1_AgentID? = nil,
        resources: [Keel_V1_Resource],
        launcherPort: UInt32 = 0,
        bootID: String = "",
        _ body: @Sendable (Keel_V1_AgentID) async throws -> T
    ) async throws -> T {
        let inbox = Inbox<Keel_V1_BrokerMessage>()
        let (outbox, writer) = AsyncStream.makeStream(of: Keel_V1_AgentMessage.self)
        writer.yield(.with {
            $0.register.agentInfo.hostname = hostname
            if let id { $0.register.agentInfo.id = id }
            $0.register.agentInfo.resources = resources
            $0.register.agentInfo.launcherAddress.ip = "127.0.0.1"
            $0.register.agentInfo.launcherAddress.port = launcherPort
            $0.register.agentInfo.bootID = bootID
        })
        let agents = self.agents
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await agents.attach(requestProducer: { stream in
                    for await message in outbox { try await stream.write(message) }
                }, onResponse: { response in
                    for try await message in response.messages { inbox.append(message) }
                })
            }
            defer {
                writer.finish()
                group.cancelAll()
            }
            let agentID = try await inbox.wait(for: "registered") { $0.registered.hasAgentID }.registered.agentID
            return try await body(agentID)
        }
    }
}
