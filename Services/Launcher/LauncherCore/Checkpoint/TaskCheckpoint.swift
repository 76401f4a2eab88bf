package import Foundation
package import KeelAPI
import KeelRPC
import SwiftProtobuf

/// What the launcher remembers about one task across its own restarts, kept in the checkpoint
/// journal (`<workDir>/checkpoint/tasks.journal`, see ``TaskCheckpointStore``).
///
/// It holds what is needed to re-attach (the supervisor's pid and start time, the exit-status
/// file, the cgroup path) and the status updates not yet acknowledged, oldest first. Messages
/// are stored as serialized protobuf (base64 in the JSON).
package struct TaskCheckpoint: Codable, Sendable, Hashable {
    /// Bumped when the layout changes incompatibly.
    package static let currentVersion = 1

    package var version = TaskCheckpoint.currentVersion
    package var frameworkID: String
    package var taskID: String
    /// The run of the task (part of the sandbox and cgroup names).
    package var runID: String?
    /// The task as launched (`Keel_V1_TaskInfo`).
    package var task: Data
    /// The sandbox directory, once created.
    package var sandbox: String?
    /// The pid of the task's supervisor (the leader of the task's process group).
    package var supervisorPID: Int32?
    /// The supervisor's start time in clock ticks since boot (`/proc/PID/stat` field 22), so a
    /// reused pid is never mistaken for it.
    package var supervisorStartTime: UInt64?
    /// The file the supervisor writes the task's exit status to.
    package var exitStatusFile: String?
    /// The task's cgroup path relative to each hierarchy's mount point, if it has cgroups.
    package var cgroup: String?
    /// The latest state reported for the task (`Keel_V1_TaskState` raw value).
    package var state: Int
    /// Whether a kill was requested.
    package var killRequested = false
    /// Unacknowledged status updates (`Keel_V1_TaskStatus`), oldest first.
    package var pendingUpdates: [Data] = []

    /// A record for a task about to be launched.
    package init(frameworkID: String, task: Keel_V1_TaskInfo) {
        self.frameworkID = frameworkID
        self.taskID = task.taskID.value
        self.task = (try? task.serializedBytes()) ?? Data()
        self.state = Keel_V1_TaskState.taskStaging.rawValue
    }

    /// The key of the task.
    package var key: LauncherTaskKey {
        LauncherTaskKey(frameworkID: frameworkID, taskID: taskID)
    }

    /// The latest reported state.
    package var taskState: Keel_V1_TaskState {
        get { Keel_V1_TaskState(rawValue: state) ?? .taskUnknown }
        set { state = newValue.rawValue }
    }

    /// The decoded task; throws if the bytes are corrupt.
    package func decodedTask() throws -> Keel_V1_TaskInfo {
        try Keel_V1_TaskInfo(serializedBytes: task)
    }

    /// The decoded pending updates; throws if any is corrupt.
    package func decodedPendingUpdates() throws -> [Keel_V1_TaskStatus] {
        try pendingUpdates.map { try Keel_V1_TaskStatus(serializedBytes: $0) }
    }

    /// Whether nothing more needs to be remembered: the task ended and every update was acknowledged.
    package var isDone: Bool {
        taskState.isTerminal && pendingUpdates.isEmpty
    }
}
