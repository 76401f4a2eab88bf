@preconcurrency import Glibc
import Synchronization

// `<sys/epoll.h>`, which the Glibc module leaves out.
@_silgen_name("epoll_create1")
private func epollCreate(_ flags: Int32) -> Int32
@_silgen_name("epoll_ctl")
private func epollControl(_ poller: Int32, _ operation: Int32, _ descriptor: Int32, _ event: UnsafeMutableRawPointer?) -> Int32
@_silgen_name("epoll_wait")
private func epollWait(_ poller: Int32, _ events: UnsafeMutableRawPointer, _ capacity: Int32, _ timeout: Int32) -> Int32

/// `struct epoll_event`: `uint32_t events` and a 64-bit `data`, packed on x86-64 (12 bytes),
/// naturally aligned elsewhere (16 bytes).
private enum EpollEvent {
    #if arch(x86_64)
    static let size = 12
    static let dataOffset = 4
    #else
    static let size = 16
    static let dataOffset = 8
    #endif
    static let readable: UInt32 = 0x001  // EPOLLIN
    static let add: Int32 = 1  // EPOLL_CTL_ADD
    static let delete: Int32 = 2  // EPOLL_CTL_DEL
    static let closeOnExec: Int32 = O_CLOEXEC  // EPOLL_CLOEXEC
}

/// One thread that waits for the end of every process the launcher watches through a pidfd
/// (supervisors forked by the spawner, and those of an earlier launcher), instead of a thread
/// blocked in `poll` per process: a node running a thousand tasks would otherwise hold a
/// thousand threads, and every launch would create and end one.
///
/// The pidfds (and the links of tasks of reusable supervisors, which end-of-file makes readable
/// the same way) are in one `epoll` set; the thread sleeps in `epoll_wait` and, when a process
/// has ended, takes its descriptor out of the set, runs its handler and closes it. Handlers run one after
/// another on that thread, so they must be short (reading a status file, resuming waiters).
package final class ProcessExitWatcher: Sendable {
    /// The launcher's watcher, started on first use; `nil` if no `epoll` set or thread could be
    /// had (the callers then fall back to a thread per process).
    package static let shared: ProcessExitWatcher? = ProcessExitWatcher()
    /// The name of the watcher's thread.
    package static let threadName = "keel-exits"

    private let poller: Int32
    private let handlers = Mutex<[Int32: @Sendable () -> Void]>([:])

    private init?() {
        poller = epollCreate(EpollEvent.closeOnExec)
        guard poller >= 0 else { return nil }
        guard DetachedThread.start(name: Self.threadName, { [self] in run() }) == 0 else {
            Glibc.close(poller)
            return nil
        }
    }

    /// Runs `onExit` (on the watcher's thread) once the process of `pidfd` has ended, and closes
    /// `pidfd` then; the watcher owns it from here on. False if it cannot be watched (`pidfd`
    /// is then still the caller's).
    package func watch(_ pidfd: Int32, onExit: @escaping @Sendable () -> Void) -> Bool {
        handlers.withLock { $0[pidfd] = onExit }
        var event = [UInt8](repeating: 0, count: EpollEvent.size)
        let added = event.withUnsafeMutableBytes { bytes in
            bytes.storeBytes(of: EpollEvent.readable, toByteOffset: 0, as: UInt32.self)
            bytes.storeBytes(of: UInt64(UInt32(bitPattern: pidfd)), toByteOffset: EpollEvent.dataOffset, as: UInt64.self)
            return epollControl(poller, EpollEvent.add, pidfd, bytes.baseAddress)
        }
        guard added == 0 else {
            handlers.withLock { _ = $0.removeValue(forKey: pidfd) }
            return false
        }
        return true
    }

    private func run() {
        let capacity = 64
        let events = UnsafeMutableRawPointer.allocate(byteCount: capacity * EpollEvent.size, alignment: 8)
        while true {
            let count = epollWait(poller, events, Int32(capacity), -1)
            if count < 0 {
                if errno == EINTR { continue }
                // Not expected with a valid set; do not spin.
                usleep(100_000)
                continue
            }
            for index in 0..<Int(count) {
                let data = events.loadUnaligned(fromByteOffset: index * EpollEvent.size + EpollEvent.dataOffset, as: UInt64.self)
                let pidfd = Int32(bitPattern: UInt32(truncatingIfNeeded: data))
                _ = epollControl(poller, EpollEvent.delete, pidfd, nil)
                let handler = handlers.withLock { $0.removeValue(forKey: pidfd) }
                // The handler first: closing a task's link lets its supervisor take another
                // task, so the task must be marked ended (no more signals) before.
                handler?()
                Glibc.close(pidfd)
            }
        }
    }
}
