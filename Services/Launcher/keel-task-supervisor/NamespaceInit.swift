@preconcurrency import Glibc

/// `unshare(2)` from `<sched.h>` (declared only under `_GNU_SOURCE`). Called directly: the
/// supervisor is linked statically, where a `dlsym` lookup finds nothing.
@_silgen_name("unshare")
private func systemUnshare(_ flags: Int32) -> Int32

/// The task's PID namespace: how the supervisor creates it, and the init that runs as its PID 1.
///
/// The supervisor calls `unshare(CLONE_NEWPID | CLONE_NEWNS)`; it stays in the node's PID
/// namespace itself (so keel-launcher keeps watching its real pid), and its next child becomes
/// PID 1 of the new one. That child is a plain `fork` of the supervisor running ``run(_:)``
/// (see ``start(_:redirections:closing:)``), not the supervisor executed again, which saves a
/// whole program start per task. That init
/// - makes every mount private to the new mount namespace and mounts a fresh `/proc` on it, so
///   `ps` and `/proc` show only the task's processes;
/// - starts the task (PID 2) as the leader of its own process group, inside the task's cgroups
///   (the task joins them itself between fork and exec, see ``ChildProcess/start(_:_:setup:)``);
/// - reaps every process orphaned inside the namespace (PID 1's duty), so no zombies pile up;
/// - forwards the signals that reach it (keel-launcher signals the supervisor's process group,
///   which init is in) to the task's process group: PID 1 gets no default signal actions, so
///   it keeps those signals blocked and takes them with `sigwaitinfo`;
/// - when the task ends, writes the task's raw wait status (4 bytes) to the descriptor the
///   supervisor gave it and exits, whereupon the kernel kills whatever is left in the namespace
///   (double-forked daemons included).
/// `SIGKILL` to the process group kills init, and with it the whole namespace.
///
/// Init itself stays outside the task's cgroups, like the supervisor: the cgroups hold exactly
/// the task's own processes, so the pids limit counts only those, the task's lowest pid in its
/// cgroup is the task (see `TaskExecTarget.taskPID` in LauncherCore), and a cgroup kill takes
/// down the task, which init then reports, instead of racing init's own report. Every process
/// of the task still is inside: init starts only the task, and orphans keep their cgroups when
/// init adopts them.
enum NamespaceInit {
    /// The signals init forwards to the task.
    static let forwardedSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH, SIGALRM]

    /// `CLONE_NEWNS` and `CLONE_NEWPID` from `<sched.h>` (declared only under `_GNU_SOURCE`).
    private static let newMountNamespace: Int32 = 0x0002_0000
    private static let newPIDNamespace: Int32 = 0x2000_0000

    /// What init runs: the task, and the descriptor for the task's wait status.
    struct Task {
        /// The write end of the status pipe, close-on-exec: init keeps it (it is forked, not
        /// executed), the task does not inherit it.
        var statusDescriptor: Int32
        var executable: String
        var arguments: [String]
        var cgroupProcsFiles: [String]
    }

    /// `unshare(CLONE_NEWPID | CLONE_NEWNS)`; `nil` on success, else the reason.
    static func unshareNamespaces() -> String? {
        guard systemUnshare(newPIDNamespace | newMountNamespace) == 0 else {
            return "unshare(CLONE_NEWPID | CLONE_NEWNS) failed: \(String(cString: strerror(errno)))"
        }
        return nil
    }

    /// Forks init, PID 1 of the namespace created by ``unshareNamespaces()``; returns its pid
    /// on the node.
    ///
    /// The child `dup2`s `redirections` (source → target), closes `closing` (the supervisor's
    /// own descriptors) and runs ``run(_:)``. The forwarded signals and `SIGCHLD` are blocked
    /// before the fork (and unblocked again in the supervisor after it), so none sent to init
    /// before it waits for them is lost.
    ///
    /// A `fork` without `exec` is safe here, and so is everything the child does (allocating
    /// included): the supervisor is single-threaded and links only the Swift runtime and the C
    /// library (no Foundation, no Dispatch, so no thread can hold a lock of `malloc` or of the
    /// runtime while it forks), and it has written nothing to a buffered stream the child could
    /// flush a second time (init ends with `_exit`).
    static func start(
        _ task: Task, redirections: [(source: Int32, target: Int32)], closing: [Int32]
    ) -> Result<pid_t, SpawnError> {
        var waited = sigset_t()
        sigemptyset(&waited)
        for signal in forwardedSignals + [SIGCHLD] { sigaddset(&waited, signal) }
        var previous = sigset_t()
        sigprocmask(SIG_BLOCK, &waited, &previous)
        let pid = fork()
        if pid == 0 {
            // Handlers and ignored signals are the supervisor's; init starts from the defaults,
            // as a new program would.
            ChildProcess.resetSignalDispositions()
            for (source, target) in redirections where dup2(source, target) < 0 {
                initFail("cannot redirect the task's output: \(String(cString: strerror(errno)))")
            }
            for descriptor in closing { close(descriptor) }
            run(task)
        }
        let forkError = errno
        sigprocmask(SIG_SETMASK, &previous, nil)
        return pid > 0 ? .success(pid) : .failure(SpawnError(code: forkError))
    }

    /// Runs as PID 1 of the task's namespace; see the type's documentation.
    static func run(_ task: Task) -> Never {
        let statusDescriptor = task.statusDescriptor
        var waited = sigset_t()
        sigemptyset(&waited)
        for signal in forwardedSignals + [SIGCHLD] { sigaddset(&waited, signal) }
        // ``start(_:redirections:closing:)`` forks init with these already blocked, so none is
        // lost before here.
        sigprocmask(SIG_BLOCK, &waited, nil)

        if mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) != 0 {
            initFail("cannot make the task's mounts private: \(String(cString: strerror(errno)))")
        }
        if mount("proc", "/proc", "proc", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) != 0 {
            initFail("cannot mount /proc for the task's PID namespace: \(String(cString: strerror(errno)))")
        }

        let taskPID: pid_t
        let setup = ChildSetup(newProcessGroup: true, cgroupProcsFiles: task.cgroupProcsFiles)
        switch ChildProcess.start(task.executable, task.arguments, setup: setup) {
        case .success(let pid): taskPID = pid
        case .failure(let error): initFail("cannot start '\(task.executable)': \(error.text)")
        }

        var info = siginfo_t()
        while true {
            let signal = sigwaitinfo(&waited, &info)
            if signal < 0 { continue }  // EINTR
            if signal != SIGCHLD {
                if kill(-taskPID, signal) != 0 { kill(taskPID, signal) }
                continue
            }
            var raw: Int32 = 0
            while true {
                let reaped = waitpid(-1, &raw, WNOHANG)
                if reaped <= 0 { break }
                if reaped == taskPID {
                    var status = raw
                    _ = withUnsafeBytes(of: &status) { write(statusDescriptor, $0.baseAddress!, $0.count) }
                    _exit(WaitStatus(raw: raw).exitCode)
                }
            }
        }
    }

    /// Runs as the task of a namespace check: succeeds if this process is PID 2 of its namespace
    /// and `/proc` is that namespace's.
    static func check() -> Never {
        var buffer = [CChar](repeating: 0, count: 64)
        let length = readlink("/proc/self", &buffer, buffer.count - 1)
        let procSelf = length > 0 ? String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        guard getpid() == 2, procSelf == "2" else {
            fputs("keel-task-supervisor: not in a fresh PID namespace with its own /proc (pid \(getpid()), /proc/self -> '\(procSelf)')\n", stderr)
            exit(1)
        }
        exit(0)
    }

    private static func initFail(_ message: String) -> Never {
        fputs("keel-task-supervisor: \(message)\n", stderr)
        _exit(127)
    }
}
