import Foundation
import NIOCore
import NIOPosix

/// Where a daemon's Swift concurrency jobs run.
///
/// By default every Keel daemon runs its jobs on NIO's event loop threads (the singleton group
/// its gRPC and HTTP servers and clients use) instead of Swift's own cooperative pool. A message
/// read on an event loop is then handled on that thread, and a reply written from a handler needs
/// no hop back: without this every message crossed threads twice, and on a small (virtual)
/// machine those wake-ups cost more than the work itself. The launch benchmark measured it:
/// broker CPU per task 1.4 → 0.4 ms, framework 0.5 → 0.1 ms, launcher 1.9 → 1.5 ms
/// (BENCHMARKS.md). The loops are as many as the CPUs, like the cooperative pool, so code that
/// blocks a thread costs what it cost before; blocking work (fsync, fork, file copies) keeps
/// using its own threads.
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
