@preconcurrency import Glibc

/// `pipe2(2)` from `<unistd.h>` (declared only under `_GNU_SOURCE`): the pipe and its flags in
/// one call.
@_silgen_name("pipe2")
private func systemPipe2(_ descriptors: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32

/// Starting and waiting for one child with the C library only (starting: see
/// ``start(_:_:setup:)``).
enum ChildProcess {
    /// Waits for `pid` (retrying on `EINTR`) and returns its raw wait status, or `nil` on error.
    static func waitBlocking(_ pid: pid_t) -> Int32? {
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 {
            if errno != EINTR { return nil }
        }
        return raw
    }

    /// The raw wait status of `pid` if it has exited (and reaps it), else `nil`. Never blocks.
    static func reapIfExited(_ pid: pid_t) -> Int32? {
        var raw: Int32 = 0
        let result = waitpid(pid, &raw, WNOHANG)
        return result == pid ? raw : nil
    }

    /// A pipe whose ends are both close-on-exec.
    static func makePipe() -> (read: Int32, write: Int32)? {
        var descriptors: (Int32, Int32) = (0, 0)
        let created = withUnsafeMutableBytes(of: &descriptors) {
            systemPipe2($0.baseAddress!.assumingMemoryBound(to: Int32.self), O_CLOEXEC)
        }
        guard created == 0 else { return nil }
        return descriptors
    }

    /// Makes reads on `descriptor`, the read end of a pipe made by ``makePipe()``, return
    /// `EAGAIN` instead of blocking. Such an end has no other status flag to keep (`F_SETFL`
    /// leaves the access mode alone), so one call does it.
    static func setNonBlocking(_ descriptor: Int32) {
        _ = fcntl(descriptor, F_SETFL, O_NONBLOCK)
    }
}

/// A failure to start a child: the `errno` of `fork`, of its setup or of `execve`.
struct SpawnError: Error {
    var code: Int32
    var text: String { String(cString: strerror(code)) }
}

/// How a raw wait status reads in the exit-status file, and the matching exit code.
struct WaitStatus {
    var raw: Int32

    /// Writes the record, `exited CODE` or `signaled SIGNAL [core]` and a newline, into `buffer`
    /// (at least 18 bytes) without allocating; returns the bytes written.
    func format(into buffer: UnsafeMutableRawBufferPointer) -> UnsafeRawBufferPointer {
        var writer = ByteWriter(buffer)
        let low = raw & 0x7f
        if low == 0 {
            writer.append("exited ")
            writer.append(decimal: Int((raw >> 8) & 0xff))
        } else {
            writer.append("signaled ")
            writer.append(decimal: Int(low))
            if raw & 0x80 != 0 { writer.append(" core") }
        }
        writer.append("\n")
        return writer.written
    }

    /// The code itself, or 128 + the signal, as shells report it.
    var exitCode: Int32 {
        let low = raw & 0x7f
        return low == 0 ? (raw >> 8) & 0xff : 128 + low
    }
}
