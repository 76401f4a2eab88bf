import Foundation
package import GRPCCore
package import KeelAPI
import Logging
import KeelCore
import KeelRPC
import ServiceLifecycle
import SwiftProtobuf

/// The `keel.v1.Scheduler` gRPC service: the framework-facing API of the broker.
///
/// Every call is authenticated by ``FrameworkAuthInterceptor``; each handler checks that the
/// token speaks for the framework named in the request.
package struct SchedulerService: Keel_V1_Scheduler.SimpleServiceProtocol {
    private let broker: Broker

    /// Creates the service over `broker`.
    package init(broker: Broker) {
        self.broker = broker
    }

    package func subscribe(
        request: Keel_V1_SubscribeRequest,
        response: RPCWriter<Keel_V1_Event>,
        context: ServerContext
    ) async throws {
        try await mappingErrors {
            let frameworkID = request.frameworkInfo.id.value
            guard !frameworkID.isEmpty else {
                throw KeelError.invalidArgument("framework_info.id is empty; register with keel-registry first and subscribe with its id")
            }
            try requireFramework(frameworkID)
            try await broker.ensureFramework(frameworkID)
            let id = FrameworkID(frameworkID)
            let outbound = MessageOutbox<Keel_V1_Event>(minimumInterval: StreamPacing.interval)
            let (connection, streamID) = try broker.mutate { state in
                let connection = try state.subscribe(id, outbound: outbound, now: Date())
                return (connection, state.frameworks[id]?.streamID ?? "")
            }
            broker.logger.info("framework subscribed", metadata: ["keel.framework_id": "\(frameworkID)"])
            defer {
                broker.mutate { $0.unsubscribe(id, connection: connection, now: Date()) }
                broker.logger.info("framework disconnected", metadata: ["keel.framework_id": "\(frameworkID)"])
            }
            outbound.send(.with {
                $0.type = .subscribed
                $0.subscribed.frameworkID = request.frameworkInfo.id
                $0.subscribed.heartbeatInterval = Google_Protobuf_Duration(
                    seconds: broker.configuration.frameworkHeartbeatInterval.components.seconds
                )
                $0.subscribed.brokerInfo.version = "0.1.0"
                $0.subscribed.streamID = streamID
            })
            broker.requestAllocation()
            // The stream ends when the framework goes, a newer subscription replaces it, or the
            // broker begins to shut down.
            try await cancelWhenGracefulShutdown {
                // What queued up while the last write was under way goes out in one write,
                // status updates merged into UPDATES events for a subscriber that takes them.
                let batches = request.acceptsUpdateBatches
                while let events = await outbound.next() {
                    try await response.write(contentsOf: Self.merged(events, batches: batches))
                }
            }
        }
    }

    /// The most status updates merged into one UPDATES event.
    package static let updatesPerEvent = 1000

    /// `events` with each run of consecutive UPDATE events merged into UPDATES events (when
    /// `batches`, i.e. the subscriber accepts them), in the same order.
    package static func merged(_ events: [Keel_V1_Event], batches: Bool) -> [Keel_V1_Event] {
        guard batches else { return events }
        return mergingRuns(
            events, limit: updatesPerEvent,
            item: { event in event.type == .update ? event.update.status : nil },
            batch: { statuses in
                .with {
                    $0.type = .updates
                    $0.updates.statuses = statuses
                }
            })
    }

    package func accept(request: Keel_V1_AcceptRequest, context: ServerContext) async throws -> Keel_V1_AcceptResponse {
        try await mappingErrors {
            try requireCurrentStream(request.frameworkID.value)
            try broker.authorizeLaunches(request)
            let launched = try broker.mutate { try $0.accept(request, now: Date()) }
            broker.requestAllocation()
            return .with { $0.launched = launched.map { id in .with { $0.value = id.value } } }
        }
    }

    package func decline(request: Keel_V1_DeclineRequest, context: ServerContext) async throws -> Keel_V1_DeclineResponse {
        try await mappingErrors {
            try requireCurrentStream(request.frameworkID.value)
            guard !request.offerIds.isEmpty else {
                throw KeelError.invalidArgument("offer_ids is empty; name the offers to decline")
            }
            let refuse = request.filters.hasRefuseSeconds ? request.filters.refuseSeconds : nil
            try broker.mutate { state in
                try state.decline(
                    FrameworkID(request.frameworkID.value), offerIDs: request.offerIds.map { OfferID($0.value) },
                    refuseSeconds: refuse, now: Date()
                )
            }
            broker.requestAllocation()
            return Keel_V1_DeclineResponse()
        }
    }

    package func revive(request: Keel_V1_ReviveRequest, context: ServerContext) async throws -> Keel_V1_ReviveResponse {
        try await mappingErrors {
            try requireCurrentStream(request.frameworkID.value)
            try broker.mutate { try $0.setSuppressed(FrameworkID(request.frameworkID.value), false, roles: request.roles) }
            broker.requestAllocation()
            return Keel_V1_ReviveResponse()
        }
    }

    package func suppress(request: Keel_V1_SuppressRequest, context: ServerContext) async throws -> Keel_V1_SuppressResponse {
        try await mappingErrors {
            try requireCurrentStream(request.frameworkID.value)
            try broker.mutate { try $0.setSuppressed(FrameworkID(request.frameworkID.value), true, roles: request.roles) }
            return Keel_V1_SuppressResponse()
        }
    }

    package func kill(request: Keel_V1_KillRequest, context: ServerContext) async throws -> Keel_V1_KillResponse {
        try await mappingErrors {
            try requireCurrentStream(request.frameworkID.value)
            try broker.mutate { try $0.kill(request, now: Date()) }
            return Keel_V1_KillResponse()
        }
    }

    package func acknowledge(
        request: Keel_V1_AcknowledgeRequest,
        context: ServerContext
    ) async throws -> Keel_V1_AcknowledgeResponse {
        try await mappingErrors {
            try requireCurrentStream(request.frameworkID.value)
            let refused = try broker.mutate { try $0.acknowledge(request) }
            return .with { $0.refused = refused }
        }
    }

    package func reconcile(request: Keel_V1_ReconcileRequest, context: ServerContext) async throws -> Keel_V1_ReconcileResponse {
        try await mappingErrors {
            try requireCurrentStream(request.frameworkID.value)
            try broker.read { try $0.reconcile(request, now: Date()) }
            return Keel_V1_ReconcileResponse()
        }
    }

    package func message(request: Keel_V1_MessageRequest, context: ServerContext) async throws -> Keel_V1_MessageResponse {
        try await mappingErrors {
            try requireCurrentStream(request.frameworkID.value)
            throw KeelError(code: .failedPrecondition, message: "framework messages need a custom executor, which this broker does not run yet")
        }
    }

    package func teardown(request: Keel_V1_TeardownRequest, context: ServerContext) async throws -> Keel_V1_TeardownResponse {
        try await mappingErrors {
            try requireCurrentStream(request.frameworkID.value)
            try broker.authorizeTeardown(of: request.frameworkID.value)
            try await broker.teardownInRegistry(FrameworkID(request.frameworkID.value), token: RequestAuth.token)
            return Keel_V1_TeardownResponse()
        }
    }

    package func updateFramework(
        request: Keel_V1_UpdateFrameworkRequest,
        context: ServerContext
    ) async throws -> Keel_V1_UpdateFrameworkResponse {
        try await mappingErrors {
            let id = request.frameworkInfo.id.value
            guard !id.isEmpty else {
                throw KeelError.invalidArgument("framework_info.id is empty; name the framework to update")
            }
            try requireCurrentStream(id)
            _ = try broker.read { try $0.activeFramework(id) }
            guard let token = RequestAuth.token else {
                throw KeelError.unauthenticated("this call needs the framework's token")
            }
            // The registry holds the framework's info and checks the ACLs; the broker applies
            // what it stored (and hears it again from the registry's watch, harmlessly).
            let info = try await broker.directory.update(request.frameworkInfo, token: token)
            broker.mutate { $0.updateFrameworkInfo(info, now: Date()) }
            broker.requestAllocation()
            return .with { $0.frameworkInfo = info }
        }
    }

    /// Checks that the call's token speaks for `frameworkID` and that it does not come from a
    /// superseded subscription (see ``BrokerState/checkStream(_:streamID:)``).
    private func requireCurrentStream(_ frameworkID: String) throws {
        try requireFramework(frameworkID)
        try broker.read { try $0.checkStream(frameworkID, streamID: RequestAuth.streamID) }
    }
}
