import Foundation
import GRPCCore
import KeelAPI
import Logging
import Metrics
import SwiftProtobuf

/// Runs one task's health check until cancelled: waits for the delay, checks every interval,
/// feeds each result to a ``TaskCheckState``, publishes it in the ``HealthTable``, and reports
/// verdict changes to the broker.
struct TaskCheckLoop: Sendable {
    let task: CheckedTask
    let policy: CheckPolicy
    let owner: UInt64
    let probe: any HealthProbe
    let broker: any Keel_V1_Operator.ClientProtocol
    let table: HealthTable
    let configuration: HealthConfiguration
    let logger: Logger

    func run() async {
        let clock = ContinuousClock()
        let runningSince = clock.now - task.runningFor
        var state = TaskCheckState(policy: policy)
        var next = runningSince + policy.delay
        let (check, target, timeout) = (task.check, task.target, policy.timeout)
        let limit = timeout + (check.type == .command ? CommandProbe.callSlack : .seconds(1))
        let counters = (
            healthy: Counter(label: "keel_health_checks_total", dimensions: [("type", check.type.label), ("result", "healthy")]),
            unhealthy: Counter(label: "keel_health_checks_total", dimensions: [("type", check.type.label), ("result", "unhealthy")])
        )
        while true {
            do {
                try await clock.sleep(until: next)
            } catch {
                return
            }
            let started = clock.now
            let result = await withProbeTimeout(limit) { await probe.probe(check, target: target, timeout: timeout) }
            guard !Task.isCancelled else { return }
            (result.healthy ? counters.healthy : counters.unhealthy).increment()
            let outcome = state.record(success: result.healthy, elapsed: started - runningSince)
            publish(state, result)
            log(outcome, state, result)
            if let verdict = state.pendingReport, await report(verdict, state: state, message: result.message) {
                state.markReported(verdict)
            }
            next = max(started + policy.interval, clock.now)
        }
    }

    private func publish(_ state: TaskCheckState, _ result: ProbeResult) {
        table.updateTask(task.key, owner: owner) { health in
            if let healthy = state.healthy { health.healthy = healthy } else { health.clearHealthy() }
            health.consecutiveFailures = UInt32(clamping: state.consecutiveFailures)
            health.lastMessage = result.message
            health.lastCheckedAt = Google_Protobuf_Timestamp(date: Date())
        }
    }

    private func log(_ outcome: TaskCheckState.Outcome, _ state: TaskCheckState, _ result: ProbeResult) {
        var metadata: Logger.Metadata = [
            "keel.task_id": "\(task.key.taskID)", "keel.framework_id": "\(task.key.frameworkID)",
            "keel.check_type": "\(task.check.type.label)", "keel.message": "\(result.message)",
        ]
        switch outcome {
        case .healthy:
            logger.debug("health check passed", metadata: metadata)
        case .ignoredInGracePeriod:
            logger.debug("health check failed inside the grace period; not counted", metadata: metadata)
        case .failureCounted:
            metadata["keel.consecutive_failures"] = "\(state.consecutiveFailures)"
            // Once the task is unhealthy, further failures are routine: keep them out of info logs.
            logger.log(level: state.healthy == false ? .debug : .info, "health check failed", metadata: metadata)
        case .becameUnhealthy:
            metadata["keel.consecutive_failures"] = "\(state.consecutiveFailures)"
            logger.warning("task is unhealthy", metadata: metadata)
        }
    }

    /// Sends `verdict` to the broker; false when the call failed (it is retried after the next check).
    private func report(_ verdict: Bool, state: TaskCheckState, message: String) async -> Bool {
        let request = Keel_V1_ReportTaskHealthRequest.with {
            $0.taskID.value = task.key.taskID
            $0.frameworkID.value = task.key.frameworkID
            $0.healthy = verdict
            $0.message = message
            $0.consecutiveFailures = UInt32(clamping: state.consecutiveFailures)
        }
        var options = CallOptions.defaults
        options.timeout = configuration.brokerCallTimeout
        let metadata: Logger.Metadata = [
            "keel.task_id": "\(task.key.taskID)", "keel.framework_id": "\(task.key.frameworkID)", "keel.healthy": "\(verdict)",
        ]
        do {
            _ = try await broker.reportTaskHealth(request, options: options)
            logger.notice("task health reported", metadata: metadata.merging(["keel.message": "\(message)"]) { $1 })
            return true
        } catch {
            if !Task.isCancelled {
                logger.warning(
                    "could not report task health to the broker; retrying after the next check",
                    metadata: metadata.merging(["keel.error": "\(error)"]) { $1 }
                )
            }
            return false
        }
    }
}
