@preconcurrency import Glibc

/// An output file that is rotated like logrotate: before a write would take `path` past
/// `maxSize` bytes, `path.N-1` becomes `path.N` (the oldest, `path.<maxFiles-1>`, is
/// replaced), …, `path` becomes `path.1`, and a new empty `path` is started. So there are never
/// more than `maxFiles` files of at most `maxSize` bytes each, and the newest output is always
/// in `path`, which readers can follow by noticing that its inode changed.
///
/// Writes never block on anything but the disk; a write the disk refuses (e.g. `ENOSPC`) is
/// dropped, so a full disk cannot stall the task.
///
/// The file is written through a fixed descriptor number: the supervisor's own standard output
/// or error, which keel-launcher and the spawner open on the same files (with `O_APPEND`), so the
/// supervisor's messages land in the task's files too and the files need no second open. Only a
/// rotation opens the path again, onto the same number.
struct RotatingFile {
    let path: String
    let maxSize: Int
    let maxFiles: Int
    private let descriptor: Int32
    /// Whether `descriptor` is a regular file being written.
    private var isOpen = false
    private var size = 0

    /// Writes `path` through `descriptor`, which should already be `path` opened for appending.
    /// If it is not a regular file, `path` is opened (or created) onto it. The file's current
    /// size counts towards `maxSize`.
    init(path: String, maxSize: Int, maxFiles: Int, descriptor: Int32) {
        self.path = path
        self.maxSize = maxSize
        self.maxFiles = maxFiles
        self.descriptor = descriptor
        var info = Glibc.stat()
        if fstat(descriptor, &info) == 0, info.st_mode & S_IFMT == S_IFREG {
            isOpen = true
            size = Int(info.st_size)
        } else {
            reopen(truncating: false)
        }
    }

    /// Appends `bytes`, rotating as often as needed so that no file exceeds `maxSize`.
    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            if size >= maxSize {
                rotate()
            }
            let count = min(bytes.count - offset, maxSize - size)
            if isOpen {
                var written = 0
                while written < count {
                    let result = Glibc.write(descriptor, bytes.baseAddress! + offset + written, count - written)
                    if result < 0 {
                        if errno == EINTR { continue }
                        break
                    }
                    written += result
                }
            }
            size += count
            offset += count
        }
    }

    /// Shifts `path.N-1` → `path.N`, …, `path` → `path.1` and starts a new `path`.
    private mutating func rotate() {
        if maxFiles > 1 {
            var index = maxFiles - 1
            while index > 1 {
                rename("\(path).\(index - 1)", "\(path).\(index)")
                index -= 1
            }
            rename(path, path + ".1")
        } else {
            unlink(path)
        }
        reopen(truncating: true)
    }

    /// Opens `path` again onto ``descriptor``. The task owns the directory and could put a
    /// symlink, FIFO or device there: `O_NOFOLLOW` refuses a symlink, `O_NONBLOCK` keeps a FIFO
    /// from blocking the open, and anything but a regular file is not written to.
    private mutating func reopen(truncating: Bool) {
        let flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | (truncating ? O_TRUNC : 0)
        let opened = open(path, flags, 0o644)
        var info = Glibc.stat()
        isOpen = opened >= 0 && fstat(opened, &info) == 0 && info.st_mode & S_IFMT == S_IFREG
            && dup2(opened, descriptor) >= 0
        if opened >= 0, opened != descriptor { close(opened) }
        size = isOpen ? Int(info.st_size) : 0
    }
}
