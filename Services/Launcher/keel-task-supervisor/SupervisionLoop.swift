@preconcurrency import Glibc

/// `signalfd(2)`, declared in `<sys/signalfd.h>`, which the Glibc module leaves out.
@_silgen_name("signalfd")
func signalDescriptor(_ fd: Int32, _ mask: UnsafePointer<sigset_t>, _ flags: Int32) -> Int32

/// The supervisor's one loop while its task runs: it copies the task's standard output and
/// error from pipes into ``RotatingFile``s, reaps, and, when the supervisor is the init of the
/// task's PID namespace, forwards signals to the task and reaps the orphans of the namespace.
///
/// One thread and one `poll`, over the output pipes and a `signalfd` that delivers `SIGCHLD`
/// (and, as init, the forwarded signals), so the loop notices the task's exit even while a
/// descendant that outlived it keeps a pipe open. Once the task has ended, init kills what is
/// left of the namespace and reaps it; then the loop copies what is still buffered in the pipes
/// (without waiting for more) and stops. The pipes are read without blocking and the signals
/// that stop tasks never end the supervisor, so nothing the task does can wedge it.
struct SupervisionLoop {
    /// The signals that init forwards to the task's process group.
    static let forwardedSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH, SIGALRM]

    /// What the output pipes are read into. One for the process, made by the spawner before its
    /// first fork (see ``SupervisorGlobals``); not zero-filled, so its pages are touched only by
    /// output that arrives.
    nonisolated(unsafe) static let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    /// A pipe being copied into a file; its descriptor is -1 once the pipe is closed.
    private struct Stream {
        var descriptor: Int32
        var file: RotatingFile
    }

    /// The task's standard output and error, kept without an array: a forked supervisor runs
    /// this loop without allocating (see ``SupervisorPlan``).
    private var streams: (Stream?, Stream?) = (nil, nil)
    private var streamCount = 0
    private let signals: Int32
    private let isInit: Bool

    /// Blocks the signals the loop takes through its `signalfd` (`SIGCHLD`, and as init the
    /// forwarded ones) and opens that descriptor. Called before the task is forked, so that no
    /// signal is lost in between; the task itself starts with an empty mask.
    init?(isInit: Bool) {
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, SIGCHLD)
        if isInit {
            for signal in Self.forwardedSignals { sigaddset(&mask, signal) }
        }
        sigprocmask(SIG_BLOCK, &mask, nil)
        // SFD_CLOEXEC and SFD_NONBLOCK are O_CLOEXEC and O_NONBLOCK.
        signals = signalDescriptor(-1, &mask, O_CLOEXEC | O_NONBLOCK)
        guard signals >= 0 else { return nil }
        self.isInit = isInit
    }

    /// The `signalfd` the loop reads, which a supervisor waiting between tasks polls too.
    var signalQueue: Int32 { signals }

    /// Forgets the streams of the last task (their pipes are closed by then).
    mutating func removeStreams() {
        streams = (nil, nil)
        streamCount = 0
    }

    /// Between tasks: reads the pending signals, dropping those that would be forwarded (there
    /// is no task to forward them to), and reaps whatever ended.
    func drainBetweenTasks() {
        var info = [UInt8](repeating: 0, count: 128)
        while info.withUnsafeMutableBytes({ read(signals, $0.baseAddress, $0.count) }) == 128 {}
        var raw: Int32 = 0
        while waitpid(-1, &raw, WNOHANG) > 0 {}
    }

    /// Copies `descriptor` (the read end of a pipe) into `file` while the loop runs.
    mutating func copy(_ descriptor: Int32, to file: RotatingFile) {
        precondition(streamCount < 2, "at most two streams")
        ChildProcess.setNonBlocking(descriptor)
        self[stream: streamCount] = Stream(descriptor: descriptor, file: file)
        streamCount += 1
    }

    private subscript(stream index: Int) -> Stream? {
        get { index == 0 ? streams.0 : streams.1 }
        set {
            if index == 0 { streams.0 = newValue } else { streams.1 = newValue }
        }
    }

    /// Runs until `task` (a child of this process) has ended; returns its raw wait status, or
    /// `nil` if it cannot be waited for.
    mutating func run(until task: pid_t) -> Int32? {
        let buffer = Self.readBuffer
        var status: Int32?
        // The streams' descriptors, then the signalfd.
        var descriptors = (pollfd(), pollfd(), pollfd())
        while status == nil {
            let ready = withUnsafeMutableBytes(of: &descriptors) { bytes -> Int32 in
                let entries = bytes.bindMemory(to: pollfd.self)
                // A negative descriptor is skipped by poll.
                for index in 0..<streamCount {
                    entries[index] = pollfd(fd: self[stream: index]?.descriptor ?? -1, events: Int16(POLLIN), revents: 0)
                }
                entries[streamCount] = pollfd(fd: signals, events: Int16(POLLIN), revents: 0)
                return poll(entries.baseAddress, nfds_t(streamCount + 1), -1)
            }
            if ready < 0 {
                if errno == EINTR { continue }
                return nil
            }
            let (first, second, last) = descriptors
            if streamCount > 0, first.revents != 0 { _ = copy(0, buffer) }
            if streamCount > 1, second.revents != 0 { _ = copy(1, buffer) }
            let signalEntry = streamCount == 0 ? first : streamCount == 1 ? second : last
            if signalEntry.revents != 0 {
                guard case .some(let ended) = takeSignals(task: task) else { return nil }
                status = ended
            }
        }
        if isInit { endNamespace() }
        for index in 0..<streamCount {
            while copy(index, buffer) {}
        }
        return status
    }

    /// Reads the pending signals: forwards the ones init forwards, and on `SIGCHLD` reaps every
    /// ended child. Returns `.some(status)` once `task` is reaped, `.some(nil)` while it runs,
    /// `nil` if waiting fails.
    private func takeSignals(task: pid_t) -> Int32?? {
        // struct signalfd_siginfo is 128 bytes; ssi_signo is its first field.
        var info = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
            UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        var childEnded = false
        while withUnsafeMutableBytes(of: &info, { read(signals, $0.baseAddress, $0.count) }) == 128 {
            let number = Int32(truncatingIfNeeded: withUnsafeBytes(of: &info) { $0.load(as: UInt32.self) })
            if number == SIGCHLD {
                childEnded = true
            } else if isInit, kill(-task, number) != 0 {
                kill(task, number)
            }
        }
        guard childEnded else { return .some(nil) }
        var ended: Int32?
        while true {
            var raw: Int32 = 0
            let reaped = waitpid(-1, &raw, WNOHANG)
            if reaped == task { ended = raw }
            if reaped > 0 { continue }
            if reaped < 0, errno == EINTR { continue }
            if reaped < 0, errno != ECHILD, ended == nil { return nil }
            break
        }
        return .some(ended)
    }

    /// As init, once the task has ended: kills every process left in the namespace (double-forked
    /// daemons included, as the kernel would when init exits) and reaps them, so that their ends
    /// of the output pipes are closed before the last copy.
    private func endNamespace() {
        // From PID 1, -1 means every process of the namespace but init itself.
        _ = kill(-1, SIGKILL)
        var raw: Int32 = 0
        while waitpid(-1, &raw, 0) > 0 || errno == EINTR {}
    }

    /// Copies one read's worth from stream `index`; `false` once nothing more is available now
    /// (the stream is closed at end of file or on error).
    private mutating func copy(_ index: Int, _ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard var stream = self[stream: index], stream.descriptor >= 0 else { return false }
        let count = read(stream.descriptor, buffer.baseAddress!, buffer.count)
        if count > 0 {
            stream.file.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            self[stream: index] = stream
            return true
        }
        if count < 0, errno == EINTR { return true }
        if count < 0, errno == EAGAIN || errno == EWOULDBLOCK { return false }
        close(stream.descriptor)
        stream.descriptor = -1
        self[stream: index] = stream
        return false
    }
}
