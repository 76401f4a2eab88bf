import BrokerCore
import Foundation
#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import KeelAPI
import KeelRPC
import KeelSDK
import RegistryCore
import SwiftProtobuf
import Testing

/// The SDK's driver against the real registry and broker served over loopback HTTP/2: it
/// survives a broker restart with the same framework id, reconciles and acknowledges by itself,
/// follows a leader redirect, and ends its events with a typed error when it must.
@Suite("Scheduler driver", .timeLimit(.minutes(2)))
struct SchedulerDriverTests {
    @Test("after a broker restart the driver resubscribes with the same id, its tasks live on, and reconciliation brings the latest states")
    func reconnectAfterBrokerRestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keel-sdk-tests-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let events = Inbox<SchedulerEvent>()
        let port = Inbox<Int>()
        let running = Keel_V1_TaskID.with { $0.value = "stays-running" }
        let finishing = Keel_V1_TaskID.with { $0.value = "finishes-while-away" }

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let loopback = try await port.wait(for: "the broker's port") { _ in true }
                let configuration = Self.configuration(registry: loopback, broker: loopback, name: "restart")
                try await SchedulerDriver(configuration: configuration).run { session in
                    var launched = false
                    for try await event in session.events {
                        events.append(event)
                        if case .offers(let offers) = event, !launched, let offer = offers.first {
                            let tasks = [running, finishing].map { id in
                                Keel_V1_TaskInfo.with {
                                    $0.taskID = id
                                    $0.name = id.value
                                    $0.agentID = offer.agentID
                                    $0.resources = [.scalar("cpus", 0.5), .scalar("mem", 64)]
                                    $0.command.argv.args = ["sleep", "600"]
                                }
                            }
                            try await session.launch(tasks, on: [offer])
                            launched = true
                        }
                    }
                }
            }
            defer { group.cancelAll() }

            // The first broker: the tasks start, and the driver acknowledges their updates.
            let agentIDs = Inbox<Keel_V1_AgentID>()
            let launched = Inbox<Keel_V1_RunningTask>()
            try await InProcessCluster.with(directory: directory, loopbackPort: 0) { cluster in
                port.append(try #require(cluster.loopbackPort))
                try await cluster.withTestAgent(hostname: "node-1") { agent in
                    _ = try await agent.inbox.wait(for: "the launches") { $0.launch.task.taskID == finishing }
                    for (index, id) in [running, finishing].enumerated() {
                        agent.send(id, .taskRunning, uuid: Data([1, UInt8(index)]), frameworkID: try Self.frameworkID(events))
                        let acknowledged = try await agent.inbox.wait(for: "the acknowledgement of \(id.value)") {
                            $0.acknowledge.uuid == Data([1, UInt8(index)])
                        }
                        #expect(acknowledged.acknowledge.taskID == id)
                    }
                    agentIDs.append(agent.id)
                    for message in agent.inbox.all where message.launch.hasTask {
                        launched.append(.with {
                            $0.frameworkID = message.launch.frameworkInfo.id
                            $0.task = message.launch.task
                        })
                    }
                    // A durable change after the updates: the store then holds them too.
                    _ = try await cluster.operator_.updateWeights(.with { $0.weights = [.with { $0.role = "sync"; $0.weight = 1 }] })
                }
            }
            let agentID = try #require(agentIDs.all.first)
            let frameworkID = try Self.frameworkID(events)
            let disconnection = try await events.wait(for: "the disconnection") {
                if case .disconnected = $0 { return true }
                return false
            }
            if case .disconnected(let details) = disconnection {
                #expect(details.broker == "127.0.0.1:\(try #require(port.all.first))")
            }

            // While the framework is away, one task finishes (the driver cannot hear it).
            try await InProcessCluster.with(directory: directory) { cluster in
                try await cluster.withTestAgent(hostname: "node-1", agentID: agentID, runningTasks: launched.all) { agent in
                    agent.send(finishing, .taskFinished, uuid: Data([2, 1]), frameworkID: frameworkID)
                    try await cluster.waitForTask(finishing, in: .taskFinished)
                    // A durable change after the update: the store then holds the update too.
                    _ = try await cluster.operator_.updateWeights(.with { $0.weights = [.with { $0.role = "sync"; $0.weight = 1 }] })
                }
            }

            // The broker is back on the same port: resubscription and reconciliation.
            let samePort: Int = try #require(port.all.first)
            try await InProcessCluster.with(directory: directory, loopbackPort: samePort) { cluster in
                try await cluster.withTestAgent(hostname: "node-1", agentID: agentID, runningTasks: launched.all.filter { $0.task.taskID == running }) { agent in
                    let subscribed = try await events.wait(for: "the second SUBSCRIBED", timeout: .seconds(60)) {
                        if case .subscribed(let subscription) = $0 { return subscription.isResubscription }
                        return false
                    }
                    if case .subscribed(let subscription) = subscribed {
                        #expect(subscription.frameworkID.value == frameworkID)
                        #expect(subscription.number == 2)
                    }
                    let stillRunning = try await events.wait(for: "the reconciliation of \(running.value)") {
                        $0.update?.taskID == running && $0.update?.reason == .reconciliation
                    }
                    #expect(stillRunning.update?.state == .taskRunning)
                    let finished = try await events.wait(for: "the reconciliation of \(finishing.value)") {
                        $0.update?.taskID == finishing && $0.update?.reason == .reconciliation
                    }
                    #expect(finished.update?.state == .taskFinished)
                    let tasks = try await cluster.operator_.getTasks(Keel_V1_GetTasksRequest())
                    #expect(tasks.tasks.first { $0.taskID == running }?.state == .taskRunning)
                    #expect(!agent.inbox.all.contains { $0.kill.taskID == running })
                }
            }
        }
    }

    @Test("the driver follows a follower's redirect to the leader, and its calls go there")
    func followsLeaderRedirect() async throws {
        try await InProcessCluster.with(loopbackPort: 0) { cluster in
            let leader = KeelRPC.Endpoint(host: "127.0.0.1", port: try #require(cluster.loopbackPort))
            let redirected = Inbox<String>()
            let follower = GRPCServer(
                transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
                services: [SchedulerService(broker: cluster.broker)],
                interceptorPipeline: [.apply(LeaderRedirectInterceptor { redirected.append("call"); return leader }, to: .all)]
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await follower.serve() }
                defer {
                    follower.beginGracefulShutdown()
                    group.cancelAll()
                }
                let followerPort = try #require(try await follower.listeningAddress?.port)
                let configuration = Self.configuration(registry: leader.port, broker: followerPort, name: "redirect")
                let subscription = try await SchedulerDriver(configuration: configuration).run { session in
                    try await session.reconcile()
                    for try await event in session.events {
                        if case .subscribed(let subscription) = event { return subscription }
                    }
                    throw TestError("the events ended without SUBSCRIBED")
                }
                #expect(subscription.broker == leader.description)
                #expect(redirected.all.count == 1)
            }
        }
    }

    @Test("a teardown ends the events with terminatedByBroker")
    func teardownEndsEvents() async throws {
        try await InProcessCluster.with(loopbackPort: 0) { cluster in
            let port = try #require(cluster.loopbackPort)
            let code = try await SchedulerDriver(configuration: Self.configuration(registry: port, broker: port, name: "down")).run { session in
                try await session.teardown()
                do {
                    for try await _ in session.events {}
                } catch let error as SchedulerError {
                    return error.code
                }
                throw TestError("the events ended without an error")
            }
            #expect(code == .terminatedByBroker)
        }
    }

    @Test("a broker that stays unreachable ends the first subscription with reconnectLimitReached")
    func unreachableBroker() async throws {
        try await InProcessCluster.with(loopbackPort: 0) { cluster in
            let registry = try #require(cluster.loopbackPort)
            let (refusing, closedPort) = try Self.refusingPort()
            defer { close(refusing) }
            var configuration = Self.configuration(registry: registry, broker: closedPort, name: "unreachable")
            configuration.reconnect = ReconnectPolicy(initialDelay: .milliseconds(10), maxDelay: .milliseconds(50), maxConsecutiveFailures: 3)
            let started = Inbox<Bool>()
            let driver = SchedulerDriver(configuration: configuration)
            var code: SchedulerError.Code?
            do {
                try await driver.run { _ in started.append(true) }
            } catch let error as SchedulerError {
                code = error.code
            }
            #expect(code == .reconnectLimitReached)
            #expect(started.all.isEmpty, "the body must not run without a subscription")
        }
    }

    @Test("a broker that refuses the token even after a renewal ends the first subscription with unauthenticated")
    func refusedToken() async throws {
        try await InProcessCluster.with(loopbackPort: 0) { cluster in
            let registry = try #require(cluster.loopbackPort)
            // A broker front that trusts another registry's keys: it refuses this registry's
            // tokens with UNAUTHENTICATED, renewed or not.
            let verifier = TokenVerifier()
            try await InProcessCluster.with { other in try await verifier.install(jwksJSON: other.authority.jwksJSON) }
            let refusing = GRPCServer(
                transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
                services: [SchedulerService(broker: cluster.broker)],
                interceptorPipeline: [.apply(FrameworkAuthInterceptor(verifier: verifier), to: .all)]
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await refusing.serve() }
                defer {
                    refusing.beginGracefulShutdown()
                    group.cancelAll()
                }
                let brokerPort = try #require(try await refusing.listeningAddress?.port)
                var configuration = Self.configuration(registry: registry, broker: brokerPort, name: "refused")
                // Bounded, so that a refusal wrongly taken for a passing failure fails the test.
                configuration.reconnect.maxConsecutiveFailures = 5
                let driver = SchedulerDriver(configuration: configuration)
                var code: SchedulerError.Code?
                do {
                    try await driver.run { _ in }
                } catch let error as SchedulerError {
                    code = error.code
                }
                #expect(code == .unauthenticated)
            }
        }
    }

    @Test("explicit acknowledgement still works with automatic acknowledgement off")
    func explicitAcknowledgement() async throws {
        try await InProcessCluster.with(loopbackPort: 0) { cluster in
            let port = try #require(cluster.loopbackPort)
            var explicit = Self.configuration(registry: port, broker: port, name: "explicit")
            explicit.automaticAcknowledgement = false
            let configuration = explicit
            try await cluster.withTestAgent(hostname: "node-1") { agent in
                let taskID = Keel_V1_TaskID.with { $0.value = "acked-by-hand" }
                try await SchedulerDriver(configuration: configuration).run { session in
                    for try await event in session.events {
                        switch event {
                        case .offers(let offers):
                            guard let offer = offers.first else { continue }
                            try await session.launch([.with {
                                $0.taskID = taskID
                                $0.name = "explicit"
                                $0.agentID = offer.agentID
                                $0.resources = [.scalar("cpus", 0.5), .scalar("mem", 64)]
                                $0.command.argv.args = ["true"]
                            }], on: [offer])
                            _ = try await agent.inbox.wait(for: "the launch") { $0.launch.task.taskID == taskID }
                            agent.send(taskID, .taskFinished, uuid: Data([7]), frameworkID: session.frameworkID.value)
                        case .update(let status) where status.taskID == taskID && !status.uuid.isEmpty:
                            // Not acknowledged by the driver: the agent has no acknowledgement yet.
                            #expect(!agent.inbox.all.contains { $0.acknowledge.uuid == Data([7]) })
                            try await session.acknowledge(status)
                            _ = try await agent.inbox.wait(for: "the acknowledgement") { $0.acknowledge.uuid == Data([7]) }
                            return
                        default:
                            break
                        }
                    }
                }
            }
        }
    }

    @Test("automatic acknowledgements of a burst of updates reach the agent, also when the body returns at the last one")
    func automaticAcknowledgementsBeforeReturn() async throws {
        try await InProcessCluster.with(loopbackPort: 0) { cluster in
            let port = try #require(cluster.loopbackPort)
            let configuration = Self.configuration(registry: port, broker: port, name: "auto-acks")
            try await cluster.withTestAgent(hostname: "node-1") { agent in
                let ids = (0..<20).map { index in Keel_V1_TaskID.with { $0.value = "burst-\(index)" } }
                let uuids = (0..<20).map { Data([UInt8(100 + $0)]) }
                try await SchedulerDriver(configuration: configuration).run { session in
                    var seen = 0
                    var launched = false
                    for try await event in session.events {
                        switch event {
                        case .offers(let offers):
                            guard let offer = offers.first, !launched else { continue }
                            launched = true
                            try await session.launch(ids.map { id in .with {
                                $0.taskID = id
                                $0.name = "burst"
                                $0.agentID = offer.agentID
                                $0.resources = [.scalar("cpus", 0.01), .scalar("mem", 8)]
                                $0.command.argv.args = ["true"]
                            }}, on: [offer])
                            for id in ids {
                                _ = try await agent.inbox.wait(for: "launch of \(id.value)") { $0.launch.task.taskID == id }
                            }
                            for (id, uuid) in zip(ids, uuids) {
                                agent.send(id, .taskFinished, uuid: uuid, frameworkID: session.frameworkID.value)
                            }
                        case .update(let status) where status.state == .taskFinished:
                            seen += 1
                            // Return at the last update: its acknowledgement still goes out.
                            if seen == ids.count { return }
                        default:
                            break
                        }
                    }
                }
                for uuid in uuids {
                    _ = try await agent.inbox.wait(for: "the acknowledgement of \(uuid.first!)") { $0.acknowledge.uuid == uuid }
                }
            }
        }
    }

    // MARK: Helpers

    static func configuration(registry: Int, broker: Int, name: String) -> SchedulerConfiguration {
        SchedulerConfiguration(
            registry: "127.0.0.1:\(registry)",
            broker: "127.0.0.1:\(broker)",
            frameworkInfo: .with {
                $0.name = name
                $0.user = "root"
                $0.failoverTimeout = Google_Protobuf_Duration(seconds: 300)
            },
            reconnect: ReconnectPolicy(initialDelay: .milliseconds(50), maxDelay: .milliseconds(500))
        )
    }

    /// The framework id from the first SUBSCRIBED seen.
    static func frameworkID(_ events: Inbox<SchedulerEvent>) throws -> String {
        for event in events.all {
            if case .subscribed(let subscription) = event { return subscription.frameworkID.value }
        }
        throw TestError("no SUBSCRIBED yet")
    }

    /// A loopback port nobody listens on: bound to port 0 but not listening, so connections are
    /// refused, and held until the descriptor is closed, so no other test's server can get it.
    static func refusingPort() throws -> (descriptor: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw TestError("could not bind a loopback port")
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// An agent attached to an in-process broker over its real agent stream, driven by the test.
struct TestAgent: Sendable {
    let id: Keel_V1_AgentID
    /// What the broker sent it.
    let inbox: Inbox<Keel_V1_BrokerMessage>
    let writer: AsyncStream<Keel_V1_AgentMessage>.Continuation

    /// Reports a task's state, as a launcher does.
    func send(_ taskID: Keel_V1_TaskID, _ state: Keel_V1_TaskState, uuid: Data, frameworkID: String) {
        writer.yield(.with {
            $0.statusUpdate.frameworkID.value = frameworkID
            $0.statusUpdate.status = .with {
                $0.taskID = taskID
                $0.state = state
                $0.agentID = id
                $0.uuid = uuid
                $0.source = .agent
            }
        })
    }
}

extension InProcessCluster {
    /// Attaches an agent with 4 cpus and 4096 MiB (as `agentID`, to re-attach, reporting
    /// `runningTasks` as a restarted launcher does) and runs `body` while its stream is open.
    func withTestAgent(
        hostname: String,
        agentID requested: Keel_V1_AgentID? = nil,
        runningTasks: [Keel_V1_RunningTask] = [],
        _ body: @Sendable (TestAgent) async throws -> Void
    ) async throws {
        let inbox = Inbox<Keel_V1_BrokerMessage>()
        let (outbox, writer) = AsyncStream.makeStream(of: Keel_V1_AgentMessage.self)
        writer.yield(.with {
            $0.register.agentInfo.hostname = hostname
            if let requested { $0.register.agentInfo.id = requested }
            $0.register.agentInfo.resources = [.scalar("cpus", 4), .scalar("mem", 4096)]
            $0.register.runningTasks = runningTasks
        })
        let agents = self.agents
        try await withThrowingTaskGroup(of: Void.self) { group in
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
            let id = try await inbox.wait(for: "registered") { $0.registered.hasAgentID }.registered.agentID
            try await body(TestAgent(id: id, inbox: inbox, writer: writer))
        }
    }

    /// Waits until the broker's task table has `taskID` in `state`.
    func waitForTask(_ taskID: Keel_V1_TaskID, in state: Keel_V1_TaskState) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let tasks = try await operator_.getTasks(Keel_V1_GetTasksRequest())
            if tasks.tasks.contains(where: { $0.taskID == taskID && $0.state == state }) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestError("task \(taskID.value) did not reach \(state)")
    }
}
