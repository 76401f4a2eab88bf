/// The verdict logic of one task's health check: a pure state machine fed with check results.
///
/// - A success makes the task healthy at once, resets the failure count and ends the grace period.
/// - A failure inside the grace period (measured from when the task became RUNNING, and only
///   until the first success) is not counted.
/// - Otherwise a failure is counted; when the count reaches the policy's threshold the task is
///   unhealthy. Further failures keep counting without changing the verdict.
///
/// The broker is told about a verdict once: ``pendingReport`` is the verdict it has not
/// acknowledged yet, and ``markReported(_:)`` records the acknowledgement, so a failed report is
/// retried after the next check.
package struct TaskCheckState: Sendable, Hashable {
    /// What one recorded result did.
    package enum Outcome: Sendable, Hashable {
        /// The task is (still) healthy.
        case healthy
        /// A failure inside the grace period; not counted.
        case ignoredInGracePeriod
        /// A counted failure that has not (yet) changed the verdict.
        case failureCounted
        /// A counted failure that reached the threshold: the task is now unhealthy.
        case becameUnhealthy
    }

    /// Failures in a row, outside the grace period, before the task counts as unhealthy.
    package let failureThreshold: Int
    /// How long after RUNNING failures are ignored (until the first success).
    package let gracePeriod: Duration
    /// The current verdict; nil until the first success or the threshold-th counted failure.
    package private(set) var healthy: Bool?
    /// Counted failures since the last success.
    package private(set) var consecutiveFailures = 0
    /// Whether the grace period is over early because a check has succeeded.
    package private(set) var hasSucceeded = false
    /// The verdict the broker has acknowledged, if any.
    package private(set) var reported: Bool?

    /// A fresh state: no verdict, nothing reported.
    package init(failureThreshold: Int, gracePeriod: Duration) {
        self.failureThreshold = max(1, failureThreshold)
        self.gracePeriod = gracePeriod
    }

    /// A fresh state for `policy`.
    package init(policy: CheckPolicy) {
        self.init(failureThreshold: policy.consecutiveFailures, gracePeriod: policy.gracePeriod)
    }

    /// Records one check result; `elapsed` is the time since the task became RUNNING.
    @discardableResult
    package mutating func record(success: Bool, elapsed: Duration) -> Outcome {
        if success {
            healthy = true
            consecutiveFailures = 0
            hasSucceeded = true
            return .healthy
        }
        if !hasSucceeded && elapsed < gracePeriod {
            return .ignoredInGracePeriod
        }
        consecutiveFailures += 1
        if consecutiveFailures >= failureThreshold && healthy != false {
            healthy = false
            return .becameUnhealthy
        }
        return .failureCounted
    }

    /// The verdict to send to the broker, when it differs from what the broker acknowledged.
    package var pendingReport: Bool? {
        guard let healthy, healthy != reported else { return nil }
        return healthy
    }

    /// Records that the broker accepted a report of `verdict`.
    package mutating func markReported(_ verdict: Bool) {
        reported = verdict
    }
}
