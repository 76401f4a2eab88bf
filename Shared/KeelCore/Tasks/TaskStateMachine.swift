/// The state of one task plus the rules for how it may change, following Mesos.
///
/// Allowed transitions (anything else throws ``KeelError/Code/failedPrecondition``):
///
/// | from          | to                                                             |
/// |---------------|----------------------------------------------------------------|
/// | `staging`     | `starting`, `running`, `killing`, `unreachable`, any terminal   |
/// | `starting`    | `running`, `killing`, `unreachable`, any terminal               |
/// | `running`     | `killing`, `unreachable`, any terminal                          |
/// | `killing`     | `unreachable`, any terminal                                     |
/// | `unreachable` | `starting`, `running`, `killing` (the agent came back), any terminal (incl. `gone`, `lost`) |
/// | `unknown`     | any state (the real state was learned, e.g. via reconciliation) |
/// | terminal      | nothing                                                        |
///
/// In addition:
/// - any non-terminal state may become `unknown` (the master lost track of the task, e.g. its
///   agent is not registered after a master failover);
/// - the same state is always accepted and is a no-op: executors repeat status updates (e.g. a
///   second `RUNNING` carrying a health-check change, or a retried `FINISHED`), so
///   ``transition(to:)`` returns `false` instead of throwing;
/// - no state ever goes back to `staging`, and a task never goes "backwards" through
///   `staging → starting → running → killing` except when recovering from `unreachable` or
///   `unknown`, where the agent's report is the truth.
///
/// Terminal states are final: the task's resources are gone, so a task must be relaunched under
/// a new ``TaskID`` to run again.
package struct TaskStateMachine: Hashable, Sendable {
    /// The task whose state this is; named in error messages.
    package let taskID: TaskID
    /// The current state.
    package private(set) var state: TaskState

    /// Starts tracking `taskID` in `state` (new tasks start in ``TaskState/staging``; use another
    /// state when restoring a task from storage).
    package init(taskID: TaskID, state: TaskState = .staging) {
        self.taskID = taskID
        self.state = state
    }

    /// Whether the table on ``TaskStateMachine`` allows `from → to` (same state counts as allowed).
    package static func isLegalTransition(from: TaskState, to: TaskState) -> Bool {
        if from == to { return true }
        if from.isTerminal { return false }
        if from == .unknown || to == .unknown { return true }
        if to.isTerminal { return true }
        switch from {
        case .staging:
            return [.starting, .running, .killing, .unreachable].contains(to)
        case .starting:
            return [.running, .killing, .unreachable].contains(to)
        case .running:
            return [.killing, .unreachable].contains(to)
        case .killing:
            return to == .unreachable
        case .unreachable:
            return [.starting, .running, .killing].contains(to)
        case .unknown, .finished, .failed, .killed, .error, .lost, .dropped, .gone, .goneByOperator:
            return false  // handled above
        }
    }

    /// The states `from` may move to, other than itself, in declaration order.
    package static func nextStates(from: TaskState) -> [TaskState] {
        TaskState.allCases.filter { $0 != from && isLegalTransition(from: from, to: $0) }
    }

    /// Whether ``transition(to:)`` would accept `next` from the current state.
    package func canTransition(to next: TaskState) -> Bool {
        Self.isLegalTransition(from: state, to: next)
    }

    /// Moves to `next` if the rules allow it.
    ///
    /// - Returns: `true` if the state changed, `false` if `next` equals the current state
    ///   (a repeated update, which is accepted).
    /// - Throws: ``KeelError/Code/failedPrecondition`` if the transition is illegal; the state is
    ///   left unchanged and the message says why and what would be allowed.
    @discardableResult
    package mutating func transition(to next: TaskState) throws -> Bool {
        guard next != state else { return false }
        guard Self.isLegalTransition(from: state, to: next) else {
            if state.isTerminal {
                throw KeelError.failedPrecondition(
                    "task \(taskID) is already \(state); it cannot become \(next). Terminal states are final: launch a new task with a new task ID to run it again"
                )
            }
            let allowed = Self.nextStates(from: state).map(\.description).joined(separator: ", ")
            throw KeelError.failedPrecondition(
                "task \(taskID) cannot go from \(state) to \(next); from \(state) it may only become one of: \(allowed)")
        }
        state = next
        return true
    }
}
