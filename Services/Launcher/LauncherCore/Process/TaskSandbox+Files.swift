@preconcurrency import Glibc

/// A slice of a sandbox file returned by ``TaskSandbox/read(path:offset:length:)``.
package struct SandboxFileChunk: Sendable, Hashable {
    /// The bytes read; shorter than requested at end of file, empty at or past it.
    package var data: [UInt8]
    /// The offset the bytes start at (the requested offset).
    package var offset: Int64
    /// The file's size when it was read; compare with `offset + data.count` to tail a file.
    package var fileSize: Int64
}

/// One entry of a sandbox directory, as returned by ``TaskSandbox/list(path:)``.
package struct SandboxEntry: Sendable, Hashable {
    /// The entry's file name (no directory part).
    package var name: String
    /// The path relative to the sandbox root, usable with `read` and `list`.
    package var relativePath: String
    /// Size in bytes (`st_size`; for a symlink, the length of its target).
    package var size: Int64
    /// The full `st_mode`: file type and permission bits.
    package var mode: UInt32
    /// Last modification time, whole seconds since the Unix epoch.
    package var mtime: Int64
    /// Whether the entry is a directory (symlinks are not followed, so a link to a directory is not).
    package var isDirectory: Bool
}

extension TaskSandbox {
    /// The most bytes one ``read(path:offset:length:)`` returns; larger requests are clamped.
    package static let maxReadLength = 16 * 1024 * 1024

    /// Reads up to `length` bytes (clamped to ``maxReadLength``) of the regular file at the
    /// sandbox-relative `path`, starting at `offset`, and reports the file's size.
    ///
    /// Reading at or past the end returns no data (not an error), so clients can poll a growing
    /// `stdout`. Negative `offset`/`length` and directories are ``LauncherError/Code/invalidArgument``;
    /// paths outside the sandbox are rejected as by ``resolve(relativePath:)``.
    package func read(path: String, offset: Int64, length: Int) throws(LauncherError) -> SandboxFileChunk {
        guard offset >= 0, length >= 0 else {
            throw LauncherError(
                code: .invalidArgument,
                message: "offset \(offset) and length \(length) must not be negative"
            )
        }
        return try openFile(path: path).read(offset: offset, length: length)
    }

    /// Opens the regular file at the sandbox-relative `path` for reading (paths outside the
    /// sandbox are rejected as by ``resolve(relativePath:)``; the last component is not followed
    /// if it is a symlink).
    func openFile(path: String) throws(LauncherError) -> SandboxOpenFile {
        let resolved = try resolve(relativePath: path)
        let fd = open(resolved, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            throw LauncherError.system("open", errno: errno, message: "cannot open '\(path)' in the sandbox")
        }
        var info = Glibc.stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw LauncherError.system("fstat", errno: code, message: "cannot stat '\(path)' in the sandbox")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw LauncherError(
                code: .invalidArgument,
                message: "'\(path)' is not a regular file; use list(path:) for directories"
            )
        }
        return SandboxOpenFile(
            descriptor: fd, path: path, identity: SandboxFileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino)))
    }

    /// The identity of the file the sandbox-relative `path` names now; nil if there is none.
    func identity(path: String) -> SandboxFileIdentity? {
        guard let resolved = try? resolve(relativePath: path) else { return nil }
        var info = Glibc.stat()
        guard lstat(resolved, &info) == 0 else { return nil }
        return SandboxFileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// Lists the directory at the sandbox-relative `path` (`""` for the sandbox itself),
    /// sorted by name, without `.` and `..`.
    ///
    /// Entries are described with `lstat`, so symlinks are reported as links, never followed.
    /// Entries that vanish while listing are skipped. A non-directory is
    /// ``LauncherError/Code/invalidArgument``.
    package func list(path: String) throws(LauncherError) -> [SandboxEntry] {
        let resolved = try resolve(relativePath: path)
        let fd = open(resolved, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            let code = errno
            if code == ENOTDIR {
                throw LauncherError(
                    code: .invalidArgument,
                    message: "'\(path)' is not a directory; use read(path:offset:length:) for files"
                )
            }
            throw LauncherError.system("open", errno: code, message: "cannot open directory '\(path)' in the sandbox")
        }
        guard let directory = fdopendir(fd) else {
            let code = errno
            close(fd)
            throw LauncherError.system("fdopendir", errno: code, message: "cannot list '\(path)' in the sandbox")
        }
        defer { closedir(directory) }

        let prefix = resolved == root ? "" : String(resolved.dropFirst(root.count + 1)) + "/"
        var entries: [SandboxEntry] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            var info = Glibc.stat()
            guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            entries.append(
                SandboxEntry(
                    name: name,
                    relativePath: prefix + name,
                    size: Int64(info.st_size),
                    mode: UInt32(info.st_mode),
                    mtime: Int64(info.st_mtim.tv_sec),
                    isDirectory: info.st_mode & S_IFMT == S_IFDIR
                ))
        }
        return entries.sorted { $0.name < $1.name }
    }
}

/// A sandbox file open for reading (see ``TaskSandbox/openFile(path:)``); closed when released.
/// Holding it keeps the file readable, and its identity unique, even after it is renamed or
/// deleted.
final class SandboxOpenFile {
    let descriptor: Int32
    /// The sandbox-relative path it was opened as.
    let path: String
    let identity: SandboxFileIdentity

    init(descriptor: Int32, path: String, identity: SandboxFileIdentity) {
        self.descriptor = descriptor
        self.path = path
        self.identity = identity
    }

    deinit {
        close(descriptor)
    }

    /// Reads up to `length` bytes (clamped to ``TaskSandbox/maxReadLength``) from `offset`, with
    /// the file's size now.
    func read(offset: Int64, length: Int) throws(LauncherError) -> SandboxFileChunk {
        var info = Glibc.stat()
        guard fstat(descriptor, &info) == 0 else {
            throw LauncherError.system("fstat", errno: errno, message: "cannot stat '\(path)' in the sandbox")
        }
        let size = Int64(info.st_size)
        let wanted = offset >= size ? 0 : Int(min(Int64(min(length, TaskSandbox.maxReadLength)), size - offset))
        var data = [UInt8](repeating: 0, count: wanted)
        var filled = 0
        while filled < wanted {
            let count = data.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + filled, wanted - filled, off_t(offset) + off_t(filled))
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw LauncherError.system("pread", errno: errno, message: "cannot read '\(path)' in the sandbox")
            }
            if count == 0 { break }  // the file shrank since fstat
            filled += count
        }
        data.removeSubrange(filled...)
        return SandboxFileChunk(data: data, offset: offset, fileSize: size)
    }
}
