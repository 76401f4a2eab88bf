@preconcurrency import Glibc

/// `unshare(2)` and `setns(2)` from `<sched.h>` (declared only under `_GNU_SOURCE`). Called
/// directly: the supervisor is linked statically, where a `dlsym` lookup finds nothing.
@_silgen_name("unshare")
private func systemUnshare(_ flags: Int32) -> Int32
@_silgen_name("setns")
private func systemSetns(_ descriptor: Int32, _ type: Int32) -> Int32

/// The task's PID and mount namespaces, and the supervisor as their init.
///
/// With `--pid-namespace` the supervisor itself is PID 1 of the task's new PID namespace, and
/// the task is PID 2 there, so a task costs two processes (supervisor and program), not three:
/// - A supervisor forked by the spawner is born there: the spawner calls
///   ``forkIntoNewPIDNamespace()``, which creates the namespace for that one child.
/// - A supervisor executed by keel-launcher (when there is no spawner) cannot be: it calls
///   ``superviseInNewPIDNamespace(_:)``, which creates the namespace, forks itself as its init,
///   and waits for it.
///
/// As init, the supervisor (see ``becomeInit()`` and ``SupervisionLoop``)
/// - moves into a mount namespace of its own, makes every mount private to it and mounts a
///   fresh `/proc` there, so `ps` and `/proc` show only the task's processes; it still writes the
///   task's output and exit status to the same files, since the copy sees the node's file systems;
/// - starts the task (PID 2) as the leader of its own process group, inside the task's cgroups
///   (the task joins them itself between fork and exec, see ``ChildProcess/start(_:)``);
/// - reaps every process orphaned inside the namespace (PID 1's duty), so no zombies pile up;
/// - forwards the signals that reach it (keel-launcher signals the supervisor's process group)
///   to the task's process group: PID 1 gets no default signal actions, so it keeps those
///   signals blocked and takes them through a `signalfd`;
/// - when the task ends, kills whatever is left in the namespace (double-forked daemons
///   included), writes the task's status and exits.
/// `SIGKILL` to the process group kills the supervisor, and with it the whole namespace.
///
/// The supervisor stays outside the task's cgroups: the cgroups hold exactly the task's own
/// processes, so the pids limit counts only those, the task's lowest pid in its cgroup is the
/// task (see `TaskExecTarget.taskPID` in LauncherCore), and a cgroup kill takes down the task,
/// which the supervisor then reports, instead of taking down the supervisor first. Every process
/// of the task still is inside: the supervisor starts only the task, and orphans keep their
/// cgroups when init adopts them.
enum NamespaceInit {
    /// `CLONE_NEWNS` and `CLONE_NEWPID` from `<sched.h>` (declared only under `_GNU_SOURCE`).
    private static let newMountNamespace: Int32 = 0x0002_0000
    private static let newPIDNamespace: Int32 = 0x2000_0000

    /// This process's own PID namespace, opened by the spawner at start (see
    /// ``forkIntoNewPIDNamespace()``); -1 if it could not be.
    nonisolated(unsafe) private static var ownPIDNamespace: Int32 = -1

    /// Opens this process's PID namespace, which ``forkIntoNewPIDNamespace()`` returns to after
    /// each fork. Called once by the spawner.
    static func openOwnPIDNamespace() {
        ownPIDNamespace = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC)
    }

    /// How ``forkIntoNewPIDNamespace()`` went.
    enum NamespacedFork {
        /// In the parent: the child's pid on the node (it is PID 1 of its namespace).
        case parent(pid_t)
        /// In the child.
        case child
        /// No namespace could be created (`errno` of `unshare`); nothing was forked.
        case unavailable(Int32)
        /// `fork` failed (its `errno`).
        case failed(Int32)
    }

    /// Forks a child that is PID 1 of a new PID namespace: `unshare(CLONE_NEWPID)` makes the
    /// caller's next child the init of a new namespace, and `setns` back to the caller's own
    /// namespace afterwards makes the child after that a plain one again (a second `unshare`
    /// would be refused while the first is in effect).
    ///
    /// If returning to its own namespace fails, the spawner could fork nothing more, so it ends
    /// (`returnedHome` is false): keel-launcher then starts supervisors without it.
    static func forkIntoNewPIDNamespace() -> (fork: NamespacedFork, returnedHome: Bool) {
        guard ownPIDNamespace >= 0 else { return (.unavailable(EBADF), true) }
        guard systemUnshare(newPIDNamespace) == 0 else { return (.unavailable(errno), true) }
        let pid = fork()
        if pid == 0 { return (.child, true) }
        let forkError = errno
        let returnedHome = systemSetns(ownPIDNamespace, newPIDNamespace) == 0
        return (pid > 0 ? .parent(pid) : .failed(forkError), returnedHome)
    }

    /// The executed supervisor's way into a PID namespace: creates one, forks this supervisor
    /// as its init (which runs `supervise`), and waits for it. Exits with init's code; if init
    /// was killed before it wrote the task's status, writes that init was killed.
    static func superviseInNewPIDNamespace(_ plan: SupervisorPlan, supervise: (SupervisorPlan) -> Never) -> Never {
        let options = plan.options
        guard systemUnshare(newPIDNamespace) == 0 else {
            giveUp(options, "unshare(CLONE_NEWPID) failed: \(String(cString: strerror(errno)))")
        }
        let pid = fork()
        if pid == 0 { supervise(plan) }
        guard pid > 0 else { giveUp(options, "cannot fork the PID namespace's init: \(String(cString: strerror(errno)))") }
        guard let raw = ChildProcess.waitBlocking(pid) else {
            giveUp(options, "cannot wait for the PID namespace's init (pid \(pid)): \(String(cString: strerror(errno)))")
        }
        let status = WaitStatus(raw: raw)
        if raw & 0x7f != 0, access(options.exitStatusFile, F_OK) != 0 {
            _ = ExitStatusFile.write(status, to: plan.exitStatusFile)
        }
        exit(status.exitCode)
    }

    /// Whether this process is the init of a PID namespace.
    static var isInit: Bool { getpid() == 1 }

    /// As init: a mount namespace of its own, every mount private to it, and a fresh `/proc`
    /// for the new PID namespace. `nil` on success, else what failed.
    static func becomeInit() -> String? {
        guard systemUnshare(newMountNamespace) == 0 else {
            return "unshare(CLONE_NEWNS) failed: \(String(cString: strerror(errno)))"
        }
        if mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) != 0 {
            return "cannot make the task's mounts private: \(String(cString: strerror(errno)))"
        }
        if mount("proc", "/proc", "proc", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) != 0 {
            return "cannot mount /proc for the task's PID namespace: \(String(cString: strerror(errno)))"
        }
        return nil
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
}
