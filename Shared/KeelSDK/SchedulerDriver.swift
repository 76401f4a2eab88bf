import GRPCCore
import GRPCNIOTransportHTTP2Posix
public import KeelAPI
import KeelRPC
import SwiftProtobuf
import Synchronization

/// Runs a framework against Keel: registers with the registry, subscribes to the broker and
/// hands the body a ``SchedulerSession`` whose ``SchedulerSession/events`` are the broker's
/// events as an `AsyncSequence`.
///
/// ```swift
/// let info = Keel_V1_FrameworkInfo.with { $0.name = "hello"; $0.user = "root" }
/// try await SchedulerDriver(configuration: .init(frameworkInfo: info)).run { session in
///     for try await event in session.events {
///         if event.type == .offers { ... try await session.launch(...) }
///     }
/// }
/// ```
///
/// The driver renews the framework's token with the registry before it expires (tokens are
/// short-lived), so `body` can run for as long as it likes.
///
/// Everything the driver starts ends when `run` returns: the subscription closes, the token is
/// no longer renewed, and the connections are shut down.
public struct SchedulerDriver: Sendable {
    /// Where to connect and who to be.
    public let configuration: SchedulerConfiguration

    /// Creates a driver.
    public init(configuration: SchedulerConfiguration) {
        self.configuration = configuration
    }

    /// Registers, subscribes and runs `body` with the session; returns what `body` returns.
    ///
    /// - Throws: ``SchedulerError`` when an address is malformed; the registry's or broker's
    ///   `RPCError` when registration or the subscription is refused.
    public func run<Result: Sendable>(
        _ body: @Sendable (SchedulerSession) async throws -> Result
    ) async throws -> Result {
        let registryEndpoint: KeelRPC.Endpoint
        let brokerEndpoint: KeelRPC.Endpoint
        do {
            registryEndpoint = try KeelRPC.Endpoint(parsing: configuration.registry)
            brokerEndpoint = try KeelRPC.Endpoint(parsing: configuration.broker)
        } catch {
            throw SchedulerError("bad address", cause: error)
        }
        let registration = try await withKeelClient(registryEndpoint) { client in
            try await Keel_V1_Registry.Client(wrapping: client).registerFramework(.with {
                $0.frameworkInfo = configuration.frameworkInfo
                if let credential = configuration.credential { $0.credential = credential }
            })
        }
        var info = registration.record.frameworkInfo
        info.id = registration.frameworkID
        let tokens = TokenRefresher(
            token: registration.token, expiresAt: registration.tokenExpiresAt.date, frameworkID: registration.frameworkID,
            registry: registryEndpoint, credential: configuration.credential
        )
        let frameworkInfo = info
        return try await withKeelClient(brokerEndpoint, token: { tokens.token }) { client in
            let scheduler = Keel_V1_Scheduler.Client(wrapping: client)
            let (events, continuation) = AsyncThrowingStream.makeStream(of: Keel_V1_Event.self)
            let (subscribed, subscribedContinuation) = AsyncThrowingStream.makeStream(of: Void.self)
            let session = SchedulerSession(frameworkInfo: frameworkInfo, scheduler: scheduler, events: events)
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        try await scheduler.subscribe(.with { $0.frameworkInfo = frameworkInfo }) { response in
                            for try await event in response.messages {
                                continuation.yield(event)
                                if event.type == .subscribed { subscribedContinuation.finish() }
                            }
                        }
                        let ended = SchedulerError("the broker closed the subscription")
                        continuation.finish(throwing: ended)
                        subscribedContinuation.finish(throwing: ended)
                    } catch {
                        continuation.finish(throwing: error)
                        subscribedContinuation.finish(throwing: error)
                    }
                }
                group.addTask { await tokens.run() }
                defer { group.cancelAll() }
                // Calls made before the broker has the subscription could miss their answers
                // (reconciliation updates go to the subscribed stream), so wait for SUBSCRIBED.
                for try await _ in subscribed {}
                return try await body(session)
            }
        }
    }
}

/// A subscribed framework: its events and the calls it can make.
public struct SchedulerSession: Sendable {
    /// The framework as registered, with its id.
    public let frameworkInfo: Keel_V1_FrameworkInfo
    /// The broker's events: SUBSCRIBED first, then OFFERS, UPDATE, RESCIND, HEARTBEAT, ...
    public let events: AsyncThrowingStream<Keel_V1_Event, any Error>
    private let scheduler: Keel_V1_Scheduler.Client<HTTP2ClientTransport.Posix>

    init(
        frameworkInfo: Keel_V1_FrameworkInfo,
        scheduler: Keel_V1_Scheduler.Client<HTTP2ClientTransport.Posix>,
        events: AsyncThrowingStream<Keel_V1_Event, any Error>
    ) {
        self.frameworkInfo = frameworkInfo
        self.scheduler = scheduler
        self.events = events
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
        return try await scheduler.accept(request).launched
    }

    /// Accepts offers with arbitrary operations.
    @discardableResult
    public func accept(_ request: Keel_V1_AcceptRequest) async throws -> Keel_V1_AcceptResponse {
        var request = request
        request.frameworkID = frameworkID
        return try await scheduler.accept(request)
    }

    /// Declines offers; their resources are not offered to this framework again for
    /// `refuseSeconds` (the broker's default when nil).
    public func decline(_ offers: [Keel_V1_Offer], refuseSeconds: Double? = nil) async throws {
        let request = Keel_V1_DeclineRequest.with {
            $0.frameworkID = frameworkID
            $0.offerIds = offers.map(\.id)
            if let refuseSeconds { $0.filters.refuseSeconds = refuseSeconds }
        }
        _ = try await scheduler.decline(request)
    }

    /// Kills a task; its terminal state arrives as an UPDATE event.
    public func kill(_ taskID: Keel_V1_TaskID, gracePeriodSeconds: Int64? = nil) async throws {
        let request = Keel_V1_KillRequest.with {
            $0.frameworkID = frameworkID
            $0.taskID = taskID
            if let gracePeriodSeconds { $0.killPolicy.gracePeriod = Google_Protobuf_Duration(seconds: gracePeriodSeconds) }
        }
        _ = try await scheduler.kill(request)
    }

    /// Acknowledges a status update; updates without a uuid need no acknowledgement and are
    /// ignored here.
    public func acknowledge(_ status: Keel_V1_TaskStatus) async throws {
        guard !status.uuid.isEmpty else { return }
        let request = Keel_V1_AcknowledgeRequest.with {
            $0.frameworkID = frameworkID
            $0.agentID = status.agentID
            $0.taskID = status.taskID
            $0.uuid = status.uuid
        }
        _ = try await scheduler.acknowledge(request)
    }

    /// Asks for the latest state of `tasks` (every task of the framework when empty).
    public func reconcile(_ tasks: [Keel_V1_TaskID] = []) async throws {
        let request = Keel_V1_ReconcileRequest.with {
            $0.frameworkID = frameworkID
            $0.tasks = tasks.map { id in .with { $0.taskID = id } }
        }
        _ = try await scheduler.reconcile(request)
    }

    /// Stops offers to this framework until ``revive()``.
    public func suppress() async throws {
        _ = try await scheduler.suppress(.with { $0.frameworkID = frameworkID })
    }

    /// Resumes offers and clears decline filters.
    public func revive() async throws {
        _ = try await scheduler.revive(.with { $0.frameworkID = frameworkID })
    }

    /// Ends the framework: its tasks are killed and it cannot subscribe again.
    public func teardown() async throws {
        _ = try await scheduler.teardown(.with { $0.frameworkID = frameworkID })
    }
}
