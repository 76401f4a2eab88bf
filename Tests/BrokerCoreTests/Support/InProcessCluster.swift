import BrokerCore
import Foundation
import GRPCCore
import GRPCInProcessTransport
import GRPCNIOTransportHTTP2Posix
import KeelSDK
import KeelAPI
import KeelCore
import KeelRPC
import KeelStore
import Logging
import RegistryCore
import SwiftProtobuf
import Synchronization
import Testing

/// The registry and broker services on one in-process gRPC server, with their real SQLite
/// stores in a temporary directory, for service tests.
struct InProcessCluster {
    let client: GRPCClient<InProcessTransport.Client>
    let broker: Broker
    /// The broker's store (SQLite), whose writes a test can make fail.
    let brokerStore: FailingStore
    let authority: TokenAuthority
    /// The loopback port the services are also served on over HTTP/2, when asked for.
    let loopbackPort: Int?

    var registry: Keel_V1_Registry.Client<InProcessTransport.Client> { .init(wrapping: client) }
    var scheduler: Keel_V1_Scheduler.Client<InProcessTransport.Client> { .init(wrapping: client) }
    var agents: Keel_V1_AgentService.Client<InProcessTransport.Client> { .init(wrapping: client) }
    var operator_: Keel_V1_Operator.Client<InProcessTransport.Client> { .init(wrapping: client) }

    /// Runs `body` with a fresh cluster; everything stops and the files are removed afterwards.
    ///
    /// With `directory`, the stores live there and are kept (the caller removes it), so a second
    /// cluster on the same directory recovers what the first one stored, like a restart.
    /// `registryConfiguration` sets the registry's credentials, ACLs and token lifetime; `acls`
    /// are the broker's. With `loopbackPort`, the same services are also served over real HTTP/2
    /// on 127.0.0.1 at that port (0: a free one, see ``loopbackPort``), for clients such as the
    /// SDK that dial an address.
    static func with(
        offerTimeout: Duration? = nil,
        directory kept: URL? = nil,
        loopbackPort requestedPort: Int? = nil,
        registryConfiguration: RegistryConfiguration = .defaults,
        acls: ACLs = .allowAll,
        _ body: @Sendable (InProcessCluster) async throws -> Void
    ) async throws {
        let directory = kept ?? FileManager.default.temporaryDirectory.appendingPathComponent("keel-broker-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { if kept == nil { try? FileManager.default.removeItem(at: directory) } }
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let registryStore = try await SQLiteStore.open(path: directory.appendingPathComponent("registry.sqlite").path, logger: logger)
        let brokerStore = try await SQLiteStore.open(path: directory.appendingPathComponent("broker.sqlite").path, logger: logger)
        let authority = try await TokenAuthority.load(
            store: registryStore, tokenTTL: registryConfiguration.tokenTTL, logger: logger
        )
        let inProcess = InProcessTransport()
        let client = GRPCClient(transport: inProcess.client)
        var configuration = BrokerConfiguration.defaults(registry: Endpoint(host: "127.0.0.1", port: 1))
        configuration.offerInterval = .milliseconds(100)
        configuration.offerTimeout = offerTimeout
        configuration.acls = acls
        let failingStore = FailingStore(wrapping: brokerStore)
        let broker = Broker(
            configuration: configuration,
            store: failingStore,
            directory: RegistryDirectory(client: Keel_V1_Registry.Client(wrapping: client)),
            logger: logger
        )
        try await broker.recover()
        try await broker.verifier.install(jwksJSON: authority.jwksJSON)
        let services: [any RegistrableRPCService] = [
            RegistryService(store: registryStore, authority: authority, configuration: registryConfiguration, logger: logger),
            SchedulerService(broker: broker), AgentStreamService(broker: broker), OperatorService(broker: broker),
        ]
        let interceptors: [ConditionalInterceptor<any ServerInterceptor>] = [
            .apply(FrameworkAuthInterceptor(verifier: broker.verifier), to: .services([Keel_V1_Scheduler.descriptor]))
        ] + (try await RegistryService.interceptors(authority: authority))
        let server = GRPCServer(transport: inProcess.server, services: services, interceptorPipeline: interceptors)
        let loopbackServer = requestedPort.map { port in
            GRPCServer(
                transport: HTTP2ServerTransport.Posix(
                    address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext
                ),
                services: services,
                interceptorPipeline: interceptors
            )
        }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.serve() }
                if let loopbackServer { group.addTask { try await loopbackServer.serve() } }
                group.addTask { try await client.runConnections() }
                group.addTask { try await broker.run() }
                defer {
                    server.beginGracefulShutdown()
                    loopbackServer?.beginGracefulShutdown()
                    client.beginGracefulShutdown()
                    group.cancelAll()
                }
                let loopbackPort = try await loopbackServer?.listeningAddress?.port
                let cluster = InProcessCluster(
                    client: client, broker: broker, brokerStore: failingStore, authority: authority, loopbackPort: loopbackPort)
                try await body(cluster)
            }
        } catch {
            // Close the stores on failure too, so the test reports its error.
            try? await registryStore.close()
            try? await brokerStore.close()
            throw error
        }
        try await registryStore.close()
        try await brokerStore.close()
    }

    /// Registers a framework; returns its id and token.
    func register(
        _ name: String,
        capabilities: [Keel_V1_FrameworkInfo.Capability.TypeEnum] = [],
        user: String = "root",
        roles: [String] = [],
        credential: (principal: String, secret: String)? = nil
    ) async throws -> (String, String) {
        let request = Keel_V1_RegisterFrameworkRequest.with {
            $0.frameworkInfo.name = name
            $0.frameworkInfo.user = user
            $0.frameworkInfo.roles = roles
            $0.frameworkInfo.capabilities = capabilities.map { type in .with { $0.type = type } }
            if let credential {
                $0.credential.principal = credential.principal
                $0.credential.secret = credential.secret
            }
        }
        let response = try await registry.registerFramework(request)
        return (response.frameworkID.value, response.token)
    }
}

/// Messages received on a stream, collected for assertions.
final class Inbox<Message: Sendable>: Sendable {
    private let messages = Mutex<[Message]>([])

    func append(_ message: Message) {
        messages.withLock { $0.append(message) }
    }

    var all: [Message] { messages.withLock { $0 } }

    /// Waits until a message matching `predicate` has arrived and returns the first such one.
    func wait(
        for what: String,
        timeout: Duration = .seconds(30),
        where predicate: @Sendable (Message) -> Bool
    ) async throws -> Message {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let found = messages.withLock({ $0.first(where: predicate) }) { return found }
            guard ContinuousClock.now < deadline else { throw InboxTimeout(what: what) }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits until `count` messages match `predicate`.
    func wait(
        for what: String,
        count: Int,
        timeout: Duration = .seconds(30),
        where predicate: @Sendable (Message) -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while messages.withLock({ $0.count(where: predicate) }) < count {
            guard ContinuousClock.now < deadline else { throw InboxTimeout(what: what) }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// An expected message did not arrive in time.
struct InboxTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Bearer-token metadata for a scheduler call.
func bearer(_ token: String) -> Metadata {
    ["authorization": "Bearer \(token)"]
}

/// A registered framework subscribed to the broker and one agent attached to it, both over
/// real gRPC streams, with what each has received so far.
struct ConnectedPair: Sendable {
    let frameworkID: String
    let token: String
    let agentID: Keel_V1_AgentID
    let agentInbox: Inbox<Keel_V1_BrokerMessage>
    let frameworkInbox: Inbox<Keel_V1_Event>
    /// Sends messages up the agent's stream.
    let agentWriter: AsyncStream<Keel_V1_AgentMessage>.Continuation

    /// Sends a status update of one of the framework's tasks up the agent's stream, as its
    /// launcher would.
    func sendStatus(_ taskID: String, _ state: Keel_V1_TaskState, uuid: Data) {
        agentWriter.yield(.with {
            $0.statusUpdate.frameworkID.value = frameworkID
            $0.statusUpdate.status = .with {
                $0.taskID.value = taskID
                $0.state = state
                $0.agentID = agentID
                $0.uuid = uuid
                $0.source = .agent
            }
        })
    }

    /// Waits for the framework's first offer and launches `tasks` on it.
    func launchOnFirstOffer(_ tasks: [Keel_V1_TaskInfo], scheduler: Keel_V1_Scheduler.Client<InProcessTransport.Client>) async throws {
        let offers = try await frameworkInbox.wait(for: "OFFERS") { $0.type == .offers }
        let offer = try #require(offers.offers.offers.first)
        _ = try await scheduler.accept(.with {
            $0.frameworkID.value = frameworkID
            $0.offerIds = [offer.id]
            $0.operations = [.with {
                $0.type = .launch
                $0.launch.taskInfos = tasks
            }]
        }, metadata: bearer(token))
    }
}

extension InProcessCluster {
    /// Registers a framework, attaches an agent with 4 cpus and 4096 MiB, subscribes the
    /// framework, and runs `body` once the agent is registered and the subscription is open.
    func withConnectedPair(
        framework name: String,
        hostname: String,
        roles: [String] = [],
        capabilities: [Keel_V1_FrameworkInfo.Capability.TypeEnum] = [],
        user: String = "root",
        credential: (principal: String, secret: String)? = nil,
        agentID requestedAgentID: Keel_V1_AgentID? = nil,
        launcherPort: UInt32 = 0,
        bootID: String = "",
        acceptsBatches: Bool = false,
        _ body: @Sendable (ConnectedPair) async throws -> Void
    ) async throws {
        let (frameworkID, token) = try await register(
            name, capabilities: capabilities, user: user, roles: roles, credential: credential)
        let agentInbox = Inbox<Keel_V1_BrokerMessage>()
        let frameworkInbox = Inbox<Keel_V1_Event>()
        let (agentOutbox, agentWriter) = AsyncStream.makeStream(of: Keel_V1_AgentMessage.self)
        agentWriter.yield(.with {
            $0.register.agentInfo.hostname = hostname
            if let requestedAgentID { $0.register.agentInfo.id = requestedAgentID }
            $0.register.agentInfo.resources = [.scalar("cpus", 4), .scalar("mem", 4096)]
            $0.register.agentInfo.launcherAddress.ip = "127.0.0.1"
            $0.register.agentInfo.launcherAddress.port = launcherPort
            $0.register.agentInfo.bootID = bootID
            $0.register.acceptsBatches = acceptsBatches
        })
        let agents = self.agents
        let scheduler = self.scheduler
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await agents.attach(requestProducer: { writer in
                    for await message in agentOutbox { try await writer.write(message) }
                }, onResponse: { response in
                    for try await message in response.messages { agentInbox.append(message) }
                })
            }
            let agentID = try await agentInbox.wait(for: "registered") { $0.registered.hasAgentID }.registered.agentID
            group.addTask {
                let request = Keel_V1_SubscribeRequest.with { $0.frameworkInfo.id.value = frameworkID }
                try await scheduler.subscribe(request, metadata: bearer(token)) { response in
                    for try await event in response.messages { frameworkInbox.append(event) }
                }
            }
            _ = try await frameworkInbox.wait(for: "SUBSCRIBED") { $0.type == .subscribed }
            defer {
                agentWriter.finish()
                group.cancelAll()
            }
            try await body(ConnectedPair(
                frameworkID: frameworkID, token: token, agentID: agentID, agentInbox: agentInbox,
                frameworkInbox: frameworkInbox, agentWriter: agentWriter
            ))
        }
    }
}
