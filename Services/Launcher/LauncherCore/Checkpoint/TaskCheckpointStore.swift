import Dispatch
import Foundation
package import KeelAPI
import KeelRPC
package import Logging
import SwiftProtobuf
import Synchronization

/// The per-task checkpoint records of this launcher, in memory and on disk.
///
/// Every change is kept in memory at once and appended to the ``CheckpointJournal``, whose writer
/// thread writes the changes of many tasks in one batch and one flush. Callers that act on a
/// change wait for it to be durable: a task's record and cgroup note are on disk before its
/// cgroup and process are created (``sync(_:cgroup:)``), and a status update is on disk before
/// it is sent (``recordPending(_:updates:reported:whenStored:)``). A record whose task has ended
/// and whose updates are all acknowledged is removed. Layout under the work dir:
///
/// ```
/// checkpoint/agent.json                        the agent id and boot id
/// checkpoint/tasks.journal                     the task records (TaskCheckpoint), see CheckpointJournal
/// checkpoint/exits/<framework>/<task>          a task's exit status, written by keel-task-supervisor
/// checkpoint/cgroups/<name>                    a task cgroup this launcher created
/// ```
///
/// The `cgroups` entries are written before the cgroup is created and removed after it is
/// destroyed, so a restarted launcher knows exactly which task cgroups are its own, even when
/// a task's record is lost: it sweeps those, and never the cgroups of another launcher that
/// shares the cgroup root (several `keel up` clusters or test runs on one machine).
///
/// Launchers before the journal kept each record in `checkpoint/tasks/<framework>/<task>/task.json`
/// (with the exit status beside it). ``load()`` still reads those, moves them into the journal,
/// and removes each such directory once its task is done.
package final class TaskCheckpointStore: Sendable {
    /// One checkpoint directory that could not be used.
    package struct Unreadable: Sendable, Hashable {
        package var key: LauncherTaskKey
        package var reason: String
    }

    /// The records and what the journal's writer reads with them.
    private final class Table: Sendable {
        let records = Mutex<[LauncherTaskKey: TaskCheckpoint]>([:])
        /// Tasks whose record came from the layout before the journal, with their old directory.
        let legacyDirectories = Mutex<[LauncherTaskKey: String]>([:])
    }

    private let table = Table()
    /// The task cgroups noted and not forgotten; read from disk on first use.
    private let cgroupNotes = Mutex<Set<String>?>(nil)
    /// Writes the cgroup notes.
    private let writer = CheckpointWriter()
    /// Writes the task records.
    private let journal: CheckpointJournal
    /// Frameworks whose exit-status directory exists.
    private let exitDirectories = Mutex<Set<String>>([])
    /// The work directory the checkpoint lives in.
    package let workDir: String
    private let logger: Logger

    /// Creates an empty store for `workDir`; ``load()`` reads what is on disk.
    package init(workDir: String, logger: Logger) {
        self.workDir = workDir
        self.logger = logger
        let checkpoint = Self.checkpointDirectory(workDir: workDir)
        journal = CheckpointJournal(path: checkpoint + "/tasks.journal", logger: logger) { [table] key in
            if let record = table.records.withLock({ $0[key] }) { return .record(record.jsonBytes()) }
            let exitStatus = Self.exitStatusPath(key, checkpoint: checkpoint)
            let legacy = table.legacyDirectories.withLock { $0[key] }
            return .removed(files: [exitStatus], directory: legacy)
        }
    }

    /// `<workDir>/checkpoint`.
    package static func checkpointDirectory(workDir: String) -> String {
        (workDir.hasSuffix("/") ? String(workDir.dropLast()) : workDir) + "/checkpoint"
    }

    /// The file of the task records.
    package var journalPath: String {
        journal.path
    }

    /// The file the task's supervisor writes the exit status to.
    package func exitStatusPath(_ key: LauncherTaskKey) -> String {
        Self.exitStatusPath(key, checkpoint: Self.checkpointDirectory(workDir: workDir))
    }

    private static func exitStatusPath(_ key: LauncherTaskKey, checkpoint: String) -> String {
        checkpoint + "/exits/\(key.frameworkID)/\(key.taskID)"
    }

    private var cgroupsDirectory: String {
        Self.checkpointDirectory(workDir: workDir) + "/cgroups"
    }

    /// Notes that this launcher is about to create the task cgroup `path` (relative to the
    /// mount points, e.g. `keel/web-1-…`); written once ``sync(_:cgroup:)`` or ``flush()``
    /// returns.
    ///
    /// Without `fsync`: cgroups live in memory and do not outlive a reboot, so the note only has
    /// to outlive the launcher process, which the page cache does.
    package func recordCgroup(_ path: String) {
        _ = withCgroupNotes { $0.insert(path) }
        let bytes = Array(path.utf8)
        writer.submit(cgroupNotePath(path), durability: .atomic, content: { .bytes(bytes) }) { [logger] error in
            guard let error else { return }
            logger.error(
                "cannot note the task cgroup in the checkpoint; a restarted launcher will not sweep it",
                metadata: ["keel.cgroup": "\(path)", "keel.error": "\(error)"])
        }
    }

    /// Forgets the task cgroup `path` once it has been removed.
    package func forgetCgroup(_ path: String) {
        _ = withCgroupNotes { $0.remove(path) }
        writer.submit(cgroupNotePath(path), durability: .atomic, content: { .remove(tree: nil) })
    }

    /// The task cgroups this launcher created and has not removed yet.
    package var recordedCgroups: Set<String> {
        withCgroupNotes { $0 }
    }

    private func cgroupNotePath(_ path: String) -> String {
        cgroupsDirectory + "/" + (path.split(separator: "/").last.map(String.init) ?? path)
    }

    private func withCgroupNotes<T>(_ body: (inout Set<String>) -> T) -> T {
        cgroupNotes.withLock { notes in
            var current = notes ?? Set(CheckpointFile.entries(of: cgroupsDirectory).filter { !$0.hasSuffix(".tmp") }.compactMap {
                name in
                (try? CheckpointFile.read(cgroupsDirectory + "/" + name)).flatMap { $0 }.map {
                    String(decoding: $0, as: UTF8.self)
                }
            })
            defer { notes = current }
            return body(&current)
        }
    }

    /// The record of a task, if any.
    package func record(_ key: LauncherTaskKey) -> TaskCheckpoint? {
        table.records.withLock { $0[key] }
    }

    /// Every record in memory.
    package var all: [TaskCheckpoint] {
        table.records.withLock { Array($0.values) }
    }

    /// Creates (replacing any old one) the record of a task about to be launched and queues its
    /// durable write; ``sync(_:cgroup:)`` waits for it. With `write` false it is only kept in
    /// memory, for a caller that records the task's first status update at once (which writes
    /// the whole record, so the two cost one write).
    package func create(_ record: TaskCheckpoint, write: Bool = true) {
        let exitStatus = exitStatusPath(record.key)
        if exitDirectories.withLock({ $0.insert(record.frameworkID).inserted }) {
            let directory = CheckpointFile.parent(of: exitStatus)
            if let failure = Directories.make(directory, mode: 0o700) {
                exitDirectories.withLock { _ = $0.remove(record.frameworkID) }
                logger.error("cannot create the directory of the tasks' exit status; the task's end may not be seen", metadata: [
                    "keel.path": "\(failure.path)", "keel.error": "\(SystemCallError(call: "mkdir", errno: failure.errno))",
                ])
            }
        }
        // A status left by an earlier run of the task must not be read as this run's. (The
        // supervisor writes the file in place, so there is no temporary file beside it.)
        unlink(exitStatus)
        // An earlier run of the task kept in the layout before the journal is over.
        if let legacy = table.legacyDirectories.withLock({ $0.removeValue(forKey: record.key) }) {
            CheckpointFile.removeTree(legacy)
        }
        table.records.withLock { $0[record.key] = record }
        if write { submit(record.key, durable: true) }
    }

    /// Changes a task's record and queues its write (or its removal once
    /// ``TaskCheckpoint/isDone``). Does nothing when the task has no record.
    ///
    /// The change is not flushed on its own: it is on disk after the next durable write of the
    /// task (a status update) and survives a crash of the launcher in any case. With `write`
    /// false it is only made in memory, for a caller that records a status update right after.
    package func update(_ key: LauncherTaskKey, write: Bool = true, _ body: (inout TaskCheckpoint) -> Void) {
        let changed = table.records.withLock { records -> Bool in
            guard var record = records[key] else { return false }
            body(&record)
            records[key] = record.isDone ? nil : record
            return true
        }
        if changed, write { submit(key, durable: false) }
    }

    /// Records the unacknowledged updates of a task (oldest first), and the state of `reported`
    /// when it is a new one; creates a bare record if the task has none, so that even an
    /// update about a task this launcher does not run is durable.
    ///
    /// With `reported`, the record is written durably and `whenStored` runs once it is on disk
    /// (on a writer thread; also after a failed write, which is logged). Without it (an
    /// acknowledgement) the write is neither flushed nor made at once: it waits up to
    /// ``acknowledgementDelay`` for the task's next change, which usually comes soon. Lost in a
    /// crash, it only means an update that was acknowledged is sent again, which the broker
    /// ignores by its uuid. A task that is done is removed at once.
    package func recordPending(
        _ key: LauncherTaskKey, updates: [Keel_V1_TaskStatus], reported: Keel_V1_TaskStatus?,
        whenStored: (@Sendable () -> Void)? = nil
    ) {
        // Serialized before the lock, which every task's changes share.
        let serialized = updates.compactMap { try? $0.serializedBytes() as Data }
        // nil: nothing changed; else whether the task is done (its record removed).
        let done = table.records.withLock { records -> Bool? in
            var record: TaskCheckpoint
            if let existing = records[key] {
                record = existing
            } else {
                guard !updates.isEmpty else { return nil }
                record = TaskCheckpoint(frameworkID: key.frameworkID, task: .with { $0.taskID.value = key.taskID })
            }
            if let reported { record.taskState = reported.state }
            record.pendingUpdates = serialized
            records[key] = record.isDone ? nil : record
            return record.isDone
        }
        guard let done else {
            // Nothing to write; never call back on the caller's thread, which may hold a lock.
            if let whenStored { DispatchQueue.global().async { whenStored() } }
            return
        }
        let deferred = reported == nil && !done
        submit(key, durable: reported != nil, deferredBy: deferred ? Self.acknowledgementDelay : nil, whenStored: whenStored)
    }

    /// How long the record change of an acknowledgement waits to be written along with the
    /// task's next change (see ``recordPending(_:updates:reported:whenStored:)``).
    static let acknowledgementDelay = Duration.seconds(1)

    /// Forgets a task and deletes its record and exit status.
    package func discard(_ key: LauncherTaskKey) {
        table.records.withLock { $0[key] = nil }
        submit(key, durable: false)
    }

    /// Waits until everything queued for the task's record, and the note of its cgroup
    /// `cgroup` if given, is on disk.
    package func sync(_ key: LauncherTaskKey, cgroup: String? = nil) async {
        if let cgroup { await writer.flush(paths: [cgroupNotePath(cgroup)]) }
        await journal.flush(keys: [key])
    }

    /// Waits until every queued write is on disk.
    package func flush() async {
        await writer.flush()
        await journal.flush()
    }

    /// Blocks until every queued write is on disk (for tests and code that cannot suspend;
    /// prefer ``flush()`` in async code).
    package func flushBlocking() {
        writer.flushBlocking()
        journal.flushBlocking()
    }

    /// Queues the write of the task's current record, or of its removal when it has none; with
    /// `durable`, flushed before it counts as stored.
    ///
    /// A power loss reboots the node, whereupon ``TaskManager/recover(_:)`` drops every task
    /// of the old boot (the agent gets a new id); what must survive is a crash of the launcher,
    /// which the page cache survives, and the flush makes sure the record a caller was told is
    /// stored is not torn either way.
    private func submit(
        _ key: LauncherTaskKey, durable: Bool, deferredBy delay: Duration? = nil, whenStored: (@Sendable () -> Void)? = nil
    ) {
        journal.submit(key, durable: durable, deferredBy: delay) { error in
            // The journal logs its failures.
            _ = error
            whenStored?()
        }
    }

    /// Reads every task record on disk into memory; returns the records and the tasks whose
    /// record could not be read (damaged or corrupt), each with the reason.
    ///
    /// Then rewrites the journal with just those records, so that nothing damaged or stale is
    /// appended to, and moves the records of the layout before the journal into it. Call it once,
    /// before the store is used.
    package func load() -> (records: [TaskCheckpoint], unreadable: [Unreadable]) {
        let (loaded, unreadable, legacy) = Self.readAll(workDir: workDir, logger: logger, removingFinished: true)
        var written = true
        do {
            try journal.replace(with: loaded.map { ($0.key, $0.value.jsonBytes()) })
        } catch {
            written = false
            logger.error("cannot rewrite the checkpoint journal; appending to it as it is", metadata: ["keel.error": "\(error)"])
        }
        // Moved into the journal: the old files are never read again (their directories stay
        // while their tasks' supervisors may still write the exit status there).
        if written {
            for directory in legacy.values { CheckpointFile.remove(directory + "/task.json") }
        }
        table.legacyDirectories.withLock { $0 = legacy }
        // Frameworks without tasks left (a running task's supervisor writes into its own).
        let exits = Self.checkpointDirectory(workDir: workDir) + "/exits"
        let frameworks = Set(loaded.keys.map(\.frameworkID)).union(unreadable.keys.map(\.frameworkID))
        for frameworkID in CheckpointFile.entries(of: exits) where !frameworks.contains(frameworkID) {
            rmdir(exits + "/" + frameworkID)
        }
        table.records.withLock { records in
            for (key, record) in loaded { records[key] = record }
        }
        return (Array(loaded.values), unreadable.map { Unreadable(key: $0.key, reason: $0.value) })
    }

    /// What the checkpoint of `workDir` holds, read without changing anything (for inspection;
    /// a launcher uses ``load()``).
    package static func read(workDir: String, logger: Logger) -> (records: [TaskCheckpoint], unreadable: [Unreadable]) {
        let (loaded, unreadable, _) = readAll(workDir: workDir, logger: logger, removingFinished: false)
        return (Array(loaded.values), unreadable.map { Unreadable(key: $0.key, reason: $0.value) })
    }

    /// The records of the journal and of the layout before it, the tasks whose record is
    /// unreadable, and the old directories still needed; with `removingFinished`, removes the
    /// old directories of tasks that are done.
    private static func readAll(workDir: String, logger: Logger, removingFinished: Bool) -> (
        [LauncherTaskKey: TaskCheckpoint], [LauncherTaskKey: String], [LauncherTaskKey: String]
    ) {
        var loaded: [LauncherTaskKey: TaskCheckpoint] = [:]
        var unreadable: [LauncherTaskKey: String] = [:]
        let path = checkpointDirectory(workDir: workDir) + "/tasks.journal"
        let contents = CheckpointJournal.read(path)
        for (key, bytes) in contents.records {
            do {
                loaded[key] = try decode(bytes, key: key)
            } catch {
                unreadable[key] = "\(path): \(describe(error))"
            }
        }
        for (key, reason) in contents.damaged { unreadable[key] = reason }
        for region in contents.lostRegions {
            logger.error("part of the checkpoint journal cannot be read; the task records in it are lost", metadata: [
                "keel.region": "\(region)",
            ])
        }
        if contents.tornTail {
            logger.notice("the checkpoint journal ends in a record cut short by a crash; nobody was told it was stored, so it is ignored")
        }
        let legacy = readLegacy(workDir: workDir, into: &loaded, unreadable: &unreadable, removingFinished: removingFinished)
        return (loaded, unreadable, legacy)
    }

    /// Reads the records of the layout before the journal that the journal does not hold;
    /// returns the directories of tasks that still need theirs. With `removingFinished`, removes
    /// the directories of tasks that have no record any more.
    private static func readLegacy(
        workDir: String, into loaded: inout [LauncherTaskKey: TaskCheckpoint], unreadable: inout [LauncherTaskKey: String],
        removingFinished: Bool
    ) -> [LauncherTaskKey: String] {
        let root = checkpointDirectory(workDir: workDir) + "/tasks"
        var directories: [LauncherTaskKey: String] = [:]
        for frameworkID in CheckpointFile.entries(of: root) where CheckpointFile.isDirectory(root + "/" + frameworkID) {
            for taskID in CheckpointFile.entries(of: root + "/" + frameworkID)
            where CheckpointFile.isDirectory(root + "/\(frameworkID)/\(taskID)") {
                let key = LauncherTaskKey(frameworkID: frameworkID, taskID: taskID)
                let directory = root + "/\(frameworkID)/\(taskID)"
                let path = directory + "/task.json"
                if loaded[key] == nil, unreadable[key] == nil {
                    do {
                        guard let bytes = try CheckpointFile.read(path) else {
                            // Moved into the journal earlier, and that task is done.
                            if removingFinished { CheckpointFile.removeTree(directory) }
                            continue
                        }
                        loaded[key] = try decode(bytes, key: key)
                    } catch {
                        unreadable[key] = "\(path): \(describe(error))"
                    }
                }
                directories[key] = directory
            }
            if removingFinished { rmdir(root + "/" + frameworkID) }
        }
        return directories
    }

    /// A record read back, checked to be complete and to name `key`.
    private static func decode(_ bytes: [UInt8], key: LauncherTaskKey) throws -> TaskCheckpoint {
        let record = try JSONDecoder().decode(TaskCheckpoint.self, from: Data(bytes))
        guard record.version == TaskCheckpoint.currentVersion else {
            throw LauncherError(code: .invalidArgument, message: "unknown checkpoint version \(record.version)")
        }
        guard record.key == key else {
            throw LauncherError(code: .invalidArgument, message: "it names task \(record.key), not \(key)")
        }
        _ = try record.decodedTask()
        _ = try record.decodedPendingUpdates()
        return record
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context): "corrupt or truncated: \(context.debugDescription)"
        case DecodingError.keyNotFound(let key, _): "corrupt or truncated: no '\(key.stringValue)'"
        case let error as DecodingError: "corrupt: \(error)"
        default: "\(error)"
        }
    }
}
