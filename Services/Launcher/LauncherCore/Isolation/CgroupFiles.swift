@preconcurrency import Glibc

/// Small synchronous helpers for the pseudo-files of a cgroup file system.
///
/// cgroup files are tiny and answer from kernel memory, so plain `open`/`read`/`write` calls
/// are used directly (no buffering, one `write` per value, as the kernel expects).
enum CgroupFiles {
    /// The whole contents of `path`, or `nil` if it cannot be read.
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The trimmed first line of `path`, or `nil`.
    static func readLine(_ path: String) -> String? {
        guard let line = read(path)?.split(separator: "\n").first else { return nil }
        return String(line.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }

    /// The integer in `path` (`max` reads as `nil`).
    static func readInteger(_ path: String) -> UInt64? {
        readLine(path).flatMap { UInt64($0) }
    }

    /// The value of `key` in a flat-keyed file such as `memory.events` (`key value` lines).
    static func keyedValue(_ path: String, key: String) -> UInt64? {
        guard let text = read(path) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == key { return UInt64(parts[1]) }
        }
        return nil
    }

    /// The pids listed in a `cgroup.procs` (or v1 `tasks`) file; empty if unreadable.
    static func pids(_ path: String) -> [pid_t] {
        (read(path) ?? "").split(separator: "\n").compactMap { pid_t($0) }
    }

    /// Writes `value` to `path` in one `write`; `purpose` says what it was for in the error.
    static func write(_ value: String, to path: String, purpose: String) throws(LauncherError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw LauncherError.system(
                "open", errno: errno,
                message: "cannot open '\(path)' to \(purpose); check that the cgroup exists and the launcher runs as root")
        }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw LauncherError.system(
                "write", errno: written < 0 ? errno : EIO,
                message: "cannot write '\(value)' to '\(path)' to \(purpose); the kernel refused the value")
        }
    }

    /// Whether `path` exists.
    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Creates `path` and any missing parents (mode 0755); existing directories are fine.
    static func makeDirectories(_ path: String, purpose: String) throws(LauncherError) {
        if let failure = Directories.make(path, mode: 0o755) {
            throw LauncherError.system(
                "mkdir", errno: failure.errno,
                message: "cannot create cgroup directory '\(failure.path)' to \(purpose); "
                    + "check that the hierarchy is mounted read-write and the launcher runs as root")
        }
    }

    /// Removes the (empty) cgroup directory `path`; `true` if it is gone. `EBUSY` means
    /// processes are still inside.
    static func removeDirectory(_ path: String) -> (removed: Bool, errno: Int32) {
        if rmdir(path) == 0 || errno == ENOENT { return (true, 0) }
        return (false, errno)
    }
}
