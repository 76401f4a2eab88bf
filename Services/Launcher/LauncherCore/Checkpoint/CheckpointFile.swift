@preconcurrency import Glibc

/// `renameat2(2)` from `<stdio.h>` (glibc 2.28; declared only under `_GNU_SOURCE`).
@_silgen_name("renameat2")
private func renameAt2(_ oldDirectory: Int32, _ old: UnsafePointer<CChar>, _ newDirectory: Int32, _ new: UnsafePointer<CChar>, _ flags: UInt32) -> Int32

/// Durable whole-file writes and reads for the launcher's checkpoint.
///
/// ``write(_:to:durability:)`` never leaves a half-written file behind under the final name: the
/// bytes go to `<path>.tmp`, which is `fsync`ed, renamed over `path`, and then the directory is
/// `fsync`ed so the rename itself survives a crash or power loss. A reader therefore sees either
/// the old contents or the new ones. A file that is still truncated or garbled (a disk error, a hand
/// edit) is caught when it is decoded, and reported by the caller.
///
/// Once `path` exists, the rename is an exchange (`renameat2(RENAME_EXCHANGE)`): the new file
/// takes the name and the old one becomes `<path>.tmp`, which the next write truncates and
/// fills. A task's record is rewritten several times, and a plain rename deleted the replaced
/// file's inode each time and the next write allocated a new one; on ext4 without a journal every
/// allocation then scans past the recently deleted inodes, which made the file system the
/// launcher's main cost in the launch benchmark. Where exchanges are not supported, it is a
/// plain rename.
package enum CheckpointFile {
    /// `RENAME_EXCHANGE` and `AT_FDCWD`.
    private static let exchange: UInt32 = 2
    private static let currentDirectory: Int32 = -100

    /// How much of a replacement must survive what.
    package enum Durability: Int, Comparable, Sendable {
        /// Write and rename: atomic for every reader, and kept across a crash of the launcher
        /// (the page cache holds it), not necessarily across a power loss.
        case atomic
        /// Write, `fsync`, rename: after a power loss too, the file holds either the old or
        /// the new contents, never a torn or empty one; the rename itself may be lost.
        case synced
        /// Write, `fsync`, rename, `fsync` of the directory: the new contents under the name
        /// survive a power loss.
        case durable

        package static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// Atomically replaces `path` with `bytes`, creating missing parent directories, as
    /// durably as `durability` asks.
    package static func write(_ bytes: [UInt8], to path: String, durability: Durability = .durable) throws(LauncherError) {
        let directory = parent(of: path)
        let temporary = path + ".tmp"
        let flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW
        var fd = open(temporary, flags, 0o600)
        if fd < 0, errno == ENOENT {
            try makeDirectories(directory)
            fd = open(temporary, flags, 0o600)
        }
        guard fd >= 0 else {
            throw LauncherError.system("open", errno: errno, message: "cannot create checkpoint file '\(temporary)'")
        }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                close(fd)
                throw LauncherError.system("write", errno: code, message: "cannot write checkpoint file '\(temporary)'")
            }
            offset += written
        }
        guard durability == .atomic || fsync(fd) == 0 else {
            let code = errno
            close(fd)
            throw LauncherError.system("fsync", errno: code, message: "cannot flush checkpoint file '\(temporary)'")
        }
        close(fd)
        // ENOENT: the first write (nothing to exchange with); EINVAL: no exchanges here.
        if renameAt2(currentDirectory, temporary, currentDirectory, path, exchange) != 0 {
            guard errno == ENOENT || errno == EINVAL, rename(temporary, path) == 0 else {
                throw LauncherError.system("rename", errno: errno, message: "cannot move '\(temporary)' to '\(path)'")
            }
        }
        if durability == .durable { try syncDirectory(directory) }
    }

    /// The contents of `path`, or `nil` if it does not exist.
    package static func read(_ path: String) throws(LauncherError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw LauncherError.system("open", errno: errno, message: "cannot open checkpoint file '\(path)'")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw LauncherError.system("read", errno: errno, message: "cannot read checkpoint file '\(path)'")
            }
            if count == 0 { return bytes }
            bytes += buffer[0..<count]
        }
    }

    /// Removes `path` (a file) if it exists, and the previous contents kept beside it.
    package static func remove(_ path: String) {
        unlink(path)
        unlink(path + ".tmp")
    }

    /// Removes the directory `path` and everything in it (regular files and directories only).
    package static func removeTree(_ path: String) {
        for name in entries(of: path) {
            let child = path + "/" + name
            var info = stat()
            guard lstat(child, &info) == 0 else { continue }
            if info.st_mode & S_IFMT == S_IFDIR {
                removeTree(child)
            } else {
                unlink(child)
            }
        }
        rmdir(path)
    }

    /// The names in directory `path` (without `.` and `..`); empty if it cannot be read.
    package static func entries(of path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Whether `path` is a directory.
    package static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    /// `fsync` on a directory, so that entries created, renamed or removed in it are durable.
    package static func syncDirectory(_ path: String) throws(LauncherError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw LauncherError.system("open", errno: errno, message: "cannot open checkpoint directory '\(path)'")
        }
        defer { close(fd) }
        guard fsync(fd) == 0 else {
            throw LauncherError.system("fsync", errno: errno, message: "cannot flush checkpoint directory '\(path)'")
        }
    }

    /// `mkdir -p` with mode 0700.
    package static func makeDirectories(_ path: String) throws(LauncherError) {
        if let failure = Directories.make(path, mode: 0o700) {
            throw LauncherError.system("mkdir", errno: failure.errno, message: "cannot create directory '\(failure.path)'")
        }
    }

    static func parent(of path: String) -> String {
        Directories.parent(of: path)
    }
}
