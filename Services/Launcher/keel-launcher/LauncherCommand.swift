import ArgumentParser
import Foundation
import Logging
import KeelCore
import KeelObservability
import KeelRPC
import LauncherCore

/// keel-launcher: runs tasks on this node for the broker.
@main
struct LauncherCommand: AsyncParsableCommand {
    /// Pins the time zone (``LocalTimeZone``) and puts Swift concurrency on the event loops
    /// (``ConcurrencyExecutor``) before anything runs.
    static func main() async {
        LocalTimeZone.pin()
        ConcurrencyExecutor.install()
        await main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "keel-launcher",
        abstract: "Keel task launcher: advertises this node's resources to the broker and runs tasks in sandboxes."
    )

    @Option(help: "gRPC listen address of the launcher API (files, logs, pings). [env: KEEL_LISTEN] (default: 127.0.0.1:5054)")
    var listen: String?

    @Option(help: "Address other services reach this launcher at; defaults to the listen address, or the hostname when listening on all interfaces. [env: KEEL_ADVERTISE]")
    var advertise: String?

    @Option(help: "Admin HTTP listen address (/metrics, /healthz, /readyz). [env: KEEL_ADMIN_LISTEN] (default: 127.0.0.1:5055)")
    var adminListen: String?

    @Option(help: "keel-broker gRPC address. [env: KEEL_BROKER] (default: 127.0.0.1:5050)")
    var broker: String?

    @Option(help: "Directory for sandboxes and launcher state. [env: KEEL_WORK_DIR] (default: DATA_DIR)")
    var workDir: String?

    @Option(help: "Resources to offer, overriding detection per name, e.g. 'cpus:4;mem:8192;ports:[31000-32000]'. [env: KEEL_RESOURCES]")
    var resources: String?

    @Option(help: "Attributes for placement, e.g. 'rack:r1;ssd:true'. [env: KEEL_ATTRIBUTES]")
    var attributes: String?

    @Option(help: "Hostname reported to the broker. [env: KEEL_HOSTNAME] (default: the system hostname)")
    var hostname: String?

    @Option(help: "Most processes/threads one task may have (cgroup pids.max, or RLIMIT_NPROC without a pids cgroup). [env: KEEL_TASK_MAX_PROCESSES] (default: 1024)")
    var taskMaxProcesses: Int?

    @Option(help: "Directory under each cgroup hierarchy that holds the task cgroups. [env: KEEL_CGROUP_ROOT] (default: keel)")
    var cgroupRoot: String?

    @Flag(help: "Cap each task's CPU time at its cpus (CFS quota), not only weight it. [env: KEEL_CPU_HARD_LIMIT=1]")
    var cpuHardLimit = false

    @Flag(help: "Do not use cgroups; isolate tasks by process group and rlimits only. [env: KEEL_NO_CGROUPS=1]")
    var noCgroups = false

    @Flag(help: "Kill the running tasks when the launcher is stopped with SIGTERM, instead of leaving them for the next launcher to recover. [env: KEEL_STOP_TASKS_ON_EXIT=1]")
    var stopTasksOnExit = false

    @Option(help: "The node's fault domain, e.g. 'region:eu-west;zone:eu-west-1a'. [env: KEEL_FAULT_DOMAIN]")
    var faultDomain: String?

    @Option(help: "What to keep for the system and never offer, taken from the detected amounts. [env: KEEL_SYSTEM_RESERVED] (default: mem:512;disk:1024)")
    var systemReserved: String?

    @Option(help: "How many emptied task cgroups are kept for later tasks (0: every task gets new ones). [env: KEEL_CGROUP_POOL_SIZE] (default: 256)")
    var cgroupPoolSize: Int?

    @Flag(help: "Give every task a supervisor and PID and mount namespaces of its own, instead of letting the supervisor of an ended task of the same framework and user start the next. [env: KEEL_NO_SUPERVISOR_REUSE=1]")
    var noSupervisorReuse = false

    @Option(help: "Size limit of the node's fetcher cache in MiB (least recently used artifacts are evicted). [env: KEEL_FETCHER_CACHE_SIZE] (default: 2048)")
    var fetcherCacheSize: Int?

    @Flag(help: "Keep tasks in the node's PID namespace even where they could have their own (with a private /proc, seeing only their own processes). [env: KEEL_NO_PID_NAMESPACE=1]")
    var noPidNamespace = false

    @Option(help: "Size at which a task's stdout/stderr file is rotated, in bytes or with a K, M or G suffix (binary units). [env: KEEL_TASK_LOG_MAX_SIZE] (default: 10M)")
    var taskLogMaxSize: String?

    @Option(help: "Most files kept per task output stream, the live one included (stdout, stdout.1, ...). [env: KEEL_TASK_LOG_MAX_FILES] (default: 5)")
    var taskLogMaxFiles: Int?

    @Option(help: "How long the sandbox (and checkpoint) of an ended task is kept, e.g. 7d, 12h. [env: KEEL_SANDBOX_GC_AGE] (default: 7d)")
    var sandboxGcAge: String?

    @Option(help: "Percentage of the work dir's disk in use above which sandboxes of ended tasks are removed early, oldest first. [env: KEEL_SANDBOX_GC_DISK_WATERMARK] (default: 90)")
    var sandboxGcDiskWatermark: String?

    @Option(help: "How often sandboxes are checked for removal, e.g. 1m. [env: KEEL_SANDBOX_GC_INTERVAL] (default: 1m)")
    var sandboxGcInterval: String?

    @OptionGroup var common: CommonDaemonOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let options = EnvironmentOptions(environment)
        let daemon = try common.configuration(
            serviceName: "keel-launcher",
            adminListen: options.string(adminListen, "KEEL_ADMIN_LISTEN", default: "127.0.0.1:5055"),
            environment: environment
        )
        let listenEndpoint = try Endpoint(parsing: options.string(listen, "KEEL_LISTEN", default: "127.0.0.1:5054"))
        let brokerEndpoint = try Endpoint(parsing: options.string(broker, "KEEL_BROKER", default: "127.0.0.1:5050"))
        let dataDir = common.dataDirectory(environment: environment, default: "/var/lib/keel/launcher")
        let workDirectory = options.string(workDir, "KEEL_WORK_DIR", default: dataDir)
        let host = options.string(hostname, "KEEL_HOSTNAME", default: ProcessInfo.processInfo.hostName)
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        let keptBack = try options.optionalString(systemReserved, "KEEL_SYSTEM_RESERVED").map { try Resources(parsing: $0) }
        let detected = try NodeResources.detect(
            workDir: workDirectory, overrides: options.optionalString(resources, "KEEL_RESOURCES"),
            systemReserved: keptBack ?? NodeResources.defaultSystemReserved)
        let domain = try NodeResources.parseFaultDomain(options.optionalString(faultDomain, "KEEL_FAULT_DOMAIN"))
        let parsedAttributes = try NodeResources.parseAttributes(options.optionalString(attributes, "KEEL_ATTRIBUTES"))
        let advertisedText = options.optionalString(advertise, "KEEL_ADVERTISE")

        let bootID = NodeResources.bootID()
        try await Daemon.run(configuration: daemon) { context in
            let logger = context.logger
            let checkpoints = TaskCheckpointStore(workDir: workDirectory, logger: logger)
            let updates = StatusUpdateManager(initialBackoff: .seconds(2), maxBackoff: .seconds(30), checkpoints: checkpoints)
            let agent = AgentCheckpoint.recover(workDir: workDirectory, bootID: bootID, logger: logger)
            let identity = AgentIdentity(agentID: agent.agentID) { agentID in
                do {
                    try AgentCheckpoint(agentID: agentID, bootID: bootID).save(workDir: workDirectory)
                } catch {
                    logger.error(
                        "cannot checkpoint the agent id; a restarted launcher will register as a new agent",
                        metadata: ["keel.error": "\(error)"])
                }
            }
            let supervisor = TaskSupervision.supervisorBesideExecutable()
            if supervisor == nil {
                logger.warning(
                    """
                    keel-task-supervisor is not installed beside keel-launcher; tasks run as direct children and \
                    their exit status is lost if the launcher restarts while they run
                    """)
            }
            let ready = ReadyGate()
            var advertised = try advertisedText.map { try Endpoint(parsing: $0) } ?? listenEndpoint
            if advertisedText == nil, ["0.0.0.0", "::"].contains(advertised.host) { advertised.host = host }
            let isolation = NodeIsolation.detect(
                settings: try isolationSettings(options, environment), taskSupervisor: supervisor, logger: context.logger)
            if supervisor == nil {
                logger.warning("without keel-task-supervisor the tasks' stdout and stderr are not capped or rotated")
            }
            let configuration = LauncherConfiguration(
                broker: brokerEndpoint,
                advertisedAddress: advertised,
                workDir: workDirectory,
                hostname: host,
                resources: detected,
                attributes: parsedAttributes,
                isolation: isolation,
                taskSupervisor: supervisor,
                stopTasksOnExit: stopTasksOnExit || environment["KEEL_STOP_TASKS_ON_EXIT"] == "1",
                fetcherCacheBytes: try fetcherCacheBytes(options),
                faultDomain: domain,
                taskLogLimits: try taskLogLimits(options),
                sandboxGC: try sandboxGCSettings(options),
                cgroupPoolSize: try cgroupPoolSize(options),
                reuseSupervisors: !(noSupervisorReuse || environment["KEEL_NO_SUPERVISOR_REUSE"] == "1")
            )
            context.logger.notice("node resources", metadata: ["keel.resources": "\(detected)", "keel.work_dir": "\(workDirectory)"])
            let tasks = TaskManager(
                configuration: configuration, updates: updates, identity: identity, checkpoints: checkpoints,
                logger: context.logger)
            tasks.recover(agent)
            let brokerClient = try ManagedClient(endpoint: brokerEndpoint)
            let launcherServer = RPCServer(
                serviceName: "keel-launcher",
                endpoint: listenEndpoint,
                services: [LauncherService(tasks: tasks, identity: identity)],
                logger: context.logger,
                onListening: { endpoint in
                    if let port = await ready.grpcBound(endpoint.port) { await context.markReady(port) }
                }
            )
            let connection = AgentConnection(
                configuration: configuration,
                client: brokerClient,
                tasks: tasks,
                updates: updates,
                identity: identity,
                logger: context.logger,
                advertisedPort: { await ready.boundPort() },
                onRegistered: { _ in
                    if let port = await ready.registered() { await context.markReady(port) }
                }
            )
            let sandboxGC = SandboxGarbageCollector(
                workDir: workDirectory, settings: configuration.sandboxGC, tasks: tasks, logger: context.logger)
            return [tasks, brokerClient, launcherServer, connection, sandboxGC]
        }
    }
}

extension LauncherCommand {
    /// The number of kept task cgroups from `--cgroup-pool-size` / `KEEL_CGROUP_POOL_SIZE`.
    func cgroupPoolSize(_ options: EnvironmentOptions) throws -> Int {
        let text = options.string(cgroupPoolSize.map { "\($0)" }, "KEEL_CGROUP_POOL_SIZE", default: "\(LauncherConfiguration.defaultCgroupPoolSize)")
        guard let size = Int(text), (0...100_000).contains(size) else {
            throw ValidationError("KEEL_CGROUP_POOL_SIZE must be a whole number from 0 (no pool) to 100000, got '\(text)'")
        }
        return size
    }

    /// The fetcher cache limit from `--fetcher-cache-size` / `KEEL_FETCHER_CACHE_SIZE` (MiB).
    func fetcherCacheBytes(_ options: EnvironmentOptions) throws -> UInt64 {
        guard let text = options.optionalString(fetcherCacheSize.map { "\($0)" }, "KEEL_FETCHER_CACHE_SIZE") else {
            return 2048 << 20
        }
        guard let mebibytes = UInt64(text), mebibytes > 0 else {
            throw ValidationError("KEEL_FETCHER_CACHE_SIZE must be a whole number of MiB greater than 0, got '\(text)'")
        }
        return mebibytes << 20
    }

    /// The cap of task output files from `--task-log-max-size`/`KEEL_TASK_LOG_MAX_SIZE` and
    /// `--task-log-max-files`/`KEEL_TASK_LOG_MAX_FILES`.
    func taskLogLimits(_ options: EnvironmentOptions) throws -> TaskLogLimits {
        var size = TaskLogLimits.defaultMaxFileBytes
        if let text = options.optionalString(taskLogMaxSize, "KEEL_TASK_LOG_MAX_SIZE") {
            guard let bytes = TaskLogLimits.parseSize(text) else {
                throw ValidationError("KEEL_TASK_LOG_MAX_SIZE must be a positive size such as 10M, 512K or 1048576, got '\(text)'")
            }
            size = bytes
        }
        var files = TaskLogLimits.defaultMaxFiles
        if let text = options.optionalString(taskLogMaxFiles.map { "\($0)" }, "KEEL_TASK_LOG_MAX_FILES") {
            guard let count = Int(text), count > 0 else {
                throw ValidationError("KEEL_TASK_LOG_MAX_FILES must be a whole number of files greater than 0, got '\(text)'")
            }
            files = count
        }
        return try TaskLogLimits(maxFileBytes: size, maxFiles: files)
    }

    /// When sandboxes of ended tasks are removed, from the `--sandbox-gc-*` flags and
    /// `KEEL_SANDBOX_GC_*` variables.
    func sandboxGCSettings(_ options: EnvironmentOptions) throws -> SandboxGarbageCollector.Settings {
        var settings = SandboxGarbageCollector.Settings()
        settings.maxAge = try options.duration(sandboxGcAge, "KEEL_SANDBOX_GC_AGE", default: settings.maxAge)
        settings.interval = try options.duration(sandboxGcInterval, "KEEL_SANDBOX_GC_INTERVAL", default: settings.interval)
        guard settings.interval > .zero else {
            throw ValidationError("KEEL_SANDBOX_GC_INTERVAL must be longer than 0, e.g. 1m")
        }
        if let text = options.optionalString(sandboxGcDiskWatermark, "KEEL_SANDBOX_GC_DISK_WATERMARK") {
            guard let percent = Double(text), percent >= 0, percent <= 100 else {
                throw ValidationError("KEEL_SANDBOX_GC_DISK_WATERMARK must be a percentage from 0 to 100, got '\(text)'")
            }
            settings.diskWatermark = percent / 100
        }
        return settings
    }

    /// The cgroup settings from flags and `KEEL_*` variables.
    func isolationSettings(_ options: EnvironmentOptions, _ environment: [String: String]) throws -> NodeIsolation.Settings {
        var settings = NodeIsolation.Settings()
        settings.root = options.string(cgroupRoot, "KEEL_CGROUP_ROOT", default: settings.root)
        if let text = options.optionalString(taskMaxProcesses.map { "\($0)" }, "KEEL_TASK_MAX_PROCESSES") {
            guard let value = Int(text), value > 0 else {
                throw ValidationError("task max processes '\(text)' is not a positive integer; pass e.g. 1024")
            }
            settings.maxProcessesPerTask = value
        }
        settings.useCgroups = !(noCgroups || environment["KEEL_NO_CGROUPS"] == "1")
        settings.cpuHardLimit = cpuHardLimit || environment["KEEL_CPU_HARD_LIMIT"] == "1"
        settings.usePIDNamespaces = !(noPidNamespace || environment["KEEL_NO_PID_NAMESPACE"] == "1")
        return settings
    }
}

/// The launcher is ready once its API is bound and it has attached to the broker.
actor ReadyGate {
    private var port: Int?
    private var attached = false
    private var reported = false
    private var waiters: [CheckedContinuation<Int, Never>] = []

    /// Records the bound port; returns it if the launcher just became ready.
    func grpcBound(_ port: Int) -> Int? {
        self.port = port
        for waiter in waiters { waiter.resume(returning: port) }
        waiters.removeAll()
        return check()
    }

    /// Waits until the launcher API is bound and returns its port.
    func boundPort() async -> Int {
        if let port { return port }
        return await withCheckedContinuation { waiters.append($0) }
    }

    /// Records the first registration; returns the port if the launcher just became ready.
    func registered() -> Int? {
        attached = true
        return check()
    }

    private func check() -> Int? {
        guard let port, attached, !reported else { return nil }
        reported = true
        return port
    }
}

