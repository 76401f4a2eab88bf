@preconcurrency import Glibc

/// `pidfd_open(2)` (glibc 2.36), declared in `<sys/pidfd.h>`, which the Glibc module leaves out.
@_silgen_name("pidfd_open")
private func pidfdOpen(_ pid: pid_t, _ flags: UInt32) -> Int32

/// `closefrom(3)` (glibc 2.34), declared only under `_GNU_SOURCE`.
@_silgen_name("closefrom")
private func closeFrom(_ lowest: Int32)

/// `keel-task-supervisor --spawner`: starts supervisors by `fork` instead of `execve`.
///
/// keel-launcher starts one spawner and keeps a `SOCK_SEQPACKET` socket to it as descriptor 3.
/// Each request names one supervisor to start (its arguments, environment, working directory
/// and output files); the spawner forks, and the child sets itself up as `posix_spawn` would
/// have set up a freshly executed supervisor (a new session, every signal at its default
/// action, an empty mask, `/dev/null` and the output files as 0, 1 and 2, nothing else open,
/// the working directory) and then runs ``supervise(_:)``, exactly what the executed supervisor
/// runs, on a ``SupervisorPlan`` the spawner made before the fork (which also holds the task's
/// environment). What this saves is the `execve`: loading a static program, the C library's and
/// the Swift runtime's start-up, about a millisecond of CPU per task.
///
/// A supervisor whose task gets a PID namespace is forked straight into a new one, as its init
/// (see ``NamespaceInit``), which saves the separate init process an executed supervisor needs.
///
/// The spawner is single-threaded, so its forks may go on running Swift code. It replies with
/// the pid, the start time and a pidfd of the supervisor (opened before the spawner can reap
/// it, so it always names that process); keel-launcher watches the supervisor through the pidfd
/// and reads its exit-status file, as it does for supervisors of an earlier launcher. For a
/// supervisor that may serve later tasks the reply also carries keel-launcher's end of the task's
/// link: a socket pair whose other end the supervisor shuts down once the task's exit status is
/// written, which keel-launcher watches instead.
///
/// A request whose supervisor has a PID namespace and a reuse key (`--reuse-key`, keel-launcher's
/// framework and user) goes to an idle supervisor of that key if there is one (see
/// ``SupervisorPool`` and ``TaskReuse``): the spawner passes it the request with its end of the
/// link and waits for its answer, and forks a new supervisor only if there is none (or it is
/// gone). The spawner reaps its children. It exits when keel-launcher closes the socket; the
/// supervisors it started finish their tasks (they need no parent), and idle ones exit.
///
/// Request: NUL-terminated fields, `keel-spawn-1`, the working directory, the stdout and
/// stderr paths, the number of environment entries, the entries, then the supervisor's
/// arguments (without the program name). Reply: `Int32` 0 or the `errno` of the failure,
/// `Int32` pid, `UInt64` start time, with the pidfd (and the link, if any) attached
/// (`SCM_RIGHTS`) on success.
enum Spawner {
    static let magic = "keel-spawn-1"
    /// The descriptor keel-launcher passes the socket as.
    static let socket: Int32 = 3

    static func run() -> Never {
        SignalDispositions.resetAll()
        SignalDispositions.set(SIGPIPE, ignored: true)
        // SIGCHLD arrives through a descriptor, so ended supervisors are reaped at once.
        var childSignals = sigset_t()
        sigemptyset(&childSignals)
        sigaddset(&childSignals, SIGCHLD)
        sigprocmask(SIG_BLOCK, &childSignals, nil)
        // SFD_CLOEXEC and SFD_NONBLOCK are O_CLOEXEC and O_NONBLOCK.
        let childEnded = signalDescriptor(-1, &childSignals, O_CLOEXEC | O_NONBLOCK)
        NamespaceInit.openOwnPIDNamespace()
        SupervisorGlobals.prepare()
        // The request socket, the signals and the pool's own instance, which watches the control
        // sockets of reusable supervisors as they join (see EventPoll): the spawner can then
        // wait for those alone (see SupervisorPool.awaitIdle).
        guard let events = EventPoll(), let poolEvents = EventPoll(), events.watch(socket), events.watch(childEnded),
            events.watch(poolEvents.descriptor)
        else { exit(1) }
        SupervisorPool.events = poolEvents
        reapChildren()
        while true {
            var requestReady = false
            var childrenEnded = false
            // Every ready control socket is handled before the request, which may then go to a
            // supervisor that just became idle, and before the request's own sockets are made,
            // so that a descriptor closed here and made anew cannot take a stale event.
            let waited = events.wait(timeout: -1) { ready in
                switch ready {
                case socket: requestReady = true
                case childEnded: childrenEnded = true
                default: SupervisorPool.hearAll()
                }
            }
            guard waited else { exit(1) }
            if childrenEnded {
                // Drain the pending signals (struct signalfd_siginfo is 128 bytes), then reap.
                var info = [UInt8](repeating: 0, count: 128)
                while info.withUnsafeMutableBytes({ read(childEnded, $0.baseAddress, $0.count) }) > 0 {}
                reapChildren()
            }
            if !requestReady { continue }
            // Sized to the request, and freed before the next: whatever the spawner holds, each
            // fork copies (in page tables) and each supervisor's exit tears down.
            let size = recv(socket, nil, 0, Int32(MSG_PEEK | MSG_TRUNC))
            if size == 0 { exit(0) }
            if size < 0 {
                if errno == EINTR { continue }
                exit(1)
            }
            var request = [UInt8](repeating: 0, count: size)
            let count = request.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                exit(1)
            }
            var canGoOn = true
            let reply = start(request[0..<count], canGoOn: &canGoOn)
            send(reply)
            if reply.pidfd >= 0, !reply.keepsPidfd { close(reply.pidfd) }
            if reply.link >= 0 { close(reply.link) }
            if !canGoOn { exit(1) }
        }
    }

    private struct Reply {
        var error: Int32 = 0
        var pid: Int32 = 0
        var startTime: UInt64 = 0
        var pidfd: Int32 = -1
        /// keel-launcher's end of the task's link (see ``TaskReuse``).
        var link: Int32 = -1
        /// Whether the pool keeps `pidfd` for later replies.
        var keepsPidfd = false
    }

    private static func reapChildren() {
        var status: Int32 = 0
        while waitpid(-1, &status, WNOHANG) > 0 {}
    }

    /// Forks one supervisor for `request`; sets `canGoOn` to false if the spawner cannot fork
    /// any more (see ``NamespaceInit/forkIntoNewPIDNamespace()``).
    private static func start(_ request: ArraySlice<UInt8>, canGoOn: inout Bool) -> Reply {
        // A request that an idle supervisor can take goes to it unparsed: the supervisor parses
        // it itself (see TaskReuse), so only its reuse key and first cgroup are read here.
        if let target = SpawnRequest.reuseTarget(in: request),
            SupervisorPool.hasIdle(target.key) || SupervisorPool.awaitIdle(target.key),
            let reply = handOff(request, key: target.key, cgroup: target.cgroup)
        {
            return reply
        }
        // Everything the supervisor needs is made here, before the fork, and nothing else of the
        // request outlives this line (see SpawnRequest).
        guard let spawn = SpawnRequest(request) else { return Reply(error: EINVAL) }
        // A supervisor that may serve later tasks gets the task's link (its end and
        // keel-launcher's) and a control socket to this spawner (see TaskReuse); one that serves a
        // single task is watched through its pidfd, as before.
        var link: (launcher: Int32, supervisor: Int32) = (-1, -1)
        var control: (spawner: Int32, supervisor: Int32) = (-1, -1)
        func closeEnds() {
            for descriptor in [link.launcher, link.supervisor, control.spawner, control.supervisor] where descriptor >= 0 {
                close(descriptor)
            }
        }
        var key = spawn.plan.options.reuseKey
        // Out of descriptors (say), or out of room in the pool: a supervisor for this task only,
        // watched through its pidfd.
        func serveOneTaskOnly() {
            closeEnds()
            link = (-1, -1)
            control = (-1, -1)
            key = nil
        }
        // The pool is bounded: each member holds two of this process's descriptors.
        if key != nil, SupervisorPool.hasRoom, let linkPair = socketPair(SOCK_STREAM) {
            link = linkPair
            if let controlPair = socketPair(SOCK_SEQPACKET) { control = controlPair } else { serveOneTaskOnly() }
        } else {
            serveOneTaskOnly()
        }
        guard let report = ChildProcess.makePipe() else {
            let code = errno
            closeEnds()
            return Reply(error: code)
        }
        // With a PID namespace the supervisor is born as its init. If none can be created here,
        // a plain supervisor tries again itself, and says why it cannot.
        var pid: pid_t = -1
        var forkError: Int32 = 0
        var forked = false
        if spawn.plan.options.pidNamespace {
            let (outcome, returnedHome) = NamespaceInit.forkIntoNewPIDNamespace()
            canGoOn = returnedHome
            switch outcome {
            case .parent(let child): (pid, forked) = (child, true)
            case .child: (pid, forked) = (0, true)
            case .failed(let code): (forkError, forked) = (code, true)
            case .unavailable: break
            }
        }
        if !forked {
            pid = fork()
            forkError = errno
        }
        if pid == 0 {
            close(report.read)
            becomeSupervisor(spawn, report: report.write, link: link.supervisor, control: control.supervisor)
        }
        close(report.write)
        if link.supervisor >= 0 { close(link.supervisor) }
        if control.supervisor >= 0 { close(control.supervisor) }
        link.supervisor = -1
        control.supervisor = -1
        defer { close(report.read) }
        func fail(_ code: Int32) -> Reply {
            closeEnds()
            return Reply(error: code)
        }
        guard pid > 0 else { return fail(forkError) }
        var code: Int32 = 0
        var count: Int
        repeat {
            count = read(report.read, &code, MemoryLayout<Int32>.size)
        } while count < 0 && errno == EINTR
        if count == MemoryLayout<Int32>.size {
            _ = ChildProcess.waitBlocking(pid)
            return fail(code)
        }
        // Not reaped before this point, so the pidfd names this very process.
        let pidfd = pidfdOpen(pid, 0)
        guard pidfd >= 0 else {
            let code = errno
            kill(pid, SIGKILL)
            _ = ChildProcess.waitBlocking(pid)
            return fail(code)
        }
        let started = startTime(of: pid) ?? 0
        if let key {
            let member = SupervisorPool.Member(
                pid: pid, startTime: started, pidfd: pidfd, control: control.spawner, key: key,
                cgroup: spawn.plan.options.cgroupProcsFiles.first)
            if SupervisorPool.add(member) {
                return Reply(pid: pid, startTime: started, pidfd: pidfd, link: link.launcher, keepsPidfd: true)
            }
            // Not watched, it could never be heard: without the control socket the supervisor
            // exits after its task, as one outside the pool does.
            close(control.spawner)
            return Reply(pid: pid, startTime: started, pidfd: pidfd, link: link.launcher)
        }
        return Reply(pid: pid, startTime: started, pidfd: pidfd)
    }

    /// Hands `request` to an idle supervisor of `key` (the last one to start a task in `cgroup`,
    /// if it is idle) with a new link; the reply, or `nil` if a new supervisor must be started
    /// for it (the idle one is gone, or no link could be made).
    private static func handOff(_ request: ArraySlice<UInt8>, key: String, cgroup: String?) -> Reply? {
        guard let (launcherEnd, supervisorEnd) = socketPair(SOCK_STREAM) else { return nil }
        let link = (launcher: launcherEnd, supervisor: supervisorEnd)
        guard let idle = SupervisorPool.takeIdle(key, cgroup: cgroup) else {
            close(link.launcher)
            close(link.supervisor)
            return nil
        }
        let outcome = SupervisorPool.handOff(request, link: link.supervisor, to: idle)
        close(link.supervisor)
        switch outcome {
        case .started:
            return Reply(pid: idle.pid, startTime: idle.startTime, pidfd: idle.pidfd, link: link.launcher, keepsPidfd: true)
        case .failed(let code):
            close(link.launcher)
            return Reply(error: code)
        case .gone:
            close(link.launcher)
            return nil
        }
    }

    /// A pair of connected Unix sockets of `type`, close-on-exec: the first for keel-launcher
    /// (or the spawner), the second for the supervisor; `nil` if none could be made.
    private static func socketPair(_ type: __socket_type) -> (Int32, Int32)? {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else { return nil }
        return (pair[0], pair[1])
    }

    /// In the child: the set-up `posix_spawn` would do, then the supervisor itself. A failure
    /// of the set-up is reported as its `errno` over `report`; success closes it.
    private static func becomeSupervisor(_ spawn: SpawnRequest, report given: Int32, link: Int32, control: Int32) -> Never {
        // Above the descriptors the link and the control socket are put on.
        let moved = fcntl(given, F_DUPFD_CLOEXEC, 64)
        let report = moved >= 0 ? moved : given
        func fail(_ code: Int32) -> Never {
            var code = code
            _ = write(report, &code, MemoryLayout<Int32>.size)
            _exit(127)
        }
        guard setsid() >= 0 else { fail(errno) }
        SignalDispositions.resetChanged()
        var empty = sigset_t()
        sigemptyset(&empty)
        sigprocmask(SIG_SETMASK, &empty, nil)
        // The working directory first: the output files, which are in it, are then opened by
        // their names there instead of looking up every directory of their path again.
        guard chdir(spawn.workingDirectory) == 0 else { fail(errno) }
        let outputFlags = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC
        let input = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { fail(errno) }
        let output = open(spawn.stdoutPath, outputFlags, 0o644)
        guard output >= 0 else { fail(errno) }
        let errors = open(spawn.stderrPath, outputFlags, 0o644)
        guard errors >= 0 else { fail(errno) }
        // dup2 clears close-on-exec on the targets; the sources go with closefrom below.
        guard dup2(input, STDIN_FILENO) >= 0, dup2(output, STDOUT_FILENO) >= 0, dup2(errors, STDERR_FILENO) >= 0
        else { fail(errno) }
        // A reusable supervisor's link and control socket as TaskReuse.link and .control, by way
        // of descriptors above both, so that neither overwrites the other.
        let reusable = link >= 0 && control >= 0
        if reusable {
            let linkCopy = fcntl(link, F_DUPFD_CLOEXEC, 64)
            let controlCopy = fcntl(control, F_DUPFD_CLOEXEC, 64)
            guard linkCopy >= 0, controlCopy >= 0, duplicate(linkCopy, onto: TaskReuse.link, O_CLOEXEC) >= 0,
                duplicate(controlCopy, onto: TaskReuse.control, O_CLOEXEC) >= 0
            else { fail(errno) }
        }
        // The environment goes to the task only (the plan holds it); the supervisor keeps the
        // spawner's, which keel-launcher starts empty.
        close(report)
        // The socket, the report pipe's other end and the opened sources: nothing of the
        // spawner's stays open in the supervisor.
        closeFrom(reusable ? TaskReuse.control + 1 : 3)
        renameCommandLine()
        supervise(spawn.plan)
    }

    /// Makes `ps` show a forked supervisor as `keel-task-supervisor supervise` rather than as
    /// the spawner it was forked from: `/proc/PID/cmdline` is read from the argument strings in
    /// the process's memory, so the `--spawner` there is overwritten with a word of the same
    /// length.
    private static func renameCommandLine() {
        guard CommandLine.argc > 1, let argument = CommandLine.unsafeArgv[1] else { return }
        let replacement: StaticString = "supervise"
        guard strlen(argument) == replacement.utf8CodeUnitCount else { return }
        for index in 0..<replacement.utf8CodeUnitCount {
            argument[index] = CChar(bitPattern: replacement.utf8Start[index])
        }
    }

    /// The start time of `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`).
    ///
    /// Read into a buffer on the stack and parsed as bytes: whatever the spawner writes to its
    /// heap after a fork is a copy-on-write fault while the supervisor lives.
    private static func startTime(of pid: pid_t) -> UInt64? {
        // Field 22 lies within the first 512 bytes: the fields before it are a pid, a command
        // name of at most 16 bytes and 19 numbers.
        withUnsafeTemporaryAllocation(byteCount: 544, alignment: 8) { buffer -> UInt64? in
            let path = UnsafeMutableRawBufferPointer(rebasing: buffer[512...])
            ProcessStat.path(of: pid, into: path)
            let fd = open(path.baseAddress!.assumingMemoryBound(to: CChar.self), O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            let count = read(fd, buffer.baseAddress, 512)
            guard count > 0 else { return nil }
            return ProcessStat.startTime(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    /// Sends `reply`, with its pidfd and link attached when there are.
    private static func send(_ reply: Reply) {
        var payload = [UInt8](repeating: 0, count: 16)
        payload.withUnsafeMutableBytes { bytes in
            bytes.storeBytes(of: reply.error, toByteOffset: 0, as: Int32.self)
            bytes.storeBytes(of: reply.pid, toByteOffset: 4, as: Int32.self)
            bytes.storeBytes(of: reply.startTime, toByteOffset: 8, as: UInt64.self)
        }
        let descriptors = reply.error == 0 && reply.pidfd >= 0 ? [reply.pidfd] + (reply.link >= 0 ? [reply.link] : []) : []
        _ = payload.withUnsafeBytes { DescriptorPassing.send(socket, $0, descriptors: descriptors) }
    }
}

/// One request of keel-launcher, parsed, with everything the forked supervisor needs as C
/// memory: its plan (see ``SupervisorPlan``) and the paths it sets itself up with.
///
/// Made from the request in one go, so that the arrays and strings of the parsing are freed
/// before the fork: a forked supervisor that freed them would write to the spawner's heap pages
/// (a copy-on-write fault each), and converting a string for a C call would allocate.
final class SpawnRequest {
    let plan: SupervisorPlan
    let workingDirectory: UnsafeMutablePointer<CChar>
    /// The output files, relative to the working directory when they are inside it.
    let stdoutPath: UnsafeMutablePointer<CChar>
    let stderrPath: UnsafeMutablePointer<CChar>

    /// Parses `request` (see ``Spawner``); `nil` if it is not one.
    init?(_ request: ArraySlice<UInt8>) {
        var fields = request.split(separator: 0, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        if fields.last == "" { fields.removeLast() }
        guard fields.count >= 5, fields[0] == Spawner.magic, let environmentCount = Int(fields[4]),
            environmentCount >= 0, fields.count >= 5 + environmentCount,
            case .success(.supervise(let options)) = SupervisorMode.parse(Array(fields[(5 + environmentCount)...]))
        else { return nil }
        plan = SupervisorPlan(options, environment: Array(fields[5..<(5 + environmentCount)]))
        workingDirectory = strdup(fields[1])
        stdoutPath = strdup(Self.path(fields[2], relativeTo: fields[1]))
        stderrPath = strdup(Self.path(fields[3], relativeTo: fields[1]))
    }

    /// The reuse key and the first cgroup to join (its `cgroup.procs` file) of `request` if it
    /// asks for a supervisor with a PID namespace and a reuse key (see
    /// ``SupervisorMode/parse(_:)``), read without parsing the rest; `nil` otherwise, also for a
    /// request that is not one (the full parse then says so).
    static func reuseTarget(in request: ArraySlice<UInt8>) -> (key: String, cgroup: String?)? {
        request.withUnsafeBufferPointer { bytes -> (key: String, cgroup: String?)? in
            // The fields one after the other, by walking to each NUL; `nil` after the last.
            var position = 0
            func nextField() -> UnsafeBufferPointer<UInt8>? {
                guard position < bytes.count else { return nil }
                var end = position
                while end < bytes.count, bytes[end] != 0 { end += 1 }
                defer { position = end + 1 }
                return UnsafeBufferPointer(rebasing: bytes[position..<end])
            }
            guard let magic = nextField(), magic.elementsEqual(Spawner.magic.utf8),
                nextField() != nil, nextField() != nil, nextField() != nil,
                let countField = nextField(), let environmentCount = Self.decimal(countField)
            else { return nil }
            for _ in 0..<environmentCount where nextField() == nil { return nil }
            var pidNamespace = false
            var key: UnsafeBufferPointer<UInt8>?
            var cgroup: UnsafeBufferPointer<UInt8>?
            while let option = nextField(), option.count > 2, option[0] == UInt8(ascii: "-"), option[1] == UInt8(ascii: "-") {
                if Self.field(option, is: "--pid-namespace") {
                    pidNamespace = true
                    continue
                }
                guard let value = nextField(), Self.valueOptions.contains(where: { Self.field(option, is: $0) })
                else { return nil }
                if Self.field(option, is: "--reuse-key") { key = value }
                if cgroup == nil, Self.field(option, is: "--join-cgroup") { cgroup = value }
            }
            guard pidNamespace, let key, !key.isEmpty else { return nil }
            return (String(decoding: key, as: UTF8.self), cgroup.map { String(decoding: $0, as: UTF8.self) })
        }
    }

    /// The options of ``SupervisorMode/parse(_:)`` that take a value.
    private static let valueOptions: [StaticString] = [
        "--join-cgroup", "--reuse-key", "--stdout", "--stderr", "--log-max-size", "--log-max-files",
    ]

    /// Whether `field` is `text`.
    private static func field(_ field: UnsafeBufferPointer<UInt8>, is text: StaticString) -> Bool {
        field.count == text.utf8CodeUnitCount && memcmp(field.baseAddress!, text.utf8Start, field.count) == 0
    }

    /// A field of decimal digits (at most 6) as a number; `nil` for anything else.
    private static func decimal(_ field: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !field.isEmpty, field.count <= 6 else { return nil }
        var value = 0
        for byte in field {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// `path` relative to the directory `base` if it names a file inside it, else `path`.
    ///
    /// Compared as bytes: `String`'s `count`, `hasPrefix` and `dropFirst` walk grapheme
    /// clusters, which made this a good part of the spawner's own time per request.
    private static func path(_ path: String, relativeTo base: String) -> String {
        var path = path
        var base = base
        let relative = path.withUTF8 { full in
            base.withUTF8 { directory -> String? in
                let slash = UInt8(ascii: "/")
                let dot = UInt8(ascii: ".")
                guard directory.first == slash else { return nil }
                // Without a trailing slash: `path` must be that, a slash and at least one byte.
                let directoryLength = directory.last == slash ? directory.count - 1 : directory.count
                let start = directoryLength + 1
                guard full.count > start, full[directoryLength] == slash,
                    memcmp(full.baseAddress!, directory.baseAddress!, directoryLength) == 0
                else { return nil }
                let rest = UnsafeBufferPointer(rebasing: full[start...])
                // Not absolute itself (`base//name`), and no `..` component, which could lead out
                // of the directory.
                guard rest.first != slash else { return nil }
                var componentStart = 0
                for index in 0...rest.count where index == rest.count || rest[index] == slash {
                    if index - componentStart == 2, rest[componentStart] == dot, rest[componentStart + 1] == dot {
                        return nil
                    }
                    componentStart = index + 1
                }
                return String(decoding: rest, as: UTF8.self)
            }
        }
        return relative ?? path
    }

    deinit {
        free(workingDirectory)
        free(stdoutPath)
        free(stderrPath)
    }
}

/// The lazily made globals a supervisor uses, made once in the spawner before its first fork, so
/// that no forked supervisor makes them again (each would run the initializer and write the
/// global's page).
enum SupervisorGlobals {
    static func prepare() {
        _ = ChildProcess.childStack
        _ = SupervisionLoop.readBuffer
        _ = SupervisionLoop.forwardedSignals
        _ = CommandLine.unsafeArgv
    }
}
