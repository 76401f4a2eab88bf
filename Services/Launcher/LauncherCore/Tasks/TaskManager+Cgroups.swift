import Logging

/// The cgroups of the tasks: new, kept for later tasks (``CgroupPool``), reused and removed.
extension TaskManager {
    /// Makes the new cgroups `path` of a task; on failure forgets their note if they were
    /// `noted` (nothing is left).
    func makeCgroup(_ path: String, noted: Bool, limits: TaskResourceLimits, logger: Logger) throws(LauncherError) -> TaskCgroup? {
        do {
            return try configuration.isolation.makeTaskCgroup(path: path, limits: limits, logger: logger)
        } catch {
            if noted { checkpoints?.forgetCgroup(path) }
            throw error
        }
    }

    /// Readies a kept cgroup for a task; if it cannot be reused it is removed and the
    /// task gets new cgroups (noted on disk before they are made).
    func reuseCgroup(
        _ kept: CgroupPool.Kept, for key: LauncherTaskKey, limits: TaskResourceLimits, logger: Logger
    ) async throws(LauncherError) -> TaskCgroup? {
        do {
            return try configuration.isolation.reuseTaskCgroup(
                path: kept.path, limits: limits, previous: kept.limits, logger: logger)
        } catch {
            logger.warning("cannot reuse a kept cgroup; making a new one", metadata: [
                "keel.cgroup": "\(kept.path)", "keel.error": "\(error.message)",
            ])
        }
        await discardCgroup(kept.path)
        let fresh = configuration.isolation.taskCgroupPath(name: CgroupPool.slotName())
        checkpoints?.recordCgroup(fresh)
        await checkpoints?.sync(key, cgroup: fresh)
        return try makeCgroup(fresh, noted: true, limits: limits, logger: logger)
    }

    /// Keeps an ended task's cgroups for a later task when they belong to the pool, can serve
    /// another task and the pool has room (their note stays on disk); otherwise removes them.
    /// `known` is what ``TaskCgroup/endRecord()`` read when the task ended.
    func releaseCgroup(_ cgroup: TaskCgroup?, known: CgroupReadings = CgroupReadings()) async {
        guard let cgroup else { return }
        if let cgroupPool, !cgroup.members.isEmpty, CgroupPool.isSlot(cgroup.path),
            await cgroup.isReusable(known: known),
            cgroupPool.put(CgroupPool.Kept(path: cgroup.path, limits: cgroup.limits))
        {
            return
        }
        await removeCgroup(cgroup)
    }

    /// Removes the task cgroup `path` (killing anything in it) and forgets its note.
    func discardCgroup(_ path: String) async {
        if let cgroup = configuration.isolation.existingTaskCgroup(path: path, logger: logger) {
            await removeCgroup(cgroup)
        } else {
            checkpoints?.forgetCgroup(path)
        }
    }

    /// Destroys a task's cgroups and forgets them in the checkpoint.
    func removeCgroup(_ cgroup: TaskCgroup?) async {
        guard let cgroup else { return }
        if await cgroup.destroy() {
            checkpoints?.forgetCgroup(cgroup.path)
        }
    }
}
