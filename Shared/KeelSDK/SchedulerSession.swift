import GRPCCore
public import KeelAPI
import SwiftProtobuf

/// A subscribed framework: its events and the calls it can make.
///
/// Calls go to the broker the driver is subscribed with (the leader, after a redirect). They
/// throw the broker's `RPCError` as it is; while the driver is reconnecting they fail with
/// `UNAVAILABLE`, and the framework should wait for the next ``SchedulerEvent/subscribed(_:)``.
public struct SchedulerSession: Sendable {
    /// The framework as registered, with its id.
    public let frameworkInfo: Keel_V1_FrameworkInfo
    /// The framework's events, across reconnects: ``SchedulerEvent/subscribed(_:)`` first, then
    /// offers, updates, ... See ``SchedulerEvent`` for how the sequence ends.
    public let events: AsyncThrowingStream<SchedulerEvent, any Error>
    private let link: BrokerLink
    private let acknowledged: AcknowledgedUpdates?

    init(
        frameworkInfo: Keel_V1_FrameworkInfo,
        link: BrokerLink,
        events: AsyncThrowingStream<SchedulerEvent, any Error>,
        acknowledged: AcknowledgedUpdates?
    ) {
        self.frameworkInfo = frameworkInfo
        self.link = link
        self.events = events
        self.acknowledged = acknowledged
    }

    /// The framework's id.
    public var frameworkID: Keel_V1_FrameworkID { frameworkInfo.id }

    /// Launches `tasks` on the resources of `offers` (all from one agent). What the tasks do
    /// not use is declined, filtered from this framework for `refuseSeconds`.
    @discardableResult
    public func launch(
        _ tasks: [Keel_V1_TaskInfo],
        on offers: [Keel_V1_Offer],
        refuseSeconds: Double? = nil
    ) async throws -> [Keel_V1_TaskID] {
        let request = Keel_V1_AcceptRequest.with {
            $0.frameworkID = frameworkID
            $0.offerIds = offers.map(\.id)
            $0.operations = [.with {
                $0.type = .launch
                $0.launch.taskInfos = tasks
            }]
            if let refuseSeconds { $0.filters.refuseSeconds = refuseSeconds }
        }
        return try await link.call { try await $0.accept(request).launched }
    }

    /// Accepts offers with arbitrary operations.
    @discardableResult
    public func accept(_ request: Keel_V1_AcceptRequest) async throws -> Keel_V1_AcceptResponse {
        var request = request
        request.frameworkID = frameworkID
        return try await link.call { try await $0.accept(request) }
    }

    /// Declines offers; their resources are not offered to this framework again for
    /// `refuseSeconds` (the broker's default when nil).
    public func decline(_ offers: [Keel_V1_Offer], refuseSeconds: Double? = nil) async throws {
        let request = Keel_V1_DeclineRequest.with {
            $0.frameworkID = frameworkID
            $0.offerIds = offers.map(\.id)
            if let refuseSeconds { $0.filters.refuseSeconds = refuseSeconds }
        }
        _ = try await link.call { try await $0.decline(request) }
    }

    /// Kills a task; its terminal state arrives as an UPDATE event.
    public func kill(_ taskID: Keel_V1_TaskID, gracePeriodSeconds: Int64? = nil) async throws {
        let request = Keel_V1_KillRequest.with {
            $0.frameworkID = frameworkID
            $0.taskID = taskID
            if let gracePeriodSeconds { $0.killPolicy.gracePeriod = Google_Protobuf_Duration(seconds: gracePeriodSeconds) }
        }
        _ = try await link.call { try await $0.kill(request) }
    }

    /// Acknowledges a status update. Updates without a uuid need no acknowledgement, and updates
    /// the driver already acknowledged (``SchedulerConfiguration/automaticAcknowledgement``) are
    /// skipped.
    public func acknowledge(_ status: Keel_V1_TaskStatus) async throws {
        guard !status.uuid.isEmpty else { return }
        if let acknowledged, acknowledged.contains(Array(status.uuid)) { return }
        let request = Keel_V1_AcknowledgeRequest.with {
            $0.frameworkID = frameworkID
            $0.agentID = status.agentID
            $0.taskID = status.taskID
            $0.uuid = status.uuid
        }
        _ = try await link.call { try await $0.acknowledge(request) }
    }

    /// Asks for the latest state of `tasks` (every task of the framework when empty); the answers
    /// arrive as updates with reason `REASON_RECONCILIATION`. The driver already does this for
    /// every task after each subscription.
    public func reconcile(_ tasks: [Keel_V1_TaskID] = []) async throws {
        let request = Keel_V1_ReconcileRequest.with {
            $0.frameworkID = frameworkID
            $0.tasks = tasks.map { id in .with { $0.taskID = id } }
        }
        _ = try await link.call { try await $0.reconcile(request) }
    }

    /// Stops offers to this framework until ``revive()``.
    public func suppress() async throws {
        _ = try await link.call { try await $0.suppress(.with { $0.frameworkID = frameworkID }) }
    }

    /// Resumes offers and clears decline filters.
    public func revive() async throws {
        _ = try await link.call { try await $0.revive(.with { $0.frameworkID = frameworkID }) }
    }

    /// Ends the framework: its tasks are killed and it cannot subscribe again. The event
    /// sequence then ends with ``SchedulerError/Code/terminatedByBroker``.
    public func teardown() async throws {
        _ = try await link.call { try await $0.teardown(.with { $0.frameworkID = frameworkID }) }
    }
}
