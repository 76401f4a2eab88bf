import Foundation
import NIOCore
import NIOPosix

/// Where a daemon's Swift concurrency jobs run.
///
/// By default every Keel daemon runs its jobs on NIO's event loop threads (the singleton group
/// its gRPC and HTTP servers and clients use) instead of Swift's own cooperative pool: a message
/// read on an event loop is handled on that thread, and a reply written from a handler needs no
/// hop back. In the launch benchmark this saves the broker 0.1–0.2 ms and the framework about
/// 0.07 ms of CPU per task (BENCHMARKS.md).
///
/// An event loop runs every job queued on it before it reads its sockets again. Work that keeps
/// many jobs queued for long, such as the launcher's preparation of a burst of tasks, therefore
/// must not run there, or the daemon stops reading (acknowledgements, health pings) until it is
/// done; the launcher runs its task work on its own threads (`TaskWorkExecutor`). Blocking work
/// (fsync, fork, file copies) keeps using its own threads as well.
///
/// `KEEL_CONCURRENCY_EXECUTOR=dispatch` keeps Swift's pool, e.g. to rule this out when a daemon
/// misbehaves.
package enum ConcurrencyExecutor {
    package static let variable = "KEEL_CONCURRENCY_EXECUTOR"

    /// Installs the event loops as the global executor unless the environment says `dispatch`.
    ///
    /// Call it first in `main`, on the main thread, before anything starts a task; only once.
    /// Exits with a clear message when the variable has another value.
    package static func install(environment: [String: String] = ProcessInfo.processInfo.environment) {
        switch environment[variable]?.lowercased() ?? "" {
        case "", "eventloops":
            if !NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() {
                FileHandle.standardError.write(Data("note: Swift concurrency keeps its own threads (this runtime has no hook for NIO's event loops)\n".utf8))
            }
        case "dispatch":
            break
        case let other:
            FileHandle.standardError.write(Data("error: \(variable)='\(other)' is not an executor: use eventloops (the default) or dispatch\n".utf8))
            exit(64)
        }
    }
}
