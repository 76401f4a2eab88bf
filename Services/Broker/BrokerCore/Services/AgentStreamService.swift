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
            let (outboundStream, outbound) = AsyncStream.makeStream(of: Keel_V1_BrokerMessage.self)
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
                    for await message in outboundStream {
                        try await response.write(message)
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

    private func register(
        _ message: Keel_V1_AgentMessage,
        outbound: AsyncStream<Keel_V1_BrokerMessage>.Continuation,
        session: AgentSession
    ) throws {
        guard case .register(let register) = message.message else {
            throw KeelError.invalidArgument("the first message on an agent stream must be 'register'")
        }
        let (agentID, connection) = try broker.mutate { state in
            try state.attachAgent(register, outbound: outbound, now: Date())
        }
        session.set(agentID, connection)
        broker.logger.info("agent attached", metadata: [
            "keel.agent_id": "\(agentID)", "keel.hostname": "\(register.agentInfo.hostname)",
        ])
        outbound.yield(.with {
            $0.registered.agentID = .with { $0.value = agentID.value }
            $0.registered.heartbeatInterval = Google_Protobuf_Duration(
                seconds: broker.configuration.agentHeartbeatInterval.components.seconds
            )
        })
        broker.requestAllocation()
    }

    private func handle(_ message: Keel_V1_AgentMessage, agentID: AgentID, connection: UInt64) {
        switch message.message {
        case .heartbeat:
            broker.mutate { $0.agentHeartbeat(agentID, connection: connection, now: Date()) }
        case .statusUpdate(let update):
            let frameworkID = FrameworkID(update.frameworkID.value)
            let delivery = broker.mutate { state in
                state.agentHeartbeat(agentID, connection: connection, now: Date())
                return state.applyStatus(update.status, frameworkID: frameworkID, agentID: agentID, now: Date())
            }
            if delivery.acknowledgedByBroker, !update.status.uuid.isEmpty {
                // No framework will acknowledge it: acknowledge it here so the launcher stops
                // resending it and sends the task's next update (e.g. its TASK_KILLED).
                if delivery == .dropped {
                    broker.logger.warning("dropped a status update", metadata: [
                        "keel.task_id": "\(update.status.taskID.value)", "keel.state": "\(update.status.state.name)",
                    ])
                }
                broker.read { state in
                    state.send(.with {
                        $0.acknowledge.frameworkID = update.frameworkID
                        $0.acknowledge.taskID = update.status.taskID
                        $0.acknowledge.uuid = update.status.uuid
                    }, to: agentID)
                }
            }
            if update.status.state.isTerminal { broker.requestAllocation() }
        case .register:
            broker.logger.warning("ignored a second register on an agent stream", metadata: ["keel.agent_id": "\(agentID)"])
        case nil:
            break
        }
    }
}

/// The agent a stream registered as, once it has.
private final class AgentSession: Sendable {
    private let value = Mutex<(AgentID, UInt64)?>(nil)

    var current: (AgentID, UInt64)? { value.withLock { $0 } }

    func set(_ agentID: AgentID, _ connection: UInt64) {
        value.withLock { $0 = (agentID, connection) }
    }
}
