/// What a task runs: an argument vector executed directly, or a shell command line.
package enum TaskCommand: Sendable, Hashable, CustomStringConvertible {
    /// Executes `argv[0]` directly with `argv` as its arguments. `argv` must be non-empty.
    /// A name without `/` is searched in the task environment's `PATH` (or
    /// ``TaskLaunchSpec/defaultSearchPath`` when it has none); a relative path with `/` is
    /// relative to the working directory.
    case argv([String])
    /// Runs the string with `/bin/sh -c`, so quoting, pipes and redirections work.
    case shell(String)

    /// The argument vector actually executed (`["/bin/sh", "-c", cmd]` for ``shell(_:)``).
    package var arguments: [String] {
        switch self {
        case .argv(let argv): argv
        case .shell(let command): ["/bin/sh", "-c", command]
        }
    }

    /// A short human-readable form for logs and error messages.
    package var description: String {
        switch self {
        case .argv(let argv): argv.joined(separator: " ")
        case .shell(let command): "sh -c '\(command)'"
        }
    }
}

/// Everything needed to start a task's process; pass it to ``TaskProcess/launch(_:logger:)``.
///
/// The child gets exactly ``environment`` (nothing is inherited from the launcher), its
/// standard input from `/dev/null`, and its standard output/error appended to the given files.
package struct TaskLaunchSpec: Sendable, Hashable {
    /// The search path used for ``TaskCommand/argv(_:)`` when ``environment`` has no `PATH`.
    package static let defaultSearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The program to run.
    package var command: TaskCommand
    /// The complete environment of the child. Keys must be non-empty and contain no `=` or NUL.
    package var environment: [String: String]
    /// The child's working directory; must exist. Normally the sandbox root.
    package var workingDirectory: String
    /// Absolute path of the file standard output is appended to (created 0644 if missing).
    package var stdoutPath: String
    /// Absolute path of the file standard error is appended to (created 0644 if missing).
    package var stderrPath: String
    /// The account to run as, or `nil` to run as the launcher's own user.
    ///
    /// Switching users requires the launcher to run as root. `posix_spawn` cannot change
    /// credentials, so the command is executed through util-linux `setpriv` (`--reuid`,
    /// `--regid`, `--init-groups`, every capability set and the bounding set cleared,
    /// `--no-new-privs`). The files are opened, and the working directory entered,
    /// before the switch; give the sandbox to the user with ``TaskSandbox/setOwner(_:)`` so the
    /// task can write in it.
    package var user: String?

    /// Creates a spec with explicit paths.
    package init(
        command: TaskCommand,
        environment: [String: String] = [:],
        workingDirectory: String,
        stdoutPath: String,
        stderrPath: String,
        user: String? = nil
    ) {
        self.command = command
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
        self.user = user
    }

    /// Creates a spec that runs in `sandbox`, writing to its `stdout` and `stderr` files.
    package init(command: TaskCommand, environment: [String: String] = [:], sandbox: TaskSandbox, user: String? = nil) {
        self.init(
            command: command,
            environment: environment,
            workingDirectory: sandbox.root,
            stdoutPath: sandbox.stdoutPath,
            stderrPath: sandbox.stderrPath,
            user: user
        )
    }

    /// Checks the parts that need no system calls: non-empty argv, sane environment keys and
    /// values, absolute output paths.
    func validate() throws(LauncherError) {
        if case .argv(let argv) = command, argv.first?.isEmpty ?? true {
            throw LauncherError(
                code: .invalidArgument,
                message: "the task's argv is empty or starts with an empty program name; pass at least the program"
            )
        }
        if command.arguments.contains(where: { $0.utf8.contains(0) }) {
            throw LauncherError(code: .invalidArgument, message: "an argument of '\(command)' contains a NUL byte")
        }
        for (key, value) in environment {
            guard !key.isEmpty, !key.contains("="), !key.utf8.contains(0), !value.utf8.contains(0) else {
                throw LauncherError(
                    code: .invalidArgument,
                    message: "environment variable '\(key)' is invalid; names must be non-empty without '=' "
                        + "or NUL, and values must not contain NUL"
                )
            }
        }
        for path in [stdoutPath, stderrPath] where !path.hasPrefix("/") {
            throw LauncherError(
                code: .invalidArgument,
                message: "output path '\(path)' is not absolute; pass the sandbox's stdout/stderr paths"
            )
        }
    }
}
