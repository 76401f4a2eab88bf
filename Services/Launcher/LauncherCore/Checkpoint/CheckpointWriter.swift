@preconcurrency import Glibc
import CDispatch
import Dispatch
import Synchronization

/// Writes checkpoint files (the cgroup notes of ``TaskCheckpointStore``; the task records go to
/// its ``CheckpointJournal``) on a small pool of threads, so that tasks do not wait for each
/// other's disk flushes and nothing blocks the launcher's cooperative threads.
///
/// Each file is still replaced atomically, as durably as its job asks
/// (``CheckpointFile/write(_:to:durability:)``). What the pool changes is how the flushes of
/// many tasks are scheduled:
/// - **In parallel.** Up to ``threadCount`` files are written at once, so their flushes
///   overlap instead of queueing behind each other (on the development VM's disk one thread
///   manages about 2400 such writes a second, four or more about 4100; the launch benchmark in
///   BENCHMARKS.md measured 25 tasks/s when every write waited for the one before it).
/// - **Coalesced per file.** A file has at most one write in flight. Changes that arrive
///   meanwhile replace each other, and only the newest is written next, once; every caller
///   waiting on any of them is told when that write is done. A file's writes are therefore
///   never reordered, and a burst of changes to one task costs one write.
/// - **Flushed only where it matters.** A job asks for `synced` when the caller acts on it
///   afterwards (a status update is sent only once it is on disk). Other changes (an
///   acknowledgement dropping an update) are written without the flushes: the page cache keeps
///   them across a crash of the launcher, and after a power loss the worst case is that an
///   acknowledged update is sent once more, which the broker ignores by its uuid.
///
/// The content of a job is produced by a closure run on the writer thread just before the
/// write, so it always reflects the newest state and is encoded once per write.
package final class CheckpointWriter: Sendable {
    /// What to do with one file.
    package enum Content {
        /// Replace the file with these bytes.
        case bytes([UInt8])
        /// Remove the file and, if given, this directory tree (a task's checkpoint directory).
        case remove(tree: String?)
        /// Leave the file as it is (a barrier waiting for the write before it).
        case unchanged
    }

    /// Called with the error of the write (nil on success), on a writer thread.
    package typealias Completion = @Sendable (LauncherError?) -> Void

    private struct Job {
        var content: @Sendable () -> Content
        var durability: CheckpointFile.Durability
        var completions: [Completion]
        /// Waiting for its delay (see ``submit(_:durability:deferredBy:content:completion:)``),
        /// not yet ready.
        var deferred = false
    }

    private struct State {
        var queued: [String: Job] = [:]
        var ready: [String] = []
        var readyHead = 0
        var inFlight: Set<String> = []
        /// Writer threads running, and how many of them are awake: writing, looking for work,
        /// or woken and about to. The others sleep on ``wake``.
        var threads = 0
        var awake = 0

        var readyCount: Int { ready.count - readyHead }
    }

    /// The most writer threads; flushes, not CPU, bound them, so more than the CPU count.
    /// Threads start when ready files outnumber the awake threads (see ``wakeWriter()``) and end
    /// after `idleTimeout` without work.
    static let threadCount = 16

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let idleTimeout: DispatchTimeInterval

    package init(idleTimeout: Duration = .seconds(5)) {
        self.idleTimeout = Self.interval(idleTimeout)
    }

    /// `duration` for Dispatch.
    private static func interval(_ duration: Duration) -> DispatchTimeInterval {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
    }

    /// How many writer threads are running now.
    package var runningThreads: Int {
        state.withLock { $0.threads }
    }

    /// Queues a write of `path`; `completion` runs once it (or a newer write of the same file)
    /// is done.
    ///
    /// With `deferredBy`, the write waits that long before it is ready, unless a write of the same
    /// file without a delay, or a flush, comes first: then both go out as that one write. For
    /// changes that may be lost in a crash (an acknowledgement dropping a sent update: the update
    /// is then sent once more), most of which the file's next change soon writes anyway.
    package func submit(
        _ path: String, durability: CheckpointFile.Durability, deferredBy delay: Duration? = nil,
        content: @escaping @Sendable () -> Content, completion: Completion? = nil
    ) {
        let deferred = delay != nil
        let (signal, schedule) = state.withLock { state -> (Bool, Bool) in
            if var job = state.queued[path] {
                job.content = content
                job.durability = max(job.durability, durability)
                if let completion { job.completions.append(completion) }
                let promoted = job.deferred && !deferred
                if promoted { job.deferred = false }
                state.queued[path] = job
                guard promoted, !state.inFlight.contains(path) else { return (false, false) }
                state.ready.append(path)
                return (true, false)
            }
            state.queued[path] = Job(
                content: content, durability: durability, completions: completion.map { [$0] } ?? [], deferred: deferred)
            guard !deferred else { return (false, true) }
            guard !state.inFlight.contains(path) else { return (false, false) }
            state.ready.append(path)
            return (true, false)
        }
        if signal { wakeWriter() }
        if schedule, let delay {
            DispatchQueue.global().asyncAfter(deadline: .now() + Self.interval(delay)) { [self] in promote([path]) }
        }
    }

    /// Makes the deferred jobs of `paths` ready now.
    private func promote(_ paths: some Sequence<String>) {
        let signal = state.withLock { state -> Bool in
            var any = false
            for path in paths where state.queued[path]?.deferred == true {
                state.queued[path]?.deferred = false
                // One in flight is followed by this job when it ends (see writeNext).
                guard !state.inFlight.contains(path) else { continue }
                state.ready.append(path)
                any = true
            }
            return any
        }
        if signal { wakeWriter() }
    }

    /// Makes sure a thread will take the file that just became ready: none if as many threads are
    /// awake as files are ready (each of them writes until nothing is ready), else a sleeping one
    /// is woken or a new one started.
    ///
    /// So a burst of small writes (tmpfs, or no flush) is taken by the threads already awake, one
    /// file after another, without a wake-up per file; and when flushes block the awake threads,
    /// ready files pile up and more threads join, up to ``threadCount``, so that the flushes overlap.
    private func wakeWriter() {
        enum Action { case none, wake, start }
        let action = state.withLock { state -> Action in
            guard state.awake < state.readyCount else { return .none }
            if state.threads > state.awake {
                state.awake += 1
                return .wake
            }
            guard state.threads < Self.threadCount else { return .none }
            state.threads += 1
            state.awake += 1
            return .start
        }
        switch action {
        case .none:
            break
        case .wake:
            wake.signal()
        case .start:
            guard !startThread() else { break }
            let none = state.withLock { state -> Bool in
                state.threads -= 1
                state.awake -= 1
                return state.threads == 0
            }
            // No thread at all (the system is out of them): write here rather than never.
            if none { while writeNext() {} }
        }
    }

    /// Waits until every job queued so far is written; with `paths`, only the jobs of those files.
    package func flush(paths: Set<String>? = nil) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            submitBarrier(paths: paths) { _ in continuation.resume() }
        }
    }

    /// Blocks the calling thread until every job queued so far is written (for tests and code
    /// that cannot suspend). The writers are threads of their own, so this cannot deadlock, but
    /// it holds the calling thread while it waits: prefer ``flush(paths:)`` in async code.
    package func flushBlocking() {
        let done = DispatchSemaphore(value: 0)
        submitBarrier(paths: nil) { _ in done.signal() }
        done.wait()
    }

    /// Runs `completion` once every file (of `only`, if given) with a queued or running write
    /// has been written.
    private func submitBarrier(paths only: Set<String>?, _ completion: @escaping Completion) {
        let (nothingPending, deferred) = state.withLock { state -> (Bool, [String]) in
            // With `only` (a task's own files), look those up rather than every file queued.
            let paths = only.map { $0.filter { state.queued[$0] != nil || state.inFlight.contains($0) } }
                ?? Set(state.queued.keys).union(state.inFlight)
            guard !paths.isEmpty else { return (true, []) }
            let remaining = Mutex(paths.count)
            let countDown: Completion = { _ in
                if remaining.withLock({ count in
                    count -= 1
                    return count
                }) == 0 {
                    completion(nil)
                }
            }
            var deferred: [String] = []
            for path in paths {
                if let job = state.queued[path] {
                    state.queued[path]?.completions.append(countDown)
                    if job.deferred { deferred.append(path) }
                } else {
                    // Only in flight: a no-op queued behind that write completes after it.
                    state.queued[path] = Job(content: { .unchanged }, durability: .atomic, completions: [countDown])
                }
            }
            return (false, deferred)
        }
        // A flush does not wait for delays.
        if !deferred.isEmpty { promote(deferred) }
        if nothingPending { completion(nil) }
    }

    /// Starts a writer thread; false if the system has none to give.
    private func startThread() -> Bool {
        DetachedThread.start(name: "keel-checkpoint") { [self] in work() } == 0
    }

    /// One writer thread: writes ready files as long as there are any, then sleeps until woken
    /// (see ``wakeWriter()``); ends after a while without work.
    private func work() {
        while true {
            while writeNext() {}
            let sleep = state.withLock { state -> Bool in
                // A file that became ready meanwhile may have counted on this thread being awake.
                guard state.readyCount == 0 else { return false }
                state.awake -= 1
                return true
            }
            guard sleep else { continue }
            guard wake.wait(timeout: .now() + idleTimeout) == .timedOut else { continue }
            let leave = state.withLock { state -> Bool in
                // Some sleeper was not promised a wake-up: this thread goes as that one.
                guard state.threads > state.awake else { return false }
                state.threads -= 1
                return true
            }
            if leave { return }
            // Every sleeper, this one included, was promised a wake-up: take it, and work.
            wake.wait()
        }
    }

    /// Takes the next ready file and writes its newest content; false if none was ready.
    private func writeNext() -> Bool {
        let next = state.withLock { state -> (String, Job)? in
            guard state.readyHead < state.ready.count else { return nil }
            let path = state.ready[state.readyHead]
            state.readyHead += 1
            if state.readyHead > 1024, state.readyHead * 2 > state.ready.count {
                state.ready.removeFirst(state.readyHead)
                state.readyHead = 0
            }
            guard let job = state.queued.removeValue(forKey: path) else { return nil }
            state.inFlight.insert(path)
            return (path, job)
        }
        guard let (path, job) = next else { return false }
        let error = perform(path, job)
        // Before the file is released: a later job of the same file (a barrier) must not
        // complete before this one's callers have heard.
        for completion in job.completions { completion(error) }
        let signal = state.withLock { state -> Bool in
            state.inFlight.remove(path)
            // A deferred job becomes ready when its delay is over (see promote).
            guard let next = state.queued[path], !next.deferred else { return false }
            state.ready.append(path)
            return true
        }
        if signal { wakeWriter() }
        return true
    }

    private func perform(_ path: String, _ job: Job) -> LauncherError? {
        switch job.content() {
        case .bytes(let bytes):
            do {
                try CheckpointFile.write(bytes, to: path, durability: job.durability)
                return nil
            } catch {
                return error
            }
        case .unchanged:
            return nil
        case .remove(let tree):
            CheckpointFile.remove(path)
            if let tree { CheckpointFile.removeTree(tree) }
            if job.durability == .durable { try? CheckpointFile.syncDirectory(CheckpointFile.parent(of: tree ?? path)) }
            return nil
        }
    }
}
