@preconcurrency import Glibc
import Foundation
import KeelAPI
import KeelRPC
import Logging
import SwiftProtobuf
import Synchronization

/// A task taken over from an earlier launcher, for ``TaskManager/run()`` to watch.
struct RecoveredTask: Sendable {
    var key: LauncherTaskKey
    var process: TaskProcess
    var cgroup: TaskCgroup?
    var logger: Logger
}

/// What ``TaskManager/recover(_:)`` leaves for ``TaskManager/run()``.
struct RecoveredWork: Sendable {
    var tasks: [RecoveredTask] = []
    /// Task cgroups that belong to no checkpointed task, to kill and remove.
    var leftoverCgroups: [String] = []
}

extension TaskManager {
    /// Takes over the tasks checkpointed by an earlier launcher; call it once, before ``run()``
    /// and before attaching to the broker (so the registration reports them).
    ///
    /// - Same boot: each readable record becomes a container again. A task whose supervisor
    ///   still runs is re-attached and watched; one that ended meanwhile gets its terminal state
    ///   from the supervisor's exit-status file; unacknowledged updates are queued again. A
    ///   record that cannot be read (truncated, corrupt) is logged and its task reported
    ///   TASK_LOST with the reason; the other tasks are not affected.
    /// - Rebooted, or no usable agent checkpoint (so a new agent id): the old records are
    ///   dropped and any of their supervisors still running are killed; their tasks belong to
    ///   the old agent, which the broker retires.
    ///
    /// Either way, the task cgroups this launcher created (``TaskCheckpointStore/recordCgroup(_:)``)
    /// that belong to no recovered task are killed and removed when ``run()`` starts.
    package func recover(_ agent: AgentCheckpoint.Recovery) {
        guard let checkpoints else { return }
        let (records, unreadable) = checkpoints.load()
        var work = RecoveredWork()
        var kept = Set<String>()
        switch agent {
        case .sameBoot:
            for problem in unreadable {
                recoverUnreadable(problem, checkpoints: checkpoints)
            }
            for record in records {
                recoverTask(record, into: &work, keeping: &kept)
            }
        case .rebooted, .unreadable, .fresh:
            for record in records {
                if let pid = record.supervisorPID, let startTime = record.supervisorStartTime,
                    TaskProcess.processStartTime(of: pid) == startTime
                {
                    Glibc.kill(-pid, SIGKILL)
                }
                logger.warning(
                    "dropped the checkpoint of a task of the previous agent",
                    metadata: ["keel.task_id": "\(record.taskID)", "keel.framework_id": "\(record.frameworkID)"])
                checkpoints.discard(record.key)
            }
            for problem in unreadable {
                checkpoints.discard(problem.key)
            }
        }
        work.leftoverCgroups = checkpoints.recordedCgroups.subtracting(kept).sorted()
        if !records.isEmpty || !unreadable.isEmpty {
            logger.notice(
                "recovered the task checkpoint",
                metadata: [
                    "keel.reattached": "\(work.tasks.count)", "keel.records": "\(records.count)",
                    "keel.unreadable": "\(unreadable.count)",
                ])
        }
        recovered.withLock { $0 = work }
    }

    private func recoverUnreadable(_ problem: TaskCheckpointStore.Unreadable, checkpoints: TaskCheckpointStore) {
        let key = problem.key
        logger.error(
            "a task checkpoint is truncated or corrupt; reporting the task lost",
            metadata: [
                "keel.task_id": "\(key.taskID)", "keel.framework_id": "\(key.frameworkID)",
                "keel.error": "\(problem.reason)",
            ])
        checkpoints.discard(key)
        containers.withLock {
            $0[key] = Container(
                frameworkID: key.frameworkID, info: .with { $0.taskID.value = key.taskID }, state: .taskStaging,
                startedAt: Date())
        }
        finish(
            key, state: .taskLost, reason: .agentRestarted,
            message: "the launcher restarted and could not read its checkpoint of this task (\(problem.reason))")
    }

    private func recoverTask(_ record: TaskCheckpoint, into work: inout RecoveredWork, keeping kept: inout Set<String>) {
        let key = record.key
        var logger = self.logger
        logger[metadataKey: "keel.task_id"] = "\(key.taskID)"
        logger[metadataKey: "keel.framework_id"] = "\(key.frameworkID)"
        let info = (try? record.decodedTask()) ?? .with { $0.taskID.value = key.taskID }
        updates.restore(frameworkID: key.frameworkID, updates: (try? record.decodedPendingUpdates()) ?? [])
        var container = Container(
            frameworkID: key.frameworkID, info: info,
            sandbox: record.sandbox.flatMap { try? TaskSandbox(existingAt: $0) },
            state: record.taskState, killRequested: record.killRequested, startedAt: Date())
        if record.taskState.isTerminal {
            // It ended before the restart; only its updates wait for acknowledgement.
            container.endedAt = Date()
            containers.withLock { $0[key] = container }
            return
        }
        guard let pid = record.supervisorPID, let startTime = record.supervisorStartTime else {
            containers.withLock { $0[key] = container }
            logger.warning("the launcher stopped before the task's process was started; reporting it lost")
            finish(
                key, state: .taskLost, reason: .agentRestarted,
                message: "the launcher restarted before the task's process was started")
            return
        }
        let cgroup = record.cgroup.flatMap { configuration.isolation.existingTaskCgroup(path: $0, logger: logger) }
        if let path = record.cgroup { kept.insert(path) }
        let command: TaskCommand =
            switch info.command.command {
            case .argv(let argv): .argv(argv.args)
            case .shell(let shell): .shell(shell)
            case nil: .argv([key.taskID])
            }
        let process = TaskProcess.reattach(
            pid: pid, startTime: startTime, exitStatusFile: record.exitStatusFile, command: command, cgroup: cgroup,
            logger: logger)
        container.process = process
        containers.withLock { $0[key] = container }
        if process.terminationStatus == nil, [.taskStaging, .taskStarting].contains(record.taskState) {
            report(key, state: .taskRunning, message: "pid \(pid) (re-attached after a launcher restart)")
        }
        work.tasks.append(RecoveredTask(key: key, process: process, cgroup: cgroup, logger: logger))
    }

    /// Watches a re-attached task to its end (finishing a kill that was under way).
    func watch(_ task: RecoveredTask) async {
        let kill = containers.withLock { containers -> Duration? in
            guard let container = containers[task.key], container.killRequested else { return nil }
            return container.killGracePeriod ?? configuration.defaultKillGracePeriod
        }
        if let kill {
            _ = await task.process.terminate(gracePeriod: kill)
        }
        await awaitExit(task.key, process: task.process, cgroup: task.cgroup, logger: task.logger)
    }

    /// Kills and removes a task cgroup that no checkpointed task owns.
    func removeLeftoverCgroup(_ path: String) async {
        guard let cgroup = configuration.isolation.existingTaskCgroup(path: path, logger: logger) else {
            checkpoints?.forgetCgroup(path)
            return
        }
        let pids = cgroup.pids
        logger.warning(
            "killing and removing a leftover task cgroup that belongs to no checkpointed task",
            metadata: ["keel.cgroup": "\(path)", "keel.pids": "\(pids.sorted())"])
        await removeCgroup(cgroup)
    }
}
