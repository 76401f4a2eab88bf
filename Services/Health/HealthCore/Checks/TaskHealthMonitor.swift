import Foundation
import GRPCCore
package import KeelAPI
package import Logging
import ServiceLifecycle
import SwiftProtobuf

/// Follows the broker's task watch and runs one ``TaskCheckLoop`` per RUNNING task that has a
/// health check, as a child task of ``run()``; a task's loop is cancelled when the task leaves
/// RUNNING, loses its check, or its check changes (then a new loop starts).
///
/// The watch reconnects with backoff. Before each (re)connection the broker's task list is read,
/// and checks of tasks it no longer lists as RUNNING stop; the watch's snapshot restarts the rest.
package struct TaskHealthMonitor: Service {
    private enum Input: Sendable {
        /// The tasks the broker listed as RUNNING when (re)connecting.
        case running(Set<CheckedTaskKey>)
        case event(Keel_V1_TaskEvent)
    }

    private struct ActiveCheck {
        var task: CheckedTask
        var owner: UInt64
        var stop: AsyncStream<Never>.Continuation
    }

    private let broker: any Keel_V1_Operator.ClientProtocol
    private let probe: any HealthProbe
    private let table: HealthTable
    private let configuration: HealthConfiguration
    private let logger: Logger

    /// Creates the monitor; checks run through `probe`, results go to `table` and the broker.
    package init(
        broker: any Keel_V1_Operator.ClientProtocol,
        probe: any HealthProbe,
        table: HealthTable,
        configuration: HealthConfiguration,
        logger: Logger
    ) {
        self.broker = broker
        self.probe = probe
        self.table = table
        self.configuration = configuration
        self.logger = logger
    }

    /// Follows the broker and runs the checks until cancelled or shut down gracefully.
    package func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            await follow()
        }
    }

    private func follow() async {
        let (inputs, feed) = AsyncStream.makeStream(of: Input.self)
        await withDiscardingTaskGroup { group in
            group.addTask {
                await watch(feed)
                feed.finish()
            }
            var active: [CheckedTaskKey: ActiveCheck] = [:]
            for await input in inputs {
                switch input {
                case .running(let running):
                    for key in active.keys where !running.contains(key) {
                        stop(key, in: &active, reason: "the broker no longer lists the task as RUNNING")
                    }
                case .event(let event):
                    apply(event, to: &active, group: &group)
                }
            }
            for key in active.keys { stop(key, in: &active, reason: "keel-health is stopping") }
        }
    }

    private func apply(_ event: Keel_V1_TaskEvent, to active: inout [CheckedTaskKey: ActiveCheck], group: inout DiscardingTaskGroup) {
        switch CheckedTask.classify(event) {
        case .notChecked(let key, let reason):
            if active[key] != nil { stop(key, in: &active, reason: reason) }
        case .unaddressable(let key):
            if active[key] == nil {
                logger.warning("cannot check the task yet: the broker has no launcher address for its agent", metadata: [
                    "keel.task_id": "\(key.taskID)", "keel.framework_id": "\(key.frameworkID)",
                    "keel.agent_id": "\(event.task.agentID.value)",
                ])
            }
        case .checked(let task):
            if let existing = active[task.key] {
                if existing.task.isSameCheck(as: task) { return }
                stop(task.key, in: &active, reason: "the task's health check or address changed")
            }
            start(task, in: &active, group: &group)
        }
    }

    private func start(_ task: CheckedTask, in active: inout [CheckedTaskKey: ActiveCheck], group: inout DiscardingTaskGroup) {
        let policy = CheckPolicy(task.check, configuration: configuration)
        let owner = table.beginTask(task.key, checkType: task.check.type)
        let (stopped, stop) = AsyncStream.makeStream(of: Never.self)
        let loop = TaskCheckLoop(
            task: task, policy: policy, owner: owner, probe: probe, broker: broker, table: table,
            configuration: configuration, logger: logger
        )
        active[task.key] = ActiveCheck(task: task, owner: owner, stop: stop)
        logger.info("checking task health", metadata: [
            "keel.task_id": "\(task.key.taskID)", "keel.framework_id": "\(task.key.frameworkID)",
            "keel.check_type": "\(task.check.type.label)", "keel.host": "\(task.target.host)",
            "keel.interval": "\(policy.interval.compactDescription)",
        ])
        group.addTask {
            await withTaskGroup(of: Void.self) { inner in
                inner.addTask { await loop.run() }
                inner.addTask { for await _ in stopped {} }
                await inner.next()
                inner.cancelAll()
            }
            table.endTask(task.key, owner: owner)
        }
    }

    private func stop(_ key: CheckedTaskKey, in active: inout [CheckedTaskKey: ActiveCheck], reason: String) {
        guard let check = active.removeValue(forKey: key) else { return }
        check.stop.finish()
        table.endTask(key, owner: check.owner)
        logger.info("stopped checking task health", metadata: [
            "keel.task_id": "\(key.taskID)", "keel.framework_id": "\(key.frameworkID)", "keel.reason": "\(reason)",
        ])
    }

    /// Feeds the broker's task list and watch into `feed`, reconnecting with backoff, until cancelled.
    private func watch(_ feed: AsyncStream<Input>.Continuation) async {
        var backoff = configuration.reconnectBackoff
        while !Task.isCancelled {
            do {
                var options = CallOptions.defaults
                options.timeout = configuration.brokerCallTimeout
                let tasks = try await broker.getTasks(Keel_V1_GetTasksRequest(), options: options).tasks
                feed.yield(.running(Set(tasks.filter { $0.state == .taskRunning }.map(CheckedTaskKey.init))))
                backoff = configuration.reconnectBackoff
                logger.info("following the broker's tasks", metadata: ["keel.tasks": "\(tasks.count)"])
                let request = Keel_V1_WatchTasksRequest.with {
                    $0.includeSnapshot = true
                    $0.healthCheckedOnly = true
                }
                try await broker.watchTasks(request) { response in
                    for try await event in response.messages {
                        feed.yield(.event(event))
                    }
                }
                if Task.isCancelled { return }
                logger.warning("the broker ended the task watch; reconnecting")
            } catch {
                if Task.isCancelled { return }
                logger.warning("lost the broker's task watch; retrying", metadata: [
                    "keel.error": "\(error)", "keel.retry_in": "\(backoff.compactDescription)",
                ])
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, configuration.reconnectBackoffMax)
        }
    }
}
