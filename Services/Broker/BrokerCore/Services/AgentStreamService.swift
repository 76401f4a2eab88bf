import Foundation
package import GRPCCore
package import KeelAPI
import Logging
import KeelCore
import KeelRPC
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

/// The `keel.v1.AgentService` gRPC service: the launchers' long-lived `Attach` streams.
package struct AgentStreamService: Keel_V1_AgentService.SimpleServiceProtocol {
    private let broker: Broker

    /// Creates the service over `broker`.
    package init(broker: Broker) {
        self.broker = broker
    }

    package func attach(
        request: RPCAsyncSequence<Keel_V1_AgentMessage, any Error>,
        response: RPCWriter<Keel_V1_BrokerMessage>,
        context: ServerContext
    ) async throws {
        try await mappingErrors {
            let outbound = MessageOutbox<Keel_V1_BrokerMessage>(minimumInterval: StreamPacing.interval)
            let session = AgentSession()
            defer {
                if let (agentID, connection) = session.current {
                    broker.mutate { $0.detachAgent(agentID, connection: connection) }
                    broker.logger.info("agent detached", metadata: ["keel.agent_id": "\(agentID)"])
                }
            }
            // Three ways the stream ends: the launcher closes it, the broker closes it (a newer
            // stream of the same agent, or shutdown), or the broker begins to shut down.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Whatever queued up while the last write was under way goes out together,
                    // launches and acknowledgements merged when the launcher takes them so.
                    while let batch = await outbound.next() {
                        try await response.write(contentsOf: Self.merged(batch, batches: session.acceptsBatches))
                    }
                }
                group.addTask {
                    for try await message in request {
                        if let (agentID, connection) = session.current {
                            handle(message, agentID: agentID, connection: connection)
                        } else {
                            try register(message, outbound: outbound, session: session)
                        }
                    }
                }
                group.addTask {
                    try await gracefulShutdown()
                }
                _ = try await group.next()
                outbound.finish()
                group.cancelAll()
            }
        }
    }

    /// The most launches or acknowledgements merged into one message.
    package static let launchesPerMessage = 200
    package static let acknowledgementsPerMessage = 1000

    /// `messages` with each run of consecutive launches, and of acknowledgements, merged into
    /// `launches` and `acknowledgements` messages (when `batches`, i.e. the launcher said it
    /// accepts them), in the same order.
    package static func merged(_ messages: [Keel_V1_BrokerMessage], batches: Bool) -> [Keel_V1_BrokerMessage] {
        guard batches else { return messages }
        let launchesMerged = mergingRuns(
            messages, limit: launchesPerMessage,
            item: { message in
                if case .launch(let launch) = message.message { return launch }
                return nil
            },
            batch: { launches in .with { $0.launches.launches = launches } })
        return mergingRuns(
            launchesMerged, limit: acknowledgementsPerMessage,
            item: { message in
                if case .acknowledge(let acknowledgement) = message.message { return acknowledgement }
                return nil
            },
            batch: { acknowledgements in .with { $0.acknowledgements.acknowledgements = acknowledgements } })
    }

    private func register(
        _ message: Keel_V1_AgentMessage,
        outbound: MessageOutbox<Keel_V1_BrokerMessage>,
        session: AgentSession
    ) throws {
        guard case .register(let register) = message.message else {
            throw KeelError.invalidArgument("the first message on an agent stream must be 'register'")
        }
        let (agentID, connection) = try broker.mutate { state in
            try state.attachAgent(register, outbound: outbound, now: Date())
        }
        session.set(agentID, connection, acceptsBatches: register.acceptsBatches)
        broker.logger.info("agent attached", metadata: [
            "keel.agent_id": "\(agentID)", "keel.hostname": "\(register.agentInfo.hostname)",
        ])
        outbound.send(.with {
            $0.registered.agentID = .with { $0.value = agentID.value }
            $0.registered.heartbeatInterval = Google_Protobuf_Duration(
                seconds: broker.configuration.agentHeartbeatInterval.components.seconds
            )
            $0.registered.acceptsBatches = true
        })
        broker.requestAllocation()
    }

    private func handle(_ message: Keel_V1_AgentMessage, agentID: AgentID, connection: UInt64) {
        switch message.message {
        case .heartbeat:
            broker.mutate { $0.agentHeartbeat(agentID, connection: connection, now: Date()) }
        case .statusUpdate(let update):
            apply([update], agentID: agentID, connection: connection)
        case .statusUpdates(let batch):
            apply(batch.updates, agentID: agentID, connection: connection)
        case .register:
            broker.logger.warning("ignored a second register on an agent stream", metadata: ["keel.agent_id": "\(agentID)"])
        case nil:
            break
        }
    }

    /// Applies a launcher's status updates in order, in one change of the broker's state.
    private func apply(_ updates: [Keel_V1_AgentMessage.StatusUpdate], agentID: AgentID, connection: UInt64) {
        guard !updates.isEmpty else { return }
        let deliveries = broker.mutate { state in
            let now = Date()
            state.agentHeartbeat(agentID, connection: connection, now: now)
            return updates.map { update in
                let delivery = state.applyStatus(
                    update.status, frameworkID: FrameworkID(update.frameworkID.value), agentID: agentID, now: now)
                if delivery.acknowledgedByBroker && !update.status.uuid.isEmpty {
                    // No framework will acknowledge it: acknowledge it here so the launcher stops
                    // resending it and sends the task's next update (e.g. its TASK_KILLED).
                    state.acknowledgeWhenStored(
                        frameworkID: update.frameworkID.value, taskID: update.status.taskID.value,
                        uuid: update.status.uuid, agentID: agentID)
                }
                return delivery
            }
        }
        for (update, delivery) in zip(updates, deliveries) where delivery == .dropped && !update.status.uuid.isEmpty {
            broker.logger.warning("dropped a status update", metadata: [
                "keel.task_id": "\(update.status.taskID.value)", "keel.state": "\(update.status.state.name)",
            ])
        }
        if updates.contains(where: { $0.status.state.isTerminal }) { broker.requestAllocation() }
    }
}

/// The agent a stream registered as, once it has.
private final class AgentSession: Sendable {
    private struct Registration {
        var agentID: AgentID
        var connection: UInt64
        var acceptsBatches: Bool
    }

    private let value = Mutex<Registration?>(nil)

    var current: (AgentID, UInt64)? { value.withLock { $0.map { ($0.agentID, $0.connection) } } }

    /// Whether the launcher takes merged launches and acknowledgements.
    var acceptsBatches: Bool { value.withLock { $0?.acceptsBatches ?? false } }

    func set(_ agentID: AgentID, _ connection: UInt64, acceptsBatches: Bool) {
        value.withLock { $0 = Registration(agentID: agentID, connection: connection, acceptsBatches: acceptsBatches) }
    }
}
