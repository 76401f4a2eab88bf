public import KeelAPI

/// Where a framework finds Keel, who it is, and how the driver behaves.
public struct SchedulerConfiguration: Sendable {
    /// keel-registry's gRPC address, `host:port`.
    public var registry: String
    /// keel-broker's gRPC address, `host:port`. When the broker answers that another node leads,
    /// the driver follows it there.
    public var broker: String
    /// The framework's description; leave `id` empty to register a new framework, or set it to
    /// fail over an existing one.
    public var frameworkInfo: Keel_V1_FrameworkInfo
    /// The principal and secret, when the registry requires credentials.
    public var credential: Keel_V1_Credential?
    /// How the driver resubscribes when the subscription breaks.
    public var reconnect: ReconnectPolicy
    /// Whether the driver acknowledges status updates itself.
    ///
    /// On (the default): each UPDATE that carries a uuid is acknowledged as the driver receives
    /// it. The acknowledgement is sent in the background, together with the others that arrive
    /// meanwhile (one `Acknowledge` call carries many), so the body sees the update without
    /// waiting for a round trip. The body never has to call ``SchedulerSession/acknowledge(_:)``
    /// (calling it anyway does nothing for an update the driver already acknowledged). An update
    /// the body had not handled when its process died is not redelivered, but the driver asks for
    /// the latest state of every task after each subscription (implicit reconciliation), so a
    /// restarted framework still learns where its tasks are.
    ///
    /// Off: the body acknowledges each update once it has acted on it, as in the Mesos v1
    /// scheduler API; unacknowledged updates are resent by the launcher.
    public var automaticAcknowledgement: Bool
    /// Whether the driver asks for the latest state of every task of the framework right after
    /// each SUBSCRIBED (on by default). The answers arrive as ``SchedulerEvent/update(_:)`` with
    /// reason `REASON_RECONCILIATION`.
    public var reconcileOnSubscribe: Bool

    /// Creates a configuration; the defaults are the ports of `keel up`.
    public init(
        registry: String = "127.0.0.1:5052",
        broker: String = "127.0.0.1:5050",
        frameworkInfo: Keel_V1_FrameworkInfo,
        credential: Keel_V1_Credential? = nil,
        reconnect: ReconnectPolicy = .defaults,
        automaticAcknowledgement: Bool = true,
        reconcileOnSubscribe: Bool = true
    ) {
        self.registry = registry
        self.broker = broker
        self.frameworkInfo = frameworkInfo
        self.credential = credential
        self.reconnect = reconnect
        self.automaticAcknowledgement = automaticAcknowledgement
        self.reconcileOnSubscribe = reconcileOnSubscribe
    }
}

/// When and how often the driver tries to subscribe again after the subscription broke.
///
/// The delay before attempt *n* (counting from 0 after the last successful subscription) is drawn
/// uniformly from `[d/2, d]` where `d = min(initialDelay * 2^n, maxDelay)` ("equal jitter"), so
/// frameworks that lost the same broker do not come back in lock step.
public struct ReconnectPolicy: Sendable {
    /// The delay before the first attempt.
    public var initialDelay: Duration
    /// The longest delay between attempts.
    public var maxDelay: Duration
    /// How many attempts in a row may fail before the driver gives up with
    /// ``SchedulerError/Code/reconnectLimitReached``; nil tries for as long as the body runs.
    /// The framework's failover timeout is what bounds the wait on the broker's side.
    public var maxConsecutiveFailures: Int?

    /// 100 ms doubling up to 10 s, without limit.
    public static var defaults: Self { Self(initialDelay: .milliseconds(100), maxDelay: .seconds(10)) }

    /// Creates a policy.
    public init(initialDelay: Duration, maxDelay: Duration, maxConsecutiveFailures: Int? = nil) {
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.maxConsecutiveFailures = maxConsecutiveFailures
    }

    /// The delay before attempt `attempt` (0-based), with jitter from `generator`.
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let initial = max(initialDelay, .milliseconds(1))
        let cap = max(maxDelay, initial)
        var ceiling = initial
        for _ in 0..<min(max(attempt, 0), 62) where ceiling < cap {
            ceiling = ceiling * 2
        }
        ceiling = min(ceiling, cap)
        let fraction = Double.random(in: 0.5...1, using: &generator)
        return ceiling * fraction
    }
}
