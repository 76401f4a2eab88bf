@preconcurrency import Glibc

/// `unshare(2)` from `<sched.h>` (declared only under `_GNU_SOURCE`). Called directly: the
/// supervisor is linked statically, where a `dlsym` lookup finds nothing.
@_silgen_name("unshare")
private func systemUnshare(_ flags: Int32) -> Int32

/// The task's PID namespace: how the supervisor creates it, and the init that runs as its PID 1.
///
/// The supervisor calls `unshare(CLONE_NEWPID | CLONE_NEWNS)`; it stays in the node's PID
/// namespace itself (so keel-launcher keeps watching its real pid), and its next child becomes
/// PID 1 of the new one: the supervisor started again as `--namespace-init`. That init
/// - makes every mount private to the new mount namespace and mounts a fresh `/proc` on it, so
///   `ps` and `/proc` show only the task's processes;
/// - starts the task (PID 2) as the leader of its own process group;
/// - reaps every process orphaned inside the namespace (PID 1's duty), so no zombies pile up;
/// - forwards the signals that reach it (keel-launcher signals the supervisor's process group,
///   which init is in) to the task's process group: PID 1 gets no default signal actions, so
///   it keeps those signals blocked and takes them with `sigwaitinfo`;
/// - when the task ends, writes the task's raw wait status (4 bytes) to the descriptor the
///   supervisor gave it and exits, whereupon the kernel kills whatever is left in the namespace
///   (double-forked daemons included).
/// `SIGKILL` to the process group kills init, and with it the whole namespace.
enum NamespaceInit {
    /// The signals init forwards to the task.
    static let forwardedSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH, SIGALRM]

    /// `CLONE_NEWNS` and `CLONE_NEWPID` from `<sched.h>` (declared only under `_GNU_SOURCE`).
    private static let newMountNamespace: Int32 = 0x0002_0000
    private static let newPIDNamespace: Int32 = 0x2000_0000

    /// `unshare(CLONE_NEWPID | CLONE_NEWNS)`; `nil` on success, else the reason.
    static func unshareNamespaces() -> String? {
        guard systemUnshare(newPIDNamespace | newMountNamespace) == 0 else {
            return "unshare(CLONE_NEWPID | CLONE_NEWNS) failed: \(String(cString: strerror(errno)))"
        }
        return nil
    }

    /// Runs as PID 1 of the task's namespace; see the type's documentation.
    static func run(statusDescriptor: Int32, executable: String, arguments: [String]) -> Never {
        _ = fcntl(statusDescriptor, F_SETFD, FD_CLOEXEC)
        var waited = sigset_t()
        sigemptyset(&waited)
        for signal in forwardedSignals + [SIGCHLD] { sigaddset(&waited, signal) }
        // The supervisor starts init with these already blocked, so none is lost before here.
        sigprocmask(SIG_BLOCK, &waited, nil)

        if mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) != 0 {
            initFail("cannot make the task's mounts private: \(String(cString: strerror(errno)))")
        }
        if mount("proc", "/proc", "proc", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) != 0 {
            initFail("cannot mount /proc for the task's PID namespace: \(String(cString: strerror(errno)))")
        }

        let task: pid_t
        switch ChildProcess.spawn(executable, arguments, newProcessGroup: true) {
        case .success(let pid): task = pid
        case .failure(let error): initFail("cannot start '\(executable)': \(error.text)")
        }

        var info = siginfo_t()
        while true {
            let signal = sigwaitinfo(&waited, &info)
            if signal < 0 { continue }  // EINTR
            if signal != SIGCHLD {
                if kill(-task, signal) != 0 { kill(task, signal) }
                continue
            }
            var raw: Int32 = 0
            while true {
                let reaped = waitpid(-1, &raw, WNOHANG)
                if reaped <= 0 { break }
                if reaped == task {
                    var status = raw
                    _ = withUnsafeBytes(of: &status) { write(statusDescriptor, $0.baseAddress!, $0.count) }
                    exit(WaitStatus(raw: raw).exitCode)
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
        exit(127)
    }
}
