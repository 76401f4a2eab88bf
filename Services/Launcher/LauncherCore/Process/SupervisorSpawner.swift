@preconcurrency import Glibc
package import Logging
import Synchronization

/// keel-launcher's side of `keel-task-supervisor --spawner`: starts supervisors by asking a
/// long-lived spawner process to fork them, instead of executing the supervisor program once per
/// task (see `Spawner` in keel-task-supervisor for what the fork does and why).
///
/// The spawner is started once, as a child of the launcher, with one end of a `SOCK_SEQPACKET`
/// socket pair. A spawn sends a request and waits for the reply, one request at a time.
/// The supervisors it starts are not the launcher's children: the reply carries a pidfd, which
/// ``TaskProcess`` watches as it watches the supervisors of an earlier launcher. If the spawner
/// cannot be reached (it died, or the socket broke), ``spawn(arguments:environment:workingDirectory:stdoutPath:stderrPath:)``
/// throws ``Failure/unavailable`` and marks itself broken; the caller then starts the supervisor
/// with `posix_spawn` as before, so a broken spawner costs speed. Only a spawner that dies while
/// it handles a request costs that one launch (``Failure/lost``).
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
    }

    private struct State {
        var socket: Int32
        var broken = false
    }

    private let state: Mutex<State>
    /// The spawner's pid.
    package let pid: Int32
    private let logger: Logger

    /// The most bytes one request may take; larger ones (huge environments) are refused so the
    /// caller falls back to `posix_spawn`.
    static let maxRequestBytes = 512 * 1024
    /// How long a reply may take before the spawner is taken for stuck (a fork takes well under
    /// a millisecond).
    static let replyTimeout = 30

    private init(socket: Int32, pid: Int32, logger: Logger) {
        self.state = Mutex(State(socket: socket))
        self.pid = pid
        self.logger = logger
    }

    deinit {
        // The spawner exits when its end of the socket reports the close.
        let socket = state.withLock { $0.socket }
        close(socket)
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
        var timeout = timeval(tv_sec: replyTimeout, tv_usec: 0)
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
        switch spawned {
        case .success(let pid):
            let spawner = SupervisorSpawner(socket: ours, pid: pid, logger: logger)
            spawner.reapWhenItExits()
            logger.info("started the supervisor spawner", metadata: ["keel.pid": "\(pid)"])
            return spawner
        case .failure(let error):
            close(ours)
            logger.warning("cannot start the supervisor spawner; starting supervisors one by one", metadata: [
                "keel.error": "\(error)",
            ])
            return nil
        }
    }

    /// Whether the spawner was found broken; then every ``spawn(_:)`` fails at once.
    package var isBroken: Bool { state.withLock { $0.broken } }

    /// Asks the spawner to start a supervisor with `arguments` (without the program name).
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
        let outcome: Result<Spawned, Failure> = state.withLock { state in
            guard !state.broken else { return .failure(.unavailable("the spawner is broken")) }
            let result = Self.exchange(request, socket: state.socket)
            switch result {
            case .failure(.unavailable), .failure(.lost):
                state.broken = true
                // The spawner exits once it sees the socket close, if it still can.
                shutdown(state.socket, Int32(SHUT_RDWR))
            case .success, .failure(.setup):
                break
            }
            return result
        }
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

    /// One request and its reply on `socket`.
    private static func exchange(_ request: [UInt8], socket: Int32) -> Result<Spawned, Failure> {
        let sent = request.withUnsafeBytes { bytes -> Int in
            while true {
                let count = send(socket, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
                if count < 0, errno == EINTR { continue }
                return count
            }
        }
        guard sent == request.count else {
            return .failure(.unavailable("cannot send to the spawner: \(SystemCallError(call: "send", errno: errno))"))
        }
        var payload = [UInt8](repeating: 0, count: 16)
        // Room for one SCM_RIGHTS control message with one descriptor (CMSG_SPACE(4) = 24).
        var control = [UInt8](repeating: 0, count: 24)
        var receivedControl = 0
        let received = payload.withUnsafeMutableBytes { payloadBytes in
            control.withUnsafeMutableBytes { controlBytes -> Int in
                var vector = iovec(iov_base: payloadBytes.baseAddress, iov_len: payloadBytes.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer -> Int in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    message.msg_control = controlBytes.baseAddress
                    message.msg_controllen = controlBytes.count
                    while true {
                        let count = recvmsg(socket, &message, Int32(MSG_CMSG_CLOEXEC))
                        if count < 0, errno == EINTR { continue }
                        receivedControl = Int(message.msg_controllen)
                        return count
                    }
                }
            }
        }
        guard received == payload.count else {
            let code = errno
            // ECONNRESET: the spawner went away with the request unread, so nothing was
            // started and the caller may start the supervisor itself.
            if received < 0, code == ECONNRESET {
                return .failure(.unavailable("the spawner closed its socket without reading the request"))
            }
            let reason = received == 0 ? "the spawner closed its socket" : "\(SystemCallError(call: "recvmsg", errno: code))"
            return .failure(.lost("no reply from the spawner: \(reason)"))
        }
        let (error, pid, startTime) = payload.withUnsafeBytes { bytes in
            (
                bytes.load(fromByteOffset: 0, as: Int32.self), bytes.load(fromByteOffset: 4, as: Int32.self),
                bytes.load(fromByteOffset: 8, as: UInt64.self)
            )
        }
        let pidfd: Int32? = control.withUnsafeBytes { bytes in
            guard receivedControl >= 20, bytes.load(fromByteOffset: 8, as: Int32.self) == SOL_SOCKET,
                bytes.load(fromByteOffset: 12, as: Int32.self) == Int32(SCM_RIGHTS)
            else { return nil }
            return bytes.load(fromByteOffset: 16, as: Int32.self)
        }
        guard error == 0 else {
            if let pidfd { close(pidfd) }
            return .failure(.setup(error))
        }
        guard let pidfd, pid > 0 else {
            return .failure(.lost("the spawner's reply for pid \(pid) carried no pidfd"))
        }
        return .success(Spawned(pid: pid, startTime: startTime, pidfd: pidfd))
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
