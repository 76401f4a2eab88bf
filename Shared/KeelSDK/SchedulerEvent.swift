public import KeelAPI

/// What a framework learns from the driver, in order: the broker's events, and the driver's own
/// news about the subscription.
///
/// The driver keeps one sequence of these for the whole of ``SchedulerDriver/run(_:)``, across
/// reconnects and leader changes, so a framework writes one `for try await` loop:
///
/// ```swift
/// for try await event in session.events {
///     switch event {
///     case .subscribed(let subscription): ...   // first event; again after each reconnect
///     case .offers(let offers): ...
///     case .update(let status): ...              // acknowledged by the driver by default
///     case .disconnected(let disconnection): ... // offers in hand are void; calls may fail until .subscribed
///     default: break
///     }
/// }
/// ```
///
/// The sequence ends by throwing a ``SchedulerError`` when the subscription cannot go on: the
/// broker sent an ERROR event (``SchedulerError/Code/terminatedByBroker``), the framework was
/// removed (``SchedulerError/Code/frameworkRemoved``), the principal is refused, or the
/// ``ReconnectPolicy`` gave up. It never ends while the driver is still trying to reconnect.
///
/// Heartbeats are not delivered: the driver uses them only to know the subscription is alive.
public enum SchedulerEvent: Sendable {
    /// The broker accepted a subscription: the first event, and again after every reconnect
    /// (``Subscription/isResubscription``). The framework id never changes.
    case subscribed(Subscription)
    /// Resources offered to the framework; accept or decline them.
    case offers([Keel_V1_Offer])
    /// An offer is no longer valid.
    case rescind(Keel_V1_OfferID)
    /// A task changed state, or the answer to a reconciliation (reason `REASON_RECONCILIATION`).
    case update(Keel_V1_TaskStatus)
    /// A message from an executor.
    case message(Keel_V1_Event.Message)
    /// An agent or executor failed.
    case failure(Keel_V1_Event.Failure)
    /// The subscription broke; the driver is resubscribing with the same framework id, so the
    /// framework's tasks keep running while it is back within its failover timeout. Offers
    /// received before are void. ``subscribed(_:)`` follows once the driver is back.
    case disconnected(Disconnection)

    /// The status of an ``update(_:)``, nil for other events.
    public var update: Keel_V1_TaskStatus? {
        if case .update(let status) = self { return status }
        return nil
    }

    /// The offers of an ``offers(_:)``, empty for other events.
    public var offers: [Keel_V1_Offer] {
        if case .offers(let offers) = self { return offers }
        return []
    }
}

/// A subscription the broker accepted.
public struct Subscription: Sendable, Hashable {
    /// The framework's id (the same on every subscription of one driver run).
    public var frameworkID: Keel_V1_FrameworkID
    /// How often the broker sends heartbeats.
    public var heartbeatInterval: Duration
    /// The broker that accepted it, `host:port` (after a leader redirect, the leader's address).
    public var broker: String
    /// 1 for the first subscription of the run, 2 after the first reconnect, and so on.
    public var number: Int

    /// Whether this subscription replaces one that broke.
    public var isResubscription: Bool { number > 1 }
}

/// Why the subscription broke, and when the driver tries again.
public struct Disconnection: Sendable {
    /// What happened, for people.
    public var reason: String
    /// The error the subscription ended with, if any (often an `RPCError` with `UNAVAILABLE`).
    public var cause: (any Error)?
    /// The broker that was lost, `host:port`.
    public var broker: String
}
