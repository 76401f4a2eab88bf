/// Identifies a task on this node: task ids are unique per framework.
package struct LauncherTaskKey: Hashable, Sendable, CustomStringConvertible {
    package var frameworkID: String
    package var taskID: String

    /// Creates a key.
    package init(frameworkID: String, taskID: String) {
        self.frameworkID = frameworkID
        self.taskID = taskID
    }

    package var description: String { "\(frameworkID)/\(taskID)" }
}
