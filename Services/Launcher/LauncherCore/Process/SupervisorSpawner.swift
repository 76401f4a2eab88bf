@preconcurrency import Glibc
package import Logging
import Dispatch
import Synchronization

/// keel-launcher's side of `keel-task-supervisor --spawner`: starts supervisors by asking a
/// long-lived spawner process to fork them, instead of executing the supervisor program once per
/// task (see `Spawner` in keel-task-supervisor for what the fork does and why).
///
/// The spawner is started once, as a child of the launcher, with one end of a `SOCK_SEQPACKET`
/// socket pair. Requests are pipelined: a spawn sends its request and waits for its own reply,
/// while other spawns send theirs. The spawner handles one request at a time and replies in
/// order, so the replies are handed out in the order the requests went out, by a reader thread
/// of this class. A caller waits without spinning, and without holding a lock that other
/// launches would spin on: with the whole round trip under one lock, the waiting threads spun
/// for the CPU the spawner needed to fork (a tenth of the launcher's time in the launch benchmark).
///
/// The supervisors it starts are not the launcher's children: the reply carries a pidfd, which
/// ``TaskProcess`` watches as it watches the supervisors of an earlier launcher, or for a
/// supervisor that may serve later tasks the task's link (see ``Spawned/link``), whose
/// end-of-file it takes for the task's end.
/// Tasks of one framework and user may share a supervisor one after the other (see `TaskReuse` in
/// keel-task-supervisor). If the spawner
/// cannot be reached (it died, or the socket broke), ``spawn(arguments:environment:workingDirectory:stdoutPath:stderrPath:)``
/// throws ``Failure/unavailable`` and marks itself broken; the caller then starts the supervisor
/// with `posix_spawn` as before, so a broken spawner costs speed. A spawner that dies while it
/// handles a request costs that one launch (``Failure/lost``): it reads one request at a time, so
/// the requests behind it were not read and fall back. One that stays silent past
/// ``replyTimeout`` costs every launch waiting for it, since it might still read their requests.
package final class SupervisorSpawner: Sendable {
    /// Why a spawn did not happen.
    package enum Failure: Error {
        /// The spawner cannot be used (any more) and did not get the request; start the
        /// supervisor another way.
        case unavailable(String)
        /// The spawner got the request but no reply came (it died, or stayed silent past
        /// ``replyTimeout``): the supervisor may or may not have been started, so this launch
        /// must fail rather than start it a second time. Later spawns fall back.
        case lost(String)
        /// The supervisor could not be set up (its output files, working directory, ...): the
        /// `errno`, as `posix_spawn` would have reported it.
        case setup(Int32)
    }

    /// A started supervisor.
    package struct Spawned: Sendable {
        package var pid: Int32
        package var startTime: UInt64
        /// A pidfd for the supervisor; the caller owns it.
        package var pidfd: Int32
        /// keel-launcher's end of the task's link, for a supervisor that may serve later tasks;
        /// the caller owns it. The supervisor shuts its end down once the task's exit status is
        /// written, and takes no other task before this end is closed (see `TaskReuse` in
        /// keel-task-supervisor).
        package var link: Int32? = nil
    }

    /// The most bytes one request may take; larger ones (huge environments) are refused so the
    /// caller falls back to `posix_spawn`.
    static let maxRequestBytes = 512 * 1024
    /// How long a reply may take before the spawner is taken for stuck (a fork takes well under
    /// a millisecond).
    static let replyTimeout = Duration.seconds(30)

    private let channel: Channel
    /// The spawner's pid.
    package let pid: Int32
    private let logger: Logger

    private init(channel: Channel, pid: Int32, logger: Logger) {
        self.channel = channel
        self.pid = pid
        self.logger = logger
    }

    deinit {
        shutDown()
    }

    /// Lets the spawner go, as the launcher's exit would: it exits, the supervisors it kept for
    /// later tasks exit, and those with a task finish it and exit (see `TaskReuse` in
    /// keel-task-supervisor). Later spawns fail as ``Failure/unavailable``.
    package func shutDown() {
        // The reader then sees the socket close, and the spawner exits when its end reports it.
        channel.shutDown()
    }

    /// Starts `supervisor --spawner`; nil (after logging why) if it cannot be started.
    package static func start(supervisor: String, logger: Logger) -> SupervisorSpawner? {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            logger.warning("cannot create the supervisor spawner's socket; starting supervisors one by one", metadata: [
                "keel.error": "\(SystemCallError(call: "socketpair", errno: errno))",
            ])
            return nil
        }
        let (ours, theirs) = (pair[0], pair[1])
        // The reader wakes up this often without replies, to check for overdue ones.
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        _ = setsockopt(ours, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let spawned: Result<Int32, LauncherError> = Result { () throws(LauncherError) -> Int32 in
            let (pid, status) = try ProcessSpawner.spawnSession(
                executable: supervisor, arguments: [supervisor, "--spawner"], environment: [],
                workingDirectory: "/", command: "keel-task-supervisor --spawner", keepDescriptor: (theirs, 3)
            ) { (actions) throws(LauncherError) in
                try ProcessSpawner.check(
                    "posix_spawn_file_actions_addopen",
                    posix_spawn_file_actions_addopen(actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0),
                    "keel-task-supervisor --spawner")
            }
            guard status == 0 else {
                throw LauncherError.system("posix_spawn", errno: status, message: "cannot start \(supervisor) --spawner")
            }
            return pid
        }
        close(theirs)
        let pid: Int32
        switch spawned {
        case .success(let started):
            pid = started
        case .failure(let error):
            close(ours)
            logger.warning("cannot start the supervisor spawner; starting supervisors one by one", metadata: [
                "keel.error": "\(error)",
            ])
            return nil
        }
        let channel = Channel(socket: ours)
        let spawner = SupervisorSpawner(channel: channel, pid: pid, logger: logger)
        spawner.reapWhenItExits()
        let status = DetachedThread.start(name: "keel-spawn-reply") { channel.readReplies() }
        guard status == 0 else {
            // Without a reader no reply would reach anyone; the spawner exits once the socket closes.
            channel.shutDown()
            logger.warning("cannot start the supervisor spawner's reader thread; starting supervisors one by one", metadata: [
                "keel.error": "\(SystemCallError(call: "pthread_create", errno: status))",
            ])
            return nil
        }
        logger.info("started the supervisor spawner", metadata: ["keel.pid": "\(pid)"])
        return spawner
    }

    /// Whether the spawner was found broken; then every ``spawn(arguments:environment:workingDirectory:stdoutPath:stderrPath:)``
    /// fails at once.
    package var isBroken: Bool { channel.isBroken }

    /// Asks the spawner to start a supervisor with `arguments` (without the program name), and
    /// waits for its reply.
    package func spawn(
        arguments: [String], environment: [String], workingDirectory: String, stdoutPath: String, stderrPath: String
    ) throws(Failure) -> Spawned {
        var request: [UInt8] = []
        for field in ["keel-spawn-1", workingDirectory, stdoutPath, stderrPath, "\(environment.count)"]
            + environment + arguments
        {
            request += Array(field.utf8)
            request.append(0)
        }
        guard request.count <= Self.maxRequestBytes else {
            throw .unavailable("the request is \(request.count) bytes, more than \(Self.maxRequestBytes)")
        }
        let outcome = channel.exchange(request)
        switch outcome {
        case .failure(.unavailable(let reason)), .failure(.lost(let reason)):
            logger.error("the supervisor spawner failed; starting supervisors one by one from now on", metadata: [
                "keel.reason": "\(reason)",
            ])
        case .success, .failure(.setup):
            break
        }
        return try outcome.get()
    }

    /// Reaps the spawner when it exits (it is the launcher's child), on a small thread of its own.
    private func reapWhenItExits() {
        let pid = self.pid
        let status = DetachedThread.start {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        }
        if status != 0 {
            logger.warning("cannot start a thread to reap the supervisor spawner; it stays a zombie once it exits")
        }
    }
}

/// The socket to the spawner, the requests waiting for their replies, and the thread that reads
/// the replies (see ``SupervisorSpawner``). Separate from the spawner object, so that the reader
/// thread does not keep that alive.
private final class Channel: Sendable {
    /// One request waiting for its reply.
    final class Waiter: Sendable {
        private let replied = DispatchSemaphore(value: 0)
        private let outcome = Mutex<Result<SupervisorSpawner.Spawned, SupervisorSpawner.Failure>?>(nil)
        /// When the reply is overdue.
        let deadline = ContinuousClock.now + SupervisorSpawner.replyTimeout

        func finish(_ result: Result<SupervisorSpawner.Spawned, SupervisorSpawner.Failure>) {
            outcome.withLock { $0 = result }
            replied.signal()
        }

        func wait() -> Result<SupervisorSpawner.Spawned, SupervisorSpawner.Failure> {
            replied.wait()
            return outcome.withLock { $0! }
        }
    }

    private struct State {
        /// Requests sent and not replied to, oldest first.
        var waiting: [Waiter] = []
        var broken = false
        /// Whether the socket was shut down, or closed by the reader once broken.
        var shut = false
    }

    private let socket: Int32
    private let state = Mutex(State())

    init(socket: Int32) {
        self.socket = socket
    }

    var isBroken: Bool { state.withLock { $0.broken } }

    /// Sends `request` and waits for its reply. Only the send is done under the lock (in
    /// order with the other requests); the wait is not.
    func exchange(_ request: [UInt8]) -> Result<SupervisorSpawner.Spawned, SupervisorSpawner.Failure> {
        let waiter = Waiter()
        let refused = state.withLock { state -> SupervisorSpawner.Failure? in
            guard !state.broken else { return .unavailable("the spawner is broken") }
            let sent = request.withUnsafeBytes { bytes -> Int in
                while true {
                    let count = send(socket, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
                    if count < 0, errno == EINTR { continue }
                    return count
                }
            }
            guard sent == request.count else {
                let reason = "cannot send to the spawner: \(SystemCallError(call: "send", errno: errno))"
                // The reader hears the shutdown and settles the requests already sent.
                breakDown(&state)
                return .unavailable(reason)
            }
            state.waiting.append(waiter)
            return nil
        }
        if let refused { return .failure(refused) }
        return waiter.wait()
    }

    /// Shuts the socket down (the spawner exits when it sees that), once.
    func shutDown() {
        state.withLock { breakDown(&$0) }
    }

    private func breakDown(_ state: inout State) {
        state.broken = true
        guard !state.shut else { return }
        state.shut = true
        shutdown(socket, Int32(SHUT_RDWR))
    }

    /// The reader thread: hands each reply to the oldest waiting request, until the socket
    /// breaks; then settles the requests still waiting and closes the socket.
    func readReplies() {
        while true {
            var payload = [UInt8](repeating: 0, count: 16)
            // Room for one SCM_RIGHTS control message with one descriptor (CMSG_SPACE(4) = 24).
            var control = [UInt8](repeating: 0, count: 24)
            let (received, controlLength) = Self.receive(socket, payload: &payload, control: &control)
            let code = errno
            if received == payload.count {
                let reply = Self.decode(payload: payload, control: control, controlLength: controlLength)
                let waiter = state.withLock { state -> Waiter? in
                    state.waiting.isEmpty ? nil : state.waiting.removeFirst()
                }
                guard let waiter else {
                    // A reply nobody asked for: the two ends no longer agree.
                    if case .success(let spawned) = reply {
                        close(spawned.pidfd)
                        if let link = spawned.link { close(link) }
                    }
                    settle(lost: "the spawner sent a reply to no request", unreadIfReset: false)
                    return
                }
                waiter.finish(reply)
                continue
            }
            if received < 0, code == EINTR { continue }
            if received < 0, code == EAGAIN || code == EWOULDBLOCK {
                let overdue = state.withLock { state in
                    state.waiting.first.map { ContinuousClock.now >= $0.deadline } ?? false
                }
                // Every waiting request is lost: a stuck spawner may still read them later.
                if overdue {
                    settle(lost: "the spawner did not reply within \(SupervisorSpawner.replyTimeout)", everyone: true)
                    return
                }
                if state.withLock({ $0.shut }) {
                    settle(lost: "the spawner's socket was shut down", unreadIfReset: false)
                    return
                }
                continue
            }
            let reason =
                received == 0 ? "the spawner closed its socket"
                : received > 0 ? "the spawner sent a malformed reply of \(received) bytes"
                : "\(SystemCallError(call: "recvmsg", errno: code))"
            settle(lost: "no reply from the spawner: \(reason)", unreadIfReset: received < 0 && code == ECONNRESET)
            return
        }
    }

    /// Marks the channel broken, settles every waiting request and closes the socket.
    ///
    /// The spawner reads one request at a time, so only the oldest waiting one may have been
    /// read: it is lost, the others were not read and are unavailable (their callers fall back).
    /// `unreadIfReset`: the socket reported unread requests at the spawner's end, so a single
    /// waiting request was not read either. `everyone`: all are lost (a stuck spawner).
    private func settle(lost reason: String, unreadIfReset: Bool = false, everyone: Bool = false) {
        let waiting = state.withLock { state -> [Waiter] in
            breakDown(&state)
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for (index, waiter) in waiting.enumerated() {
            if everyone || (index == 0 && !(unreadIfReset && waiting.count == 1)) {
                waiter.finish(.failure(.lost(reason)))
            } else {
                waiter.finish(.failure(.unavailable("the spawner went away before it read the request")))
            }
        }
        close(socket)
    }

    /// One `recvmsg`: the payload's length (or -1) and the control data's.
    private static func receive(_ socket: Int32, payload: inout [UInt8], control: inout [UInt8]) -> (Int, Int) {
        payload.withUnsafeMutableBytes { payloadBytes in
            control.withUnsafeMutableBytes { controlBytes -> (Int, Int) in
                var vector = iovec(iov_base: payloadBytes.baseAddress, iov_len: payloadBytes.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer -> (Int, Int) in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    message.msg_control = controlBytes.baseAddress
                    message.msg_controllen = controlBytes.count
                    let count = recvmsg(socket, &message, Int32(MSG_CMSG_CLOEXEC))
                    return (count, Int(message.msg_controllen))
                }
            }
        }
    }

    /// A reply: `Int32` error, `Int32` pid, `UInt64` start time, and the pidfd and the task's
    /// link as `SCM_RIGHTS` (the link may be missing).
    private static func decode(
        payload: [UInt8], control: [UInt8], controlLength: Int
    ) -> Result<SupervisorSpawner.Spawned, SupervisorSpawner.Failure> {
        let (error, pid, startTime) = payload.withUnsafeBytes { bytes in
            (
                bytes.load(fromByteOffset: 0, as: Int32.self), bytes.load(fromByteOffset: 4, as: Int32.self),
                bytes.load(fromByteOffset: 8, as: UInt64.self)
            )
        }
        // CMSG_LEN(4) is 20, CMSG_LEN(8) 24.
        let (pidfd, link): (Int32?, Int32?) = control.withUnsafeBytes { bytes in
            guard controlLength >= 20, bytes.load(fromByteOffset: 8, as: Int32.self) == SOL_SOCKET,
                bytes.load(fromByteOffset: 12, as: Int32.self) == Int32(SCM_RIGHTS)
            else { return (nil, nil) }
            let length = bytes.load(fromByteOffset: 0, as: Int.self)
            return (
                bytes.load(fromByteOffset: 16, as: Int32.self),
                length >= 24 && controlLength >= 24 ? bytes.load(fromByteOffset: 20, as: Int32.self) : nil
            )
        }
        guard error == 0 else {
            if let pidfd { close(pidfd) }
            if let link { close(link) }
            return .failure(.setup(error))
        }
        guard let pidfd, pid > 0 else {
            if let link { close(link) }
            return .failure(.lost("the spawner's reply for pid \(pid) carried no pidfd"))
        }
        return .success(SupervisorSpawner.Spawned(pid: pid, startTime: startTime, pidfd: pidfd, link: link))
    }
}
