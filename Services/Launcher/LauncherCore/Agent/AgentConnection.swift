import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
package import KeelAPI
import KeelCore
package import KeelRPC
package import Logging
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

/// Keeps this launcher attached to the broker: registers with the node's resources, heartbeats,
/// carries status updates up and launches, kills and acknowledgements down, and re-attaches with
/// backoff whenever the stream breaks.
package struct AgentConnection: Service {
    private let configuration: LauncherConfiguration
    private let client: Keel_V1_AgentService.Client<HTTP2ClientTransport.Posix>
    private let tasks: TaskManager
    private let updates: StatusUpdateManager
    private let identity: AgentIdentity
    private let logger: Logger
    private let onRegistered: @Sendable (String) async -> Void
    private let advertisedPort: @Sendable () async -> Int

    /// Creates the connection; `client` must run in the same service group.
    package init(
        configuration: LauncherConfiguration,
        client: ManagedClient,
        tasks: TaskManager,
        updates: StatusUpdateManager,
        identity: AgentIdentity,
        logger: Logger,
        advertisedPort: @escaping @Sendable () async -> Int,
        onRegistered: @escaping @Sendable (String) async -> Void
    ) {
        self.advertisedPort = advertisedPort
        self.configuration = configuration
        self.client = Keel_V1_AgentService.Client(wrapping: client.client)
        self.tasks = tasks
        self.updates = updates
        self.identity = identity
        self.logger = logger
        self.onRegistered = onRegistered
    }

    package func run() async throws {
        // Attach only once the launcher API is bound, so the broker learns the real port.
        let port = await advertisedPort()
        var backoff = Duration.milliseconds(200)
        let attached = StreamFlag()
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            defer {
                if attached.take() { backoff = .milliseconds(200) }
            }
            do {
                try await attachOnce(port: port) { attached.set() }
                logger.warning("the broker closed the agent stream; re-attaching")
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { break }
                logger.warning("agent stream failed; re-attaching", metadata: ["keel.error": "\(error)", "keel.retry_in": "\(backoff)"])
            }
            updates.connect(nil)
            try? await cancelWhenGracefulShutdown { [backoff] in try await Task.sleep(for: backoff) }
            backoff = min(backoff * 2, .seconds(5))
        }
        updates.connect(nil)
    }

    private func attachOnce(port: Int, onRegistered reset: @escaping @Sendable () -> Void) async throws {
        let outbox = MessageOutbox<Keel_V1_AgentMessage>(minimumInterval: StreamPacing.interval)
        let brokerAcceptsBatches = StreamFlag()
        outbox.send(.with { $0.register = registerMessage(port: port) })
        let heartbeatInterval = configuration.heartbeatInterval
        try await withGracefulShutdownHandler {
            try await client.attach(
                requestProducer: { writer in
                    try await withThrowingDiscardingTaskGroup { group in
                        group.addTask {
                            while !Task.isCancelled {
                                try await Task.sleep(for: heartbeatInterval)
                                outbox.send(.with { $0.heartbeat = .init() })
                            }
                        }
                        // Whatever queued up while the last write was under way goes out
                        // together, status updates merged when the broker takes them so.
                        while let batch = await outbox.next() {
                            try await writer.write(contentsOf: Self.merged(batch, batches: brokerAcceptsBatches.isSet))
                        }
                        group.cancelAll()
                    }
                },
                onResponse: { response in
                    defer { outbox.finish() }
                    for try await message in response.messages {
                        await handle(message, outbox: outbox, brokerAcceptsBatches: brokerAcceptsBatches, reset: reset)
                    }
                }
            )
        } onGracefulShutdown: {
            outbox.finish()
        }
    }

    /// The most status updates merged into one message.
    package static let updatesPerMessage = 500

    /// `messages` with each run of consecutive status updates merged into `status_updates`
    /// messages (when `batches`, i.e. the broker said it accepts them), in the same order.
    package static func merged(_ messages: [Keel_V1_AgentMessage], batches: Bool) -> [Keel_V1_AgentMessage] {
        guard batches else { return messages }
        return mergingRuns(
            messages, limit: updatesPerMessage,
            item: { message in
                if case .statusUpdate(let update) = message.message { return update }
                return nil
            },
            batch: { updates in .with { $0.statusUpdates.updates = updates } })
    }

    private func handle(
        _ message: Keel_V1_BrokerMessage,
        outbox: MessageOutbox<Keel_V1_AgentMessage>,
        brokerAcceptsBatches: StreamFlag,
        reset: @Sendable () -> Void
    ) async {
        switch message.message {
        case .registered(let registered):
            identity.set(registered.agentID.value)
            if registered.acceptsBatches { brokerAcceptsBatches.set() }
            reset()
            updates.connect { message in outbox.send(message) }
            logger.notice("attached to the broker", metadata: ["keel.agent_id": "\(registered.agentID.value)"])
            await onRegistered(registered.agentID.value)
        case .launch(let launch):
            tasks.launch(framework: launch.frameworkInfo, task: launch.task)
        case .launches(let batch):
            for launch in batch.launches {
                tasks.launch(framework: launch.frameworkInfo, task: launch.task)
            }
        case .launchGroup(let group):
            for task in group.taskGroup.tasks {
                tasks.launch(framework: group.frameworkInfo, task: task)
            }
        case .kill(let kill):
            let grace: Duration? = kill.hasKillPolicy && kill.killPolicy.hasGracePeriod
                ? .seconds(kill.killPolicy.gracePeriod.seconds) + .nanoseconds(Int64(kill.killPolicy.gracePeriod.nanos))
                : nil
            tasks.kill(frameworkID: kill.frameworkID.value, taskID: kill.taskID.value, gracePeriod: grace)
        case .acknowledge(let ack):
            updates.acknowledge(frameworkID: ack.frameworkID.value, taskID: ack.taskID.value, uuid: ack.uuid)
        case .acknowledgements(let batch):
            for ack in batch.acknowledgements {
                updates.acknowledge(frameworkID: ack.frameworkID.value, taskID: ack.taskID.value, uuid: ack.uuid)
            }
        case .shutdown(let shutdown):
            logger.warning("the broker asked this agent to shut down", metadata: ["keel.reason": "\(shutdown.reason)"])
        case .heartbeat, nil:
            break
        }
    }

    private func registerMessage(port: Int) -> Keel_V1_AgentMessage.Register {
        .with {
            $0.agentInfo.hostname = configuration.hostname
            if let id = identity.agentID { $0.agentInfo.id.value = id }
            $0.agentInfo.resources = configuration.resources.proto
            $0.agentInfo.attributes = configuration.attributes.map { name, value in
                .with {
                    $0.name = name
                    $0.type = .text
                    $0.text.value = value
                }
            }
            if let domain = configuration.faultDomain {
                $0.agentInfo.domain.faultDomain.region.name = domain.region
                $0.agentInfo.domain.faultDomain.zone.name = domain.zone
            }
            $0.agentInfo.launcherAddress.hostname = configuration.advertisedAddress.host
            $0.agentInfo.launcherAddress.ip = configuration.advertisedAddress.host
            $0.agentInfo.launcherAddress.port = UInt32(port)
            $0.agentInfo.bootID = NodeResources.bootID()
            $0.agentInfo.capabilities = configuration.isolation.capabilities
            $0.agentInfo.version = "0.1.0"
            $0.runningTasks = tasks.runningTasks
            $0.acceptsBatches = true
        }
    }
}

/// A flag of an attach attempt: whether it got as far as registering (to reset the retry
/// backoff), or whether the broker accepts batched messages.
private final class StreamFlag: Sendable {
    private let value = Mutex(false)

    var isSet: Bool { value.withLock { $0 } }

    func set() { value.withLock { $0 = true } }

    /// Returns the flag and clears it.
    func take() -> Bool {
        value.withLock { flag in
            defer { flag = false }
            return flag
        }
    }
}
