@preconcurrency import Glibc
import CDispatch

/// `pthread_setname_np(3)`, declared only under `_GNU_SOURCE`.
@_silgen_name("pthread_setname_np")
private func setThreadName(_ thread: pthread_t, _ name: UnsafePointer<CChar>) -> Int32

/// A detached thread with a small stack, for the launcher's blocking work that must not hold a
/// cooperative-pool thread: waiting for processes, writing checkpoint files.
enum DetachedThread {
    /// Reserved stack of such a thread; they only make system calls and log.
    static let stackSize = 512 * 1024

    /// Starts `body` on a new detached thread, named `name` (at most 15 bytes, what `top -H`
    /// and `/proc/PID/task/TID/comm` show) if given; returns `pthread_create`'s status (0 on
    /// success, and `body` is not run otherwise).
    static func start(name: String? = nil, _ body: @escaping @Sendable () -> Void) -> Int32 {
        let body: @Sendable () -> Void =
            if let name {
                {
                    _ = setThreadName(pthread_self(), name)
                    body()
                }
            } else {
                body
            }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attributes, stackSize)
        // The thread owns a +1 reference to the box until it has run the body.
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(
            &thread, &attributes,
            { context in
                Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
                return nil
            },
            context
        )
        if status != 0 {
            Unmanaged<Body>.fromOpaque(context).release()
        }
        return status
    }

    private final class Body: Sendable {
        let run: @Sendable () -> Void

        init(_ run: @escaping @Sendable () -> Void) {
            self.run = run
        }
    }
}
