@preconcurrency import Glibc

/// One mounted cgroup hierarchy (a cgroup v1 controller mount, or the cgroup v2 unified
/// hierarchy) that the launcher can create task cgroups in.
///
/// Paths given to the members are relative to the hierarchy's mount point, e.g.
/// `keel/<task>-<run>`. Implementations are immutable values: every member reads or writes
/// the kernel's files directly, so they are safe to use from any thread.
package protocol CgroupIsolator: Sendable, CustomStringConvertible {
    /// The mechanism for capability strings and logs: `cgroups/v1` or `cgroups/v2`.
    var mechanism: String { get }
    /// The absolute mount point of the hierarchy.
    var mountPoint: String { get }
    /// The controllers this hierarchy can enforce for tasks.
    var controllers: Set<CgroupController> { get }

    /// Creates the cgroup `path` (and its parents), ready to receive `controllers`.
    func create(_ path: String, controllers: Set<CgroupController>) throws(LauncherError)
    /// Writes the limits of `controllers` (a subset of ``controllers``) into cgroup `path`.
    func apply(_ limits: TaskResourceLimits, to path: String, controllers: Set<CgroupController>) throws(LauncherError)
    /// Freezes (`true`) or thaws (`false`) every process in `path`.
    func setFrozen(_ frozen: Bool, _ path: String) throws(LauncherError)
    /// Whether the kernel reports `path` as completely frozen.
    func isFrozen(_ path: String) -> Bool
    /// The OOM-kill counter of `path` and, if the OOM killer struck there, the limit and peak
    /// usage; `nil` if this hierarchy does not enforce memory.
    func memoryRecord(_ path: String) -> MemoryRecord?
    /// Whether cgroup `path`, empty after its task ended, can serve another task: nothing is
    /// left in it that the next task would inherit (an OOM kill on record, more charged memory
    /// than ``CgroupPool/reusableMemoryLeftover``, a frozen state), and this hierarchy can
    /// reset what it enforces for `controllers`. What `known` holds was read after the task
    /// ended and is not read again.
    func isReusable(_ path: String, controllers: Set<CgroupController>, known: CgroupReadings) -> Bool
    /// Readies cgroup `path` of an ended task (``isReusable(_:controllers:)``), whose limits
    /// are `previous`, for a task with `limits`: resets its peak usage and writes each limit of
    /// `controllers` that differs (the defaults of those the task does not set included).
    func reuse(
        _ path: String, for limits: TaskResourceLimits, previous: TaskResourceLimits, controllers: Set<CgroupController>
    ) throws(LauncherError)
}

extension CgroupIsolator {
    /// The absolute directory of cgroup `path`.
    package func directory(_ path: String) -> String {
        mountPoint + "/" + path
    }

    /// The file a pid is written to so that the process joins cgroup `path`.
    package func procsFile(_ path: String) -> String {
        directory(path) + "/cgroup.procs"
    }

    /// The processes (thread-group IDs) now in cgroup `path`; empty once it is gone.
    package func pids(_ path: String) -> [Int32] {
        CgroupFiles.pids(procsFile(path))
    }

    /// `mechanism@mountPoint[controllers]`.
    package var description: String {
        "\(mechanism)@\(mountPoint)\(controllers.sorted().map(\.rawValue))"
    }
}

/// A cgroup v1 hierarchy: one controller (or a co-mounted group such as `cpu,cpuacct`)
/// mounted at its own directory, e.g. `/sys/fs/cgroup/memory`.
package struct CgroupV1Hierarchy: CgroupIsolator {
    package let mechanism = "cgroups/v1"
    package let mountPoint: String
    package let controllers: Set<CgroupController>

    /// A hierarchy mounted at `mountPoint` serving `controllers`.
    package init(mountPoint: String, controllers: Set<CgroupController>) {
        self.mountPoint = mountPoint
        self.controllers = controllers
        // Its task cgroups' files are opened relative to kept directory descriptors.
        CgroupDirectoryCache.register(mountPoint: mountPoint)
    }

    package func create(_ path: String, controllers: Set<CgroupController>) throws(LauncherError) {
        try CgroupFiles.makeDirectories(directory(path), purpose: "isolate a task")
    }

    package func apply(
        _ limits: TaskResourceLimits, to path: String, controllers: Set<CgroupController>
    ) throws(LauncherError) {
        let dir = directory(path)
        if controllers.contains(.memory), let bytes = limits.memoryBytes {
            try CgroupFiles.write("\(bytes)", to: dir + "/memory.limit_in_bytes", purpose: "limit the task's memory")
            // memory+swap must not be below the memory limit, so it is written second. Without
            // swap accounting the file is missing and swap simply is not limited.
            if CgroupFiles.exists(dir + "/memory.memsw.limit_in_bytes") {
                try CgroupFiles.write(
                    "\(bytes)", to: dir + "/memory.memsw.limit_in_bytes", purpose: "forbid the task to use swap")
            }
        }
        if controllers.contains(.cpu), let shares = limits.cpuShares {
            try CgroupFiles.write("\(shares)", to: dir + "/cpu.shares", purpose: "set the task's CPU shares")
        }
        if controllers.contains(.cpu), let quota = limits.cfsQuotaMicros {
            try CgroupFiles.write(
                "\(TaskResourceLimits.cfsPeriodMicros)", to: dir + "/cpu.cfs_period_us", purpose: "set the task's CPU period")
            try CgroupFiles.write("\(quota)", to: dir + "/cpu.cfs_quota_us", purpose: "cap the task's CPU time")
        }
        if controllers.contains(.pids), let maxProcesses = limits.maxProcesses {
            try CgroupFiles.write("\(maxProcesses)", to: dir + "/pids.max", purpose: "limit the task's processes")
        }
    }

    package func setFrozen(_ frozen: Bool, _ path: String) throws(LauncherError) {
        try CgroupFiles.write(
            frozen ? "FROZEN" : "THAWED", to: directory(path) + "/freezer.state",
            purpose: frozen ? "freeze the task" : "thaw the task")
    }

    package func isFrozen(_ path: String) -> Bool {
        CgroupFiles.readLine(directory(path) + "/freezer.state") == "FROZEN"
    }

    package func memoryRecord(_ path: String) -> MemoryRecord? {
        let dir = directory(path)
        guard controllers.contains(.memory) else { return nil }
        // `oom_kill` in memory.oom_control exists since Linux 4.13; older kernels only have the
        // failure counter, which also counts reclaimed (survived) hits, so it is a weaker signal.
        let oomKills = CgroupFiles.keyedValue(dir + "/memory.oom_control", key: "oom_kill")
        return MemoryRecord(
            oomKills: oomKills, kills: oomKills ?? CgroupFiles.readInteger(dir + "/memory.failcnt") ?? 0,
            limit: CgroupFiles.readInteger(dir + "/memory.limit_in_bytes"),
            peak: CgroupFiles.readInteger(dir + "/memory.max_usage_in_bytes"))
    }

    package func isReusable(_ path: String, controllers: Set<CgroupController>, known: CgroupReadings) -> Bool {
        let dir = directory(path)
        if controllers.contains(.memory) {
            // Without `oom_kill` (kernels before 4.13) a past OOM kill could not be told apart
            // from the next task's, so such cgroups are not reused.
            let oomKills = known.oomKills ?? CgroupFiles.keyedValue(dir + "/memory.oom_control", key: "oom_kill")
            guard oomKills == 0,
                let usage = CgroupFiles.readInteger(dir + "/memory.usage_in_bytes"), usage <= CgroupPool.reusableMemoryLeftover
            else { return false }
        }
        if controllers.contains(.freezer), CgroupFiles.readLine(dir + "/freezer.state") != "THAWED" { return false }
        return true
    }

    package func reuse(
        _ path: String, for limits: TaskResourceLimits, previous: TaskResourceLimits, controllers: Set<CgroupController>
    ) throws(LauncherError) {
        let dir = directory(path)
        if controllers.contains(.memory) {
            if limits.memoryBytes != previous.memoryBytes {
                let limit = limits.memoryBytes.map { "\($0)" } ?? "-1"
                let swap = CgroupFiles.exists(dir + "/memory.memsw.limit_in_bytes")
                // memory+swap may never be below memory: lift it before the memory limit changes.
                if swap {
                    try CgroupFiles.write("-1", to: dir + "/memory.memsw.limit_in_bytes", purpose: "reset the task's swap limit")
                }
                try CgroupFiles.write(limit, to: dir + "/memory.limit_in_bytes", purpose: "limit the task's memory")
                if swap {
                    try CgroupFiles.write(limit, to: dir + "/memory.memsw.limit_in_bytes", purpose: "forbid the task to use swap")
                }
            }
            // The peak is reported when the task is OOM-killed. The failure counters need no reset:
            // a reusable cgroup has `oom_kill`, which ``memoryRecord(_:)`` reads instead.
            try CgroupFiles.write("0", to: dir + "/memory.max_usage_in_bytes", purpose: "reset the cgroup's peak memory usage")
        }
        if controllers.contains(.cpu) {
            if limits.cpuShares != previous.cpuShares {
                try CgroupFiles.write("\(limits.cpuShares ?? 1024)", to: dir + "/cpu.shares", purpose: "set the task's CPU shares")
            }
            if limits.cfsQuotaMicros != previous.cfsQuotaMicros {
                if let quota = limits.cfsQuotaMicros {
                    try CgroupFiles.write(
                        "\(TaskResourceLimits.cfsPeriodMicros)", to: dir + "/cpu.cfs_period_us", purpose: "set the task's CPU period")
                    try CgroupFiles.write("\(quota)", to: dir + "/cpu.cfs_quota_us", purpose: "cap the task's CPU time")
                } else {
                    try CgroupFiles.write("-1", to: dir + "/cpu.cfs_quota_us", purpose: "lift the last task's CPU cap")
                }
            }
        }
        if controllers.contains(.pids), limits.maxProcesses != previous.maxProcesses {
            try CgroupFiles.write(
                limits.maxProcesses.map { "\($0)" } ?? "max", to: dir + "/pids.max", purpose: "limit the task's processes")
        }
    }
}

/// The cgroup v2 unified hierarchy (e.g. `/sys/fs/cgroup` or, on hybrid hosts,
/// `/sys/fs/cgroup/unified`). Freezing is a core v2 feature (`cgroup.freeze`), so
/// ``CgroupController/freezer`` is offered whenever task cgroups can be created; the others
/// must be listed in `cgroup.controllers` and enabled in the parents' `cgroup.subtree_control`.
package struct CgroupV2Hierarchy: CgroupIsolator {
    package let mechanism = "cgroups/v2"
    package let mountPoint: String
    package let controllers: Set<CgroupController>

    /// The unified hierarchy at `mountPoint`, enforcing `controllers`.
    package init(mountPoint: String, controllers: Set<CgroupController>) {
        self.mountPoint = mountPoint
        self.controllers = controllers
        // Its task cgroups' files are opened relative to kept directory descriptors.
        CgroupDirectoryCache.register(mountPoint: mountPoint)
    }

    /// The v2 name of a controller that has to be enabled in `cgroup.subtree_control`.
    static func enableName(_ controller: CgroupController) -> String? {
        controller == .freezer ? nil : controller.rawValue
    }

    package func create(_ path: String, controllers: Set<CgroupController>) throws(LauncherError) {
        try CgroupFiles.makeDirectories(directory(path), purpose: "isolate a task")
        let names = controllers.compactMap(Self.enableName).sorted()
        guard !names.isEmpty else { return }
        // Enable the controllers on every level from the mount point down to the task's parent.
        var parent = mountPoint
        for component in path.split(separator: "/") {
            try CgroupFiles.write(
                names.map { "+" + $0 }.joined(separator: " "), to: parent + "/cgroup.subtree_control",
                purpose: "delegate \(names) to task cgroups")
            parent += "/" + component
        }
    }

    package func apply(
        _ limits: TaskResourceLimits, to path: String, controllers: Set<CgroupController>
    ) throws(LauncherError) {
        let dir = directory(path)
        if controllers.contains(.memory), let bytes = limits.memoryBytes {
            try CgroupFiles.write("\(bytes)", to: dir + "/memory.max", purpose: "limit the task's memory")
            if CgroupFiles.exists(dir + "/memory.swap.max") {
                try CgroupFiles.write("0", to: dir + "/memory.swap.max", purpose: "forbid the task to use swap")
            }
        }
        if controllers.contains(.cpu), let weight = limits.cpuWeight {
            try CgroupFiles.write("\(weight)", to: dir + "/cpu.weight", purpose: "set the task's CPU weight")
        }
        if controllers.contains(.cpu), let quota = limits.cfsQuotaMicros {
            try CgroupFiles.write(
                "\(quota) \(TaskResourceLimits.cfsPeriodMicros)", to: dir + "/cpu.max", purpose: "cap the task's CPU time")
        }
        if controllers.contains(.pids), let maxProcesses = limits.maxProcesses {
            try CgroupFiles.write("\(maxProcesses)", to: dir + "/pids.max", purpose: "limit the task's processes")
        }
    }

    package func setFrozen(_ frozen: Bool, _ path: String) throws(LauncherError) {
        try CgroupFiles.write(
            frozen ? "1" : "0", to: directory(path) + "/cgroup.freeze",
            purpose: frozen ? "freeze the task" : "thaw the task")
    }

    package func isFrozen(_ path: String) -> Bool {
        CgroupFiles.keyedValue(directory(path) + "/cgroup.events", key: "frozen") == 1
    }

    /// Whether any process is in cgroup `path` or below it (`populated`), and whether it is
    /// frozen (`frozen`), from one read of `cgroup.events`; `nil` for what cannot be read.
    package func events(_ path: String) -> (populated: Bool?, frozen: Bool?) {
        let (populated, frozen) = CgroupFiles.keyedValues(directory(path) + "/cgroup.events", "populated", "frozen")
        return (populated.map { $0 != 0 }, frozen.map { $0 != 0 })
    }

    package func memoryRecord(_ path: String) -> MemoryRecord? {
        let dir = directory(path)
        guard controllers.contains(.memory) else { return nil }
        let oomKills = CgroupFiles.keyedValue(dir + "/memory.events", key: "oom_kill")
        return MemoryRecord(
            oomKills: oomKills, kills: oomKills ?? 0, limit: CgroupFiles.readInteger(dir + "/memory.max"),
            peak: CgroupFiles.readInteger(dir + "/memory.peak"))
    }
    /// Only a hierarchy that just freezes: the peak and event counters of memory, cpu and pids
    /// cannot be reset on every kernel this runs on, so cgroups enforcing them are not reused.
    package func isReusable(_ path: String, controllers: Set<CgroupController>, known: CgroupReadings) -> Bool {
        controllers.isSubset(of: [.freezer]) && !(known.frozen ?? isFrozen(path))
    }

    package func reuse(
        _ path: String, for limits: TaskResourceLimits, previous: TaskResourceLimits, controllers: Set<CgroupController>
    ) throws(LauncherError) {
        guard controllers.isSubset(of: [.freezer]) else {
            throw LauncherError(
                code: .internalError, message: "cgroup v2 \(directory(path)) enforces \(controllers.sorted()) and cannot be reused")
        }
    }
}
