@preconcurrency import Glibc
import Dispatch
package import Logging
import Synchronization

/// The task records of ``TaskCheckpointStore`` on disk: one append-only file of
/// ``JournalFrame``s, written by one thread in batches (group commit).
///
/// Each change of a task's record is queued by key; the writer thread takes every queued change
/// at once, appends the newest record of each of those tasks (or its removal) in one `write`,
/// and `fdatasync`s the file once if any of them must be durable, then tells every caller. While
/// it flushes, new changes queue up for the next batch, so the flushes of many tasks are shared
/// instead of paid one by one. Replaying the file gives each task's newest record.
///
/// Why not a file per task, written with write, `fsync` and rename, as before: a task's record
/// changes three or four times in its life, and each of those writes cost an open, a write, a
/// flush, a close and a rename of a file in a directory of its own, plus the directory's removal
/// at the end, about 25 system calls and a hand-off to a writer thread per change: a fifth of
/// the launcher's CPU in the launch benchmark, and on a real disk one flush per change. The
/// journal keeps what those files gave: a record is never half-written for a reader (a frame
/// whose checksum fails is not used, and one cut short at the end is the write a crash
/// interrupted, which nobody was told was stored), and a caller told that a record is stored can
/// rely on it after a crash.
///
/// The file is compacted when it has grown to ``compactionMinimum`` and four times what its
/// live records take: every live record is written to a new file, which is flushed and renamed
/// over the journal (write, `fsync`, rename, and the directory's `fsync`).
package final class CheckpointJournal: Sendable {
    /// Called with the error of the write (nil on success), on the writer thread.
    package typealias Completion = @Sendable (LauncherError?) -> Void

    /// What the journal holds for a task.
    package enum Content: Sendable {
        /// The task's record.
        case record([UInt8])
        /// No record: a removal is written, then `files` and the tree `directory` are deleted.
        case removed(files: [String], directory: String?)
    }

    /// What a journal file holds (see ``read(_:)``).
    package struct Contents: Sendable {
        /// The newest record of every task that has one.
        package var records: [LauncherTaskKey: [UInt8]] = [:]
        /// Tasks whose newest record is damaged, with the reason.
        package var damaged: [LauncherTaskKey: String] = [:]
        /// Stretches of the file that could not be read at all (their tasks are unknown).
        package var lostRegions: [String] = []
        /// Whether the file ends in a frame cut short (a write interrupted by a crash).
        package var tornTail = false
    }

    private struct Job {
        var durable: Bool
        var deferred: Bool
        var completions: [Completion]
    }

    private struct State {
        var queued: [LauncherTaskKey: Job] = [:]
        /// Keys of queued jobs that are ready (not deferred), in order; may hold stale keys.
        var ready: [LauncherTaskKey] = []
        var batchesStarted: UInt64 = 0
        var batchesFinished: UInt64 = 0
        var writing = false
        /// Callers waiting for the end of batch `target`.
        var barriers: [(target: UInt64, completion: Completion)] = []
        var threadStarted = false
        var sleeping = false
        /// When deferred jobs become ready, earliest first (see ``submit(_:durable:deferredBy:completion:)``);
        /// an entry whose job was written meanwhile is skipped. Entries before `deferralsHead` are done.
        var deferrals: [(deadline: DispatchTime, key: LauncherTaskKey)] = []
        var deferralsHead = 0
        /// No writer thread could be started: the caller writes.
        var writeHere = false
    }

    /// The open journal; only the writer thread (or ``replace(with:)`` before it starts) uses it.
    private struct File {
        var descriptor: Int32 = -1
        var size = 0
        /// Bytes of each task's newest record in the file.
        var live: [LauncherTaskKey: Int] = [:]
        var liveTotal = 0
        /// Whether `live` reflects the file (it is read on first open otherwise).
        var known = false
    }

    /// The journal's path.
    package let path: String
    /// The file grows to at least this before it is compacted.
    let compactionMinimum: Int
    private let content: @Sendable (LauncherTaskKey) -> Content
    private let logger: Logger
    private let state = Mutex(State())
    private let file = Mutex(File())
    private let wake = DispatchSemaphore(value: 0)

    /// A journal at `path`; `content` gives a task's current record when a batch is written.
    package init(
        path: String, compactionMinimum: Int = 4 * 1024 * 1024, logger: Logger,
        content: @escaping @Sendable (LauncherTaskKey) -> Content
    ) {
        self.path = path
        self.compactionMinimum = compactionMinimum
        self.logger = logger
        self.content = content
    }

    deinit {
        let descriptor = file.withLock { $0.descriptor }
        if descriptor >= 0 { close(descriptor) }
    }

    /// Queues a write of the task's current record; `completion` runs once it is in the file
    /// (flushed, if `durable`; a batch is flushed when any of its changes must be).
    ///
    /// With `deferredBy`, the write waits that long, unless a change of the same task without a
    /// delay, or a flush, comes first: then both go out as that one write. For changes that may
    /// be lost in a crash (an acknowledgement dropping a sent update: the update is sent once
    /// more), most of which the task's next change soon writes anyway.
    ///
    /// The delay is kept by the writer thread, which sleeps no longer than until the earliest
    /// deferred job is due: no timer per change (an acknowledgement defers a write, three per
    /// task), and no thread woken for each.
    package func submit(
        _ key: LauncherTaskKey, durable: Bool, deferredBy delay: Duration? = nil, completion: Completion? = nil
    ) {
        let signal = state.withLock { state -> Bool in
            // (If no writer thread can be started, deferred jobs wait for the next batch or flush.)
            let deferred = delay != nil
            if var job = state.queued[key] {
                job.durable = job.durable || durable
                if let completion { job.completions.append(completion) }
                let promoted = job.deferred && !deferred
                if promoted { job.deferred = false }
                state.queued[key] = job
                guard promoted else { return false }
                state.ready.append(key)
                return wakeWriter(&state)
            }
            state.queued[key] = Job(durable: durable, deferred: deferred, completions: completion.map { [$0] } ?? [])
            if deferred, let delay {
                // The writer sleeps until the earliest deadline it knew of; a new earliest one
                // wakes it to sleep less.
                let deadline = DispatchTime.now() + Self.interval(delay)
                let earliest = state.deferralsHead == state.deferrals.count
                    || deadline < state.deferrals[state.deferralsHead].deadline
                Self.insert((deadline, key), into: &state)
                return earliest ? wakeWriter(&state) : false
            }
            state.ready.append(key)
            return wakeWriter(&state)
        }
        if signal { wake.signal() }
        writeHereIfNeeded()
    }

    /// Inserts a deferral in deadline order (nearly always at the end: callers use one delay).
    private static func insert(_ deferral: (deadline: DispatchTime, key: LauncherTaskKey), into state: inout State) {
        var index = state.deferrals.count
        while index > state.deferralsHead, state.deferrals[index - 1].deadline > deferral.deadline { index -= 1 }
        state.deferrals.insert(deferral, at: index)
    }

    /// Makes the deferred jobs whose deadline has passed ready.
    private static func promoteDue(_ state: inout State, now: DispatchTime) {
        while state.deferralsHead < state.deferrals.count, state.deferrals[state.deferralsHead].deadline <= now {
            let key = state.deferrals[state.deferralsHead].key
            state.deferralsHead += 1
            if state.queued[key]?.deferred == true {
                state.queued[key]?.deferred = false
                state.ready.append(key)
            }
        }
        if state.deferralsHead == state.deferrals.count {
            state.deferrals.removeAll(keepingCapacity: true)
            state.deferralsHead = 0
        } else if state.deferralsHead > 1024, state.deferralsHead * 2 > state.deferrals.count {
            state.deferrals.removeFirst(state.deferralsHead)
            state.deferralsHead = 0
        }
    }

    /// Waits until every change queued so far (of `keys`, if given) is in the file.
    package func flush(keys: Set<LauncherTaskKey>? = nil) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            addBarrier(keys: keys) { _ in continuation.resume() }
        }
    }

    /// Blocks until every queued change is in the file (for tests and code that cannot
    /// suspend; the writer is a thread of its own, so this cannot deadlock).
    package func flushBlocking() {
        let done = DispatchSemaphore(value: 0)
        addBarrier(keys: nil) { _ in done.signal() }
        done.wait()
    }

    /// Runs `completion` after the batch that writes the queued changes (of `keys`), or at once
    /// when there are none and no batch is being written.
    private func addBarrier(keys: Set<LauncherTaskKey>?, _ completion: @escaping Completion) {
        let (now, signal) = state.withLock { state -> (Bool, Bool) in
            var pending = false
            for key in keys.map(Array.init) ?? Array(state.queued.keys) {
                guard var job = state.queued[key] else { continue }
                pending = true
                // A flush does not wait for delays.
                if job.deferred {
                    job.deferred = false
                    state.queued[key] = job
                    state.ready.append(key)
                }
            }
            if pending {
                state.barriers.append((state.batchesStarted + 1, completion))
                return (false, wakeWriter(&state))
            }
            // A batch being written may hold the keys' changes.
            if state.writing {
                state.barriers.append((state.batchesStarted, completion))
                return (false, false)
            }
            return (true, false)
        }
        if signal { wake.signal() }
        writeHereIfNeeded()
        if now { completion(nil) }
    }

    /// Whether the writer thread must be woken (it sleeps); starts it if none runs. If no
    /// thread can be started, the batches are written on the calling thread (after the lock).
    private func wakeWriter(_ state: inout State) -> Bool {
        if !state.threadStarted {
            state.threadStarted = true
            if DetachedThread.start(name: "keel-journal", { [self] in work() }) != 0 {
                state.threadStarted = false
                state.writeHere = true
            }
            return false
        }
        guard state.sleeping else { return false }
        state.sleeping = false
        return true
    }

    /// After a ``wakeWriter(_:)`` that could not start a thread: writes what is ready here.
    private func writeHereIfNeeded() {
        guard state.withLock({ state in
            defer { state.writeHere = false }
            return state.writeHere
        }) else { return }
        logger.warning("cannot start the checkpoint journal's writer thread; writing on the caller's thread")
        while writeBatch(asWriterThread: false) {}
    }

    /// The writer thread: writes batches while changes are ready, sleeps otherwise (until the
    /// earliest deferred job is due), and ends after ``idleTimeout`` without work or deferred
    /// jobs (the next change starts a new one).
    private func work() {
        // When the previous batch started, while changes keep coming; nil after a quiet spell.
        var previousBatch: ContinuousClock.Instant?
        while true {
            if let previousBatch {
                let remaining = Self.batchInterval - (ContinuousClock.now - previousBatch)
                if remaining > .zero { Self.sleep(remaining) }
            }
            let started = ContinuousClock.now
            if writeBatch(asWriterThread: true) {
                previousBatch = started
                continue
            }
            previousBatch = nil
            let idleEnd = DispatchTime.now() + Self.idleTimeout
            let due = state.withLock { $0.deferralsHead < $0.deferrals.count ? $0.deferrals[$0.deferralsHead].deadline : nil }
            if wake.wait(timeout: due.map { min($0, idleEnd) } ?? idleEnd) == .success { continue }
            enum Next { case write, leave, takeWakeUp }
            let next = state.withLock { state -> Next in
                // Not asleep any more: a wake-up was promised meanwhile.
                guard state.sleeping else { return .takeWakeUp }
                state.sleeping = false
                // Deferred jobs wait for this thread.
                guard state.deferralsHead == state.deferrals.count else { return .write }
                state.threadStarted = false
                return .leave
            }
            switch next {
            case .write: continue
            case .leave: return
            case .takeWakeUp: wake.wait()
            }
        }
    }

    /// How long the writer thread waits for work before it ends.
    static let idleTimeout = DispatchTimeInterval.seconds(5)

    /// The shortest time between the starts of two batches while changes keep coming.
    ///
    /// Without it, on a fast disk (or tmpfs) each batch took the one or two changes queued while
    /// the previous one was written: about three batches per task in the launch benchmark, each a
    /// wake-up of this thread, a `write`, an `fdatasync` and the wake-ups of its callers. Waiting
    /// out the rest of the interval after a batch lets a steady flow gather; the first change
    /// after a quiet spell is written at once, so an idle launcher adds no delay. Status updates
    /// wait for their write before they are sent, and the agent stream batches what it sends over
    /// 20 ms (``StreamPacing``), so this adds little to what an update waits under load. In the
    /// launch benchmark it cut the launcher's CPU per task by 5-8 %; 5 ms did no better than 2.
    static let batchInterval = Duration.milliseconds(2)

    /// Sleeps the calling thread for `duration` (at most a second; an interrupted sleep ends early).
    private static func sleep(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let microseconds = min(1_000_000, seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
        usleep(useconds_t(max(0, microseconds)))
    }

    /// Writes one batch of every ready change; false if none was ready (then, on the writer
    /// thread, it is marked asleep).
    private func writeBatch(asWriterThread: Bool) -> Bool {
        let batch = state.withLock { state -> [(LauncherTaskKey, Job)]? in
            if state.deferralsHead < state.deferrals.count { Self.promoteDue(&state, now: .now()) }
            var batch: [(LauncherTaskKey, Job)] = []
            for key in state.ready {
                guard let job = state.queued[key], !job.deferred else { continue }
                state.queued[key] = nil
                batch.append((key, job))
            }
            state.ready.removeAll(keepingCapacity: true)
            guard !batch.isEmpty else {
                if asWriterThread { state.sleeping = true }
                return nil
            }
            state.batchesStarted += 1
            state.writing = true
            return batch
        }
        guard let batch else { return false }
        let error = write(batch)
        for (_, job) in batch {
            for completion in job.completions { completion(error) }
        }
        let barriers = state.withLock { state -> [Completion] in
            state.batchesFinished = state.batchesStarted
            state.writing = false
            let done = state.barriers.filter { $0.target <= state.batchesFinished }.map(\.completion)
            state.barriers.removeAll { $0.target <= state.batchesFinished }
            return done
        }
        for barrier in barriers { barrier(nil) }
        return true
    }

    /// Appends the batch's records, flushes if asked, deletes what removals name, compacts if due.
    private func write(_ batch: [(LauncherTaskKey, Job)]) -> LauncherError? {
        var bytes: [UInt8] = []
        var sizes: [(LauncherTaskKey, Int?)] = []
        var cleanups: [(files: [String], directory: String?)] = []
        for (key, _) in batch {
            let start = bytes.count
            switch content(key) {
            case .record(let record):
                JournalFrame(key: key, payload: record).append(to: &bytes)
                sizes.append((key, bytes.count - start))
            case .removed(let files, let directory):
                JournalFrame(key: key, payload: nil).append(to: &bytes)
                sizes.append((key, nil))
                cleanups.append((files, directory))
            }
        }
        let durable = batch.contains { $0.1.durable }
        let error = file.withLock { file -> LauncherError? in
            do throws(LauncherError) {
                try open(&file)
                try append(bytes, durable: durable, to: &file)
            } catch {
                return error
            }
            for (key, size) in sizes {
                file.liveTotal -= file.live[key] ?? 0
                file.live[key] = size
                file.liveTotal += size ?? 0
            }
            // Before a compaction can drop the removals that tell what these belonged to.
            for cleanup in cleanups {
                for path in cleanup.files { unlink(path) }
                if let directory = cleanup.directory { CheckpointFile.removeTree(directory) }
            }
            if file.size >= compactionMinimum, file.size >= 4 * file.liveTotal {
                do throws(LauncherError) {
                    try compact(&file)
                } catch {
                    logger.error("cannot compact the checkpoint journal; it goes on growing", metadata: [
                        "keel.path": "\(path)", "keel.error": "\(error)",
                    ])
                }
            }
            return nil
        }
        if let error {
            logger.error("cannot write the checkpoint journal; tasks may not be recovered after a launcher restart", metadata: [
                "keel.path": "\(path)", "keel.error": "\(error)",
            ])
            return error
        }
        return nil
    }

    /// Opens the journal for appending if it is not open, reading what it holds if that is not
    /// known yet.
    private func open(_ file: inout File) throws(LauncherError) {
        guard file.descriptor < 0 else { return }
        if !file.known {
            let contents = Self.read(path)
            var records: [LauncherTaskKey: Int] = [:]
            for (key, record) in contents.records {
                records[key] = JournalFrame.size(key: key, payloadCount: record.count)
            }
            file.live = records
            file.liveTotal = records.values.reduce(0, +)
            file.known = true
        }
        let flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW
        let directory = CheckpointFile.parent(of: path)
        var created = access(path, F_OK) != 0
        var descriptor = Glibc.open(path, flags, 0o600)
        if descriptor < 0, errno == ENOENT {
            try CheckpointFile.makeDirectories(directory)
            created = true
            descriptor = Glibc.open(path, flags, 0o600)
        }
        guard descriptor >= 0 else {
            throw LauncherError.system("open", errno: errno, message: "cannot open the checkpoint journal '\(path)'")
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            let code = errno
            close(descriptor)
            throw LauncherError.system("fstat", errno: code, message: "cannot read the size of '\(path)'")
        }
        file.descriptor = descriptor
        file.size = Int(info.st_size)
        // The new file's name must survive a crash along with what is written to it.
        if created { try CheckpointFile.syncDirectory(directory) }
    }

    /// Appends `bytes`; on failure cuts the file back to where it was, so no partial frame is
    /// followed by later ones.
    private func append(_ bytes: [UInt8], durable: Bool, to file: inout File) throws(LauncherError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(file.descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                _ = ftruncate(file.descriptor, off_t(file.size))
                throw LauncherError.system("write", errno: code, message: "cannot append to the checkpoint journal '\(path)'")
            }
            offset += written
        }
        if durable, fdatasync(file.descriptor) != 0 {
            let code = errno
            _ = ftruncate(file.descriptor, off_t(file.size))
            throw LauncherError.system("fdatasync", errno: code, message: "cannot flush the checkpoint journal '\(path)'")
        }
        file.size += bytes.count
    }

    /// Rewrites the journal with only the current record of each task it holds.
    private func compact(_ file: inout File) throws(LauncherError) {
        var records: [(LauncherTaskKey, [UInt8])] = []
        for key in file.live.keys {
            if case .record(let record) = content(key) { records.append((key, record)) }
        }
        try replace(records, in: &file)
    }

    /// Replaces the journal with `records` (write, `fsync`, rename, `fsync` of the directory).
    private func replace(_ records: [(LauncherTaskKey, [UInt8])], in file: inout File) throws(LauncherError) {
        var bytes: [UInt8] = []
        var live: [LauncherTaskKey: Int] = [:]
        for (key, record) in records {
            let start = bytes.count
            JournalFrame(key: key, payload: record).append(to: &bytes)
            live[key] = bytes.count - start
        }
        try CheckpointFile.write(bytes, to: path, durability: .durable)
        // The write keeps the replaced file beside the new one; nothing reads it.
        unlink(path + ".tmp")
        if file.descriptor >= 0 { close(file.descriptor) }
        file = File(live: live, liveTotal: bytes.count, known: true)
        try open(&file)
    }

    /// Replaces the journal with `records` now (after ``read(_:)`` at start, so that damage and
    /// stale records are gone before anything is appended). Call it before the first
    /// ``submit(_:durable:deferredBy:completion:)``.
    package func replace(with records: [(LauncherTaskKey, [UInt8])]) throws(LauncherError) {
        try file.withLock { (file) throws(LauncherError) in try replace(records, in: &file) }
    }

    /// What the journal at `path` holds; an absent file holds nothing.
    package static func read(_ path: String) -> Contents {
        var contents = Contents()
        let bytes: [UInt8]
        do {
            guard let read = try CheckpointFile.read(path) else { return contents }
            bytes = read
        } catch {
            contents.lostRegions.append("the whole file: \(error)")
            return contents
        }
        var offset = 0
        while offset < bytes.count {
            switch JournalFrame.parse(bytes, at: offset) {
            case .frame(let frame, let length):
                contents.records[frame.key] = frame.payload
                contents.damaged[frame.key] = nil
                offset += length
            case .damagedPayload(let key, let length):
                if offset + length == bytes.count {
                    // The last write, cut short by a crash: it was never reported stored.
                    contents.tornTail = true
                } else {
                    contents.records[key] = nil
                    contents.damaged[key] = "its newest record (at byte \(offset) of '\(path)') fails its checksum"
                }
                offset += length
            case .truncated:
                contents.tornTail = true
                offset = bytes.count
            case .invalid:
                var next = offset + 1
                while next < bytes.count {
                    switch JournalFrame.parse(bytes, at: next) {
                    case .frame, .damagedPayload: break
                    case .truncated, .invalid:
                        next += 1
                        continue
                    }
                    break
                }
                if next >= bytes.count {
                    contents.tornTail = true
                } else {
                    contents.lostRegions.append("bytes \(offset)..<\(next) of '\(path)'")
                }
                offset = next
            }
        }
        return contents
    }

    /// `duration` for Dispatch.
    private static func interval(_ duration: Duration) -> DispatchTimeInterval {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
    }
}
