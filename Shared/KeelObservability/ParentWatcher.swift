#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Logging
import ServiceLifecycle

/// Ends the daemon when the process that started it exits, so that daemons started by
/// `keel up` (or a test) never outlive it, even when it is killed with SIGKILL.
struct ParentWatcher: Service {
    let logger: Logger

    func run() async throws {
        let parent = getppid()
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if getppid() != parent {
                logger.warning("parent process exited; shutting down")
                throw ParentExited()
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// The parent process is gone.
struct ParentExited: Error, CustomStringConvertible {
    var description: String { "the parent process exited" }
}
