@preconcurrency import Glibc

/// `strerrordesc_np` (glibc 2.32; declared only under `_GNU_SOURCE`): the untranslated text of
/// an error number, read from a constant table without locale, locks or allocation, so unlike
/// `strerror` it may be called between `fork` and `exec`. `nil` for an unknown number.
@_silgen_name("strerrordesc_np")
private func errorDescription(_ code: Int32) -> UnsafePointer<CChar>?

/// What a child does between `fork` and `exec`.
struct ChildSetup {
    /// The program's environment (`NAME=value` entries); `nil` for this process's own.
    var environment: [String]?
    /// Whether the child leads a process group of its own.
    var newProcessGroup = false
    /// The `cgroup.procs` files (v1 or v2) the child moves itself into before it executes the
    /// program, so that every process the program ever forks is born inside them.
    var cgroupProcsFiles: [String] = []
}

/// glibc's `clone(fn, stack, flags, arg, ...)` from `<sched.h>` (declared only under
/// `_GNU_SOURCE`), called with the four fixed arguments only: without `CLONE_PARENT_SETTID`,
/// `CLONE_SETTLS` or `CLONE_CHILD_SETTID` the variadic ones are never read.
@_silgen_name("clone")
private func systemClone(
    _ entry: @convention(c) (UnsafeMutableRawPointer?) -> Int32, _ stack: UnsafeMutableRawPointer, _ flags: Int32,
    _ argument: UnsafeMutableRawPointer?
) -> Int32

extension ChildProcess {
    /// `CLONE_VM | CLONE_VFORK` from `<sched.h>`.
    private static let sharedMemoryFork: Int32 = 0x0000_0100 | 0x0000_4000

    /// The stack the child of ``start(_:)`` runs on until it executes the program. One for the
    /// process: a supervisor starts one child at a time, and the spawner makes it before its first
    /// fork (see ``SupervisorGlobals``), so a forked supervisor allocates nothing to start its task.
    nonisolated(unsafe) static let childStack = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    /// Starts the program of `child` as ``PreparedChild`` describes it.
    ///
    /// The child is created the way `posix_spawn` creates one: `clone(CLONE_VM | CLONE_VFORK)`,
    /// so it runs on a stack of its own in this process's memory, without a copy of the address
    /// space, while this process waits until it has executed the program (or failed). Then in
    /// the child: the signals this process changed back to their default action, the process
    /// group, the redirections, the cgroups (writing `0`, which the kernel reads as "the writing
    /// process", so it also works inside a new PID namespace where `getpid()` is not the pid the
    /// cgroup lists, to the `cgroup.procs` files opened by
    /// ``PreparedChild/openJoins(keepingFrom:)``, or opened by the child if that failed), an
    /// empty signal mask, and `execve` with the prepared environment. If a cgroup cannot be joined
    /// the child writes `keel-task-supervisor: cannot join cgroup 'FILE': REASON` to its
    /// (redirected) standard error and exits with 127; the caller sees an ordinary exit. If anything else fails (`execve` included) the child leaves its `errno` in the shared
    /// memory and exits, and this returns it as the error, as `posix_spawn` would, after reaping
    /// the child.
    ///
    /// Every byte the child needs is prepared before, and the child makes only async-signal-safe
    /// calls (`sigaction`, `setpgid`, `dup2`, `fcntl`, `open`, `write`, `close`, `sigprocmask`,
    /// `execve`, `_exit`) on that memory, allocating nothing; it writes nothing this process
    /// reads but its failure code (and `errno`, which this process does not rely on). That is
    /// safe because the supervisor is single-threaded and installs no signal handlers. It is
    /// done by hand because `posix_spawn` cannot run the cgroup join between fork and exec; a
    /// plain `fork` would copy the supervisor's page tables only for `execve` to drop them.
    static func start(_ child: PreparedChild) -> Result<pid_t, SpawnError> {
        let stackTop = childStack.baseAddress! + childStack.count
        let pid = withExtendedLifetime(child) {
            systemClone(
                { argument in Unmanaged<PreparedChild>.fromOpaque(argument!).takeUnretainedValue().run() },
                stackTop, sharedMemoryFork | SIGCHLD, Unmanaged.passUnretained(child).toOpaque())
        }
        guard pid > 0 else { return .failure(SpawnError(code: errno)) }
        if child.failure != 0 {
            _ = waitBlocking(pid)
            return .failure(SpawnError(code: child.failure))
        }
        return .success(pid)
    }
}

/// A program to start, turned into C memory up front: before the spawner forks the supervisor
/// that starts it (see ``SupervisorPlan``), so that the supervisor allocates nothing for it and
/// the child of ``ChildProcess/start(_:)`` reads only ready memory.
final class PreparedChild {
    /// A cgroup to join and the start of the message that says it could not be joined.
    struct Join {
        var path: UnsafeMutablePointer<CChar>
        var messagePrefix: UnsafeMutablePointer<CChar>
        var messagePrefixLength: Int
        /// The `cgroup.procs` file opened by the parent (see ``openJoins(keepingFrom:)``), or -1:
        /// the child opens `path` itself.
        var descriptor: Int32 = -1
    }

    private let executable: UnsafeMutablePointer<CChar>
    private let argv: UnsafeMutableBufferPointer<UnsafeMutablePointer<CChar>?>
    /// The program's environment; `nil` for the caller's `environ`.
    private let environment: UnsafeMutableBufferPointer<UnsafeMutablePointer<CChar>?>?
    private let emptyMask: UnsafeMutablePointer<sigset_t>
    /// Room for the two redirections of ``redirect(_:to:)``.
    private let redirections: UnsafeMutableBufferPointer<(source: Int32, target: Int32)>
    private var redirectionCount = 0
    private let newProcessGroup: Bool
    private let joins: UnsafeMutableBufferPointer<Join>
    /// Room for the longest join failure message.
    private let message: UnsafeMutableBufferPointer<UInt8>
    /// The `errno` of the child's failure to set up or execute, written by the child (which
    /// shares this memory) before it exits; 0 if it executed the program.
    private(set) var failure: Int32 = 0
    /// Set by the child when a `cgroup.procs` file opened by the parent could not be written
    /// and it joined by path instead (the cgroup was removed and made anew, say).
    private var joinedByPath = false

    init(executable: String, arguments: [String], setup: ChildSetup) {
        self.executable = strdup(executable)
        argv = Self.cStrings(arguments)
        environment = setup.environment.map(Self.cStrings)
        emptyMask = .allocate(capacity: 1)
        sigemptyset(emptyMask)
        redirections = .allocate(capacity: 2)
        newProcessGroup = setup.newProcessGroup
        joins = .allocate(capacity: setup.cgroupProcsFiles.count)
        var longest = 0
        for (index, file) in setup.cgroupProcsFiles.enumerated() {
            let prefix = "keel-task-supervisor: cannot join cgroup '\(file)': "
            longest = max(longest, prefix.utf8.count)
            joins[index] = Join(
                path: strdup(file), messagePrefix: strdup(prefix), messagePrefixLength: prefix.utf8.count)
        }
        message = .allocate(capacity: longest + 256)
    }

    deinit {
        free(executable)
        Self.release(argv)
        if let environment { Self.release(environment) }
        emptyMask.deallocate()
        redirections.deallocate()
        for join in joins {
            free(join.path)
            free(join.messagePrefix)
            if join.descriptor >= 0 { close(join.descriptor) }
        }
        joins.deallocate()
        message.deallocate()
    }

    /// A NULL-terminated array of C strings.
    private static func cStrings(_ strings: [String]) -> UnsafeMutableBufferPointer<UnsafeMutablePointer<CChar>?> {
        let array = UnsafeMutableBufferPointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: strings.count + 1)
        for (index, string) in strings.enumerated() { array[index] = strdup(string) }
        array[strings.count] = nil
        return array
    }

    private static func release(_ array: UnsafeMutableBufferPointer<UnsafeMutablePointer<CChar>?>) {
        for string in array { Glibc.free(string) }
        array.deallocate()
    }

    /// Makes the child `dup2` `source` onto `target` before anything else can fail, so that its
    /// messages reach the task's standard error. At most two.
    func redirect(_ source: Int32, to target: Int32) {
        precondition(redirectionCount < redirections.count, "at most two redirections")
        redirections[redirectionCount] = (source, target)
        redirectionCount += 1
    }

    /// Opens the `cgroup.procs` files for the child to write, taking those that `previous` (the
    /// last task's child of this supervisor) has open for the same paths.
    ///
    /// A supervisor that serves one task after another mostly gets the same cgroups again: the
    /// launcher and the spawner both hand out the cgroup and the supervisor that came free last.
    /// Opening a `cgroup.procs` file walks its whole path through the cgroup file system, which
    /// for the four files of a task cost more than writing them. A file that cannot be opened
    /// here is opened by the child, which then says why it cannot be joined.
    func openJoins(keepingFrom previous: PreparedChild?) {
        for index in joins.indices {
            if let previous, index < previous.joins.count, !previous.joinedByPath,
                previous.joins[index].descriptor >= 0, strcmp(previous.joins[index].path, joins[index].path) == 0
            {
                joins[index].descriptor = previous.joins[index].descriptor
                previous.joins[index].descriptor = -1
            } else {
                joins[index].descriptor = open(joins[index].path, O_WRONLY | O_CLOEXEC)
            }
        }
    }

    /// The child's side of ``ChildProcess/start(_:)``: only async-signal-safe calls.
    func run() -> Never {
        // Every signal at its default action, as for a new program: only those changed here
        // need it (the mask is set last, below).
        SignalDispositions.reset(SignalDispositions.changed)
        if newProcessGroup, setpgid(0, 0) != 0 { fail() }
        for (source, target) in redirections[0..<redirectionCount] {
            // dup2 onto itself would keep the close-on-exec flag.
            let result = source == target ? fcntl(source, F_SETFD, 0) : dup2(source, target)
            if result < 0 { fail() }
        }
        for join in joins {
            if join.descriptor >= 0 {
                var zero = UInt8(ascii: "0")
                if write(join.descriptor, &zero, 1) == 1 { continue }
                joinedByPath = true
            }
            if !joinCgroup(join.path) {
                writeJoinFailure(join, code: errno)
                _exit(127)
            }
        }
        sigprocmask(SIG_SETMASK, emptyMask, nil)
        execve(executable, argv.baseAddress!, environment?.baseAddress ?? environ)
        fail()
    }

    /// Writes `0` (this process) into the `cgroup.procs` file at `path`; `false` with `errno`
    /// set if that fails.
    private func joinCgroup(_ path: UnsafePointer<CChar>) -> Bool {
        let descriptor = open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        var zero = UInt8(ascii: "0")
        let written = write(descriptor, &zero, 1)
        let code = errno
        close(descriptor)
        errno = code
        return written == 1
    }

    /// `keel-task-supervisor: cannot join cgroup 'FILE': REASON` and a newline, in one write.
    private func writeJoinFailure(_ join: Join, code: Int32) {
        var length = 0
        append(UnsafeRawPointer(join.messagePrefix), count: join.messagePrefixLength, at: &length)
        if let description = errorDescription(code) {
            append(UnsafeRawPointer(description), count: Int.max, at: &length)
        } else {
            let unknown: StaticString = "unknown error"
            append(UnsafeRawPointer(unknown.utf8Start), count: unknown.utf8CodeUnitCount, at: &length)
        }
        message[length] = UInt8(ascii: "\n")
        length += 1
        _ = write(STDERR_FILENO, message.baseAddress!, length)
    }

    /// Copies up to `count` bytes of the NUL-terminated `text` to `message` at `length`,
    /// leaving room for a newline.
    private func append(_ text: UnsafeRawPointer, count: Int, at length: inout Int) {
        let bytes = text.assumingMemoryBound(to: UInt8.self)
        var index = 0
        while index < count, bytes[index] != 0, length < message.count - 1 {
            message[length] = bytes[index]
            length += 1
            index += 1
        }
    }

    /// Leaves `errno` for the parent and ends the child.
    private func fail() -> Never {
        failure = errno == 0 ? EIO : errno
        _exit(127)
    }
}
