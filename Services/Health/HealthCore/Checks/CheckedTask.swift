package import Foundation
package import KeelAPI
package import KeelRPC
import SwiftProtobuf

/// A running task's health check as the broker's task watch describes it.
package struct CheckedTask: Sendable, Hashable {
    /// What the broker's event means for the health checker.
    package enum Classification: Sendable, Hashable {
        /// A RUNNING task with a health check and a reachable agent.
        case checked(CheckedTask)
        /// Not RUNNING, or without a health check: any check of it stops.
        case notChecked(CheckedTaskKey, reason: String)
        /// A RUNNING task with a health check whose agent has no usable launcher address (the
        /// broker does not know the agent right now): a running check goes on, none starts.
        case unaddressable(CheckedTaskKey)
    }

    /// The task.
    package var key: CheckedTaskKey
    /// The check, as the framework gave it.
    package var check: Keel_V1_HealthCheck
    /// Where the check runs.
    package var target: ProbeTarget
    /// How long the task had been RUNNING when the event arrived (by the broker's status time).
    package var runningFor: Duration

    /// Creates a checked task from its parts.
    package init(key: CheckedTaskKey, check: Keel_V1_HealthCheck, target: ProbeTarget, runningFor: Duration) {
        self.key = key
        self.check = check
        self.target = target
        self.runningFor = runningFor
    }

    /// Whether `other` is the same check at the same place (it may differ in ``runningFor``).
    package func isSameCheck(as other: CheckedTask) -> Bool {
        key == other.key && check == other.check && target == other.target
    }

    /// What `event` means for the health checker, as of `now`.
    package static func classify(_ event: Keel_V1_TaskEvent, now: Date = Date()) -> Classification {
        let task = event.task
        let key = CheckedTaskKey(task)
        guard task.state == .taskRunning else {
            return .notChecked(key, reason: "the task is \(task.state.name)")
        }
        guard task.hasHealthCheck else {
            return .notChecked(key, reason: "the task has no health check")
        }
        guard let launcher = event.launcherAddress.dialableEndpoint(fallbackHostname: event.hostname) else {
            return .unaddressable(key)
        }
        let target = ProbeTarget(key: key, host: launcher.host, launcher: launcher)
        return .checked(CheckedTask(key: key, check: task.healthCheck, target: target, runningFor: runningFor(task, now: now)))
    }

    /// The time since the task's first recorded RUNNING status; zero when unknown or in the future.
    private static func runningFor(_ task: Keel_V1_Task, now: Date) -> Duration {
        let running = task.statuses.filter { $0.state == .taskRunning && $0.hasTimestamp }
        guard let since = running.map({ $0.timestamp.date }).min() else { return .zero }
        let seconds = now.timeIntervalSince(since)
        guard seconds > 0, seconds.isFinite else { return .zero }
        return .milliseconds(Int64(seconds * 1000))
    }
}

extension Keel_V1_Address {
    /// The endpoint to dial: the IP, else the hostname, else `fallbackHostname`, skipping empty
    /// and wildcard values (a wildcard alone means this node); nil without a valid port.
    package func dialableEndpoint(fallbackHostname: String) -> Endpoint? {
        guard port > 0, port <= 65535 else { return nil }
        let wildcards: Set<String> = ["0.0.0.0", "::", "[::]"]
        let candidates = [ip, hostname, fallbackHostname].filter { !$0.isEmpty }
        let host = candidates.first { !wildcards.contains($0) } ?? candidates.first
        guard var host else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return Endpoint(host: host, port: Int(port)).dialable
    }
}
