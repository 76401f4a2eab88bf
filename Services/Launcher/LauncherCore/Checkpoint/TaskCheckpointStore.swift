import Foundation
package import KeelAPI
import KeelRPC
package import Logging
import SwiftProtobuf
import Synchronization

/// The per-task checkpoint records of this launcher, in memory and on disk.
///
/// Every change is written through at once, atomically (``CheckpointFile/write(_:to:)``), before
/// the caller acts on it: a status update is on disk before it is sent. A record whose task has
/// ended and whose updates are all acknowledged is removed. Layout under the work dir:
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

    /// Notes, durably, that this launcher is about to create the task cgroup `path` (relative
    /// to the mount points, e.g. `keel/web-1-…`).
    package func recordCgroup(_ path: String) {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        do {
            try CheckpointFile.write(Array(path.utf8), to: cgroupsDirectory + "/" + name)
        } catch {
            logger.error(
                "cannot note the task cgroup in the checkpoint; a restarted launcher will not sweep it",
                metadata: ["keel.cgroup": "\(path)", "keel.error": "\(error)"])
        }
    }

    /// Forgets the task cgroup `path` once it has been removed.
    package func forgetCgroup(_ path: String) {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        CheckpointFile.remove(cgroupsDirectory + "/" + name)
    }

    /// The task cgroups this launcher created and has not removed yet.
    package var recordedCgroups: Set<String> {
        Set(CheckpointFile.entries(of: cgroupsDirectory).filter { !$0.hasSuffix(".tmp") }.compactMap { name in
            (try? CheckpointFile.read(cgroupsDirectory + "/" + name)).flatMap { $0 }.map {
                String(decoding: $0, as: UTF8.self)
            }
        })
    }

    /// The record of a task, if any.
    package func record(_ key: LauncherTaskKey) -> TaskCheckpoint? {
        records.withLock { $0[key] }
    }

    /// Every record in memory.
    package var all: [TaskCheckpoint] {
        records.withLock { Array($0.values) }
    }

    /// Creates (replacing any old one) and writes the record of a task about to be launched.
    package func create(_ record: TaskCheckpoint) throws(LauncherError) {
        CheckpointFile.remove(exitStatusPath(record.key))
        try records.withLock { (records) throws(LauncherError) in
            try write(record)
            records[record.key] = record
        }
    }

    /// Changes a task's record and writes it (or removes it once ``TaskCheckpoint/isDone``).
    ///
    /// Does nothing when the task has no record. A write error is logged and returned; the
    /// in-memory record is changed regardless, so the launcher keeps working.
    @discardableResult
    package func update(_ key: LauncherTaskKey, _ body: (inout TaskCheckpoint) -> Void) -> LauncherError? {
        records.withLock { records in
            guard var record = records[key] else { return nil }
            body(&record)
            return store(record, in: &records)
        }
    }

    /// Records the unacknowledged updates of a task (oldest first), and the state of `reported`
    /// when it is a new one; creates a bare record if the task has none, so that even an
    /// update about a task this launcher does not run is durable.
    @discardableResult
    package func recordPending(
        _ key: LauncherTaskKey, updates: [Keel_V1_TaskStatus], reported: Keel_V1_TaskStatus?
    ) -> LauncherError? {
        records.withLock { records in
            var record: TaskCheckpoint
            if let existing = records[key] {
                record = existing
            } else {
                guard !updates.isEmpty else { return nil }
                record = TaskCheckpoint(frameworkID: key.frameworkID, task: .with { $0.taskID.value = key.taskID })
            }
            if let reported { record.taskState = reported.state }
            record.setPendingUpdates(updates)
            return store(record, in: &records)
        }
    }

    private func store(_ record: TaskCheckpoint, in records: inout [LauncherTaskKey: TaskCheckpoint]) -> LauncherError? {
        if record.isDone {
            records[record.key] = nil
            remove(record.key)
            return nil
        }
        records[record.key] = record
        do {
            try write(record)
            return nil
        } catch {
            logger.error(
                "cannot write the task checkpoint; the task may not be recovered after a launcher restart",
                metadata: ["keel.task_id": "\(record.taskID)", "keel.error": "\(error)"])
            return error
        }
    }

    /// Forgets a task and deletes its checkpoint directory.
    package func discard(_ key: LauncherTaskKey) {
        records.withLock { records in
            records[key] = nil
            remove(key)
        }
    }

    private func remove(_ key: LauncherTaskKey) {
        let directory = directory(key)
        CheckpointFile.removeTree(directory)
        try? CheckpointFile.syncDirectory(CheckpointFile.parent(of: directory))
    }

    private func write(_ record: TaskCheckpoint) throws(LauncherError) {
        let data: Data
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            data = try encoder.encode(record)
        } catch {
            throw LauncherError(code: .internalError, message: "cannot encode the checkpoint of task \(record.taskID): \(error)")
        }
        try CheckpointFile.write(Array(data), to: recordPath(record.key))
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
