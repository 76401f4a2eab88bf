@preconcurrency import Glibc
package import Logging

/// The isolation this node applies to tasks: which cgroup hierarchy enforces each controller,
/// and which controllers fall back to resource limits (rlimits).
///
/// Build it once at start with ``detect(settings:logger:)``; it is immutable afterwards. Each
/// task then gets a ``TaskCgroup`` from ``makeTaskCgroup(name:limits:logger:)``.
package struct NodeIsolation: Sendable {
    /// How cgroups are used; the defaults suit a dedicated agent running as root.
    package struct Settings: Sendable, Hashable {
        /// The directory, under each hierarchy's mount point, that holds every task cgroup.
        package var root: String
        /// The pids limit of every task (cgroup `pids.max`, or `RLIMIT_NPROC` as a fallback).
        package var maxProcessesPerTask: Int
        /// The cgroup file system's mount point (the parent of v1 controller mounts).
        package var cgroupMount: String
        /// `false` turns cgroups off altogether (then only rlimits are used).
        package var useCgroups: Bool
        /// Cap each task at its `cpus` with CFS bandwidth (a hard limit), not only weight it.
        package var cpuHardLimit = false
        /// `false` keeps tasks in the node's PID namespace even where they could have their own.
        package var usePIDNamespaces: Bool

        /// Creates settings; see each property.
        package init(
            root: String = "keel", maxProcessesPerTask: Int = 1024, cgroupMount: String = "/sys/fs/cgroup",
            useCgroups: Bool = true, usePIDNamespaces: Bool = true
        ) {
            self.usePIDNamespaces = usePIDNamespaces
            self.root = root
            self.maxProcessesPerTask = maxProcessesPerTask
            self.cgroupMount = cgroupMount
            self.useCgroups = useCgroups
        }
    }

    /// The settings in effect.
    package let settings: Settings
    /// The hierarchy chosen for each controller that is enforced through cgroups.
    package let assignments: [CgroupController: any CgroupIsolator]
    /// The path of `prlimit` (util-linux), used for rlimit fallbacks, if installed.
    package let prlimitPath: String?
    /// Whether each task gets PID and mount namespaces of its own (it then sees and signals
    /// only its own processes, under a private `/proc`); found to work at start by
    /// ``checkPIDNamespaces(supervisor:logger:)``.
    package let pidNamespaces: Bool

    /// Isolation by process group only: no cgroups, no rlimits (used by tests and when off).
    package static let processGroupOnly = NodeIsolation(settings: Settings(useCgroups: false), assignments: [:], prlimitPath: nil)

    /// Creates an isolation from already chosen hierarchies; ``detect(settings:logger:)`` is the usual way.
    package init(
        settings: Settings, assignments: [CgroupController: any CgroupIsolator], prlimitPath: String?,
        pidNamespaces: Bool = false
    ) {
        self.settings = settings
        self.pidNamespaces = pidNamespaces
        self.assignments = assignments
        self.prlimitPath = prlimitPath
        var byMount: [String: (isolator: any CgroupIsolator, controllers: Set<CgroupController>)] = [:]
        for (controller, isolator) in assignments {
            byMount[isolator.mountPoint, default: (isolator, [])].controllers.insert(controller)
        }
        hierarchies = byMount.sorted { $0.key < $1.key }.map(\.value)
    }

    /// Controllers without a cgroup that are approximated with an rlimit through `prlimit`:
    /// memory → `RLIMIT_AS` (address space, not resident memory: crude) and pids →
    /// `RLIMIT_NPROC` (counted per user, not per task, and ignored for root: crude).
    package var rlimitFallbacks: [CgroupController] {
        guard prlimitPath != nil else { return [] }
        return [CgroupController.memory, .pids].filter { assignments[$0] == nil }
    }

    /// The strings advertised in `AgentInfo.capabilities`, e.g. `cgroups/v1:memory`,
    /// `cgroups/v2:freezer`, `rlimits:memory`, always with `isolation:process-group`, and
    /// `isolation:pid-namespace` when tasks get their own PID namespace.
    package var capabilities: [String] {
        var result = ["isolation:process-group"]
        if pidNamespaces { result.append("isolation:pid-namespace") }
        result += assignments.sorted { $0.key < $1.key }.map { "\($0.value.mechanism):\($0.key)" }
        result += rlimitFallbacks.map { "rlimits:\($0)" }
        return result
    }

    /// The distinct hierarchies in use, each with the controllers it enforces.
    /// (Worked out once: every task's cgroups go through it.)
    let hierarchies: [(isolator: any CgroupIsolator, controllers: Set<CgroupController>)]

    /// Creates the cgroups of one task (under ``Settings/root``, named `name`) with `limits`
    /// applied, or returns `nil` when no cgroup is in use and no rlimit applies.
    ///
    /// On failure, whatever was created is removed and a ``LauncherError`` says which file or
    /// directory the kernel refused.
    package func makeTaskCgroup(name: String, limits: TaskResourceLimits, logger: Logger) throws(LauncherError) -> TaskCgroup? {
        try makeTaskCgroup(path: taskCgroupPath(name: name), limits: limits, logger: logger)
    }

    /// Like ``makeTaskCgroup(name:limits:logger:)``, at `path` (relative to each mount point).
    package func makeTaskCgroup(path: String, limits: TaskResourceLimits, logger: Logger) throws(LauncherError) -> TaskCgroup? {
        let limits = effectiveLimits(limits)
        var members: [TaskCgroup.Member] = []
        do {
            for (isolator, controllers) in hierarchies {
                try isolator.create(path, controllers: controllers)
                members.append(TaskCgroup.Member(isolator: isolator, controllers: controllers))
                try isolator.apply(limits, to: path, controllers: controllers)
            }
        } catch {
            TaskCgroup.removeDirectories(members.map { $0.isolator.directory(path) })
            throw error
        }
        let rlimits = rlimitPrefix(limits)
        if members.isEmpty && rlimits.isEmpty { return nil }
        return TaskCgroup(path: path, members: members, limits: limits, rlimitPrefix: rlimits, logger: logger)
    }

    /// Whether the cgroups of ended tasks can be kept for later tasks (``CgroupPool``): cgroups
    /// are in use and every hierarchy can reset what it enforces. A cgroup v2 hierarchy that
    /// enforces memory, cpu or pids cannot (see ``CgroupV2Hierarchy/isReusable(_:controllers:)``),
    /// so there every task gets new cgroups.
    package var canReuseCgroups: Bool {
        !hierarchies.isEmpty
            && hierarchies.allSatisfy { $0.isolator is CgroupV1Hierarchy || $0.controllers.isSubset(of: [.freezer]) }
    }

    /// The cgroups at `path` of an ended task (found reusable by ``TaskCgroup/isReusable()``),
    /// whose limits were `previous` (as its ``TaskCgroup/limits`` say), readied for a task with
    /// `limits`.
    package func reuseTaskCgroup(
        path: String, limits: TaskResourceLimits, previous: TaskResourceLimits, logger: Logger
    ) throws(LauncherError) -> TaskCgroup {
        let limits = effectiveLimits(limits)
        var members: [TaskCgroup.Member] = []
        for (isolator, controllers) in hierarchies {
            try isolator.reuse(path, for: limits, previous: previous, controllers: controllers)
            members.append(TaskCgroup.Member(isolator: isolator, controllers: controllers))
        }
        return TaskCgroup(path: path, members: members, limits: limits, rlimitPrefix: rlimitPrefix(limits), logger: logger)
    }

    /// `limits` with the node's pids limit and CPU hard-limit setting filled in.
    private func effectiveLimits(_ limits: TaskResourceLimits) -> TaskResourceLimits {
        var limits = limits
        if limits.maxProcesses == nil { limits.maxProcesses = settings.maxProcessesPerTask }
        limits.hardCPULimit = limits.hardCPULimit || settings.cpuHardLimit
        return limits
    }

    /// `prlimit … --` for the rlimit fallbacks of `limits`; empty if none applies.
    private func rlimitPrefix(_ limits: TaskResourceLimits) -> [String] {
        guard let prlimitPath else { return [] }
        var rlimits: [String] = []
        if rlimitFallbacks.contains(.memory), let bytes = limits.memoryBytes { rlimits.append("--as=\(bytes)") }
        if rlimitFallbacks.contains(.pids), let count = limits.maxProcesses { rlimits.append("--nproc=\(count)") }
        return rlimits.isEmpty ? [] : [prlimitPath] + rlimits + ["--"]
    }

    /// The path (relative to each mount point) ``makeTaskCgroup(name:limits:logger:)`` uses for `name`.
    package func taskCgroupPath(name: String) -> String {
        settings.root + "/" + Self.sanitize(name)
    }

    /// Keeps `[A-Za-z0-9._-]` and replaces anything else with `_`, so IDs make safe file names.
    static func sanitize(_ name: String) -> String {
        let safe = name.unicodeScalars.map { scalar -> Character in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": Character(scalar)
            default: "_"
            }
        }
        let text = String(safe.prefix(200))
        return text.isEmpty || text.allSatisfy({ $0 == "." }) ? "_" + text : text
    }
}
