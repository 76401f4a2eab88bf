@preconcurrency import Glibc
import Logging
import Synchronization

/// The per-process reaper thread (see ``TaskProcess`` for the design).
extension TaskProcess {
    /// Starts the detached thread that waits for this process, or, if no thread can be made,
    /// kills and reaps the just-spawned process and throws ``LauncherError/Code/launchFailed``.
    func startReaper() throws(LauncherError) {
        // The thread keeps the process alive until it has reaped it.
        let status = DetachedThread.start { [self] in reap() }
        guard status == 0 else {
            let exit = collectExit()
            logger.error(
                "could not start reaper thread; killed the task process",
                metadata: ["keel.errno": "\(status)", "keel.termination": "\(exit)"]
            )
            throw LauncherError.system(
                "pthread_create", errno: status,
                message: "cannot watch the process of '\(command)', so it was killed; the launcher is out of "
                    + "threads or memory",
                fallback: .launchFailed
            )
        }
    }

    /// Body of the reaper thread: blocks until the leader exits, then finishes it.
    private func reap() {
        var info = siginfo_t()
        // WNOWAIT leaves the leader a zombie, pinning its pid and group ID for the sweep.
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 {
            let code = errno
            if code == EINTR { continue }
            // ECHILD: someone else reaped it; the pid may be reused, so do not signal the group.
            logger.error(
                "cannot wait for task process; its exit status is lost",
                metadata: ["keel.errno": "\(code)", "keel.error": "\(SystemCallError(call: "waitid", errno: code))"]
            )
            finish(with: .unknown)
            return
        }
        let status = collectExit()
        logger.debug("task process exited", metadata: ["keel.termination": "\(status)"])
    }

    /// Kills what is left of the group, reaps the leader and resumes every waiter.
    ///
    /// The leader must have exited already (or be killed by the sweep), so `waitpid` returns at
    /// once; both happen under the lock so that ``signalGroup(_:)`` never signals a reaped group.
    private func collectExit() -> TerminationStatus {
        let (status, waiters) = state.withLock { state in
            if let status = state.exitStatus {
                return (status, [CheckedContinuation<TerminationStatus?, Never>]())
            }
            // SIGKILL the leftovers: children that ignore SIGTERM or outlived their parent.
            kill(-pid, SIGKILL)
            var raw: Int32 = 0
            var status = TerminationStatus.unknown
            while true {
                if waitpid(pid, &raw, 0) == pid {
                    status = TerminationStatus(waitStatus: raw)
                    break
                }
                if errno != EINTR { break }
            }
            // A supervised task: the supervisor recorded the task's own status.
            status = supervisedStatus(fallback: status)
            state.exitStatus = status
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            return (status, waiters)
        }
        for waiter in waiters {
            waiter.resume(returning: status)
        }
        return status
    }

    /// Records `status` without touching the pid (it is no longer ours) and resumes waiters.
    private func finish(with status: TerminationStatus) {
        let waiters = state.withLock { state in
            state.exitStatus = status
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            return waiters
        }
        for waiter in waiters {
            waiter.resume(returning: status)
        }
    }
}
