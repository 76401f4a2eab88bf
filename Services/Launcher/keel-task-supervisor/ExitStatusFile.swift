@preconcurrency import Glibc

/// The file a supervisor records its task's end in: `exited CODE` or `signaled SIGNAL [core]`
/// and a newline (see ``WaitStatus``), read by keel-launcher (`TaskProcess.readExitStatus`).
///
/// The record is written in one `write` of a few bytes to a file created for it (`O_EXCL`),
/// without a temporary file and a rename: keel-launcher reads the file only once the supervisor
/// is gone, and a supervisor killed before its write leaves an empty or missing file, which
/// reads as "unknown", the same as no file. Whatever is already at the path (a record of an
/// earlier run, or a link a task planted where the file is in its sandbox) is unlinked, never
/// written through. There is no `fsync` either: the file only has to outlive keel-launcher, not
/// the machine. A launcher that restarts within the same boot reads it from the page cache; after
/// a reboot it registers as a new agent and drops every task of the old boot without reading their
/// files (see TaskManager.recover in LauncherCore), so flushing would only make each task's end
/// wait for the disk.
///
/// The path is turned into a C string when the supervisor's plan is made (see
/// ``SupervisorPlan``), and the record is formatted on the stack, so a forked supervisor writes
/// it without allocating.
enum ExitStatusFile {
    /// Writes the record of `status` to `path`; `false` (with `errno` set) if that failed.
    static func write(_ status: WaitStatus, to path: UnsafePointer<CChar>) -> Bool {
        // "signaled 127 core\n" is the longest record: 18 bytes.
        var buffer: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &buffer) { bytes in
            write(status.format(into: bytes), to: path)
        }
    }

    /// Writes `record` to `path`; `false` (with `errno` set) if that failed.
    static func write(_ record: UnsafeRawBufferPointer, to path: UnsafePointer<CChar>) -> Bool {
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        var descriptor = open(path, flags, 0o600)
        if descriptor < 0, errno == EEXIST {
            unlink(path)
            descriptor = open(path, flags, 0o600)
        }
        guard descriptor >= 0 else { return false }
        var offset = 0
        while offset < record.count {
            let written = Glibc.write(descriptor, record.baseAddress! + offset, record.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(descriptor)
                errno = code
                return false
            }
            offset += written
        }
        return close(descriptor) == 0
    }

    /// Writes `text` to `path` (for the paths that have strings at hand: failures, and the
    /// executed supervisor's record of an init that was killed).
    static func write(_ text: String, to path: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            path.withCString { write(UnsafeRawBufferPointer(bytes), to: $0) }
        }
    }
}
