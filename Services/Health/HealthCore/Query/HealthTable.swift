package import KeelAPI
import SwiftProtobuf
import Synchronization

/// Identifies a checked task: task ids are unique per framework, not globally.
package struct CheckedTaskKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The task's framework.
    package var frameworkID: String
    /// The task, unique within its framework.
    package var taskID: String

    /// Creates a key.
    package init(frameworkID: String, taskID: String) {
        self.frameworkID = frameworkID
        self.taskID = taskID
    }

    /// The key of a broker task record.
    package init(_ task: Keel_V1_Task) {
        self.init(frameworkID: task.frameworkID.value, taskID: task.taskID.value)
    }

    /// `framework/task`.
    package var description: String { "\(frameworkID)/\(taskID)" }

    /// Orders by framework, then task.
    package static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.frameworkID, lhs.taskID) < (rhs.frameworkID, rhs.taskID)
    }
}

/// What the health checker currently knows, as served by the query API.
///
/// Each task entry is owned by one run of a check (its `owner` token): a check that was replaced
/// or stopped can no longer change or remove the entry of its successor. Agent entries are
/// replaced as a whole after every ping round.
package final class HealthTable: Sendable {
    private struct TaskEntry {
        var owner: UInt64
        var health: Keel_V1_TaskHealth
    }

    private struct State {
        var tasks: [CheckedTaskKey: TaskEntry] = [:]
        var agents: [Keel_V1_AgentLiveness] = []
        var nextOwner: UInt64 = 1
    }

    private let state = Mutex(State())

    /// Creates an empty table.
    package init() {}

    /// Starts an entry for a new check of `key` and returns its owner token; replaces any previous entry.
    package func beginTask(_ key: CheckedTaskKey, checkType: Keel_V1_HealthCheck.TypeEnum) -> UInt64 {
        state.withLock { state in
            let owner = state.nextOwner
            state.nextOwner += 1
            state.tasks[key] = TaskEntry(owner: owner, health: .with {
                $0.taskID.value = key.taskID
                $0.frameworkID.value = key.frameworkID
                $0.checkType = checkType
            })
            return owner
        }
    }

    /// Changes the entry of `key` if `owner` still owns it.
    package func updateTask(_ key: CheckedTaskKey, owner: UInt64, _ body: (inout Keel_V1_TaskHealth) -> Void) {
        state.withLock { state in
            guard var entry = state.tasks[key], entry.owner == owner else { return }
            body(&entry.health)
            state.tasks[key] = entry
        }
    }

    /// Removes the entry of `key` if `owner` still owns it.
    package func endTask(_ key: CheckedTaskKey, owner: UInt64) {
        state.withLock { state in
            if state.tasks[key]?.owner == owner { state.tasks[key] = nil }
        }
    }

    /// The entries of the tasks with these ids (any framework), or every entry when `taskIDs` is
    /// empty; ordered by framework then task id.
    package func tasks(matching taskIDs: Set<String> = []) -> [Keel_V1_TaskHealth] {
        state.withLock { state in
            state.tasks.filter { taskIDs.isEmpty || taskIDs.contains($0.key.taskID) }
                .sorted { $0.key < $1.key }
                .map(\.value.health)
        }
    }

    /// The entry of one task, if it is being checked.
    package func task(_ key: CheckedTaskKey) -> Keel_V1_TaskHealth? {
        state.withLock { $0.tasks[key]?.health }
    }

    /// Replaces every agent entry with the result of the latest ping round.
    package func replaceAgents(_ agents: [Keel_V1_AgentLiveness]) {
        let sorted = agents.sorted { $0.agentID.value < $1.agentID.value }
        state.withLock { $0.agents = sorted }
    }

    /// The agent entries, ordered by agent id.
    package var agents: [Keel_V1_AgentLiveness] {
        state.withLock { $0.agents }
    }
}
