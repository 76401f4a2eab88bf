package import KeelAPI
package import KeelCore

extension TaskState {
    /// Converts a wire state; nil for `TASK_STATE_UNSPECIFIED` and unknown values.
    package init?(proto: Keel_V1_TaskState) {
        switch proto {
        case .taskStaging: self = .staging
        case .taskStarting: self = .starting
        case .taskRunning: self = .running
        case .taskKilling: self = .killing
        case .taskFinished: self = .finished
        case .taskFailed: self = .failed
        case .taskKilled: self = .killed
        case .taskError: self = .error
        case .taskLost: self = .lost
        case .taskDropped: self = .dropped
        case .taskUnreachable: self = .unreachable
        case .taskGone: self = .gone
        case .taskGoneByOperator: self = .goneByOperator
        case .taskUnknown: self = .unknown
        case .unspecified, .UNRECOGNIZED: return nil
        }
    }

    /// This state on the wire.
    package var proto: Keel_V1_TaskState {
        switch self {
        case .staging: .taskStaging
        case .starting: .taskStarting
        case .running: .taskRunning
        case .killing: .taskKilling
        case .finished: .taskFinished
        case .failed: .taskFailed
        case .killed: .taskKilled
        case .error: .taskError
        case .lost: .taskLost
        case .dropped: .taskDropped
        case .unreachable: .taskUnreachable
        case .gone: .taskGone
        case .goneByOperator: .taskGoneByOperator
        case .unknown: .taskUnknown
        }
    }
}

extension Keel_V1_TaskState {
    /// Whether the state is terminal (FINISHED, FAILED, KILLED, ERROR, LOST, DROPPED, GONE, GONE_BY_OPERATOR).
    package var isTerminal: Bool {
        TaskState(proto: self)?.isTerminal ?? false
    }

    /// The state's name as in Mesos, e.g. `TASK_RUNNING`.
    package var name: String {
        switch self {
        case .unspecified: "TASK_STATE_UNSPECIFIED"
        case .taskStaging: "TASK_STAGING"
        case .taskStarting: "TASK_STARTING"
        case .taskRunning: "TASK_RUNNING"
        case .taskKilling: "TASK_KILLING"
        case .taskFinished: "TASK_FINISHED"
        case .taskFailed: "TASK_FAILED"
        case .taskKilled: "TASK_KILLED"
        case .taskError: "TASK_ERROR"
        case .taskLost: "TASK_LOST"
        case .taskDropped: "TASK_DROPPED"
        case .taskUnreachable: "TASK_UNREACHABLE"
        case .taskGone: "TASK_GONE"
        case .taskGoneByOperator: "TASK_GONE_BY_OPERATOR"
        case .taskUnknown: "TASK_UNKNOWN"
        case .UNRECOGNIZED(let value): "TASK_STATE_\(value)"
        }
    }
}
