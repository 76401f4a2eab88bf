package import Foundation
package import KeelAPI
import KeelCore
import KeelRPC
package import Logging
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

/// Runs the tasks the broker sends to this node, one supervising child task each, and reports
/// their states through the ``StatusUpdateManager``.
///
/// Launches and kills arrive as work items; ``run()`` owns a task group in which each task is
/// supervised: sandbox, TASK_STARTING and fetching (for a task with URIs), spawn, TASK_RUNNING,
/// wait, then the terminal state.
///
/// With a ``TaskCheckpointStore`` every task's record (task info, sandbox, cgroup, supervisor
/// pid, unacknowledged updates) is on disk, and ``recover(_:)``, called before ``run()``,
/// takes over the tasks of an earlier launcher of the same boot: running ones are watched
/// again, ones that ended meanwhile get their terminal state from the supervisor's exit-status
/// file. See ``TaskProcess`` for how tasks outlive the launcher.
package final class TaskManager: Service {
    /// A task on this node, running or ended (kept so its sandbox can still be read).
    package struct Container: Sendable {
        package var frameworkID: String
        package var info: Keel_V1_TaskInfo
        package var sandbox: TaskSandbox?
        package var process: TaskProcess?
        package var state: Keel_V1_TaskState
        package var killRequested = false
        package var killGracePeriod: Duration?
        package var startedAt: Date
        package var endedAt: Date?
    }

    private enum Work: Sendable {
        case launch(Keel_V1_FrameworkInfo, Keel_V1_TaskInfo)
        case kill(LauncherTaskKey, Duration?)
    }

    let containers = Mutex<[LauncherTaskKey: Container]>([:])
    private let work: AsyncStream<Work>.Continuation
    private let workStream: AsyncStream<Work>
    let updates: StatusUpdateManager
    let configuration: LauncherConfiguration
    let identity: AgentIdentity
    let logger: Logger
    /// The durable task records, if this launcher checkpoints.
    let checkpoints: TaskCheckpointStore?
    /// What ``recover(_:)`` found, for ``run()`` to act on.
    let recovered = Mutex<RecoveredWork>(RecoveredWork())
    /// Fetches tasks' URIs into their sandboxes, with the node's cache; the error if the cache
    /// directory could not be opened (tasks with URIs then fail with it).
    let fetcher: Result<Fetcher, any Error>
    /// Starts supervisors by fork (see ``SupervisorSpawner``); nil without a supervisor, or if
    /// it could not be started (supervisors are then executed one by one).
    let spawner: SupervisorSpawner?
    /// Where task work runs (see ``TaskWorkExecutor``).
    private let taskWork = TaskWorkExecutor()
    /// Emptied task cgroups kept for later tasks; nil where cgroups cannot be reused or the
    /// pool is off.
    package let cgroupPool: CgroupPool?

    /// Creates the manager; with `checkpoints`, tasks are checkpointed and can be recovered.
    package init(
        configuration: LauncherConfiguration, updates: StatusUpdateManager, identity: AgentIdentity,
        checkpoints: TaskCheckpointStore? = nil, logger: Logger
    ) {
        self.configuration = configuration
        self.updates = updates
        self.identity = identity
        self.checkpoints = checkpoints
        self.logger = logger
        (workStream, work) = AsyncStream.makeStream(of: Work.self)
        cgroupPool = configuration.isolation.canReuseCgroups && configuration.cgroupPoolSize > 0
            ? CgroupPool(capacity: configuration.cgroupPoolSize) : nil
        spawner = configuration.taskSupervisor.flatMap { SupervisorSpawner.start(supervisor: $0, logger: logger) }
        let cacheDirectory = URL(fileURLWithPath: configuration.workDir).appendingPathComponent("fetcher-cache")
        fetcher = Result {
            try Fetcher(cacheDirectory: cacheDirectory, cacheLimit: configuration.fetcherCacheBytes, logger: logger)
        }
        if case .failure(let error) = fetcher {
            logger.error("cannot open the fetcher cache; tasks with URIs will fail", metadata: [
                "keel.path": "\(cacheDirectory.path)", "keel.error": "\(error)",
            ])
        }
    }

    /// Queues a launch from the broker.
    package func launch(framework: Keel_V1_FrameworkInfo, task: Keel_V1_TaskInfo) {
        work.yield(.launch(framework, task))
    }

    /// Fetches the task's URIs into its sandbox (given to the task's user when the launcher
    /// runs as root), logging what came from the cache.
    private func fetchURIs(of task: Keel_V1_TaskInfo, into sandbox: TaskSandbox, logger: Logger) async throws {
        let items = try task.command.uris.map { try FetchItem($0) }
        let fetcher = try self.fetcher.get()
        var owner: (uid: UInt32, gid: UInt32)?
        if geteuid() == 0, !task.command.user.isEmpty, let user = try? TaskUser.lookup(name: task.command.user) {
            owner = (user.uid, user.gid)
        }
        let started = Date()
        let outcomes = try await fetcher.fetch(items, into: URL(fileURLWithPath: sandbox.root), owner: owner)
        logger.info("fetched the task's URIs", metadata: [
            "keel.uris": "\(outcomes.count)", "keel.from_cache": "\(outcomes.filter(\.fromCache).count)",
            "keel.bytes": "\(outcomes.reduce(0) { $0 + $1.bytes })",
            "keel.seconds": "\(String(format: "%.3f", Date().timeIntervalSince(started)))",
        ])
    }

    /// Queues a kill from the broker.
    package func kill(frameworkID: String, taskID: String, gracePeriod: Duration?) {
        work.yield(.kill(LauncherTaskKey(frameworkID: frameworkID, taskID: taskID), gracePeriod))
    }

    /// A snapshot of every container.
    package var snapshot: [LauncherTaskKey: Container] {
        containers.withLock { $0 }
    }

    /// The container of one task, if known.
    package func container(taskID: String) -> Container? {
        containers.withLock { containers in containers.first { $0.key.taskID == taskID }?.value }
    }

    /// The tasks to report when (re-)registering: those still running, and those whose updates
    /// are not all acknowledged yet (e.g. a task that ended while the launcher was down).
    ///
    /// A task with pending updates is reported without a latest status: the broker keeps it,
    /// and the pending updates, resent in order once registered, bring it up to date.
    package var runningTasks: [Keel_V1_RunningTask] {
        containers.withLock { containers in
            containers.filter { key, container in
                !container.state.isTerminal || !updates.pending(key).isEmpty
            }.map { key, container in
                let pending = !updates.pending(key).isEmpty
                return Keel_V1_RunningTask.with {
                    $0.frameworkID.value = key.frameworkID
                    $0.task = container.info
                    guard !pending else { return }
                    $0.latestStatus = .with {
                        $0.taskID = container.info.taskID
                        $0.state = container.state
                        $0.source = .agent
                        $0.agentID.value = identity.agentID ?? ""
                    }
                }
            }
        }
    }

    package func run() async throws {
        await withTaskExecutorPreference(taskWork) { await runTasks() }
    }

    private func runTasks() async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                await self.retryLoop()
            }
            let recovered = self.recovered.withLock { work in
                defer { work = RecoveredWork() }
                return work
            }
            for path in recovered.leftoverCgroups {
                group.addTask { await self.removeLeftoverCgroup(path) }
            }
            for task in recovered.tasks {
                group.addTask { await self.watch(task) }
            }
            // Work is taken until graceful shutdown (what is queued then is left) or cancellation.
            // (Not with `cancelOnGracefulShutdown()`: its `merge` can deadlock with the task's
            // cancellation, swift-async-algorithms issue 430.)
            let stopping = Mutex(false)
            await withGracefulShutdownHandler {
                for await item in workStream {
                    if stopping.withLock({ $0 }) { break }
                    switch item {
                    case .launch(let framework, let task):
                        group.addTask { await self.supervise(framework: framework, task: task) }
                    case .kill(let key, let grace):
                        group.addTask { await self.killTask(key, gracePeriod: grace) }
                    }
                    // Lets the tasks started so far get on before the next is added: a burst of
                    // launches taken all at once starts them all together, which doubled the
                    // launcher's CPU per task and the time to TASK_FINISHED in the launch benchmark.
                    await Task.yield()
                }
            } onGracefulShutdown: {
                stopping.withLock { $0 = true }
                self.work.finish()
            }
            // Graceful shutdown: the tasks keep running for the next launcher (their checkpoint is
            // on disk), unless this launcher is told to take them with it.
            if configuration.stopTasksOnExit {
                let running = containers.withLock { $0.filter { !$0.value.state.isTerminal }.map(\.key) }
                for key in running {
                    group.addTask { await self.killTask(key, gracePeriod: .seconds(2)) }
                }
            }
            group.cancelAll()
        }
        for kept in cgroupPool?.drain() ?? [] {
            await discardCgroup(kept.path)
        }
        await checkpoints?.flush()
        // As the launcher's exit would: supervisors kept for later tasks go, and those with a
        // task exit after it, so that the next launcher sees its end as it would have.
        spawner?.shutDown()
    }

    private func retryLoop() async {
        while !Task.isCancelled {
            updates.resendDue()
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    // MARK: Supervision

    private func supervise(framework: Keel_V1_FrameworkInfo, task: Keel_V1_TaskInfo) async {
        let frameworkID = framework.id.value
        let key = LauncherTaskKey(frameworkID: frameworkID, taskID: task.taskID.value)
        let received = Date()
        let isNew = containers.withLock { containers in
            if let existing = containers[key], !existing.state.isTerminal { return false }
            containers[key] = Container(frameworkID: frameworkID, info: task, state: .taskStaging, startedAt: received)
            return true
        }
        guard isNew else {
            logger.warning("ignored a duplicate launch", metadata: ["keel.task_id": "\(key.taskID)"])
            return
        }
        var logger = self.logger
        logger[metadataKey: "keel.task_id"] = "\(key.taskID)"
        logger[metadataKey: "keel.framework_id"] = "\(frameworkID)"

        let sandbox: TaskSandbox
        let runID = UUID.random().uuidString.lowercased()
        do {
            sandbox = try TaskSandbox.create(
                workDir: configuration.workDir, frameworkID: frameworkID, taskID: key.taskID, runID: runID
            )
        } catch {
            finish(key, state: .taskFailed, reason: .containerLaunchFailed, message: "cannot create the sandbox: \(error)")
            return
        }
        update(key) { $0.sandbox = sandbox }
        if !task.command.user.isEmpty, geteuid() == 0 {
            // The task's user gets its sandbox (its working directory); an unknown user ends here.
            do {
                try sandbox.setOwner(try TaskUser.lookup(name: task.command.user))
            } catch {
                finish(key, state: .taskFailed, reason: .containerLaunchFailed, message: error.message)
                return
            }
        }
        let usesCgroups = !configuration.isolation.assignments.isEmpty
        // A kept cgroup (whose note is on disk already), else a new one: named after the pool
        // when it may be kept later, else after the task's run.
        let keptCgroup = usesCgroups ? cgroupPool?.take() : nil
        let cgroupPath =
            keptCgroup?.path
            ?? configuration.isolation.taskCgroupPath(name: cgroupPool == nil ? "\(key.taskID)-\(runID)" : CgroupPool.slotName())
        // Where the task's cgroups are (nil without cgroup hierarchies), and the new ones that
        // are noted in the checkpoint before they are made.
        let recordedCgroup = usesCgroups ? cgroupPath : nil
        let newCgroup = keptCgroup == nil ? recordedCgroup : nil
        // TASK_STARTING says that the launcher has the task and prepares it: it is reported for
        // a task with URIs to fetch, which may take long and may fail. A task with nothing to
        // fetch is started at once, and goes from TASK_STAGING to TASK_RUNNING (as in Mesos,
        // TASK_STARTING is optional): a third update would cost another round through the
        // checkpoint, the broker, its store and the framework, for a state that lasts a few
        // milliseconds.
        let preparesFirst = !task.command.uris.isEmpty
        if let checkpoints {
            // The record goes to disk (with TASK_STARTING if there is one: one write, queued by
            // the report below); ``TaskCheckpointStore/sync(_:cgroup:)`` waits for it and the
            // cgroup note before anything is created that a restarted launcher would have to find.
            var record = TaskCheckpoint(frameworkID: frameworkID, task: task)
            record.runID = runID
            record.sandbox = sandbox.root
            record.cgroup = recordedCgroup
            checkpoints.create(record, write: !preparesFirst)
            if let newCgroup { checkpoints.recordCgroup(newCgroup) }
        }
        if preparesFirst {
            report(key, state: .taskStarting, message: "fetching \(task.command.uris.count) URIs into sandbox \(sandbox.root)")
        }
        // Ends the task before it got its cgroup: a kept one goes back, a new one's note goes.
        func endBeforeStart(_ state: Keel_V1_TaskState, _ reason: Keel_V1_TaskStatus.Reason, _ message: String) async {
            if let keptCgroup {
                if !(cgroupPool?.put(keptCgroup) ?? false) { await discardCgroup(keptCgroup.path) }
            } else if let newCgroup {
                checkpoints?.forgetCgroup(newCgroup)
            }
            finish(key, state: state, reason: reason, message: message)
        }

        if preparesFirst {
            if killRequestedBeforeStart(key) {
                await endBeforeStart(.taskKilled, .taskKilledDuringLaunch, "killed before it started")
                return
            }
            do {
                try await fetchURIs(of: task, into: sandbox, logger: logger)
            } catch {
                let message = (error as? LauncherError)?.message ?? "\(error)"
                await endBeforeStart(.taskFailed, .fetcherFailed, "fetching the task's URIs failed: \(message)")
                return
            }
        }

        if killRequestedBeforeStart(key) {
            await endBeforeStart(.taskKilled, .taskKilledDuringLaunch, "killed before it started")
            return
        }
        let command: TaskCommand
        switch task.command.command {
        case .argv(let argv): command = .argv(argv.args)
        case .shell(let shell): command = .shell(shell)
        case nil:
            await endBeforeStart(.taskError, .taskInvalid, "the task has no command")
            return
        }
        let spec = TaskLaunchSpec(
            command: command,
            environment: environment(for: task, frameworkID: frameworkID, sandbox: sandbox),
            sandbox: sandbox,
            user: task.command.user.isEmpty ? nil : task.command.user
        )
        await checkpoints?.sync(key, cgroup: newCgroup)
        let cgroup: TaskCgroup?
        do {
            if let keptCgroup {
                cgroup = try await reuseCgroup(keptCgroup, for: key, limits: Self.limits(of: task), logger: logger)
            } else {
                cgroup = try makeCgroup(cgroupPath, noted: newCgroup != nil, limits: Self.limits(of: task), logger: logger)
            }
        } catch {
            finish(key, state: .taskFailed, reason: .containerLaunchFailed, message: "cannot isolate the task: \(error.message)")
            return
        }
        if cgroup?.path != recordedCgroup { checkpoints?.update(key) { $0.cgroup = cgroup?.path } }
        let supervision = configuration.taskSupervisor.map { supervisor in
            TaskSupervision(
                supervisor: supervisor,
                exitStatusFile: checkpoints?.exitStatusPath(key) ?? sandbox.root + "/.keel-exit-status",
                pidNamespace: configuration.isolation.pidNamespaces,
                logLimits: configuration.taskLogLimits,
                reuseKey: configuration.reuseSupervisors ? "\(frameworkID) \(task.command.user)" : nil)
        }
        let process: TaskProcess
        do {
            process = try TaskProcess.launch(spec, cgroup: cgroup, supervision: supervision, spawner: spawner, logger: logger)
        } catch {
            await removeCgroup(cgroup)
            finish(key, state: .taskFailed, reason: .containerLaunchFailed, message: error.message)
            return
        }
        let killedMeanwhile = containers.withLock { containers -> Bool in
            containers[key]?.process = process
            return containers[key]?.killRequested ?? false
        }
        // Written with TASK_RUNNING, reported below.
        checkpoints?.update(key, write: false) {
            $0.supervisorPID = process.pid
            $0.supervisorStartTime = process.startTime
            $0.exitStatusFile = process.exitStatusFile
        }
        TaskHopRecorder.record(
            "launcher.start", taskID: key.taskID, frameworkID: frameworkID, agentID: identity.agentID ?? "",
            start: received, end: Date(), attributes: ["keel.pid": "\(process.pid)", "keel.sandbox": sandbox.root]
        )
        logger.debug("task started", metadata: ["keel.pid": "\(process.pid)", "keel.command": "\(command)"])
        report(key, state: .taskRunning, message: "pid \(process.pid)")
        if killedMeanwhile {
            let grace = containers.withLock { $0[key]?.killGracePeriod } ?? configuration.defaultKillGracePeriod
            _ = await process.terminate(gracePeriod: grace)
        }
        await awaitExit(key, process: process, cgroup: cgroup, logger: logger)
    }

    /// Waits for the task's process to end, removes its cgroups and reports its terminal state.
    ///
    /// Cancelled by a graceful shutdown, it stops the task only with
    /// ``LauncherConfiguration/stopTasksOnExit``; otherwise the task keeps running and its
    /// checkpoint stays for the next launcher.
    func awaitExit(_ key: LauncherTaskKey, process: TaskProcess, cgroup: TaskCgroup?, logger: Logger) async {
        let status: TerminationStatus
        do {
            status = try await process.wait()
        } catch {
            guard configuration.stopTasksOnExit || checkpoints == nil else {
                logger.info("the launcher is stopping; the task keeps running for the next launcher")
                return
            }
            status = await process.terminate(gracePeriod: .seconds(2))
        }
        let killed = containers.withLock { $0[key]?.killRequested ?? false }
        logger.info("task exited", metadata: ["keel.status": "\(status)", "keel.killed": "\(killed)"])
        // Read the OOM record before the cgroups (and their counters) are removed or reused.
        let record = cgroup?.endRecord()
        let limitation = record?.memoryLimitation
        await releaseCgroup(cgroup, known: record?.readings ?? CgroupReadings())
        if let limitation, !killed {
            logger.warning("task killed by its memory limit", metadata: ["keel.limitation": "\(limitation)"])
            let signal: Int32? = if case .signaled(let signal, _) = status { signal } else { nil }
            let exitCode: Int32? = if case .exited(let code) = status { code } else { nil }
            finish(
                key, state: .taskFailed, reason: .containerLimitationMemory, message: limitation.description,
                exitCode: exitCode, signal: signal)
            return
        }
        switch status {
        case .exited(let code) where killed:
            finish(key, state: .taskKilled, reason: .unspecified, message: "killed; exited with \(code)", exitCode: code)
        case .exited(let code) where code == 0:
            finish(key, state: .taskFinished, reason: .unspecified, message: "exited with 0", exitCode: 0)
        case .exited(let code):
            finish(key, state: .taskFailed, reason: .commandExecutorFailed, message: "exited with \(code)", exitCode: code)
        case .signaled(let signal, _):
            let name = TerminationStatus.signalName(signal)
            if killed {
                finish(key, state: .taskKilled, reason: .unspecified, message: "killed by \(name)", signal: signal)
            } else {
                finish(key, state: .taskFailed, reason: .commandExecutorFailed, message: "terminated by \(name)", signal: signal)
            }
        case .unknown:
            finish(key, state: killed ? .taskKilled : .taskFailed, reason: .executorTerminated, message: "exit status unknown")
        }
    }

    private func killRequestedBeforeStart(_ key: LauncherTaskKey) -> Bool {
        containers.withLock { $0[key]?.killRequested ?? false }
    }

    private func killTask(_ key: LauncherTaskKey, gracePeriod: Duration?) async {
        let process: TaskProcess?? = containers.withLock { containers in
            guard var container = containers[key] else { return nil }
            guard !container.state.isTerminal else { return .some(nil) }
            container.killRequested = true
            checkpoints?.update(key) { $0.killRequested = true }
            container.killGracePeriod = gracePeriod ?? Self.gracePeriod(container.info) ?? configuration.defaultKillGracePeriod
            containers[key] = container
            return .some(container.process)
        }
        switch process {
        case nil:
            // Unknown here (e.g. launched before this launcher restarted): it is gone.
            let status = Keel_V1_TaskStatus.with {
                $0.taskID.value = key.taskID
                $0.state = .taskLost
                $0.reason = .taskUnknown
                $0.message = "the launcher does not know this task"
                $0.source = .agent
                $0.agentID.value = identity.agentID ?? ""
                $0.frameworkID.value = key.frameworkID
                $0.uuid = Self.newUUID()
                $0.timestamp = Google_Protobuf_Timestamp(date: Date())
            }
            updates.enqueue(frameworkID: key.frameworkID, status: status)
        case .some(nil):
            return
        case .some(.some(let process)):
            let grace = containers.withLock { $0[key]?.killGracePeriod } ?? configuration.defaultKillGracePeriod
            logger.info("killing task", metadata: ["keel.task_id": "\(key.taskID)", "keel.grace": "\(grace)"])
            _ = await process.terminate(gracePeriod: grace)
        }
    }

    /// The cgroup limits of `task`: its `mem` and `cpus`; the pids limit is the node default.
    static func limits(of task: Keel_V1_TaskInfo) -> TaskResourceLimits {
        let resources = try? Resources(proto: task.resources)
        return TaskResourceLimits(memoryMiB: resources?.mem, cpus: resources?.cpus, maxProcesses: nil)
    }

    private static func gracePeriod(_ info: Keel_V1_TaskInfo) -> Duration? {
        guard info.hasKillPolicy, info.killPolicy.hasGracePeriod else { return nil }
        let period = info.killPolicy.gracePeriod
        return .seconds(period.seconds) + .nanoseconds(Int64(period.nanos))
    }

    // MARK: Reporting

    func update(_ key: LauncherTaskKey, _ body: (inout Container) -> Void) {
        containers.withLock { containers in
            if var container = containers[key] {
                body(&container)
                containers[key] = container
            }
        }
    }

    func report(
        _ key: LauncherTaskKey,
        state: Keel_V1_TaskState,
        reason: Keel_V1_TaskStatus.Reason = .unspecified,
        message: String,
        exitCode: Int32? = nil,
        signal: Int32? = nil
    ) {
        update(key) { $0.state = state }
        let status = Keel_V1_TaskStatus.with {
            $0.taskID.value = key.taskID
            $0.state = state
            $0.reason = reason
            $0.message = message
            $0.source = .agent
            $0.agentID.value = identity.agentID ?? ""
            $0.frameworkID.value = key.frameworkID
            $0.uuid = Self.newUUID()
            $0.timestamp = Google_Protobuf_Timestamp(date: Date())
            if let exitCode { $0.exitCode = exitCode }
            if let signal { $0.signal = signal }
        }
        updates.enqueue(frameworkID: key.frameworkID, status: status)
    }

    func finish(
        _ key: LauncherTaskKey,
        state: Keel_V1_TaskState,
        reason: Keel_V1_TaskStatus.Reason,
        message: String,
        exitCode: Int32? = nil,
        signal: Int32? = nil
    ) {
        update(key) {
            $0.endedAt = Date()
            $0.process = nil
        }
        report(key, state: state, reason: reason, message: message, exitCode: exitCode, signal: signal)
    }

    /// The environment a task runs with (also given to commands exec'd into it).
    func environment(for task: Keel_V1_TaskInfo, frameworkID: String, sandbox: TaskSandbox) -> [String: String] {
        var environment: [String: String] = [
            "PATH": TaskLaunchSpec.defaultSearchPath,
            "HOME": sandbox.root,
            "KEEL_TASK_ID": task.taskID.value,
            "KEEL_FRAMEWORK_ID": frameworkID,
            "KEEL_AGENT_ID": identity.agentID ?? "",
            "KEEL_SANDBOX": sandbox.root,
        ]
        if let resources = try? Resources(proto: task.resources) {
            let ports = resources.ports.ranges.flatMap { Array($0) }
            for (index, port) in ports.prefix(64).enumerated() {
                environment["PORT\(index)"] = "\(port)"
            }
            if let first = ports.first { environment["PORT"] = "\(first)" }
            environment["KEEL_CPUS"] = "\(resources.cpus)"
            environment["KEEL_MEM"] = "\(resources.mem)"
        }
        for variable in task.command.environment.variables {
            environment[variable.name] = variable.value
        }
        return environment
    }

    static func newUUID() -> Data {
        withUnsafeBytes(of: UUID.random().uuid) { Data($0) }
    }
}

/// The agent id this launcher was given by the broker, shared by its parts.
package final class AgentIdentity: Sendable {
    private let value = Mutex<String?>(nil)
    private let onChange: (@Sendable (String) -> Void)?

    /// Creates an identity, optionally with an id remembered from before; `onChange` is called
    /// with every newly assigned id (to checkpoint it).
    package init(agentID: String? = nil, onChange: (@Sendable (String) -> Void)? = nil) {
        self.onChange = onChange
        value.withLock { $0 = agentID }
    }

    /// The current agent id, nil before the first registration.
    package var agentID: String? {
        value.withLock { $0 }
    }

    /// Records the id the broker assigned.
    package func set(_ id: String) {
        let changed = value.withLock { value in
            defer { value = id }
            return value != id
        }
        if changed { onChange?(id) }
    }
}
