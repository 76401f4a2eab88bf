@preconcurrency import Glibc

/// Finds the file `posix_spawn` should execute, before spawning, so a bad program name gives a
/// precise error even when the command is wrapped (e.g. by `setpriv` to switch users, where a
/// failed `execve` would only show up as exit code 126/127).
enum ExecutableLookup {
    /// Resolves `program` (argv[0]) to a path.
    ///
    /// - A name containing `/` is used as is; if relative, it is taken relative to
    ///   `workingDirectory`, which is where the child is when it calls `execve`.
    /// - A bare name is searched in `searchPath` (colon-separated; empty entries mean `.`).
    ///
    /// Throws ``LauncherError/Code/launchFailed`` naming the command and the `errno` text
    /// (`ENOENT` when nothing was found, `EACCES` when only non-executable files were).
    static func resolve(
        _ program: String, searchPath: String, workingDirectory: String, command: TaskCommand
    ) throws(LauncherError) -> String {
        if program.contains("/") {
            let candidate = program.hasPrefix("/") ? program : workingDirectory + "/" + program
            let status = check(candidate)
            guard status == 0 else {
                throw failure(command: command, program: program, errno: status)
            }
            return program
        }
        var sawPermissionDenied = false
        for directory in searchPath.split(separator: ":", omittingEmptySubsequences: false) {
            let base = directory.isEmpty ? "." : String(directory)
            let absoluteBase = base.hasPrefix("/") ? base : workingDirectory + "/" + base
            let status = check(absoluteBase + "/" + program)
            if status == 0 {
                return absoluteBase + "/" + program
            }
            if status == EACCES {
                sawPermissionDenied = true
            }
        }
        throw failure(command: command, program: program, errno: sawPermissionDenied ? EACCES : ENOENT)
    }

    /// 0 if `path` is an executable regular file, else the `errno` `execve` would report.
    private static func check(_ path: String) -> Int32 {
        var info = Glibc.stat()
        guard stat(path, &info) == 0 else { return errno }
        guard info.st_mode & S_IFMT == S_IFREG else { return EACCES }
        guard access(path, X_OK) == 0 else { return errno }
        // As root, access(X_OK) succeeds when any execute bit is set; with none set, execve fails.
        guard info.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH) != 0 else { return EACCES }
        return 0
    }

    /// The launch error for `program` failing with `errno`.
    static func failure(command: TaskCommand, program: String, errno: Int32) -> LauncherError {
        let cause = SystemCallError(call: "execve", errno: errno)
        return LauncherError(
            code: .launchFailed,
            message: "cannot launch '\(command)': executable '\(program)': \(cause.errnoText); "
                + "check that the program exists, is executable, and is on the task's PATH",
            cause: cause
        )
    }
}
