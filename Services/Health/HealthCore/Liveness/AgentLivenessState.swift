/// The liveness logic of one agent: a pure state machine fed with ping results.
///
/// A missed ping adds to ``missedPings``; when it reaches the budget the agent is unreachable.
/// A successful ping resets the count and makes the agent reachable again. Like
/// ``TaskCheckState``, the verdict the broker has not acknowledged yet is ``pendingReport``, so
/// each change is reported once and a failed report is retried after the next ping.
package struct AgentLivenessState: Sendable, Hashable {
    /// What one recorded ping did.
    package enum Outcome: Sendable, Hashable {
        /// The ping was answered (the agent was already reachable).
        case answered
        /// The ping was answered and the agent was unreachable before.
        case becameReachable
        /// A miss within the budget.
        case missed
        /// The miss that used up the budget: the agent is now unreachable.
        case becameUnreachable
    }

    /// Missed pings in a row before the agent counts as unreachable.
    package let budget: Int
    /// Pings missed in a row.
    package private(set) var missedPings = 0
    /// The current verdict.
    package private(set) var reachable: Bool
    /// The verdict the broker holds.
    package private(set) var reported: Bool

    /// A state for an agent the broker currently considers `reachable` (any state but UNREACHABLE).
    package init(budget: Int, reachable: Bool = true) {
        self.budget = max(1, budget)
        self.reachable = reachable
        self.reported = reachable
        if !reachable { missedPings = self.budget }
    }

    /// Records one ping: answered or missed.
    @discardableResult
    package mutating func record(answered: Bool) -> Outcome {
        if answered {
            missedPings = 0
            if reachable { return .answered }
            reachable = true
            return .becameReachable
        }
        missedPings += 1
        if missedPings >= budget && reachable {
            reachable = false
            return .becameUnreachable
        }
        return .missed
    }

    /// The verdict to send to the broker, when it differs from what the broker holds.
    package var pendingReport: Bool? {
        reachable != reported ? reachable : nil
    }

    /// Records that the broker accepted a report of `reachable`.
    package mutating func markReported(_ reachable: Bool) {
        reported = reachable
    }
}
