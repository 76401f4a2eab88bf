@preconcurrency import Glibc

/// Small synchronous helpers for the pseudo-files of a cgroup file system.
///
/// cgroup files are tiny and answer from kernel memory, so plain `open`/`read`/`write` calls
/// are used directly (no buffering, one `write` per value, as the kernel expects).
package enum CgroupFiles {
    /// The whole contents of `path`, or `nil` if it cannot be read.
    package static func read(_ path: String) -> String? {
        withContents(path) { String(decoding: $0, as: UTF8.self) }
    }

    /// The first non-empty line of `path` without leading and trailing blanks, or `nil`.
    package static func readLine(_ path: String) -> String? {
        withContents(path) { contents -> String? in
            var line = contents[...].drop { $0 == UInt8(ascii: "\n") }
            guard !line.isEmpty else { return nil }
            if let newline = line.firstIndex(of: UInt8(ascii: "\n")) { line = line[..<newline] }
            func isBlank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
            while let first = line.first, isBlank(first) { line = line.dropFirst() }
            while let last = line.last, isBlank(last) { line = line.dropLast() }
            return String(decoding: line, as: UTF8.self)
        } ?? nil
    }

    /// The integer in `path` (`max` reads as `nil`).
    package static func readInteger(_ path: String) -> UInt64? {
        withContents(path) { integer(at: $0[...]) } ?? nil
    }

    /// The value of `key` in a flat-keyed file such as `memory.events` (`key value` lines).
    package static func keyedValue(_ path: String, key: String) -> UInt64? {
        withContents(path) { contents -> UInt64? in
            var found: UInt64?
            forEachLine(of: contents) { line in
                found = value(of: key, in: line)
                return found == nil
            }
            return found
        } ?? nil
    }

    /// The values of two keys of a flat-keyed file such as `cgroup.events`, from one read
    /// (`nil` for a key that is missing or a file that cannot be read).
    package static func keyedValues(_ path: String, _ first: String, _ second: String) -> (UInt64?, UInt64?) {
        withContents(path) { contents -> (UInt64?, UInt64?) in
            var values: (UInt64?, UInt64?) = (nil, nil)
            forEachLine(of: contents) { line in
                if let value = value(of: first, in: line) { values.0 = value }
                if let value = value(of: second, in: line) { values.1 = value }
                return values.0 == nil || values.1 == nil
            }
            return values
        } ?? (nil, nil)
    }

    /// The number after `key ` if `line` is `key value`.
    private static func value(of key: String, in line: Slice<UnsafeRawBufferPointer>) -> UInt64? {
        let key = key.utf8
        guard line.count > key.count, line[line.startIndex + key.count] == UInt8(ascii: " "),
            line.prefix(key.count).elementsEqual(key)
        else { return nil }
        return integer(at: line.dropFirst(key.count + 1))
    }

    /// The pids listed in a `cgroup.procs` (or v1 `tasks`) file; empty if unreadable.
    package static func pids(_ path: String) -> [Int32] {
        withContents(path) { contents -> [Int32] in
            var pids: [Int32] = []
            forEachLine(of: contents) { line in
                if let pid = integer(at: line).flatMap({ Int32(exactly: $0) }) { pids.append(pid) }
                return true
            }
            return pids
        } ?? []
    }

    /// Calls `body` with each line of `text` (without its newline) until it returns `false`.
    static func forEachLine(of text: UnsafeRawBufferPointer, _ body: (Slice<UnsafeRawBufferPointer>) -> Bool) {
        var start = text.startIndex
        while start < text.endIndex {
            let end = text[start...].firstIndex(of: UInt8(ascii: "\n")) ?? text.endIndex
            if !body(text[start..<end]) { return }
            start = end + 1
        }
    }

    /// Calls `body` with the contents of `path`, read into a buffer on the stack (the heap only
    /// for a file longer than 4 KiB); `nil` if it cannot be opened. The launcher reads several
    /// cgroup files at the end of every task, so these reads make no strings and no arrays.
    static func withContents<Result>(_ path: String, _ body: (UnsafeRawBufferPointer) -> Result) -> Result? {
        let fd = openFile(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 1) { buffer -> Result in
            var filled = 0
            while filled < buffer.count {
                let count = Glibc.read(fd, buffer.baseAddress! + filled, buffer.count - filled)
                if count < 0, errno == EINTR { continue }
                // The end, or an error (a cgroup removed meanwhile): what was read so far.
                guard count > 0 else { return body(UnsafeRawBufferPointer(rebasing: buffer[0..<filled])) }
                filled += count
            }
            var contents = Array(UnsafeRawBufferPointer(buffer))
            while true {
                let count = Glibc.read(fd, buffer.baseAddress!, buffer.count)
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                contents += UnsafeRawBufferPointer(rebasing: buffer[0..<count])
            }
            return contents.withUnsafeBytes(body)
        }
    }

    /// The unsigned decimal number at the start of `text` after blanks, ending at a blank, a
    /// newline or the end; `nil` for anything else (such as `max`) or an overflow.
    static func integer(at text: Slice<UnsafeRawBufferPointer>) -> UInt64? {
        var value: UInt64 = 0
        var digits = 0
        var index = text.startIndex
        while index < text.endIndex, text[index] == UInt8(ascii: " ") || text[index] == UInt8(ascii: "\t") { index += 1 }
        while index < text.endIndex {
            let byte = text[index]
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { break }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
            digits += 1
            index += 1
        }
        return digits > 0 ? value : nil
    }

    /// Writes `value` to `path` in one `write`; `purpose` says what it was for in the error.
    static func write(_ value: String, to path: String, purpose: String) throws(LauncherError) {
        let fd = openFile(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw LauncherError.system(
                "open", errno: errno,
                message: "cannot open '\(path)' to \(purpose); check that the cgroup exists and the launcher runs as root")
        }
        defer { close(fd) }
        var value = value
        let (written, expected) = value.withUTF8 { (Glibc.write(fd, $0.baseAddress, $0.count), $0.count) }
        guard written == expected else {
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
        let removed = rmdir(path) == 0 || errno == ENOENT
        let code = errno
        if removed {
            CgroupDirectoryCache.forget(path)
            return (true, 0)
        }
        return (false, code)
    }

    /// Opens `path` with `flags`, relative to its directory's kept descriptor when the
    /// directory is a cgroup (see ``CgroupDirectoryCache``).
    static func openFile(_ path: String, _ flags: Int32) -> Int32 {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")),
            let directory = CgroupDirectoryCache.directory(String(path[..<slash]))
        else { return open(path, flags) }
        let fd = openat(directory.descriptor, String(path[path.utf8.index(after: slash)...]), flags)
        // A directory removed behind the cache's back (and perhaps made again): its descriptor
        // finds nothing any more, the path finds what is there now.
        if fd < 0, errno == ENOENT {
            CgroupDirectoryCache.forget(directory.path)
            return open(path, flags)
        }
        return fd
    }
}

/// Open descriptors (`O_PATH`) of the cgroup directories the launcher reads and writes, so that
/// their files are opened relative to them.
///
/// At the end of every task the launcher opens about ten files of its cgroups (the processes
/// left, the OOM record, the memory in use, the frozen state, the peak it resets), and opening
/// `/sys/fs/cgroup/memory/keel/slot-…/memory.oom_control` by its path walks six components of
/// kernfs and sysfs, which cannot be walked in the kernel's lock-free mode: that walk was the
/// largest part of the launcher's system time per task. Directories below a cgroup mount point
/// registered with ``register(mountPoint:)`` are opened once and kept (at most ``capacity`` of
/// them; beyond that files are opened by their paths) until ``CgroupFiles/removeDirectory(_:)``
/// removes them. A descriptor is closed only when its last user is done with it.
enum CgroupDirectoryCache {
    /// A kept directory descriptor.
    final class Directory: Sendable {
        let path: String
        let descriptor: Int32

        init(path: String, descriptor: Int32) {
            self.path = path
            self.descriptor = descriptor
        }

        deinit { close(descriptor) }
    }

    private struct State {
        /// Mount points, each ending in `/`.
        var mountPoints: [String] = []
        var directories: [String: Directory] = [:]
    }

    /// Read at every cgroup file access from many threads at once, changed rarely (a new kept
    /// directory, a removed one): a read-write lock, so that readers never wait for each other.
    private static let state = ReadWriteLocked(State())

    /// `O_PATH` (Linux, `<fcntl.h>` under `_GNU_SOURCE`): a descriptor that only names the
    /// directory.
    private static let openPathOnly: Int32 = 0o1000_0000

    /// The most directories kept: an eighth of the descriptors the process may open, at most 2048.
    static let capacity: Int = {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        return Int(min(2048, limit.rlim_cur / 8))
    }()

    /// Keeps descriptors of the directories below `mountPoint` (a cgroup hierarchy's).
    static func register(mountPoint: String) {
        let prefix = mountPoint.hasSuffix("/") ? mountPoint : mountPoint + "/"
        state.write { state in
            if !state.mountPoints.contains(prefix) { state.mountPoints.append(prefix) }
        }
    }

    /// The kept descriptor of `path`, opened now if needed; `nil` if `path` is not below a
    /// registered mount point, cannot be opened, or the cache is full.
    static func directory(_ path: String) -> Directory? {
        let known = state.read { state -> (Directory?, Bool) in
            if let directory = state.directories[path] { return (directory, true) }
            let below = state.mountPoints.contains { path.hasPrefix($0) && path.utf8.count > $0.utf8.count }
            return (nil, below && state.directories.count < capacity)
        }
        if let directory = known.0 { return directory }
        guard known.1 else { return nil }
        let descriptor = open(path, openPathOnly | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        let opened = Directory(path: path, descriptor: descriptor)
        return state.write { state -> Directory? in
            if let raced = state.directories[path] { return raced }
            guard state.directories.count < capacity else { return nil }
            state.directories[path] = opened
            return opened
        }
    }

    /// Drops the descriptor of `path` (removed, or found stale).
    static func forget(_ path: String) {
        // Closed once the last user lets go of it, outside the lock.
        _ = state.write { $0.directories.removeValue(forKey: path) }
    }
}

/// A value behind a `pthread_rwlock_t`: readers share it, a writer has it alone.
final class ReadWriteLocked<Value: Sendable>: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        lock = .allocate(capacity: 1)
        // pthread_rwlock_init fills in the (plain C) memory.
        pthread_rwlock_init(lock, nil)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func read<Result>(_ body: (borrowing Value) throws -> Result) rethrows -> Result {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(value)
    }

    func write<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(&value)
    }
}
