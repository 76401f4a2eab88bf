import GRPCCore
import KeelAPI
import KeelRPC
public import Logging
import SwiftProtobuf

/// Runs a framework against Keel: registers with the registry, keeps it subscribed to the broker,
/// and hands the body a ``SchedulerSession`` whose ``SchedulerSession/events`` are the framework's
/// ``SchedulerEvent``s.
///
/// ```swift
/// let info = Keel_V1_FrameworkInfo.with { $0.name = "hello"; $0.user = "root" }
/// try await SchedulerDriver(configuration: .init(frameworkInfo: info)).run { session in
///     for try await event in session.events {
///         if case .offers(let offers) = event { ... try await session.launch(...) }
///     }
/// }
/// ```
///
/// What the driver does so the body does not have to:
/// - **Reconnects.** When the subscription ends or fails for a reason that may pass (the broker
///   restarted, the network broke, `UNAVAILABLE`, missed heartbeats), it subscribes again with the
///   same framework id after a jittered exponential backoff (``ReconnectPolicy``). The framework's
///   tasks keep running as long as it is back within its failover timeout. The body sees
///   ``SchedulerEvent/disconnected(_:)`` and then ``SchedulerEvent/subscribed(_:)`` again, in the
///   same event sequence.
/// - **Follows the leader.** A broker that is not the leader answers `UNAVAILABLE` with the
///   leader's address in the `keel-leader` metadata; the driver subscribes there, and the session's
///   calls go there too.
/// - **Reconciles** every task of the framework after each SUBSCRIBED
///   (``SchedulerConfiguration/reconcileOnSubscribe``).
/// - **Acknowledges** status updates (``SchedulerConfiguration/automaticAcknowledgement``).
/// - **Renews the token** with the registry before it expires, and once more when the broker
///   refuses it.
///
/// It gives up, ending the event sequence with a ``SchedulerError``, when going on cannot help:
/// the broker sent an ERROR event (torn down, or replaced by a newer subscription), the framework
/// is gone, the principal is refused, or the token is refused after a renewal.
///
/// Everything the driver starts ends when `run` returns: the subscription closes, the token is
/// no longer renewed, and the connections are shut down. The framework is not torn down; call
/// ``SchedulerSession/teardown()`` for that.
public struct SchedulerDriver: Sendable {
    /// Where to connect, who to be, and how to behave.
    public let configuration: SchedulerConfiguration
    private let logger: Logger

    /// Creates a driver; it logs to `logger` (nothing by default).
    public init(
        configuration: SchedulerConfiguration,
        logger: Logger = Logger(label: "keel.sdk", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Registers, subscribes and runs `body` with the session once the first SUBSCRIBED has
    /// arrived (it is the first event of ``SchedulerSession/events``); returns what `body` returns.
    ///
    /// - Throws: ``SchedulerError`` when an address is malformed
    ///   (``SchedulerError/Code/invalidConfiguration``), the registry refuses the registration
    ///   (``SchedulerError/Code/registrationFailed``), or the first subscription fails for good;
    ///   whatever `body` throws.
    public func run<Result: Sendable>(
        _ body: @Sendable (SchedulerSession) async throws -> Result
    ) async throws -> Result {
        let registryEndpoint: KeelRPC.Endpoint
        let brokerEndpoint: KeelRPC.Endpoint
        do {
            registryEndpoint = try KeelRPC.Endpoint(parsing: configuration.registry)
            brokerEndpoint = try KeelRPC.Endpoint(parsing: configuration.broker)
        } catch {
            throw SchedulerError(code: .invalidConfiguration, message: "bad registry or broker address", cause: error)
        }
        let registration: Keel_V1_RegisterFrameworkResponse
        do {
            registration = try await withKeelClient(registryEndpoint) { client in
                try await Keel_V1_Registry.Client(wrapping: client).registerFramework(.with {
                    $0.frameworkInfo = configuration.frameworkInfo
                    if let credential = configuration.credential { $0.credential = credential }
                })
            }
        } catch {
            let message = (error as? RPCError)?.message ?? "cannot reach keel-registry at \(registryEndpoint)"
            throw SchedulerError(code: .registrationFailed, message: message, cause: error)
        }
        var info = registration.record.frameworkInfo
        info.id = registration.frameworkID
        let tokens = TokenRefresher(
            token: registration.token, expiresAt: registration.tokenExpiresAt.date, frameworkID: registration.frameworkID,
            registry: registryEndpoint, credential: configuration.credential
        )
        let (events, eventsContinuation) = AsyncThrowingStream.makeStream(of: SchedulerEvent.self)
        let (subscribed, subscribedContinuation) = AsyncThrowingStream.makeStream(of: Void.self)
        let link = BrokerLink(renewToken: { await tokens.renewNow() })
        let acknowledged = AcknowledgedUpdates()
        let loop = SubscriptionLoop(
            frameworkInfo: info, broker: brokerEndpoint, policy: configuration.reconnect,
            automaticAcknowledgement: configuration.automaticAcknowledgement,
            reconcileOnSubscribe: configuration.reconcileOnSubscribe, tokens: tokens, link: link,
            acknowledged: acknowledged, events: eventsContinuation, firstSubscription: subscribedContinuation,
            logger: logger
        )
        let session = SchedulerSession(
            frameworkInfo: info, link: link, events: events,
            acknowledged: configuration.automaticAcknowledgement ? acknowledged : nil
        )
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await loop.run() }
            group.addTask { await tokens.run() }
            defer { group.cancelAll() }
            // Calls made before the broker has the subscription could miss their answers
            // (reconciliation updates go to the subscribed stream), so wait for SUBSCRIBED.
            for try await _ in subscribed {}
            let result = try await body(session)
            // The body saw its updates; send their acknowledgements before the stream closes,
            // so the launcher does not have to resend them to the next process.
            await loop.acknowledgements.flush(timeout: .seconds(2))
            return result
        }
    }
}
