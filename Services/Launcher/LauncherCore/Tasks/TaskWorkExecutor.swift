import Dispatch

/// The threads a launcher's task work runs on: preparing sandboxes and cgroups, starting
/// supervisors, waiting for exits.
///
/// The launcher's gRPC I/O runs on NIO's event loops, which are also Swift concurrency's
/// executor in Keel's daemons (``ConcurrencyExecutor``). An event loop runs every job queued on
/// it before it reads its sockets again, so a burst of launches worked off on the loops kept them
/// from reading for as long as the burst lasted (a second for 500 tasks): the broker's
/// acknowledgements, and health pings, waited in the socket. Task work therefore runs here, and
/// the loops only carry messages.
package final class TaskWorkExecutor: TaskExecutor {
    private let queue = DispatchQueue(label: "keel.launcher.tasks", attributes: .concurrent)

    package init() {}

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
