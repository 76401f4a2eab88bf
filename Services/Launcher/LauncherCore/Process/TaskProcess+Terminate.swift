@preconcurrency import Glibc
import Logging

extension TaskProcess {
    /// Stops the task: `SIGTERM` to the whole process group, up to `gracePeriod` for the leader
    /// to exit, then `SIGKILL` to the whole group; returns how the leader ended.
    ///
    /// Whenever the leader exits (by `SIGTERM`, by `SIGKILL` or on its own) every other member
    /// still in the group is sent `SIGKILL` before the leader is reaped, so children that ignore
    /// `SIGTERM` do not survive it.
    ///
    /// Idempotent and safe to call concurrently or after the process exited (then it only
    /// returns the recorded status). If the calling task is cancelled during the grace period,
    /// the group is killed at once; the final wait after `SIGKILL` is not cancellable, since the
    /// kill completes promptly (unless a member is stuck in uninterruptible sleep).
    ///
    /// A descendant that double-forks and calls `setsid` leaves the process group and is not
    /// reached by group signals; when the process has a ``cgroup``, the final sweep kills
    /// everything left in it (``TaskCgroup/killAll(timeout:)``), which closes that gap.
    @discardableResult
    package func terminate(gracePeriod: Duration) async -> TerminationStatus {
        let status = await terminateGroup(gracePeriod: gracePeriod)
        if let cgroup {
            await cgroup.killAll()
        }
        return status
    }

    /// SIGTERM → grace → SIGKILL on the process group; see ``terminate(gracePeriod:)``.
    private func terminateGroup(gracePeriod: Duration) async -> TerminationStatus {
        if let status = terminationStatus {
            return status
        }
        if signalGroup(SIGTERM) {
            logger.info(
                "sent SIGTERM to task process group",
                metadata: ["keel.signal": "SIGTERM", "keel.grace_period": "\(gracePeriod)"]
            )
        }
        if gracePeriod > .zero, let status = await waitForExit(timeout: gracePeriod) {
            return status
        }
        if signalGroup(SIGKILL) {
            logger.warning(
                "task process outlived its grace period; sent SIGKILL to its process group",
                metadata: ["keel.signal": "SIGKILL", "keel.grace_period": "\(gracePeriod)"]
            )
        }
        guard let status = await waitForExit(cancellable: false) else {
            preconditionFailure("a non-cancellable wait for process \(pid) returned without a status")
        }
        return status
    }

    /// Waits for exit for at most `timeout`; `nil` on timeout or cancellation of the caller.
    private func waitForExit(timeout: Duration) async -> TerminationStatus? {
        await withTaskGroup(of: TerminationStatus?.self) { group in
            group.addTask {
                await self.waitForExit(cancellable: true)
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            // The first child to finish decides: the exit, the deadline, or (both return nil)
            // cancellation of the caller. The other child is cancelled and returns promptly.
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
