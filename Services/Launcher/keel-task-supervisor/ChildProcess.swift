@preconcurrency import Glibc

/// Starting and waiting for one child with the C library only.
enum ChildProcess {
    /// Starts `executable` with `arguments` and the current environment.
    ///
    /// The child gets `blocked` as its signal mask and every signal at its default action;
    /// `redirections` are `dup2`ed before `exec` (source → target); with `newProcessGroup` it
    /// leads a process group of its own. Returns the pid, or the `posix_spawn` error number.
    static func spawn(
        _ executable: String, _ arguments: [String], blocked: [Int32] = [], redirections: [(Int32, Int32)] = [],
        newProcessGroup: Bool = false
    ) -> Result<pid_t, SpawnError> {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in blocked { sigaddset(&mask, signal) }
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)
        if newProcessGroup {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (source, target) in redirections {
            posix_spawn_file_actions_adddup2(&actions, source, target)
        }

        let pointers: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in pointers { free(pointer) } }
        var child: pid_t = 0
        let status = pointers.withUnsafeBufferPointer { argv in
            posix_spawn(&child, executable, &actions, &attributes, argv.baseAddress!, environ)
        }
        return status == 0 ? .success(child) : .failure(SpawnError(code: status))
    }

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

    /// The path of the running executable.
    static func ownExecutable() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A pipe whose ends are both close-on-exec.
    static func makePipe() -> (read: Int32, write: Int32)? {
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else { return nil }
        for descriptor in descriptors {
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        }
        return (descriptors[0], descriptors[1])
    }

    /// Makes reads and writes on `descriptor` return `EAGAIN` instead of blocking.
    static func setNonBlocking(_ descriptor: Int32) {
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
    }
}

/// A `posix_spawn` failure.
struct SpawnError: Error {
    var code: Int32
    var text: String { String(cString: strerror(code)) }
}

/// How a raw wait status reads in the exit-status file, and the matching exit code.
struct WaitStatus {
    var raw: Int32

    /// `exited CODE` or `signaled SIGNAL [core]`, with a newline.
    var record: String {
        let low = raw & 0x7f
        if low == 0 { return "exited \((raw >> 8) & 0xff)\n" }
        return "signaled \(low)\(raw & 0x80 != 0 ? " core" : "")\n"
    }

    /// The code itself, or 128 + the signal, as shells report it.
    var exitCode: Int32 {
        let low = raw & 0x7f
        return low == 0 ? (raw >> 8) & 0xff : 128 + low
    }
}
