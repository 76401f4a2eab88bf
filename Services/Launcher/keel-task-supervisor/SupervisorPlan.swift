@preconcurrency import Glibc

/// What a supervisor does for its task, made ready before it runs: the task's program in C
/// memory (``PreparedChild``) and the exit-status file's path as a C string.
///
/// The spawner makes the plan before it forks the supervisor, so the forked supervisor starts,
/// waits for and records its task without allocating or converting strings: every page it
/// writes, and every page of code it runs, costs it a page fault of its own (fork copies the
/// page tables of neither), and every one it maps costs its exit the unmapping.
final class SupervisorPlan {
    let options: SupervisorOptions
    let child: PreparedChild
    let exitStatusFile: UnsafeMutablePointer<CChar>

    /// The plan of `options`; the task gets `environment` (`NAME=value` entries), or this
    /// process's own environment when it is `nil`.
    init(_ options: SupervisorOptions, environment: [String]?) {
        self.options = options
        // As init, the task leads a process group of its own, which the forwarded signals go to.
        child = PreparedChild(
            executable: options.executable, arguments: options.arguments,
            setup: ChildSetup(
                environment: environment, newProcessGroup: options.pidNamespace,
                cgroupProcsFiles: options.cgroupProcsFiles))
        exitStatusFile = strdup(options.exitStatusFile)
    }

    deinit {
        free(exitStatusFile)
    }
}
