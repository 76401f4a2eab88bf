@preconcurrency import Glibc

/// `epoll_create1(2)`, `epoll_ctl(2)` and `epoll_wait(2)` from `<sys/epoll.h>`, which the Glibc
/// module leaves out. keel-launcher declares them the same way in `ProcessExitWatcher`: this
/// program links nothing but the Swift runtime and the C library, so the two cannot share them.
@_silgen_name("epoll_create1")
private func epollCreate(_ flags: Int32) -> Int32
@_silgen_name("epoll_ctl")
private func epollControl(_ poll: Int32, _ operation: Int32, _ descriptor: Int32, _ event: UnsafeMutableRawPointer?) -> Int32
@_silgen_name("epoll_wait")
private func epollWait(_ poll: Int32, _ events: UnsafeMutableRawPointer, _ capacity: Int32, _ timeout: Int32) -> Int32

/// The descriptors the spawner waits on, in one `epoll` instance.
///
/// The spawner waits on its request socket, its `signalfd` and the control socket of every
/// supervisor in ``SupervisorPool`` (up to 256). `poll` hands the kernel the whole list on every
/// wait, which it walks again each time, several times per task (the request, the `SIGCHLD`,
/// the idle message); `epoll` keeps the list in the kernel and returns only what is ready.
///
/// A `struct epoll_event` is a `UInt32` of event bits followed by 64 bits of data (here the
/// descriptor); the C library declares it packed on x86-64 only, so it is 12 bytes there and 16
/// elsewhere, with the data at offset 4 or 8. It is read and written as bytes at those offsets.
struct EventPoll {
    #if arch(x86_64)
    private static let eventSize = 12
    private static let dataOffset = 4
    #else
    private static let eventSize = 16
    private static let dataOffset = 8
    #endif
    /// `EPOLL_CTL_ADD` and `EPOLL_CTL_DEL`.
    private static let add: Int32 = 1
    private static let delete: Int32 = 2
    /// `EPOLLIN`; `EPOLLHUP` and `EPOLLERR` are always reported.
    private static let readable: UInt32 = 0x001

    /// The most ready descriptors one wait returns; more are returned by the next.
    static let capacity = 64

    /// The `epoll` instance itself, which is readable while any watched descriptor is ready, so
    /// another instance can watch it.
    let descriptor: Int32
    /// Room for ``capacity`` events. Made once, with the instance, before the spawner's first fork.
    private let events: UnsafeMutableRawBufferPointer

    /// `nil` with `errno` set if the kernel would not make one.
    init?() {
        // EPOLL_CLOEXEC is O_CLOEXEC.
        descriptor = epollCreate(O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        events = .allocate(byteCount: Self.capacity * Self.eventSize, alignment: 8)
    }

    /// Starts watching `fd` for reading (and hang-up); `false` with `errno` set if it cannot be.
    @discardableResult
    func watch(_ fd: Int32) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: Self.eventSize, alignment: 8) { event in
            event.storeBytes(of: Self.readable, toByteOffset: 0, as: UInt32.self)
            event.storeBytes(of: UInt64(UInt32(bitPattern: fd)), toByteOffset: Self.dataOffset, as: UInt64.self)
            return epollControl(descriptor, Self.add, fd, event.baseAddress) == 0
        }
    }

    /// Stops watching `fd`; call it before closing `fd` (a copy of it in a child that has not
    /// closed it yet would keep it watched).
    func forget(_ fd: Int32) {
        _ = epollControl(descriptor, Self.delete, fd, nil)
    }

    /// Waits up to `timeout` milliseconds (-1: without end) and calls `ready` with each descriptor
    /// that is readable, hung up or failed. Returns `false` if waiting failed other than by a
    /// signal (`errno` set).
    func wait(timeout: Int32, _ ready: (Int32) -> Void) -> Bool {
        let count = epollWait(descriptor, events.baseAddress!, Int32(Self.capacity), timeout)
        if count < 0 { return errno == EINTR }
        for index in 0..<Int(count) {
            // The data is not aligned to 8 on x86-64.
            let data = events.loadUnaligned(fromByteOffset: index * Self.eventSize + Self.dataOffset, as: UInt64.self)
            ready(Int32(bitPattern: UInt32(truncatingIfNeeded: data)))
        }
        return true
    }
}
