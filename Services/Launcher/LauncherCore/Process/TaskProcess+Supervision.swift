@preconcurrency import Glibc
package import Logging
import Synchronization

/// How a task is started under `keel-task-supervisor` (see ``TaskProcess``).
package struct TaskSupervision: Sendable, Hashable {
    /// The absolute path of the `keel-task-supervisor` executable.
    package var supervisor: String
    /// The file the supervisor writes the task's exit status to; its directory must exist.
    package var exitStatusFile: String
    /// Whether the task runs in PID and mount namespaces of its own, as PID 2 under the
    /// supervisor as their init, with a private `/proc` (needs root; see
    /// ``NodeIsolation/pidNamespaces``).
    package var pidNamespace: Bool
    /// How the supervisor caps the task's `stdout` and `stderr` files, or `nil` to let the task
    /// write to them directly, without a cap.
    package var logLimits: TaskLogLimits?
    /// With a PID namespace: tasks with the same key (their framework and user) may share a
    /// supervisor forked by the spawner, one after the other (see `TaskReuse` in
    /// keel-task-supervisor); `nil` for a supervisor of its own.
    package var reuseKey: String?

    /// Creates a supervision.
    package init(
        supervisor: String, exitStatusFile: String, pidNamespace: Bool = false, logLimits: TaskLogLimits? = nil,
        reuseKey: String? = nil
    ) {
        self.supervisor = supervisor
        self.exitStatusFile = exitStatusFile
        self.pidNamespace = pidNamespace
        self.logLimits = logLimits
        self.reuseKey = reuseKey
    }

    /// `keel-task-supervisor [OPTIONS] STATUS_FILE EXECUTABLE ARGV0 ARG...`, where the options
    /// ask for a PID namespace, for the task to join the cgroups of `cgroupProcsFiles` before
    /// it runs (see ``TaskCgroup``), and for rotated output files at `stdoutPath` and `stderrPath`.
    func wrap(
        executable: String, arguments: [String], stdoutPath: String, stderrPath: String,
        cgroupProcsFiles: [String] = []
    ) -> (executable: String, arguments: [String]) {
        var options: [String] = []
        if pidNamespace { options.append("--pid-namespace") }
        if pidNamespace, let reuseKey { options += ["--reuse-key", reuseKey] }
        for file in cgroupProcsFiles { options += ["--join-cgroup", file] }
        if let logLimits {
            options += [
                "--stdout", stdoutPath, "--stderr", stderrPath,
                "--log-max-size", "\(logLimits.maxFileBytes)", "--log-max-files", "\(logLimits.maxFiles)",
            ]
        }
        return (supervisor, [supervisor] + options + [exitStatusFile, executable] + arguments)
    }

    /// The supervisor next to the running executable (`keel-task-supervisor` is installed
    /// beside `keel-launcher`), if it is there and executable.
    package static func supervisorBesideExecutable() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        let executable = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = executable.lastIndex(of: "/") else { return nil }
        let path = String(executable[..<slash]) + "/keel-task-supervisor"
        return access(path, X_OK) == 0 ? path : nil
    }
}

extension TaskProcess {
    /// Re-attaches to a supervised task started by an earlier launcher.
    ///
    /// If the exit-status file is there, the task has ended. Else, if the supervisor `pid` still
    /// runs with the same `startTime`, it is watched until it exits; otherwise the task has
    /// already ended. Either way ``wait()`` then returns the
    /// status from `exitStatusFile`, or ``TerminationStatus/unknown`` if the supervisor died
    /// without writing one (or the task ran without a supervisor: `exitStatusFile` is `nil`).
    /// Group signals go to the process group of `pid` while it runs.
    package static func reattach(
        pid: Int32, startTime: UInt64, exitStatusFile: String?, command: TaskCommand, cgroup: TaskCgroup?,
        logger: Logger
    ) -> TaskProcess {
        var logger = logger
        logger[metadataKey: "keel.pid"] = "\(pid)"
        let process = TaskProcess(
            pid: pid, command: command, user: nil, cgroup: cgroup, logger: logger, exitStatusFile: exitStatusFile)
        // The file first: a supervisor that serves several tasks lives on after this one ended.
        if let status = exitStatusFile.flatMap(readExitStatus) {
            logger.info("the task ended while the launcher was away", metadata: ["keel.termination": "\(status)"])
            process.record(status)
            return process
        }
        guard process.isSameProcess(startTime: startTime) else {
            let status = exitStatusFile.flatMap(readExitStatus) ?? .unknown
            logger.info("the task ended while the launcher was away", metadata: ["keel.termination": "\(status)"])
            process.record(status)
            return process
        }
        logger.info("re-attached to the task's supervisor")
        process.startWatcher()
        return process
    }

    /// Starts the supervisor of `request` through `spawner` and watches it through the pidfd
    /// the spawner sent; nil when the spawner cannot be used (the caller then executes the
    /// supervisor itself).
    ///
    /// - Throws: ``LauncherError/Code/launchFailed`` when the supervisor could not be set up
    ///   (its output files or working directory), as `posix_spawn` would have failed.
    static func forkSupervisor(
        _ request: ProcessSpawner.Request, supervision: TaskSupervision, spawner: SupervisorSpawner, user: TaskUser?,
        cgroup: TaskCgroup?, logger: Logger
    ) throws(LauncherError) -> TaskProcess? {
        let spawned: SupervisorSpawner.Spawned
        do {
            spawned = try spawner.spawn(
                arguments: Array(request.arguments.dropFirst()), environment: request.environment,
                workingDirectory: request.workingDirectory, stdoutPath: request.stdoutPath, stderrPath: request.stderrPath)
        } catch {
            switch error {
            case .unavailable:
                return nil
            case .lost(let reason):
                throw LauncherError(
                    code: .launchFailed,
                    message: "cannot launch '\(request.command)': the supervisor spawner failed while starting it "
                        + "(\(reason)); the next launches start supervisors without it")
            case .setup(let code):
                let cause = SystemCallError(call: "fork", errno: code)
                throw LauncherError(
                    code: .launchFailed,
                    message: "cannot launch '\(request.command)' (executable '\(request.executable)'): "
                        + "\(cause.errnoText); check the working directory '\(request.workingDirectory)' and the "
                        + "output files '\(request.stdoutPath)', '\(request.stderrPath)'",
                    cause: cause
                )
            }
        }
        var logger = logger
        logger[metadataKey: "keel.pid"] = "\(spawned.pid)"
        let process = TaskProcess(
            pid: spawned.pid, command: request.command, user: user, cgroup: cgroup, logger: logger,
            exitStatusFile: supervision.exitStatusFile, startTime: spawned.startTime)
        if let link = spawned.link {
            ProcessDescriptor.close(spawned.pidfd)
            process.watchLink(link)
        } else {
            process.startWatcher(pidfd: spawned.pidfd)
        }
        return process
    }

    /// Watches the task's link (see ``SupervisorSpawner/Spawned/link``): end-of-file says that
    /// the task ended and its exit status is written, or that the supervisor died. The end is
    /// recorded before the link is closed, which lets the supervisor take another task: from then
    /// on ``signalGroup(_:)`` sends nothing, so no stop meant for this task reaches the next.
    /// The supervisor's process group (itself) is not swept: it may live on, and killed what the
    /// task left in its namespace itself.
    private func watchLink(_ link: Int32) {
        let collect: @Sendable () -> Void = { [self] in
            let status = supervisedStatus(fallback: .unknown)
            logger.debug("task process exited", metadata: ["keel.termination": "\(status)"])
            record(status)
        }
        if let watcher = ProcessExitWatcher.shared, watcher.watch(link, onExit: collect) { return }
        let status = DetachedThread.start {
            _ = ProcessDescriptor.waitForExit(link)
            collect()
            Glibc.close(link)
        }
        if status != 0 {
            Glibc.close(link)
            logger.error("cannot start a thread to watch the task; its end will not be seen", metadata: ["keel.errno": "\(status)"])
        }
    }

    /// Whether `pid` is alive (not a zombie) and started at `startTime`.
    func isSameProcess(startTime expected: UInt64) -> Bool {
        guard let (state, started) = Self.processStat(pid) else { return false }
        return state != "Z" && state != "X" && started == expected
    }

    /// The start time of `pid` (field 22 of `/proc/PID/stat`), if it exists.
    package static func processStartTime(of pid: Int32) -> UInt64? {
        processStat(pid)?.startTime
    }

    /// The state letter and start time of `pid` from `/proc/PID/stat`.
    static func processStat(_ pid: Int32) -> (state: Character, startTime: UInt64)? {
        guard let text = CgroupFiles.read("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": field 3 is the state, field 22 the start time.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let started = UInt64(fields[19]) else { return nil }
        return (state, started)
    }

    /// Parses the supervisor's exit-status file, if it is there and well formed.
    package static func readExitStatus(_ path: String) -> TerminationStatus? {
        guard let line = CgroupFiles.readLine(path) else { return nil }
        let parts = line.split(separator: " ")
        guard parts.count >= 2, let value = Int32(parts[1]) else { return nil }
        switch parts[0] {
        case "exited": return .exited(code: value)
        case "signaled": return .signaled(signal: value, coreDumped: parts.count > 2 && parts[2] == "core")
        default: return nil
        }
    }

    /// The task's status once the supervisor has ended: what it wrote, else `fallback`.
    func supervisedStatus(fallback: TerminationStatus) -> TerminationStatus {
        guard let exitStatusFile else { return fallback }
        return Self.readExitStatus(exitStatusFile) ?? fallback
    }

    /// Starts the thread that watches a supervisor this launcher is not the parent of.
    ///
    /// Only the parent can wait for a process. The thread opens a pidfd for it (Linux 5.3+),
    /// checks that the pid still belongs to the supervisor (its start time; a pidfd keeps
    /// naming that process even if the pid is reused later) and sleeps in `poll` until the
    /// supervisor ends. Without pidfds it checks `/proc/PID/stat` every 100 ms until the
    /// supervisor is gone (or a zombie awaiting its new parent, init).
    ///
    /// With `pidfd` (from the spawner, which opened it before the supervisor could be reaped) the
    /// thread waits on it without any check.
    ///
    /// With a pidfd, the one ``ProcessExitWatcher`` thread does the waiting for all supervisors;
    /// a thread of its own is the fallback.
    private func startWatcher(pidfd given: Int32? = nil) {
        guard let expected = startTime else {
            ProcessDescriptor.close(given)
            record(supervisedStatus(fallback: .unknown))
            return
        }
        let pidfd = given ?? ProcessDescriptor.open(pid)
        if given == nil, pidfd != nil, !isSameProcess(startTime: expected) {
            // Gone before the descriptor was opened; it may even name a newer process.
            ProcessDescriptor.close(pidfd)
            collectForeignExit()
            return
        }
        if let pidfd, let watcher = ProcessExitWatcher.shared,
            watcher.watch(pidfd, onExit: { [self] in collectForeignExit() })
        {
            return
        }
        let status = DetachedThread.start { [self] in
            let ended = pidfd.map(ProcessDescriptor.waitForExit) ?? false
            ProcessDescriptor.close(pidfd)
            if !ended {
                while isSameProcess(startTime: expected) {
                    usleep(100_000)
                }
            }
            collectForeignExit()
        }
        if status != 0 {
            ProcessDescriptor.close(pidfd)
            logger.error(
                "cannot start a thread to watch the re-attached task; its end will not be seen",
                metadata: ["keel.errno": "\(status)"])
        }
    }

    /// The supervisor (not our child) is gone: sweep what is left of its group, read the status.
    private func collectForeignExit() {
        let status = supervisedStatus(fallback: .unknown)
        state.withLock { state in
            guard state.exitStatus == nil else { return }
            // The group id cannot be reused while any member is alive, so this reaches only
            // leftovers of the task (or nobody).
            kill(-pid, SIGKILL)
        }
        logger.debug("task process exited", metadata: ["keel.termination": "\(status)"])
        record(status)
    }

    /// Records `status` (once) and resumes every waiter.
    func record(_ status: TerminationStatus) {
        let waiters = state.withLock { state -> [CheckedContinuation<TerminationStatus?, Never>] in
            guard state.exitStatus == nil else { return [] }
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

/// Process file descriptors (`pidfd_open(2)`, Linux 5.3, glibc 2.36): a descriptor that names
/// one process for good and becomes readable when it ends, also for a process that is not our
/// child.
package enum ProcessDescriptor {
    private typealias Open = @convention(c) (pid_t, UInt32) -> Int32

    /// `pidfd_open` from the C library, looked up once; nil where it is missing.
    private static let pidfdOpen: Open? = {
        guard let handle = dlopen(nil, RTLD_NOW) else { return nil }
        defer { dlclose(handle) }
        return dlsym(handle, "pidfd_open").map { unsafeBitCast($0, to: Open.self) }
    }()

    /// A pidfd for `pid` (close-on-exec), or nil if the C library or kernel lacks them or the
    /// process is gone.
    package static func open(_ pid: Int32) -> Int32? {
        guard let pidfdOpen else { return nil }
        let descriptor = pidfdOpen(pid, 0)
        return descriptor >= 0 ? descriptor : nil
    }

    /// Blocks until the process of `pidfd` has ended; false if `poll` failed instead.
    package static func waitForExit(_ pidfd: Int32) -> Bool {
        var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        while true {
            if poll(&entry, 1, -1) > 0 { return true }
            if errno != EINTR { return false }
        }
    }

    package static func close(_ pidfd: Int32?) {
        if let pidfd { _ = Glibc.close(pidfd) }
    }
}
