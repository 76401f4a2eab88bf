@preconcurrency import Glibc

/// Starts an exec'd command with pipes for its standard input, output and error.
///
/// It spawns like ``ProcessSpawner`` and through its shared part (new session and process
/// group, empty signal mask, default signal actions, every other descriptor closed, working
/// directory entered just before `execve`), but the standard descriptors are the child ends of
/// three pipes instead of files, so the launcher can stream them to an operator.
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

    /// Spawns `executable` with `arguments` and `environment` in `workingDirectory`; returns its
    /// pid (= process group ID) and the launcher's ends of its pipes (close-on-exec).
    static func spawn(
        executable: String, arguments: [String], environment: [String], workingDirectory: String, command: String
    ) throws(LauncherError) -> (pid: pid_t, pipes: Pipes) {
        // Close-on-exec from the start keeps other spawns from inheriting them.
        guard let pipe2 = GNUSpawnExtensions.shared?.pipe2 else {
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
        let (childInput, childOutput, childErrors) = (input[0], output[1], errors[1])
        let spawned: (pid: pid_t, status: Int32)
        do {
            spawned = try ProcessSpawner.spawnSession(
                executable: executable, arguments: arguments, environment: environment,
                workingDirectory: workingDirectory, command: command
            ) { actions in
                // dup2 onto 0, 1, 2 clears close-on-exec there; the originals close with closefrom.
                posix_spawn_file_actions_adddup2(actions, childInput, STDIN_FILENO)
                posix_spawn_file_actions_adddup2(actions, childOutput, STDOUT_FILENO)
                posix_spawn_file_actions_adddup2(actions, childErrors, STDERR_FILENO)
            }
        } catch {
            for fd in launcherEnds { close(fd) }
            throw error
        }
        guard spawned.status == 0 else {
            for fd in launcherEnds { close(fd) }
            let cause = SystemCallError(call: "posix_spawn", errno: spawned.status)
            throw LauncherError(
                code: .launchFailed,
                message: "cannot run '\(command)' (executable '\(executable)'): \(cause.errnoText)",
                cause: cause)
        }
        return (spawned.pid, Pipes(stdin: input[1], stdout: output[0], stderr: errors[0]))
    }
}
