@preconcurrency import Glibc
import Dispatch
import Foundation
package import Logging
import Synchronization

/// One command an operator runs inside a task (see ``TaskExecTarget``): its process and the
/// launcher's ends of its standard input, output and error.
///
/// Output is read on two small dedicated threads (blocking reads never occupy the concurrency
/// pool) and handed over through ``output``, at most a few chunks ahead of the consumer, so a
/// slow client slows the command down instead of filling the launcher's memory. Standard input
/// is written on a serial queue with `SIGPIPE` blocked for the write, so a command that exits
/// without reading its input turns into an `EPIPE` error, not a signal to the launcher.
package final class ExecSession: Sendable {
    /// A piece of the command's output.
    package enum Output: Sendable {
        case stdout([UInt8])
        case stderr([UInt8])
    }

    /// The command's process (the leader of its own process group).
    package let process: TaskProcess
    /// The output chunks of both streams, in the order they were read; ends when both reach EOF
    /// or ``stopReading()`` is called.
    package let output: AsyncStream<Output>

    private let stdinFD: Mutex<Int32>
    private let stdinQueue = DispatchQueue(label: "keel.exec.stdin")
    private let readers = ReaderState()
    /// Chunks read but not yet consumed, per stream; bounds the buffering.
    private let credits: [DispatchSemaphore]

    private static let chunkSize = 64 * 1024
    private static let chunksAhead = 8

    /// Starts `target` and begins reading its output.
    package init(_ target: TaskExecTarget, logger: Logger) throws(LauncherError) {
        let (pid, pipes) = try ExecSpawner.spawn(
            executable: target.executable, arguments: target.arguments,
            environment: target.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
            workingDirectory: target.workingDirectory, command: target.description)
        var logger = logger
        logger[metadataKey: "keel.pid"] = "\(pid)"
        process = TaskProcess(pid: pid, command: .argv(target.command), user: target.user, cgroup: nil, logger: logger)
        stdinFD = Mutex(pipes.stdin)
        credits = [DispatchSemaphore(value: Self.chunksAhead), DispatchSemaphore(value: Self.chunksAhead)]
        let (stream, continuation) = AsyncStream.makeStream(of: Output.self)
        output = stream
        do {
            try process.startReaper()
        } catch {
            close(pipes.stdin)
            close(pipes.stdout)
            close(pipes.stderr)
            continuation.finish()
            throw error
        }
        for (index, fd) in [pipes.stdout, pipes.stderr].enumerated() {
            let credit = credits[index]
            let thread = Thread { [readers] in
                Self.pump(fd: fd, credit: credit, readers: readers) { bytes in
                    continuation.yield(index == 0 ? .stdout(bytes) : .stderr(bytes))
                }
                close(fd)
                if readers.running.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                    continuation.finish()
                }
            }
            thread.stackSize = 512 * 1024
            thread.start()
        }
        logger.info("exec started", metadata: ["keel.command": "\(target.description)"])
    }

    deinit {
        stopReading()
        stdinFD.withLock { fd in
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    /// Tells the session a chunk of ``output`` was consumed (lets its reader read another).
    package func consumed(_ chunk: Output) {
        switch chunk {
        case .stdout: credits[0].signal()
        case .stderr: credits[1].signal()
        }
    }

    /// Makes the reader threads stop within a fraction of a second, even if some descendant of
    /// the command still holds the pipes open.
    package func stopReading() {
        readers.stopped.store(true, ordering: .releasing)
        for credit in credits { credit.signal() }
    }

    /// Writes all of `bytes` to the command's standard input; throws once the command has
    /// closed it (or exited) or after ``closeStdin()``.
    package func writeStdin(_ bytes: [UInt8]) async throws(LauncherError) {
        let fd = stdinFD.withLock { $0 }
        guard fd >= 0 else {
            throw LauncherError(code: .invalidArgument, message: "standard input is already closed")
        }
        let error: Int32 = await withCheckedContinuation { continuation in
            stdinQueue.async {
                continuation.resume(returning: Self.writeAll(bytes, to: fd))
            }
        }
        guard error == 0 else {
            throw LauncherError.system("write", errno: error, message: "cannot write to the command's standard input")
        }
    }

    /// Closes the command's standard input (it reads EOF) once queued writes are done.
    package func closeStdin() {
        stdinQueue.async {
            self.stdinFD.withLock { fd in
                if fd >= 0 { close(fd) }
                fd = -1
            }
        }
    }

    /// What the reader threads share with the session.
    private final class ReaderState: Sendable {
        /// Set to make the readers stop.
        let stopped = Atomic<Bool>(false)
        /// Readers still running; the last one ends ``output``.
        let running = Atomic<Int>(2)
    }

    /// Reads `fd` until EOF, an error or `stopped`, passing each chunk to `deliver`.
    private static func pump(
        fd: Int32, credit: DispatchSemaphore, readers: ReaderState, deliver: ([UInt8]) -> Void
    ) {
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        while !readers.stopped.load(ordering: .acquiring) {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 200)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if ready == 0 { continue }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, chunkSize) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return
            }
            if count == 0 { return }
            while credit.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
                if readers.stopped.load(ordering: .acquiring) { return }
            }
            deliver(Array(buffer[0..<count]))
        }
    }

    /// Writes everything, retrying short writes; returns 0 or the `errno` of the failure.
    /// `SIGPIPE` is blocked on this thread for the duration, and a pending one is consumed.
    private static func writeAll(_ bytes: [UInt8], to fd: Int32) -> Int32 {
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EPIPE {
                    var zero = timespec()
                    _ = sigtimedwait(&pipeSignal, nil, &zero)
                }
                return code
            }
            offset += written
        }
        return 0
    }
}
