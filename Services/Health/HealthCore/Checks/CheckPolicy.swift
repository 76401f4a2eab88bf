package import KeelAPI
import SwiftProtobuf

/// The timing and threshold of one task's health check, with Keel's defaults filled in.
package struct CheckPolicy: Sendable, Hashable {
    /// How long after the task became RUNNING the first check runs.
    package var delay: Duration
    /// The time from the start of one check to the start of the next.
    package var interval: Duration
    /// How long one check may take before it counts as failed.
    package var timeout: Duration
    /// Failures this soon after the task became RUNNING are not counted (until the first success).
    package var gracePeriod: Duration
    /// Failures in a row (outside the grace period) before the task counts as unhealthy.
    package var consecutiveFailures: Int

    /// Creates a policy from its parts.
    package init(delay: Duration, interval: Duration, timeout: Duration, gracePeriod: Duration, consecutiveFailures: Int) {
        self.delay = delay
        self.interval = interval
        self.timeout = timeout
        self.gracePeriod = gracePeriod
        self.consecutiveFailures = consecutiveFailures
    }

    /// The policy of `check`: unset or non-positive interval, timeout and threshold take the
    /// defaults from `configuration`; unset or negative delay and grace period are zero.
    package init(_ check: Keel_V1_HealthCheck, configuration: HealthConfiguration) {
        func positive(_ has: Bool, _ value: Google_Protobuf_Duration) -> Duration? {
            guard has else { return nil }
            let duration = Duration(value)
            return duration > .zero ? duration : nil
        }
        self.init(
            delay: positive(check.hasDelay, check.delay) ?? .zero,
            interval: positive(check.hasInterval, check.interval) ?? configuration.defaultCheckInterval,
            timeout: positive(check.hasTimeout, check.timeout) ?? configuration.defaultCheckTimeout,
            gracePeriod: positive(check.hasGracePeriod, check.gracePeriod) ?? .zero,
            consecutiveFailures: check.consecutiveFailures > 0
                ? Int(check.consecutiveFailures) : max(1, configuration.defaultConsecutiveFailures)
        )
    }
}

extension Keel_V1_HealthCheck.TypeEnum {
    /// The type's lowercase name for logs, metrics and messages, e.g. `http`.
    package var label: String {
        switch self {
        case .command: "command"
        case .http: "http"
        case .tcp: "tcp"
        case .grpc: "grpc"
        case .unspecified: "unspecified"
        case .UNRECOGNIZED(let value): "type-\(value)"
        }
    }
}
