/// An error of the scheduler SDK: what went wrong (``code``), a message that says what to do,
/// and the underlying error, if any.
///
/// The SDK throws it where it knows more than the raw gRPC status: a subscription that ended for
/// good, a registration the registry refused, an offer that does not fit a request. Calls on a
/// ``SchedulerSession`` (accept, decline, kill, ...) throw the broker's `RPCError` as it is.
public struct SchedulerError: Error, CustomStringConvertible {
    /// The kind of error; compare with the static members (`error.code == .terminatedByBroker`).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case invalidConfiguration
            case registrationFailed
            case terminatedByBroker
            case frameworkRemoved
            case permissionDenied
            case unauthenticated
            case invalidArgument
            case reconnectLimitReached
            case insufficientResources
            case invalidConstraint
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// An address or setting of ``SchedulerConfiguration`` is malformed.
        public static let invalidConfiguration = Self(.invalidConfiguration)
        /// keel-registry refused or could not take the registration; `cause` is its error.
        public static let registrationFailed = Self(.registrationFailed)
        /// The broker sent an ERROR event: the framework was torn down, or a newer subscription of
        /// the same framework replaced this one. The message is the broker's. Do not resubscribe.
        public static let terminatedByBroker = Self(.terminatedByBroker)
        /// The broker no longer knows the framework or it was torn down (its failover timeout
        /// expired, or someone tore it down). Register a new framework.
        public static let frameworkRemoved = Self(.frameworkRemoved)
        /// The framework's principal may not do this (ACLs).
        public static let permissionDenied = Self(.permissionDenied)
        /// The broker refused the framework's token even after the SDK renewed it.
        public static let unauthenticated = Self(.unauthenticated)
        /// The broker refused the subscription request as malformed.
        public static let invalidArgument = Self(.invalidArgument)
        /// The broker stayed unreachable for ``ReconnectPolicy/maxConsecutiveFailures`` attempts.
        public static let reconnectLimitReached = Self(.reconnectLimitReached)
        /// An offer has too little of a resource for a ``ResourceRequest``.
        public static let insufficientResources = Self(.insufficientResources)
        /// An attribute constraint could not be parsed.
        public static let invalidConstraint = Self(.invalidConstraint)

        public var description: String { "\(value)" }
    }

    /// What went wrong.
    public var code: Code
    /// What went wrong and what to do about it.
    public var message: String
    /// The underlying error, if any.
    public var cause: (any Error)?

    /// Creates an error.
    public init(code: Code, message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        let text = "\(code): \(message)"
        return cause.map { "\(text) (\($0))" } ?? text
    }
}
