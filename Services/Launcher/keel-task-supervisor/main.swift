// keel-task-supervisor [OPTIONS] EXIT_STATUS_FILE EXECUTABLE ARGV0 [ARG...]
//
// The parent of one task process, started by keel-launcher as the leader of the task's session
// and process group. It starts EXECUTABLE with ARGV0 ARG... (same environment and working
// directory, every signal at its default action), waits for it, and writes how it ended to
// EXIT_STATUS_FILE (see ExitStatusFile): `exited CODE` or `signaled SIGNAL [core]`. It exits with the
// task's code (128 + N for a signal).
//
// It exists so that tasks outlive the launcher: when keel-launcher is killed or restarted, the
// task keeps its parent, the supervisor still collects its true exit status, and the next
// launcher reads the file (see TaskProcess in LauncherCore). It ignores SIGTERM, SIGINT,
// SIGHUP and SIGQUIT, which the launcher sends to the whole group to stop the task, so that it
// survives to record the outcome (as the init of the task's PID namespace it forwards them to
// the task instead); SIGKILL to the group ends it together with the task.
// It links nothing but the Swift runtime and the C library, statically (see Package.swift): one
// starts per task, and a static binary starts in a fraction of a dynamic one's time. It is
// single-threaded, which is what lets it fork without exec (see Spawner and NamespaceInit).
//
// Options:
//   --pid-namespace    run the task in new PID and mount namespaces, with the supervisor as
//                      their init: it mounts a private /proc, reaps orphans and forwards
//                      signals (see NamespaceInit); the task then sees only its own processes.
//   --join-cgroup PROCS_FILE
//                      (repeatable) the task moves itself into the cgroup of this cgroup.procs
//                      file (v1 or v2) between fork and exec, so it is inside before its program
//                      runs; the supervisor stays outside, so a cgroup kill cannot end it before
//                      it has written the status. If a cgroup cannot be joined the task exits
//                      with 127 and says why on its standard error (see ChildProcess.start).
//   --stdout PATH --stderr PATH --log-max-size BYTES --log-max-files COUNT
//                      read the task's output through pipes and write it to PATH, rotated
//                      like logrotate (PATH.1 … PATH.<COUNT-1>) before a file would pass BYTES
//                      (see RotatingFile). Without them the task writes to the supervisor's own
//                      standard output and error.
//
//   --reuse-key KEY    (with --pid-namespace, forked by the spawner only) after the task, serve
//                      later tasks with the same key in the same namespaces (see TaskReuse).
//
// It also runs as `--namespace-check`, the task that keel-launcher runs at start to check that
// PID namespaces work, and as `--spawner`, which starts supervisors by fork on keel-launcher's
// requests instead of keel-launcher executing this program once per task (see Spawner).
@preconcurrency import Glibc

func fail(_ message: String) -> Never {
    fputs("keel-task-supervisor: \(message)\n", stderr)
    exit(127)
}

/// Fails before the task could be started or waited for: records exit code 127 for the task,
/// then says why.
func giveUp(_ options: SupervisorOptions, _ message: String) -> Never {
    _ = ExitStatusFile.write("exited 127\n", to: options.exitStatusFile)
    fail(message)
}

switch SupervisorMode.parse(Array(CommandLine.arguments.dropFirst())) {
case .failure(let error):
    fail(error.message)
case .success(.namespaceCheck):
    NamespaceInit.check()
case .success(.spawner):
    Spawner.run()
case .success(.supervise(var options)):
    // Whatever the parent left ignored, the task must not inherit (see SignalDispositions).
    SignalDispositions.resetAll()
    // Only a supervisor forked by the spawner serves more than one task (see TaskReuse).
    options.reuseKey = nil
    supervise(SupervisorPlan(options, environment: nil))
}

/// Runs the task of `plan` to its end, records how it ended and exits with the task's code;
/// a supervisor that may serve more tasks (see ``TaskReuse``) runs them the same way first.
///
/// A supervisor forked by the spawner runs this on a plan the spawner made, and must not
/// allocate on its way to its first task (see ``SupervisorPlan``): whatever it needs is made
/// before, and strings are built only on the paths that give up.
func supervise(_ plan: SupervisorPlan) -> Never {
    let options = plan.options
    if options.pidNamespace, !NamespaceInit.isInit {
        ignoreStoppingSignals(true)
        SignalDispositions.set(SIGPIPE, ignored: true)
        NamespaceInit.superviseInNewPIDNamespace(plan, supervise: supervise)
    }
    let isInit = options.pidNamespace
    // Blocks what the loop takes through its signalfd first, so nothing sent from here on is lost.
    guard var loop = SupervisionLoop(isInit: isInit) else {
        giveUp(options, "cannot create a signalfd: \(String(cString: strerror(errno)))")
    }
    // Outside a namespace the stopping signals, sent to the whole group, reach the task
    // directly, and the supervisor ignores them to survive and record the outcome. As init it
    // takes them (blocked) and forwards them: ignored ones would be discarded.
    ignoreStoppingSignals(!isInit)
    SignalDispositions.set(SIGPIPE, ignored: true)
    if isInit, let problem = NamespaceInit.becomeInit() { giveUp(options, problem) }
    // Made after the namespace is set up: it remembers the mount table the next task must find.
    var reuse = TaskReuse(options)
    var current = plan
    // The last task's child, whose open cgroup.procs files the next may take (see PreparedChild).
    var previous: PreparedChild?
    while true {
        let status = run(current, after: previous, loop: &loop)
        previous = current.child
        if !ExitStatusFile.write(status, to: current.exitStatusFile) {
            fputs(
                "keel-task-supervisor: cannot write '\(current.options.exitStatusFile)': \(String(cString: strerror(errno)))\n",
                stderr)
        }
        guard let next = reuse?.next(loop: &loop) else {
            // Nothing is buffered (messages go to stderr unbuffered), so no exit handlers need to run.
            _exit(status.exitCode)
        }
        current = next
    }
}

/// Runs the task of `plan` to its end through `loop` and returns how it ended; `previous` is the
/// child of this supervisor's last task, if any.
private func run(_ plan: SupervisorPlan, after previous: PreparedChild?, loop: inout SupervisionLoop) -> WaitStatus {
    let options = plan.options
    loop.removeStreams()
    // The child's ends, closed here once it runs.
    var childEnds: (Int32, Int32) = (-1, -1)
    if let output = options.output {
        guard let stdoutPipe = ChildProcess.makePipe(), let stderrPipe = ChildProcess.makePipe() else {
            giveUp(options, "cannot create the output pipes: \(String(cString: strerror(errno)))")
        }
        plan.child.redirect(stdoutPipe.write, to: STDOUT_FILENO)
        plan.child.redirect(stderrPipe.write, to: STDERR_FILENO)
        childEnds = (stdoutPipe.write, stderrPipe.write)
        loop.copy(
            stdoutPipe.read,
            to: RotatingFile(
                path: output.stdoutPath, maxSize: output.maxSize, maxFiles: output.maxFiles, descriptor: STDOUT_FILENO))
        loop.copy(
            stderrPipe.read,
            to: RotatingFile(
                path: output.stderrPath, maxSize: output.maxSize, maxFiles: output.maxFiles, descriptor: STDERR_FILENO))
    }

    plan.child.openJoins(keepingFrom: previous)
    let child: pid_t
    switch ChildProcess.start(plan.child) {
    case .success(let pid): child = pid
    case .failure(let error): giveUp(options, "cannot start '\(options.executable)': \(error.text)")
    }
    if childEnds.0 >= 0 {
        close(childEnds.0)
        close(childEnds.1)
    }

    guard let raw = loop.run(until: child) else {
        giveUp(options, "cannot wait for the task (pid \(child)): \(String(cString: strerror(errno)))")
    }
    return WaitStatus(raw: raw)
}

/// Ignores the signals that stop tasks (keel-launcher sends them to the supervisor's process
/// group), or puts them back to their default action.
func ignoreStoppingSignals(_ ignored: Bool) {
    SignalDispositions.set(SIGTERM, ignored: ignored)
    SignalDispositions.set(SIGINT, ignored: ignored)
    SignalDispositions.set(SIGHUP, ignored: ignored)
    SignalDispositions.set(SIGQUIT, ignored: ignored)
}
