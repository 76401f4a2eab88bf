@preconcurrency import Glibc

/// A thin, synchronous wrapper around `posix_spawn` that starts a process as the leader of a
/// new session (and so of a new process group whose ID equals its pid).
///
/// The child gets: an empty signal mask and every signal reset to its default action (the
/// launcher's own handlers and ignored signals do not leak into tasks); stdin from `/dev/null`;
/// stdout/stderr opened for append on the given files; every other descriptor closed; and the
/// working directory changed last, just before `execve`. glibc's `posix_spawn` uses
/// `clone(CLONE_VM | CLONE_VFORK)`, so it is cheap and reports `execve` errors synchronously.
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

    /// glibc's `POSIX_SPAWN_SETSID` (since 2.26). It is declared only under `_GNU_SOURCE`,
    /// which Swift's Glibc module does not define, so its ABI-stable value is repeated here.
    private static let setSessionFlag: Int32 = 0x80

    private typealias AddChdir =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
    private typealias AddClosefrom =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    /// Spawns the process and returns its pid (= process group ID = session ID).
    ///
    /// Failures are ``LauncherError/Code/launchFailed`` with a ``SystemCallError`` cause.
    static func spawn(_ request: Request) throws(LauncherError) -> pid_t {
        // Both are glibc extensions (2.29 and 2.34) hidden behind _GNU_SOURCE, like the flag.
        guard let addChdir = glibcFunction("posix_spawn_file_actions_addchdir_np", as: AddChdir.self),
            let addClosefrom = glibcFunction("posix_spawn_file_actions_addclosefrom_np", as: AddClosefrom.self)
        else {
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
        let flags = Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF) | setSessionFlag
        try check("posix_spawnattr_setsigmask", posix_spawnattr_setsigmask(&attributes, &noSignals), request)
        try check("posix_spawnattr_setsigdefault", posix_spawnattr_setsigdefault(&attributes, &allSignals), request)
        try check("posix_spawnattr_setflags", posix_spawnattr_setflags(&attributes, Int16(flags)), request)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // No O_CLOEXEC: if the open lands directly on the target descriptor (because it was
        // closed in the launcher), glibc skips the dup2 and the flag would survive into exec.
        let outputFlags = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW
        try check(
            "posix_spawn_file_actions_addopen",
            posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0), request)
        try check(
            "posix_spawn_file_actions_addopen",
            posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, request.stdoutPath, outputFlags, 0o644),
            request)
        try check(
            "posix_spawn_file_actions_addopen",
            posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, request.stderrPath, outputFlags, 0o644),
            request)
        try check("posix_spawn_file_actions_addclosefrom_np", addClosefrom(&actions, STDERR_FILENO + 1), request)
        try check("posix_spawn_file_actions_addchdir_np", addChdir(&actions, request.workingDirectory), request)

        var pid: pid_t = 0
        let status = withCStringArray(request.arguments) { argv in
            withCStringArray(request.environment) { envp in
                posix_spawn(&pid, request.executable, &actions, &attributes, argv, envp)
            }
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

    private static func check(_ call: String, _ status: Int32, _ request: Request) throws(LauncherError) {
        guard status == 0 else {
            throw LauncherError.system(
                call, errno: status, message: "cannot prepare to launch '\(request.command)'", fallback: .launchFailed)
        }
    }

    /// Looks a C function up in the already-loaded libraries (libc is always among them).
    private static func glibcFunction<Function>(_ name: String, as type: Function.Type) -> Function? {
        guard let handle = dlopen(nil, RTLD_NOW) else { return nil }
        defer { dlclose(handle) }
        guard let symbol = dlsym(handle, name) else { return nil }
        return unsafeBitCast(symbol, to: type)
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
