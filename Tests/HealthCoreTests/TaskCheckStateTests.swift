import HealthCore
import Testing

@Suite("TaskCheckState: consecutive failures, grace period, verdict changes")
struct TaskCheckStateTests {
    @Test("the task is unhealthy only after the threshold of failures in a row")
    func threshold() {
        var state = TaskCheckState(failureThreshold: 3, gracePeriod: .zero)
        #expect(state.record(success: false, elapsed: .seconds(1)) == .failureCounted)
        #expect(state.record(success: false, elapsed: .seconds(2)) == .failureCounted)
        #expect(state.healthy == nil)
        #expect(state.pendingReport == nil)
        #expect(state.record(success: false, elapsed: .seconds(3)) == .becameUnhealthy)
        #expect(state.healthy == false)
        #expect(state.consecutiveFailures == 3)
        #expect(state.pendingReport == false)
    }

    @Test("one success makes the task healthy and resets the count")
    func recovery() {
        var state = TaskCheckState(failureThreshold: 2, gracePeriod: .zero)
        state.record(success: false, elapsed: .seconds(1))
        state.record(success: false, elapsed: .seconds(2))
        state.markReported(false)
        #expect(state.record(success: true, elapsed: .seconds(3)) == .healthy)
        #expect(state.healthy == true)
        #expect(state.consecutiveFailures == 0)
        #expect(state.pendingReport == true)
    }

    @Test("a success between failures starts the count again")
    func interrupted() {
        var state = TaskCheckState(failureThreshold: 3, gracePeriod: .zero)
        state.record(success: false, elapsed: .seconds(1))
        state.record(success: false, elapsed: .seconds(2))
        state.record(success: true, elapsed: .seconds(3))
        state.record(success: false, elapsed: .seconds(4))
        state.record(success: false, elapsed: .seconds(5))
        #expect(state.healthy == true)
        #expect(state.consecutiveFailures == 2)
    }

    @Test("failures inside the grace period are not counted")
    func grace() {
        var state = TaskCheckState(failureThreshold: 1, gracePeriod: .seconds(30))
        #expect(state.record(success: false, elapsed: .seconds(5)) == .ignoredInGracePeriod)
        #expect(state.record(success: false, elapsed: .seconds(29)) == .ignoredInGracePeriod)
        #expect(state.consecutiveFailures == 0)
        #expect(state.healthy == nil)
        #expect(state.record(success: false, elapsed: .seconds(30)) == .becameUnhealthy)
    }

    @Test("the first success ends the grace period early")
    func graceEndsAtFirstSuccess() {
        var state = TaskCheckState(failureThreshold: 1, gracePeriod: .seconds(60))
        state.record(success: true, elapsed: .seconds(1))
        #expect(state.record(success: false, elapsed: .seconds(2)) == .becameUnhealthy)
    }

    @Test("each verdict is pending once; a failed report stays pending")
    func reporting() {
        var state = TaskCheckState(failureThreshold: 2, gracePeriod: .zero)
        state.record(success: true, elapsed: .seconds(1))
        #expect(state.pendingReport == true)
        // The report failed: still pending after the next check.
        state.record(success: true, elapsed: .seconds(2))
        #expect(state.pendingReport == true)
        state.markReported(true)
        #expect(state.pendingReport == nil)
        state.record(success: true, elapsed: .seconds(3))
        #expect(state.pendingReport == nil)
        state.record(success: false, elapsed: .seconds(4))
        #expect(state.pendingReport == nil)
        state.record(success: false, elapsed: .seconds(5))
        #expect(state.pendingReport == false)
        state.markReported(false)
        #expect(state.record(success: false, elapsed: .seconds(6)) == .failureCounted)
        #expect(state.pendingReport == nil)
        #expect(state.consecutiveFailures == 3)
    }

    @Test("a verdict that flips back before it was reported is not sent")
    func flipBack() {
        var state = TaskCheckState(failureThreshold: 1, gracePeriod: .zero)
        state.record(success: true, elapsed: .seconds(1))
        state.markReported(true)
        state.record(success: false, elapsed: .seconds(2))
        #expect(state.pendingReport == false)
        state.record(success: true, elapsed: .seconds(3))
        #expect(state.pendingReport == nil)
    }
}

@Suite("AgentLivenessState: ping budget")
struct AgentLivenessStateTests {
    @Test("an agent is unreachable once it used up its budget, and reported once")
    func budget() {
        var state = AgentLivenessState(budget: 3)
        #expect(state.record(answered: false) == .missed)
        #expect(state.record(answered: false) == .missed)
        #expect(state.reachable)
        #expect(state.pendingReport == nil)
        #expect(state.record(answered: false) == .becameUnreachable)
        #expect(state.pendingReport == false)
        state.markReported(false)
        #expect(state.record(answered: false) == .missed)
        #expect(state.missedPings == 4)
        #expect(state.pendingReport == nil)
    }

    @Test("an answered ping resets the count and makes the agent reachable again")
    func recovery() {
        var state = AgentLivenessState(budget: 2)
        state.record(answered: false)
        state.record(answered: false)
        state.markReported(false)
        #expect(state.record(answered: true) == .becameReachable)
        #expect(state.missedPings == 0)
        #expect(state.pendingReport == true)
        state.markReported(true)
        #expect(state.record(answered: true) == .answered)
        #expect(state.pendingReport == nil)
    }

    @Test("misses below the budget never reach the broker")
    func belowBudget() {
        var state = AgentLivenessState(budget: 5)
        for _ in 0..<4 { state.record(answered: false) }
        state.record(answered: true)
        for _ in 0..<4 { state.record(answered: false) }
        #expect(state.reachable)
        #expect(state.pendingReport == nil)
    }

    @Test("an agent the broker holds unreachable is reported reachable at its first answer")
    func startsUnreachable() {
        var state = AgentLivenessState(budget: 5, reachable: false)
        #expect(state.record(answered: false) == .missed)
        #expect(state.pendingReport == nil)
        #expect(state.record(answered: true) == .becameReachable)
        #expect(state.pendingReport == true)
    }
}
