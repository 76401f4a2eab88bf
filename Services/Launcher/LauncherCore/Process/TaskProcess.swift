@preconcurrency import Glibc
package import Logging
import Synchronization

/// A running (or finished) task process: the leader of its own session and process group.
///
/// Start one with ``launch(_:logger:)``; then ``wait()`` for its ``TerminationStatus``,
/// ``signalGroup(_:)`` it, or ``terminate(gracePeriod:)`` it. All members are safe to call from
/// any task or thread, any number of times.
///
/// Reaping: each process gets one small dedicated thread (512 KiB of reserved stack) that blocks
/// in `waitid` for that pid only, so no cooperative-pool thread ever blocks, and many processes
/// can run at once (a thousand tasks cost a thousand parked threads). A single `waitpid(-1)`
/// reaper was rejected because it would also reap children that other code in the launcher
/// spawned and waits for. The thread is the only code that reaps the pid, so it is never
/// reaped twice, and it keeps the `TaskProcess` alive until then, so dropping the object never
/// leaves a zombie.
///
/// Group cleanup: when the leader exits, for whatever reason, every remaining member of its
/// process group gets `SIGKILL` before the leader is reaped. While the leader is an unreaped
/// zombie its pid (which is the group ID) cannot be reused, so group signals can never hit an
/// unrelated process. All group signals are sent under the same lock that records the reap.
/// Killed orphans are reparented to init (or the nearest subreaper), which reaps them.
///
/// Surviving the launcher: with a ``TaskSupervision`` the leader is not the task itself but
/// `keel-task-supervisor`, a small process that starts the task as its child (in the same
/// group), waits for it and writes its exit status to a file in the task's checkpoint. Because
/// the task is in its own session and process group, with standard input from `/dev/null` and
/// its output in sandbox files, nothing ties it to the launcher: a `kill -9` of the launcher (or
/// a restart under systemd with `KillMode=process`) leaves supervisor and task running, and the
/// supervisor still collects the task's true exit status. The next launcher re-attaches with
/// ``reattach(pid:startTime:exitStatusFile:command:cgroup:logger:)``: it is not the parent any
/// more, so it watches the supervisor's pid (checking its start time, so that a reused pid is
/// never taken for it) and reads the status file when the supervisor is gone. The supervisor
/// stays outside the task's cgroups (the cgroup join happens in its child), so a cgroup kill
/// never takes it down before it has written the status.
///
/// Forked supervisors: with a ``SupervisorSpawner``, the supervisor is forked by the spawner
/// instead of executed by the launcher, so it is the spawner's child, not ours; it is then
/// watched through the pidfd the spawner sent, exactly like a re-attached supervisor, and its
/// status read from its file.
///
/// With ``TaskSupervision/pidNamespace`` the supervisor is PID 1 of the task's own PID
/// namespace (a forked one is born there; an executed one forks itself into it and waits), and
/// the task is PID 2 there, in a process group of its own. The group signals above then reach
/// the supervisor as init, which forwards them to the task's group; `SIGKILL` kills it, and with
/// it every process in the namespace. ``pid`` stays the supervisor's pid on the node.
package final class TaskProcess: Sendable {
    /// The leader's pid, which is also its process group ID and session ID: the supervisor's
    /// pid for a supervised task.
    package let pid: Int32
    /// The leader's start time in clock ticks since boot, as in `/proc/PID/stat`.
    package let startTime: UInt64?
    /// The file the supervisor writes the task's exit status to, for a supervised task.
    package let exitStatusFile: String?
    /// The command this process runs, as launched.
    package let command: TaskCommand
    /// The user it runs as, or `nil` for the launcher's own user.
    package let user: TaskUser?
    /// The cgroups the process joined before running its command, if the node uses any.
    package let cgroup: TaskCgroup?

    let logger: Logger
    let state: Mutex<ProcessState>

    init(
        pid: Int32, command: TaskCommand, user: TaskUser?, cgroup: TaskCgroup?, logger: Logger,
        exitStatusFile: String? = nil, startTime: UInt64? = nil
    ) {
        self.pid = pid
        self.startTime = startTime ?? Self.processStartTime(of: pid)
        self.exitStatusFile = exitStatusFile
        self.command = command
        self.user = user
        self.cgroup = cgroup
        self.logger = logger
        self.state = Mutex(ProcessState())
    }

    /// Starts `spec` with `posix_spawn` and begins watching it for exit.
    ///
    /// Synchronous and fast (one `clone`/`execve`); call it from anywhere. The executable is
    /// looked up first, so a missing or non-executable program is a
    /// ``LauncherError/Code/launchFailed`` error whose message names the command and the `errno`
    /// text, with a ``SystemCallError`` cause. Other errors: ``LauncherError/Code/invalidArgument``
    /// for a bad spec, ``LauncherError/Code/notFound`` for a missing working directory or
    /// unknown user, ``LauncherError/Code/permissionDenied`` for switching users without root.
    ///
    /// With a `cgroup`, the process joins it before the command runs (see ``TaskCgroup``); if it
    /// cannot, it exits with 127 and says why on its standard error. The caller owns the cgroup
    /// and removes it with ``TaskCgroup/destroy(timeout:)`` once the process has ended.
    ///
    /// With `supervision`, the process started is `keel-task-supervisor`, which runs the task as
    /// its child and records its exit status (see the type's documentation); ``pid`` is then the
    /// supervisor's.
    package static func launch(
        _ spec: TaskLaunchSpec, cgroup: TaskCgroup? = nil, supervision: TaskSupervision? = nil,
        spawner: SupervisorSpawner? = nil, logger: Logger
    ) throws(LauncherError) -> TaskProcess {
        try spec.validate()
        guard try TaskSandbox.fileType(spec.workingDirectory) == S_IFDIR else {
            throw LauncherError(
                code: .invalidArgument,
                message: "working directory '\(spec.workingDirectory)' is not a directory; pass the sandbox root"
            )
        }
        let user = try spec.user.map { (name) throws(LauncherError) in try TaskUser.lookup(name: name) }
        let arguments = spec.command.arguments
        let program = try ExecutableLookup.resolve(
            arguments[0],
            searchPath: spec.environment["PATH"] ?? TaskLaunchSpec.defaultSearchPath,
            workingDirectory: spec.workingDirectory,
            command: spec.command
        )
        var request = ProcessSpawner.Request(
            command: spec.command,
            executable: program,
            arguments: arguments,
            environment: spec.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
            workingDirectory: spec.workingDirectory,
            stdoutPath: spec.stdoutPath,
            stderrPath: spec.stderrPath
        )
        if let user, user.uid != geteuid() || user.gid != getegid() {
            try switchUser(of: &request, to: user)
        }
        if let cgroup {
            // A supervisor joins the task to its cgroups itself; without one, a shell shim does.
            (request.executable, request.arguments) =
                supervision == nil
                ? cgroup.wrap(executable: request.executable, arguments: request.arguments)
                : cgroup.limited(executable: request.executable, arguments: request.arguments)
        }
        if let supervision {
            (request.executable, request.arguments) = supervision.wrap(
                executable: request.executable, arguments: request.arguments, stdoutPath: request.stdoutPath,
                stderrPath: request.stderrPath, cgroupProcsFiles: cgroup?.procsFiles ?? [])
        }
        let process: TaskProcess
        if let supervision, let spawner, !spawner.isBroken,
            let forked = try forkSupervisor(
                request, supervision: supervision, spawner: spawner, user: user, cgroup: cgroup, logger: logger)
        {
            process = forked
        } else {
            let pid = try ProcessSpawner.spawn(request)
            var logger = logger
            logger[metadataKey: "keel.pid"] = "\(pid)"
            process = TaskProcess(
                pid: pid, command: spec.command, user: user, cgroup: cgroup, logger: logger,
                exitStatusFile: supervision?.exitStatusFile)
            try process.startReaper()
        }
        process.logger.info(
            "launched task process",
            metadata: [
                "keel.command": "\(spec.command)",
                "keel.executable": "\(program)",
                "keel.user": "\(user.map(\.description) ?? "(launcher)")",
                "keel.working_directory": "\(spec.workingDirectory)",
                "keel.cgroup": "\(cgroup?.path ?? "(none)")",
            ]
        )
        return process
    }

    /// The `setpriv` options that turn a root process into a plain process of `user`: its uid
    /// and gid, exactly the user's own groups (none of root's), no capabilities in any set (the
    /// bounding set too, so nothing can regain them), and `no_new_privs`, so setuid and
    /// file-capability programs cannot raise privileges either.
    static func privilegeDrop(to user: TaskUser) -> [String] {
        [
            "--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--inh-caps=-all", "--ambient-caps=-all",
            "--bounding-set=-all", "--no-new-privs",
        ]
    }

    /// Wraps the request in `setpriv` so the child drops to `user` just before executing the program.
    private static func switchUser(of request: inout ProcessSpawner.Request, to user: TaskUser) throws(LauncherError) {
        guard geteuid() == 0 else {
            throw LauncherError(
                code: .permissionDenied,
                message: "cannot run '\(request.command)' as user '\(user.name)': the launcher is not root; "
                    + "run the launcher as root or drop the task's user"
            )
        }
        let candidates = ["/usr/bin/setpriv", "/bin/setpriv"]
        guard let setpriv = candidates.first(where: { (path: String) in access(path, X_OK) == 0 }) else {
            throw LauncherError(
                code: .launchFailed,
                message: "cannot run '\(request.command)' as user '\(user.name)': setpriv was not found; "
                    + "install util-linux on the agent"
            )
        }
        request.arguments =
            [setpriv] + privilegeDrop(to: user) + ["--", request.executable] + request.arguments.dropFirst()
        request.executable = setpriv
    }

    /// The exit status if the leader has exited and been reaped, else `nil`. Never blocks.
    package var terminationStatus: TerminationStatus? {
        state.withLock { $0.exitStatus }
    }

    /// Suspends until the leader exits and returns how it ended; returns at once if it already has.
    ///
    /// Any number of callers may wait concurrently. Throws `CancellationError` if the calling
    /// task is cancelled first (the process keeps running).
    package func wait() async throws(CancellationError) -> TerminationStatus {
        guard let status = await waitForExit(cancellable: true) else {
            throw CancellationError()
        }
        return status
    }

    /// Sends `signal` to every process in the task's process group (`kill(-pgid, signal)`).
    ///
    /// Returns `false`, sending nothing, once the leader has been reaped: the group ID may then
    /// belong to someone else. Members that escaped the group with `setsid` are not reached.
    @discardableResult
    package func signalGroup(_ signal: Int32) -> Bool {
        state.withLock { state in
            guard state.exitStatus == nil else { return false }
            return kill(-pid, signal) == 0
        }
    }

    /// Suspends until exit. Returns `nil` only if `cancellable` and the task is cancelled.
    func waitForExit(cancellable: Bool) async -> TerminationStatus? {
        let id = state.withLock { $0.makeWaiterID() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<TerminationStatus?, Never>) in
                // Registration and the cancellation check share the lock with `onCancel`, so a
                // cancel that races registration is seen by exactly one of them.
                let immediate: TerminationStatus?? = state.withLock { state in
                    if let status = state.exitStatus { return .some(status) }
                    if cancellable, Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let immediate {
                    continuation.resume(returning: immediate)
                }
            }
        } onCancel: {
            guard cancellable else { return }
            let continuation = state.withLock { $0.waiters.removeValue(forKey: id) }
            continuation?.resume(returning: nil)
        }
    }
}

/// The mutable part of a ``TaskProcess``, only ever touched under its `Mutex`.
struct ProcessState: Sendable {
    /// Set exactly once, by the reaper thread, when it reaps the leader.
    var exitStatus: TerminationStatus?
    /// Suspended `wait` callers, resumed (outside the lock) when the leader is reaped.
    var waiters: [UInt64: CheckedContinuation<TerminationStatus?, Never>] = [:]
    private var nextWaiterID: UInt64 = 0

    mutating func makeWaiterID() -> UInt64 {
        nextWaiterID += 1
        return nextWaiterID
    }
}
