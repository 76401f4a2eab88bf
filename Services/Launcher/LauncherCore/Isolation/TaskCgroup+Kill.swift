@preconcurrency import Glibc
import Logging

extension TaskCgroup {
    /// Kills every process in the task's cgroups and waits until they are empty; `true` if they
    /// emptied before `timeout`.
    ///
    /// With a freezer: freeze (so nothing can fork or exit while the list is read), `SIGKILL`
    /// every pid, thaw (the signals are then delivered), and repeat until empty. Without one, the
    /// kill loop alone converges because every new process is also born in the cgroup. This
    /// reaches processes that left the task's process group or session (`setsid`, double fork).
    @discardableResult
    package func killAll(timeout: Duration = .seconds(30)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        let freezer = members.first { $0.controllers.contains(.freezer) }?.isolator
        var killed = 0
        while ContinuousClock.now < deadline {
            let remaining = pids
            if remaining.isEmpty {
                if killed > 0 { logger.info("killed the task's processes through its cgroups", metadata: ["keel.killed": "\(killed)"]) }
                return true
            }
            var frozen = false
            if let freezer {
                frozen = (try? freezer.setFrozen(true, path)) != nil
                // Freezing completes quickly unless a process sits in uninterruptible sleep.
                let freezeDeadline = min(deadline, ContinuousClock.now + .seconds(1))
                while frozen, !freezer.isFrozen(path), ContinuousClock.now < freezeDeadline {
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }
            for pid in pids where pid > 0 {
                if Glibc.kill(pid, SIGKILL) == 0 { killed += 1 }
            }
            if frozen, let freezer {
                do {
                    try freezer.setFrozen(false, path)
                } catch {
                    logger.error("cannot thaw the task's cgroup", metadata: ["keel.error": "\(error)"])
                }
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        let left = pids
        logger.error(
            "processes are still in the task's cgroups after SIGKILL",
            metadata: ["keel.pids": "\(left.sorted())", "keel.hint": "look for processes in uninterruptible sleep (state D)"])
        return left.isEmpty
    }

    /// Kills what is left (``killAll(timeout:)``) and removes the task's cgroup directories;
    /// `true` if all of them are gone. Read ``memoryLimitation`` first: it is lost here.
    @discardableResult
    package func destroy(timeout: Duration = .seconds(30)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        await killAll(timeout: timeout)
        if let freezer = members.first(where: { $0.controllers.contains(.freezer) })?.isolator {
            try? freezer.setFrozen(false, path)
        }
        var remaining = directories
        var lastError: Int32 = 0
        while !remaining.isEmpty {
            remaining = remaining.filter { directory in
                let (removed, code) = CgroupFiles.removeDirectory(directory)
                if !removed { lastError = code }
                return !removed
            }
            // EBUSY right after the last exit: the kernel is still unlinking the dead tasks.
            if remaining.isEmpty || ContinuousClock.now >= deadline { break }
            try? await Task.sleep(for: .milliseconds(10))
        }
        if remaining.isEmpty {
            logger.debug("removed the task's cgroups")
            return true
        }
        logger.error(
            "cannot remove the task's cgroups; remove them by hand once empty",
            metadata: [
                "keel.directories": "\(remaining)",
                "keel.error": "\(SystemCallError(call: "rmdir", errno: lastError))",
            ])
        return false
    }
}

extension TaskCgroup {
    /// Whether these cgroups, emptied after their task ended, can serve another task (every
    /// hierarchy's ``CgroupIsolator/isReusable(_:controllers:known:)``). Kills what may be left
    /// first and says no if anything stays. `known` is what ``endRecord()`` read.
    ///
    /// Where the unified hierarchy is one of them, its cgroup's `populated` flag says at once
    /// that nothing is left: every process of the task joined it first (``procsFiles``). The
    /// `cgroup.procs` of every hierarchy are read (v1 builds a pid list for each read) only when
    /// something may be, and then whatever was read before the kill is read again.
    package func isReusable(known: CgroupReadings = CgroupReadings()) async -> Bool {
        var known = known
        if known.populated == nil, let unified = members.lazy.compactMap({ $0.isolator as? CgroupV2Hierarchy }).first {
            (known.populated, known.frozen) = unified.events(path)
        }
        if known.populated != false {
            guard await killAll(timeout: .seconds(5)) else { return false }
            known = CgroupReadings()
        }
        return members.allSatisfy { $0.isolator.isReusable(path, controllers: $0.controllers, known: known) }
    }
}
