@preconcurrency import Glibc

/// Starts an exec'd command with pipes for its standard input, output and error.
///
/// Like ``ProcessSpawner`` (new session and process group, empty signal mask, default signal
/// actions, every other descriptor closed, working directory entered just before `execve`),
/// but the standard descriptors are the child ends of three pipes instead of files, so the
/// launcher can stream them to an operator.
enum ExecSpawner {
    /// The launcher's ends of the pipes of a spawned command.
    struct Pipes: Sendable {
        /// Write end of the command's standard input.
        var stdin: Int32
        /// Read end of the command's standard output.
        var stdout: Int32
        /// Read end of the command's standard error.
        var stderr: Int32
    }

    /// glibc's `POSIX_SPAWN_SETSID`, as in ``ProcessSpawner``.
    private static let setSessionFlag: Int32 = 0x80

    private typealias AddChdir =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
    private typealias AddClosefrom =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32

    /// Spawns `executable` with `arguments` and `environment` in `workingDirectory`; returns its
    /// pid (= process group ID) and the launcher's ends of its pipes (close-on-exec).
    static func spawn(
        executable: String, arguments: [String], environment: [String], workingDirectory: String, command: String
    ) throws(LauncherError) -> (pid: pid_t, pipes: Pipes) {
        guard let addChdir = glibcFunction("posix_spawn_file_actions_addchdir_np", as: AddChdir.self),
            let addClosefrom = glibcFunction("posix_spawn_file_actions_addclosefrom_np", as: AddClosefrom.self),
            // Hidden behind _GNU_SOURCE too; close-on-exec from the start keeps other spawns from inheriting them.
            let pipe2 = glibcFunction("pipe2", as: Pipe2.self)
        else {
            throw LauncherError(
                code: .launchFailed, message: "this C library lacks pipe2 or posix_spawn_file_actions_addchdir_np/addclosefrom_np")
        }
        var input: [Int32] = [-1, -1]
        var output: [Int32] = [-1, -1]
        var errors: [Int32] = [-1, -1]
        var opened: [Int32] = []
        defer {
            // The child's ends always close here; the launcher's ends only on failure (below).
            for fd in [input[0], output[1], errors[1]] where fd >= 0 { close(fd) }
        }
        for index in 0..<3 {
            var pair: [Int32] = [-1, -1]
            guard pipe2(&pair, O_CLOEXEC) == 0 else {
                let code = errno
                for fd in opened { close(fd) }
                throw LauncherError.system("pipe2", errno: code, message: "cannot make pipes for '\(command)'", fallback: .launchFailed)
            }
            opened += pair
            switch index {
            case 0: input = pair
            case 1: output = pair
            default: errors = pair
            }
        }
        let launcherEnds = [input[1], output[0], errors[0]]

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(
            &attributes, Int16(Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF) | setSessionFlag))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 onto 0, 1, 2 clears close-on-exec there; the originals close with closefrom.
        posix_spawn_file_actions_adddup2(&actions, input[0], STDIN_FILENO)
        posix_spawn_file_actions_adddup2(&actions, output[1], STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, errors[1], STDERR_FILENO)
        _ = addClosefrom(&actions, STDERR_FILENO + 1)
        _ = addChdir(&actions, workingDirectory)

        var pid: pid_t = 0
        let status = withCStringArray(arguments) { argv in
            withCStringArray(environment) { envp in
                posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
            }
        }
        guard status == 0 else {
            for fd in launcherEnds { close(fd) }
            let cause = SystemCallError(call: "posix_spawn", errno: status)
            throw LauncherError(
                code: .launchFailed,
                message: "cannot run '\(command)' (executable '\(executable)'): \(cause.errnoText)",
                cause: cause)
        }
        return (pid, Pipes(stdin: input[1], stdout: output[0], stderr: errors[0]))
    }

    /// Looks a C function up in the already-loaded libraries.
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
            for pointer in pointers { free(pointer) }
        }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
