package import KeelCore
package import KeelRPC

/// What keel-launcher needs to run, filled by its `main` from flags and `KEEL_*` variables.
package struct LauncherConfiguration: Sendable {
    /// Where keel-broker serves the agent stream.
    package var broker: Endpoint
    /// The address other services use to reach this launcher's API (files, logs, pings).
    package var advertisedAddress: Endpoint
    /// Where sandboxes and the launcher's own state live.
    package var workDir: String
    /// The node's hostname as reported to the broker.
    package var hostname: String
    /// The resources this node offers.
    package var resources: Resources
    /// Attributes for placement, e.g. `rack:r1;ssd:true`.
    package var attributes: [(String, String)]
    /// The node's region and zone, for region-aware frameworks and placement.
    package var faultDomain: (region: String, zone: String)?
    /// How long a task gets between SIGTERM and SIGKILL unless its kill policy says otherwise.
    package var defaultKillGracePeriod: Duration
    /// How often the launcher heartbeats on its stream.
    package var heartbeatInterval: Duration
    /// The first delay before an unacknowledged status update is sent again; it doubles up to
    /// ``statusUpdateMaxBackoff``.
    package var statusUpdateInitialBackoff: Duration
    package var statusUpdateMaxBackoff: Duration
    /// The per-task isolation (cgroups, rlimit fallbacks) detected at start; its
    /// ``NodeIsolation/capabilities`` are advertised to the broker.
    package var isolation: NodeIsolation
    /// The `keel-task-supervisor` executable every task is started under, so that tasks outlive
    /// the launcher and their exit status is still collected; `nil` runs tasks as direct
    /// children (they then cannot be recovered with their exit status after a launcher restart).
    package var taskSupervisor: String?
    /// Whether a graceful stop (SIGTERM) kills the running tasks. `false` (the default, for
    /// systemd with `KillMode=process`) leaves them running for the next launcher to recover;
    /// `keel up` sets it so a local cluster takes its tasks with it.
    package var stopTasksOnExit: Bool
    /// The most bytes the node's fetcher cache (`WORK_DIR/fetcher-cache`) holds; least recently
    /// used artifacts are evicted beyond it.
    package var fetcherCacheBytes: UInt64
    /// The cap and rotation of each task's `stdout` and `stderr` (applied by
    /// `keel-task-supervisor`, so only with ``taskSupervisor``).
    package var taskLogLimits: TaskLogLimits
    /// When the sandboxes (and checkpoints) of ended tasks are removed.
    package var sandboxGC: SandboxGarbageCollector.Settings
    /// How many emptied task cgroups are kept for later tasks (``CgroupPool``); 0 gives every
    /// task new cgroups.
    package var cgroupPoolSize: Int
    /// Whether a task in a PID namespace may be started by the supervisor of an ended task of the
    /// same framework and user, which then stays the namespace's init (see `TaskReuse` in
    /// keel-task-supervisor); `false` gives every task a supervisor and namespaces of its own.
    package var reuseSupervisors: Bool

    /// The default of ``cgroupPoolSize``. A launch burst keeps about as many tasks starting and
    /// ending at once as the node starts in a few hundred milliseconds; with 64 the launch
    /// benchmark still made and removed a cgroup for one task in eight. A kept cgroup (in the
    /// memory, cpu and pids hierarchies of v1) holds about 30 KiB of kernel memory plus 4.5 KiB
    /// per CPU.
    package static let defaultCgroupPoolSize = 256

    /// Creates a configuration with the usual intervals.
    package init(
        broker: Endpoint,
        advertisedAddress: Endpoint,
        workDir: String,
        hostname: String,
        resources: Resources,
        attributes: [(String, String)] = [],
        defaultKillGracePeriod: Duration = .seconds(3),
        heartbeatInterval: Duration = .seconds(5),
        statusUpdateInitialBackoff: Duration = .seconds(2),
        statusUpdateMaxBackoff: Duration = .seconds(30),
        isolation: NodeIsolation = .processGroupOnly,
        taskSupervisor: String? = nil,
        stopTasksOnExit: Bool = false,
        fetcherCacheBytes: UInt64 = 2 << 30,
        faultDomain: (region: String, zone: String)? = nil,
        taskLogLimits: TaskLogLimits = .defaults,
        sandboxGC: SandboxGarbageCollector.Settings = SandboxGarbageCollector.Settings(),
        cgroupPoolSize: Int = LauncherConfiguration.defaultCgroupPoolSize,
        reuseSupervisors: Bool = true
    ) {
        self.cgroupPoolSize = cgroupPoolSize
        self.reuseSupervisors = reuseSupervisors
        self.faultDomain = faultDomain
        self.taskLogLimits = taskLogLimits
        self.sandboxGC = sandboxGC
        self.fetcherCacheBytes = fetcherCacheBytes
        self.taskSupervisor = taskSupervisor
        self.stopTasksOnExit = stopTasksOnExit
        self.broker = broker
        self.advertisedAddress = advertisedAddress
        self.workDir = workDir
        self.hostname = hostname
        self.resources = resources
        self.attributes = attributes
        self.defaultKillGracePeriod = defaultKillGracePeriod
        self.heartbeatInterval = heartbeatInterval
        self.statusUpdateInitialBackoff = statusUpdateInitialBackoff
        self.statusUpdateMaxBackoff = statusUpdateMaxBackoff
        self.isolation = isolation
    }
}
