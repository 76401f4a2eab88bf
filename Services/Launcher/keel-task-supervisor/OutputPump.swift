@preconcurrency import Glibc

/// The write end of the pipe the `SIGCHLD` handler wakes the pump with.
nonisolated(unsafe) var childExitWakeDescriptor: Int32 = -1

/// Copies the task's standard output and error from pipes into ``RotatingFile``s until the
/// supervisor's child exits.
///
/// One thread, one `poll` over both pipes and a self-pipe that a `SIGCHLD` handler writes to,
/// so the pump notices the child's exit even while a descendant that outlived it keeps a pipe
/// open. After the exit it copies what is still buffered in the pipes (without waiting for
/// more) and stops. The supervisor ignores the signals that stop tasks, and the pipes are read
/// without blocking, so nothing the task does can wedge it.
struct OutputPump {
    private var streams: [(descriptor: Int32, file: RotatingFile)]
    private let wake: (read: Int32, write: Int32)

    /// Takes the read ends of the task's output pipes and installs the `SIGCHLD` handler.
    init(stdout: Int32, stderr: Int32, files: OutputFiles, wake: (read: Int32, write: Int32)) {
        streams = [
            (stdout, RotatingFile(path: files.stdoutPath, maxSize: files.maxSize, maxFiles: files.maxFiles)),
            (stderr, RotatingFile(path: files.stderrPath, maxSize: files.maxSize, maxFiles: files.maxFiles)),
        ]
        self.wake = wake
        for descriptor in [stdout, stderr, wake.read, wake.write] {
            ChildProcess.setNonBlocking(descriptor)
        }
        childExitWakeDescriptor = wake.write
        signal(SIGCHLD) { _ in
            let saved = errno
            var byte: UInt8 = 1
            _ = write(childExitWakeDescriptor, &byte, 1)
            errno = saved
        }
    }

    /// Copies output until `child` exits; returns its raw wait status.
    mutating func run(until child: pid_t) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            if let raw = ChildProcess.reapIfExited(child) {
                for index in streams.indices where streams[index].descriptor >= 0 {
                    while copy(index, &buffer) {}
                }
                return raw
            }
            if streams.allSatisfy({ $0.descriptor < 0 }) {
                return ChildProcess.waitBlocking(child)
            }
            // A negative descriptor is skipped by poll.
            var descriptors = streams.map { pollfd(fd: $0.descriptor, events: Int16(POLLIN), revents: 0) }
            descriptors.append(pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0))
            if poll(&descriptors, nfds_t(descriptors.count), -1) < 0 {
                continue  // EINTR: SIGCHLD arrived
            }
            for index in streams.indices where descriptors[index].revents != 0 {
                _ = copy(index, &buffer)
            }
            if descriptors[streams.count].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while read(wake.read, &drain, drain.count) > 0 {}
            }
        }
    }

    /// Copies one read's worth from stream `index`; `false` once nothing more is available now
    /// (the stream is closed at end of file or on error).
    private mutating func copy(_ index: Int, _ buffer: inout [UInt8]) -> Bool {
        let descriptor = streams[index].descriptor
        guard descriptor >= 0 else { return false }
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
        if count > 0 {
            buffer.withUnsafeBytes { streams[index].file.write(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            return true
        }
        if count < 0, errno == EINTR { return true }
        if count < 0, errno == EAGAIN || errno == EWOULDBLOCK { return false }
        close(descriptor)
        streams[index].descriptor = -1
        return false
    }
}
