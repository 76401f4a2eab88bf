public import KeelAPI

/// Where a framework finds Keel and who it is.
public struct SchedulerConfiguration: Sendable {
    /// keel-registry's gRPC address, `host:port`.
    public var registry: String
    /// keel-broker's gRPC address, `host:port`.
    public var broker: String
    /// The framework's description; leave `id` empty to register a new framework, or set it to
    /// fail over an existing one.
    public var frameworkInfo: Keel_V1_FrameworkInfo
    /// The principal and secret, when the registry requires credentials.
    public var credential: Keel_V1_Credential?

    /// Creates a configuration; the defaults are the ports of `keel up`.
    public init(
        registry: String = "127.0.0.1:5052",
        broker: String = "127.0.0.1:5050",
        frameworkInfo: Keel_V1_FrameworkInfo,
        credential: Keel_V1_Credential? = nil
    ) {
        self.registry = registry
        self.broker = broker
        self.frameworkInfo = frameworkInfo
        self.credential = credential
    }
}

/// An error of the scheduler driver; `message` says what went wrong and what to do.
public struct SchedulerError: Error, CustomStringConvertible {
    /// What went wrong.
    public var message: String
    /// The underlying error, if any.
    public var cause: (any Error)?

    /// Creates an error.
    public init(_ message: String, cause: (any Error)? = nil) {
        self.message = message
        self.cause = cause
    }

    public var description: String {
        cause.map { "\(message): \($0)" } ?? message
    }
}
