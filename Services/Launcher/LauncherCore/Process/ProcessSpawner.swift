@preconcurrency import Glibc

/// A thin, synchronous wrapper around `posix_spawn` that starts a process as the leader of a
/// new session (and so of a new process group whose ID equals its pid).
///
/// The child gets: an empty signal mask and every signal reset to its default action (the
/// launcher's own handlers and ignored signals do not leak into tasks); stdin from `/dev/null`;
/// stdout/stderr opened for append on the given files; every other descriptor closed; and the
/// working directory changed last, just before `execve`. glibc's `posix_spawn` uses
/// `clone(CLONE_VM | CLONE_VFORK)`, so it is cheap and reports `execve` errors synchronously.
/// ``spawnSession(executable:arguments:environment:workingDirectory:command:standardStreams:)``
/// is the part shared with ``ExecSpawner``, which connects the standard streams to pipes.
enum ProcessSpawner {
    /// The inputs of one spawn; all paths absolute except possibly `executable` (see
    /// ``ExecutableLookup``).
    struct Request {
        var command: TaskCommand
        var executable: String
        var arguments: [String]
        var environment: [String]
        var workingDirectory: String
        var stdoutPath: String
        var stderrPath: String
    }

    /// Spawns the process and returns its pid (= process group ID = session ID).
    ///
    /// Failures are ``LauncherError/Code/launchFailed`` with a ``SystemCallError`` cause.
    static func spawn(_ request: Request) throws(LauncherError) -> pid_t {
        let command = "\(request.command)"
        let (pid, status) = try spawnSession(
            executable: request.executable, arguments: request.arguments, environment: request.environment,
            workingDirectory: request.workingDirectory, command: command
        ) { (actions) throws(LauncherError) in
            // No O_CLOEXEC: if the open lands directly on the target descriptor (because it was
            // closed in the launcher), glibc skips the dup2 and the flag would survive into exec.
            let outputFlags = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW
            try check(
                "posix_spawn_file_actions_addopen",
                posix_spawn_file_actions_addopen(actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0), command)
            try check(
                "posix_spawn_file_actions_addopen",
                posix_spawn_file_actions_addopen(actions, STDOUT_FILENO, request.stdoutPath, outputFlags, 0o644),
                command)
            try check(
                "posix_spawn_file_actions_addopen",
                posix_spawn_file_actions_addopen(actions, STDERR_FILENO, request.stderrPath, outputFlags, 0o644),
                command)
        }
        guard status == 0 else {
            let cause = SystemCallError(call: "posix_spawn", errno: status)
            throw LauncherError(
                code: .launchFailed,
                message: "cannot launch '\(request.command)' (executable '\(request.executable)'): "
                    + "\(cause.errnoText); check the executable, the working directory "
                    + "'\(request.workingDirectory)' and the output files '\(request.stdoutPath)', "
                    + "'\(request.stderrPath)'",
                cause: cause
            )
        }
        return pid
    }

    /// Spawns `executable` as the leader of a new session with every signal at its default
    /// action, an empty signal mask, the descriptors that `standardStreams` sets up as 0, 1
    /// and 2, every other descriptor closed, and `workingDirectory` entered just before
    /// `execve`. Returns the pid and `posix_spawn`'s status (0, or the errno of the failure).
    ///
    /// With `keepDescriptor`, its source is also passed on as its target (3 or above), which
    /// then stays open too.
    ///
    /// - Throws: ``LauncherError/Code/launchFailed`` when the spawn cannot even be prepared
    ///   (`command` names it in the message).
    static func spawnSession(
        executable: String, arguments: [String], environment: [String], workingDirectory: String, command: String,
        keepDescriptor: (source: Int32, target: Int32)? = nil,
        standardStreams: (UnsafeMutablePointer<posix_spawn_file_actions_t>) throws(LauncherError) -> Void
    ) throws(LauncherError) -> (pid: pid_t, status: Int32) {
        guard let extensions = GNUSpawnExtensions.shared else {
            throw LauncherError(
                code: .launchFailed,
                message: "this C library lacks posix_spawn_file_actions_addchdir_np/addclosefrom_np; "
                    + "the launcher needs glibc 2.34 or newer"
            )
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        let flags = Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF) | GNUSpawnExtensions.setSessionFlag
        try check("posix_spawnattr_setsigmask", posix_spawnattr_setsigmask(&attributes, &noSignals), command)
        try check("posix_spawnattr_setsigdefault", posix_spawnattr_setsigdefault(&attributes, &allSignals), command)
        try check("posix_spawnattr_setflags", posix_spawnattr_setflags(&attributes, Int16(flags)), command)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        try standardStreams(&actions)
        var lowestClosed = STDERR_FILENO + 1
        if let keepDescriptor {
            try check(
                "posix_spawn_file_actions_adddup2",
                posix_spawn_file_actions_adddup2(&actions, keepDescriptor.source, keepDescriptor.target), command)
            lowestClosed = keepDescriptor.target + 1
        }
        try check(
            "posix_spawn_file_actions_addclosefrom_np", extensions.addClosefrom(&actions, lowestClosed), command)
        try check("posix_spawn_file_actions_addchdir_np", extensions.addChdir(&actions, workingDirectory), command)

        var pid: pid_t = 0
        let status = withCStringArray(arguments) { argv in
            withCStringArray(environment) { envp in
                posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
            }
        }
        return (pid, status)
    }

    static func check(_ call: String, _ status: Int32, _ command: String) throws(LauncherError) {
        guard status == 0 else {
            throw LauncherError.system(
                call, errno: status, message: "cannot prepare to launch '\(command)'", fallback: .launchFailed)
        }
    }

    /// Calls `body` with a NULL-terminated `char *[]` copy of `strings`.
    private static func withCStringArray<Result>(
        _ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> Result
    ) -> Result {
        let pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
        defer {
            for pointer in pointers {
                free(pointer)
            }
        }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// The glibc extensions the spawns need, declared only under `_GNU_SOURCE`, which Swift's Glibc
/// module does not define: looked up once in the loaded C library.
struct GNUSpawnExtensions: Sendable {
    typealias AddChdir =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
    typealias AddClosefrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
    typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32

    /// glibc's `POSIX_SPAWN_SETSID` (since 2.26), an ABI-stable value.
    static let setSessionFlag: Int32 = 0x80

    /// `posix_spawn_file_actions_addchdir_np` (glibc 2.29).
    let addChdir: AddChdir
    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34).
    let addClosefrom: AddClosefrom
    /// `pipe2`, if present.
    let pipe2: Pipe2?

    /// The extensions of this process's C library, or nil if it lacks the spawn ones.
    static let shared: GNUSpawnExtensions? = {
        guard let handle = dlopen(nil, RTLD_NOW) else { return nil }
        defer { dlclose(handle) }
        func lookUp<Function>(_ name: String, as type: Function.Type) -> Function? {
            dlsym(handle, name).map { unsafeBitCast($0, to: type) }
        }
        guard let addChdir = lookUp("posix_spawn_file_actions_addchdir_np", as: AddChdir.self),
            let addClosefrom = lookUp("posix_spawn_file_actions_addclosefrom_np", as: AddClosefrom.self)
        else { return nil }
        return GNUSpawnExtensions(addChdir: addChdir, addClosefrom: addClosefrom, pipe2: lookUp("pipe2", as: Pipe2.self))
    }()
}
