@preconcurrency import Glibc

/// `dup3(2)`, declared only under `_GNU_SOURCE`: `dup2` that sets close-on-exec on the copy.
@_silgen_name("dup3")
func duplicate(_ descriptor: Int32, onto target: Int32, _ flags: Int32) -> Int32

/// Why a supervisor could not set itself up for a task: the `errno`.
struct SetupFailure: Error {
    var code: Int32
}

/// A supervisor that serves one task after another: the init of a PID namespace that outlives
/// its task and starts the next task that names the same reuse key (keel-launcher's framework
/// and user), which saves the fork of a supervisor, the namespaces and the `/proc` mount, and
/// the exit of all that: about 0.4 ms of CPU per task.
///
/// The spawner forks such a supervisor with two more descriptors: ``link``, its end of a
/// socket pair whose other end keel-launcher holds for the task, and ``control``, a socket to
/// the spawner. After a task, it
/// 1. has killed and reaped every process left in the namespace (as init, see
///    ``SupervisionLoop``) and written the task's exit-status file;
/// 2. shuts its end of the link down: keel-launcher reads end-of-file, reads the file, marks the
///    task ended (it signals the task no more) and closes its end. Only then does the supervisor
///    go on, so a stop that races with the end of a task never reaches the next one (it may
///    reach the supervisor between tasks, which drops it);
/// 3. checks that the namespace's mount table has not changed since before the first task (a
///    task run as root may have mounted something the next one would see) and that the spawner
///    is there, and reports itself idle to the spawner;
/// 4. waits for the next request (the same bytes keel-launcher sends the spawner, with the next
///    task's link end attached), sets itself up for it as the spawner would have (working
///    directory, output files on descriptors 1 and 2) and answers 0, or the `errno` of what
///    failed (then it is idle again).
/// It exits instead whenever one of these fails, when the spawner goes away (keel-launcher
/// ended: a supervisor then finishes its task and exits, so a restarted launcher finds its
/// tasks as before), or after ``idleTimeout`` without a task.
struct TaskReuse {
    /// The supervisor's end of the current task's link.
    static let link: Int32 = 3
    /// The socket to the spawner.
    static let control: Int32 = 4
    /// What a supervisor sends the spawner when it is ready for a task: one byte.
    static let idleMessage = UInt8(ascii: "i")
    /// How long an idle supervisor waits for a task.
    static let idleTimeout: Int32 = 30_000

    /// `/proc/self/mountinfo`, opened before the first task: `poll` reports `POLLPRI` on it once
    /// the namespace's mount table has changed since (reading the table itself costs ~60 µs).
    private let mountTable: Int32

    /// For a supervisor forked by the spawner with a reuse key (and so ``control``); `nil` for
    /// one that serves one task.
    init?(_ options: SupervisorOptions) {
        guard options.reuseKey != nil, options.pidNamespace, NamespaceInit.isInit, fcntl(Self.control, F_GETFD) >= 0
        else { return nil }
        mountTable = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
        guard mountTable >= 0 else { return nil }
    }

    /// Whether the namespace's mount table changed since ``init(_:)``.
    private var mountsChanged: Bool {
        var entry = pollfd(fd: mountTable, events: Int16(POLLPRI), revents: 0)
        var ready: Int32
        repeat {
            ready = poll(&entry, 1, 0)
        } while ready < 0 && errno == EINTR
        return ready != 0 || entry.revents & Int16(POLLERR | POLLPRI) != 0
    }

    /// After a task's exit status is written: the plan of the next task, or `nil` if this
    /// supervisor should exit now.
    mutating func next(loop: inout SupervisionLoop) -> SupervisorPlan? {
        // 2. keel-launcher takes the end, then lets go of the link.
        shutdown(Self.link, Int32(SHUT_WR))
        guard wait(for: Self.link, loop: loop, timeout: -1) else { return nil }
        var byte: UInt8 = 0
        while read(Self.link, &byte, 1) > 0 {}
        close(Self.link)
        // 3.
        guard !mountsChanged else { return nil }
        while true {
            var idle = Self.idleMessage
            guard send(Self.control, &idle, 1, Int32(MSG_NOSIGNAL)) == 1 else { return nil }
            // 4.
            guard wait(for: Self.control, loop: loop, timeout: Self.idleTimeout),
                let (request, link) = receiveRequest()
            else { return nil }
            // Whatever was sent for the last task is pending by now (it was sent before its
            // link was let go): none of it may reach the next. What is sent for the next task
            // comes after the answer below.
            loop.drainBetweenTasks()
            switch setUp(request, link: link) {
            case .success(let plan):
                return plan
            case .failure(let failure):
                guard answer(failure.code) else { return nil }
            }
        }
    }

    /// Waits until `descriptor` is readable (or closed), taking signals meanwhile; `false` on a
    /// timeout or if the spawner went away first.
    private func wait(for descriptor: Int32, loop: SupervisionLoop, timeout: Int32) -> Bool {
        while true {
            var entries = (
                pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: loop.signalQueue, events: Int16(POLLIN), revents: 0),
                pollfd(fd: descriptor == Self.control ? -1 : Self.control, events: Int16(POLLIN), revents: 0)
            )
            let ready = withUnsafeMutableBytes(of: &entries) { bytes in
                poll(bytes.bindMemory(to: pollfd.self).baseAddress, 3, timeout)
            }
            if ready < 0, errno == EINTR { continue }
            guard ready > 0 else { return false }
            if entries.1.revents != 0 { loop.drainBetweenTasks() }
            if entries.0.revents != 0 { return true }
            // The spawner spoke or went away while a task's link was still held: it only ever
            // closes (it sends nothing to a supervisor with a task), so this supervisor is done.
            if entries.2.revents != 0 { return false }
        }
    }

    /// The next request and its link end, from ``control``; `nil` if the spawner went away or
    /// sent something else.
    private func receiveRequest() -> ([UInt8], Int32)? {
        let size = recv(Self.control, nil, 0, Int32(MSG_PEEK | MSG_TRUNC))
        guard size > 0 else { return nil }
        var request = [UInt8](repeating: 0, count: size)
        let (count, descriptors) = request.withUnsafeMutableBytes { DescriptorPassing.receive(Self.control, into: $0) }
        for extra in descriptors.dropFirst() { close(extra) }
        let link = descriptors.first
        guard count == size, let link else {
            if let link { close(link) }
            return nil
        }
        return (request, link)
    }

    /// Sets this supervisor up for `request` as the spawner sets up a new one: the working
    /// directory, the output files as descriptors 1 and 2, `link` as ``link``; the plan, or the
    /// `errno` of what failed (after which nothing of the request is kept).
    private func setUp(_ bytes: [UInt8], link: Int32) -> Result<SupervisorPlan, SetupFailure> {
        func fail(_ code: Int32) -> Result<SupervisorPlan, SetupFailure> {
            close(link)
            return .failure(SetupFailure(code: code))
        }
        guard let request = SpawnRequest(bytes[...]), request.plan.options.pidNamespace,
            request.plan.options.reuseKey != nil
        else { return fail(EINVAL) }
        guard chdir(request.workingDirectory) == 0 else { return fail(errno) }
        let outputFlags = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC
        let output = open(request.stdoutPath, outputFlags, 0o644)
        guard output >= 0 else { return fail(errno) }
        let errors = open(request.stderrPath, outputFlags, 0o644)
        guard errors >= 0 else {
            let code = errno
            close(output)
            return fail(code)
        }
        defer {
            close(output)
            close(errors)
        }
        guard dup2(output, STDOUT_FILENO) >= 0, dup2(errors, STDERR_FILENO) >= 0 else { return fail(errno) }
        // The last link was closed, so the new one (received close-on-exec) may have its number.
        if link != Self.link {
            guard duplicate(link, onto: Self.link, O_CLOEXEC) >= 0 else { return fail(errno) }
            close(link)
        }
        guard answer(0) else { return .failure(SetupFailure(code: EPIPE)) }
        return .success(request.plan)
    }

    /// Answers a request with `code` (0: the task is being started); `false` if the spawner is gone.
    private func answer(_ code: Int32) -> Bool {
        var code = code
        return send(Self.control, &code, MemoryLayout<Int32>.size, Int32(MSG_NOSIGNAL)) == MemoryLayout<Int32>.size
    }
}
