package import Foundation
import KeelRPC
import Synchronization

/// What the sandbox garbage collector needs to know about one task's sandboxes.
package struct SandboxUse: Sendable {
    /// The task's key.
    package var key: LauncherTaskKey
    /// The sandbox of the task's latest run, if it has one yet.
    package var sandboxRoot: String?
    /// When the task ended, if it has.
    package var endedAt: Date?
    /// Whether every sandbox of this task must be kept: it has not ended, or its end has not
    /// been acknowledged by the broker yet (so its checkpoint is still needed).
    package var mustKeep: Bool
}

extension TaskManager {
    /// How each known task uses its sandboxes, for ``SandboxGarbageCollector``.
    package var sandboxUses: [LauncherTaskKey: SandboxUse] {
        let uses = containers.withLock { containers in
            containers.map { key, container in
                SandboxUse(
                    key: key, sandboxRoot: container.sandbox?.root, endedAt: container.endedAt,
                    mustKeep: !container.state.isTerminal || !updates.pending(key).isEmpty)
            }
        }
        return Dictionary(uniqueKeysWithValues: uses.map { ($0.key, $0) })
    }

    /// Forgets an ended task whose sandbox `root` was removed: its container and its checkpoint.
    /// Does nothing (and returns `false`) if the task is running again or still has
    /// unacknowledged updates, or if `root` is not its latest sandbox.
    @discardableResult
    package func forgetEndedTask(_ key: LauncherTaskKey, sandboxRoot root: String) -> Bool {
        let forgotten = containers.withLock { containers -> Bool in
            guard let container = containers[key], container.state.isTerminal, container.sandbox?.root == root,
                updates.pending(key).isEmpty
            else { return false }
            containers[key] = nil
            return true
        }
        if forgotten {
            checkpoints?.discard(key)
        }
        return forgotten
    }
}
