import Dispatch
import Foundation
package import KeelAPI
import KeelRPC
package import Logging
import SwiftProtobuf
import Synchronization

/// The per-task checkpoint records of this launcher, in memory and on disk.
///
/// Every change is kept in memory at once and written atomically (``CheckpointFile/write(_:to:durability:)``)
/// by a ``CheckpointWriter``, which writes the files of many tasks in parallel and coalesces a
/// task's changes that arrive while its file is being written. Callers that act on a change
/// wait for it to be durable: a task's record and cgroup note are on disk before its cgroup and
/// process are created (``sync(_:cgroup:)``), and a status update is on disk before it is sent
/// (``recordPending(_:updates:reported:whenStored:)``). A record whose task has ended and whose
/// updates are all acknowledged is removed. Layout under the work dir:
///
/// ```
/// checkpoint/agent.json                              the agent id and boot id
/// checkpoint/tasks/<framework>/<task>/task.json      a TaskCheckpoint
/// checkpoint/tasks/<framework>/<task>/exit-status    written by keel-task-supervisor
/// checkpoint/cgroups/<name>                          a task cgroup this launcher created
/// ```
///
/// The `cgroups` entries are written before the cgroup is created and removed after it is
/// destroyed, so a restarted launcher knows exactly which task cgroups are its own, even when
/// a task's record is lost: it sweeps those, and never the cgroups of another launcher that
/// shares the cgroup root (several `keel up` clusters or test runs on one machine).
package final class TaskCheckpointStore: Sendable {
    /// One checkpoint directory that could not be used.
    package struct Unreadable: Sendable, Hashable {
        package var key: LauncherTaskKey
        package var reason: String
    }

    private let records = Mutex<[LauncherTaskKey: TaskCheckpoint]>([:])
    /// The task cgroups noted and not forgotten; read from disk on first use.
    private let cgroupNotes = Mutex<Set<String>?>(nil)
    private let writer = CheckpointWriter()
    /// The work directory the checkpoint lives in.
    package let workDir: String
    private let logger: Logger

    /// Creates an empty store for `workDir`; ``load()`` reads what is on disk.
    package init(workDir: String, logger: Logger) {
        self.workDir = workDir
        self.logger = logger
    }

    /// `<workDir>/checkpoint`.
    package static func checkpointDirectory(workDir: String) -> String {
        (workDir.hasSuffix("/") ? String(workDir.dropLast()) : workDir) + "/checkpoint"
    }

    /// The directory of one task's records.
    package func directory(_ key: LauncherTaskKey) -> String {
        Self.checkpointDirectory(workDir: workDir) + "/tasks/\(key.frameworkID)/\(key.taskID)"
    }

    /// The file the task's record is kept in.
    package func recordPath(_ key: LauncherTaskKey) -> String {
        directory(key) + "/task.json"
    }

    /// The file the task's supervisor writes the exit status to.
    package func exitStatusPath(_ key: LauncherTaskKey) -> String {
        directory(key) + "/exit-status"
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
        records.withLock { $0[key] }
    }

    /// Every record in memory.
    package var all: [TaskCheckpoint] {
        records.withLock { Array($0.values) }
    }

    /// Creates (replacing any old one) the record of a task about to be launched and queues its
    /// durable write; ``sync(_:cgroup:)`` waits for it. With `write` false it is only kept in
    /// memory, for a caller that records the task's first status update at once (which writes
    /// the whole record, so the two cost one write).
    package func create(_ record: TaskCheckpoint, write: Bool = true) {
        CheckpointFile.remove(exitStatusPath(record.key))
        records.withLock { $0[record.key] = record }
        if write { submit(record.key, durable: true) }
    }

    /// Changes a task's record and queues its write (or its removal once
    /// ``TaskCheckpoint/isDone``). Does nothing when the task has no record.
    ///
    /// The change is not flushed on its own: it is on disk after the next durable write of the
    /// task (a status update) and survives a crash of the launcher in any case. With `write`
    /// false it is only made in memory, for a caller that records a status update right after.
    package func update(_ key: LauncherTaskKey, write: Bool = true, _ body: (inout TaskCheckpoint) -> Void) {
        let changed = records.withLock { records -> Bool in
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
        // nil: nothing changed; else whether the task is done (its record removed).
        let done = records.withLock { records -> Bool? in
            var record: TaskCheckpoint
            if let existing = records[key] {
                record = existing
            } else {
                guard !updates.isEmpty else { return nil }
                record = TaskCheckpoint(frameworkID: key.frameworkID, task: .with { $0.taskID.value = key.taskID })
            }
            if let reported { record.taskState = reported.state }
            record.setPendingUpdates(updates)
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

    /// Forgets a task and deletes its checkpoint directory.
    package func discard(_ key: LauncherTaskKey) {
        records.withLock { $0[key] = nil }
        submit(key, durable: false)
    }

    /// Waits until everything queued for the task's record, and the note of its cgroup
    /// `cgroup` if given, is on disk.
    package func sync(_ key: LauncherTaskKey, cgroup: String? = nil) async {
        var paths: Set<String> = [recordPath(key)]
        if let cgroup { paths.insert(cgroupNotePath(cgroup)) }
        await writer.flush(paths: paths)
    }

    /// Waits until every queued write is on disk.
    package func flush() async {
        await writer.flush()
    }

    /// Blocks until every queued write is on disk (for tests and code that cannot suspend;
    /// prefer ``flush()`` in async code).
    package func flushBlocking() {
        writer.flushBlocking()
    }

    /// Queues the write of the task's current record, or of its removal when it has none.
    /// Writes the record of `key`; with `durable`, flushed before it counts as stored.
    ///
    /// "Durable" here is write, `fsync`, rename (``CheckpointFile/Durability/synced``), without
    /// the `fsync` of the directory that would make the rename itself survive a power loss. No
    /// recovery can use that: a launcher restarted on the same boot reads the files through the
    /// page cache, which a crash of the launcher does not touch, and after a power loss the node
    /// boots again, whereupon ``TaskManager/recover(_:)`` drops every task of the old boot (the
    /// agent gets a new id). The directory flush was half of a task's `fsync`s.
    private func submit(
        _ key: LauncherTaskKey, durable: Bool, deferredBy delay: Duration? = nil, whenStored: (@Sendable () -> Void)? = nil
    ) {
        let directory = directory(key)
        writer.submit(
            recordPath(key), durability: durable ? .synced : .atomic, deferredBy: delay,
            content: { [self] in
                guard let record = record(key) else { return .remove(tree: directory) }
                return .bytes(record.jsonBytes())
            },
            completion: { [logger] error in
                if let error {
                    logger.error(
                        "cannot write the task checkpoint; the task may not be recovered after a launcher restart",
                        metadata: ["keel.task_id": "\(key.taskID)", "keel.error": "\(error)"])
                }
                whenStored?()
            })
    }


    /// Reads every task record on disk into memory; returns the records and the directories
    /// that could not be read (truncated or corrupt files), each with the reason.
    package func load() -> (records: [TaskCheckpoint], unreadable: [Unreadable]) {
        let root = Self.checkpointDirectory(workDir: workDir) + "/tasks"
        var loaded: [TaskCheckpoint] = []
        var unreadable: [Unreadable] = []
        for frameworkID in CheckpointFile.entries(of: root) where CheckpointFile.isDirectory(root + "/" + frameworkID) {
            for taskID in CheckpointFile.entries(of: root + "/" + frameworkID)
            where CheckpointFile.isDirectory(root + "/\(frameworkID)/\(taskID)") {
                let key = LauncherTaskKey(frameworkID: frameworkID, taskID: taskID)
                let path = recordPath(key)
                do {
                    guard let bytes = try CheckpointFile.read(path) else {
                        throw LauncherError(code: .notFound, message: "'\(path)' is missing")
                    }
                    let record = try JSONDecoder().decode(TaskCheckpoint.self, from: Data(bytes))
                    guard record.version == TaskCheckpoint.currentVersion else {
                        throw LauncherError(code: .invalidArgument, message: "unknown checkpoint version \(record.version)")
                    }
                    guard record.key == key else {
                        throw LauncherError(code: .invalidArgument, message: "it names task \(record.key), not \(key)")
                    }
                    _ = try record.decodedTask()
                    _ = try record.decodedPendingUpdates()
                    loaded.append(record)
                } catch {
                    unreadable.append(Unreadable(key: key, reason: "\(path): \(Self.describe(error))"))
                }
            }
        }
        records.withLock { records in
            for record in loaded { records[record.key] = record }
        }
        return (loaded, unreadable)
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
