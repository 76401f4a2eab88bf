/// A resource controller the launcher uses to isolate tasks.
package enum CgroupController: String, Sendable, Hashable, CaseIterable, Comparable, CustomStringConvertible {
    /// Memory limit, OOM accounting and peak usage.
    case memory
    /// Relative CPU weight (shares).
    case cpu
    /// A limit on the number of processes and threads (stops fork bombs).
    case pids
    /// Freezing the whole task, used to kill every process without races.
    case freezer

    /// The controller's name, as in `/proc/cgroups`.
    package var description: String { rawValue }

    /// Orders by name, for stable logs and capability lists.
    package static func < (lhs: CgroupController, rhs: CgroupController) -> Bool {
        lhs.rawValue < rhs.rawValue
    }
}

/// The resource limits applied to one task.
package struct TaskResourceLimits: Sendable, Hashable {
    /// The memory limit in bytes, or `nil` for none (the task asked for no `mem`).
    package var memoryBytes: UInt64?
    /// The CPU share, in CPUs (e.g. 0.5), or `nil` for the default weight.
    package var cpus: Double?
    /// The most processes/threads the task may have at once, or `nil` for no limit.
    package var maxProcesses: Int?
    /// Whether ``cpus`` is also a hard ceiling (CFS bandwidth: the task gets at most `cpus`
    /// CPUs of time per period even when the node is idle), not only a relative weight.
    package var hardCPULimit = false

    /// The CFS period, 100 ms, as the kernel's default.
    package static let cfsPeriodMicros: UInt64 = 100_000

    /// The CFS quota per ``cfsPeriodMicros`` for a hard ``cpus`` limit (at least 1 ms, the
    /// kernel minimum), or `nil` when the limit is not hard.
    package var cfsQuotaMicros: UInt64? {
        guard hardCPULimit, let cpus else { return nil }
        return max(1000, UInt64((cpus * Double(Self.cfsPeriodMicros)).rounded()))
    }

    /// Creates limits; `memoryMiB` and `cpus` come from the task's resources.
    package init(memoryMiB: Double?, cpus: Double?, maxProcesses: Int?) {
        self.memoryBytes = memoryMiB.flatMap { $0 > 0 ? UInt64($0 * 1_048_576) : nil }
        self.cpus = cpus.flatMap { $0 > 0 ? $0 : nil }
        self.maxProcesses = maxProcesses
    }

    /// cgroup v1 `cpu.shares` for ``cpus``: 1024 per CPU, at least 2 (the kernel minimum).
    package var cpuShares: UInt64? {
        cpus.map { max(2, UInt64(($0 * 1024).rounded())) }
    }

    /// cgroup v2 `cpu.weight` for ``cpus``, using the usual shares→weight mapping
    /// (`1 + (shares - 2) * 9999 / 262142`, as runc and Kubernetes do), within 1...10000.
    package var cpuWeight: UInt64? {
        cpuShares.map { shares in min(10_000, 1 + (min(shares, 262_144) - 2) * 9_999 / 262_142) }
    }
}

/// What a hierarchy that enforces memory recorded for a task's cgroup, read once when the task
/// has ended: for the task's final status and for whether the cgroup can serve another task.
package struct MemoryRecord: Sendable, Hashable {
    /// The OOM killer's counter (`oom_kill`); `nil` where the kernel has none.
    package var oomKills: UInt64?
    /// What the memory limit did, if the OOM killer struck.
    package var limitation: MemoryLimitation?

    /// A record of `oomKills`, where the OOM killer struck `kills` times; the limit and peak
    /// are read only then (a limitation needs the limit).
    init(oomKills: UInt64?, kills: UInt64, limit: @autoclosure () -> UInt64?, peak: @autoclosure () -> UInt64?) {
        self.oomKills = oomKills
        if kills > 0, let limitBytes = limit() {
            limitation = MemoryLimitation(limitBytes: limitBytes, peakBytes: peak(), oomKills: kills)
        }
    }
}

/// Counters of a task's cgroups read after the task ended, which the reuse check
/// (``CgroupIsolator/isReusable(_:controllers:known:)``) then need not read again; `nil` for
/// what was not read.
package struct CgroupReadings: Sendable, Hashable {
    /// Whether any process was in the unified hierarchy's cgroup (`populated` in `cgroup.events`).
    package var populated: Bool?
    /// Whether the unified hierarchy's cgroup is frozen (`frozen` in `cgroup.events`).
    package var frozen: Bool?
    /// The memory hierarchy's `oom_kill` counter, read after the cgroup was found empty (so no
    /// later OOM kill can change it).
    package var oomKills: UInt64?

    package init(populated: Bool? = nil, frozen: Bool? = nil, oomKills: UInt64? = nil) {
        self.populated = populated
        self.frozen = frozen
        self.oomKills = oomKills
    }
}

/// What a memory limit did to a task: read from its cgroup when the task ended.
package struct MemoryLimitation: Sendable, Hashable, CustomStringConvertible {
    /// The limit in bytes.
    package var limitBytes: UInt64
    /// The highest usage recorded, in bytes, if the kernel reports it.
    package var peakBytes: UInt64?
    /// How many processes of the task the OOM killer killed.
    package var oomKills: UInt64

    /// Creates a record of an OOM kill.
    package init(limitBytes: UInt64, peakBytes: UInt64?, oomKills: UInt64) {
        self.limitBytes = limitBytes
        self.peakBytes = peakBytes
        self.oomKills = oomKills
    }

    /// A message for TASK_FAILED, e.g. `memory limit of 64 MiB reached (peak 64 MiB); ...`.
    package var description: String {
        let peak = peakBytes.map { "peak usage \(Self.mebibytes($0))" } ?? "peak usage unknown"
        return "the task exceeded its memory limit of \(Self.mebibytes(limitBytes)) (\(peak)); the kernel's OOM "
            + "killer killed \(oomKills) process(es); ask for more 'mem' or reduce the task's memory use"
    }

    private static func mebibytes(_ bytes: UInt64) -> String {
        let value = Double(bytes) / 1_048_576
        return value == value.rounded() ? "\(Int(value)) MiB" : "\((value * 10).rounded() / 10) MiB"
    }
}
