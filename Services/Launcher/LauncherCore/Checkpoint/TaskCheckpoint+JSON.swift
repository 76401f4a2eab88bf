import Foundation
import KeelCore

extension TaskCheckpoint {
    /// The record as JSON, exactly what `JSONEncoder` would write apart from key order and
    /// escaped slashes: the same keys, `nil` optionals left out, `Data` as base64 strings. It is
    /// read back with `JSONDecoder` (see ``TaskCheckpointStore/load()``).
    ///
    /// Written by hand because a task's record is encoded each time it changes, several times
    /// per task, and `JSONEncoder`'s generic containers made that about a tenth of the
    /// launcher's CPU in the launch benchmark; this is a few appends per field.
    package func jsonBytes() -> [UInt8] {
        var writer = JSONObjectWriter(capacity: 256 + task.count * 4 / 3 + pendingUpdates.reduce(0) { $0 + $1.count * 4 / 3 + 3 })
        writer.field("version", number: version)
        writer.field("frameworkID", string: frameworkID)
        writer.field("taskID", string: taskID)
        if let runID { writer.field("runID", string: runID) }
        writer.field("task", base64: task)
        if let sandbox { writer.field("sandbox", string: sandbox) }
        if let supervisorPID { writer.field("supervisorPID", number: Int(supervisorPID)) }
        if let supervisorStartTime { writer.field("supervisorStartTime", number: supervisorStartTime) }
        if let exitStatusFile { writer.field("exitStatusFile", string: exitStatusFile) }
        if let cgroup { writer.field("cgroup", string: cgroup) }
        writer.field("state", number: state)
        writer.field("killRequested", bool: killRequested)
        writer.field("pendingUpdates", base64Array: pendingUpdates)
        return writer.finish()
    }
}
