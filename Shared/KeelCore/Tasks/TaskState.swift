/// The lifecycle state of a task, exactly the Mesos `TaskState` values.
///
/// Terminal states (``isTerminal``) are final: the task's resources are released and it never
/// runs again. ``unreachable`` and ``unknown`` are *not* terminal, as in Mesos: the task may
/// still be running on an agent the master cannot currently see. See ``TaskStateMachine`` for
/// which transitions are allowed.
package enum TaskState: Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// Accepted by the master and on its way to the agent; not yet acknowledged by the agent.
    case staging
    /// The agent's executor is preparing the task (fetching, creating the container).
    case starting
    /// The task is running.
    case running
    /// A kill was requested and the executor is shutting the task down (grace period).
    case killing
    /// The task exited successfully. Terminal.
    case finished
    /// The task exited with an error. Terminal.
    case failed
    /// The task was killed on request. Terminal.
    case killed
    /// The task description was invalid and it was never launched. Terminal.
    case error
    /// The task was lost (e.g. its agent or executor died). Terminal.
    ///
    /// Mesos deprecated this for partition-aware frameworks in favour of the more precise
    /// ``dropped``, ``unreachable``, ``gone`` and ``unknown``, but still sends it to others.
    case lost
    /// The task failed to launch because of a transient error and never ran. Terminal.
    case dropped
    /// The task's agent is partitioned from the master; the task may still be running and
    /// may come back. Not terminal.
    case unreachable
    /// The task was on an agent that is known to be permanently gone. Terminal.
    case gone
    /// An operator declared the task's agent gone (e.g. the machine was decommissioned). Terminal.
    case goneByOperator
    /// The master has no information about the task (typically an answer to reconciliation
    /// for a task on an unknown agent). Not terminal.
    case unknown

    /// Whether the state is final: `finished`, `failed`, `killed`, `error`, `lost`, `dropped`,
    /// `gone` or `goneByOperator`.
    package var isTerminal: Bool {
        switch self {
        case .finished, .failed, .killed, .error, .lost, .dropped, .gone, .goneByOperator:
            true
        case .staging, .starting, .running, .killing, .unreachable, .unknown:
            false
        }
    }

    /// The Mesos name without the `TASK_` prefix, e.g. `RUNNING`, `GONE_BY_OPERATOR`.
    package var description: String {
        switch self {
        case .staging: "STAGING"
        case .starting: "STARTING"
        case .running: "RUNNING"
        case .killing: "KILLING"
        case .finished: "FINISHED"
        case .failed: "FAILED"
        case .killed: "KILLED"
        case .error: "ERROR"
        case .lost: "LOST"
        case .dropped: "DROPPED"
        case .unreachable: "UNREACHABLE"
        case .gone: "GONE"
        case .goneByOperator: "GONE_BY_OPERATOR"
        case .unknown: "UNKNOWN"
        }
    }
}
