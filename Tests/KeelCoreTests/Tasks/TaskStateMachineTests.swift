import KeelCore
import Testing

@Suite("Task states")
struct TaskStateMachineTests {
    static let terminal: Set<TaskState> = [.finished, .failed, .killed, .error, .lost, .dropped, .gone, .goneByOperator]

    /// The expected table, written out independently of the implementation.
    /// The expected table, written out independently of the implementation.
    static let expectedNext: [TaskState: Set<TaskState>] = [
        .staging: terminal.union([.starting, .running, .killing, .unreachable, .unknown]),
        .starting: terminal.union([.running, .killing, .unreachable, .unknown]),
        .running: terminal.union([.killing, .unreachable, .unknown]),
        .killing: terminal.union([.unreachable, .unknown]),
        .unreachable: terminal.union([.starting, .running, .killing, .unknown]),
        .unknown: Set(TaskState.allCases).subtracting([.unknown]),
    ]

    @Test func exactlyTheMesosStates() {
        let names = TaskState.allCases.map(\.description)
        #expect(
            names == [
                "STAGING", "STARTING", "RUNNING", "KILLING", "FINISHED", "FAILED", "KILLED", "ERROR", "LOST",
                "DROPPED", "UNREACHABLE", "GONE", "GONE_BY_OPERATOR", "UNKNOWN",
            ])
    }

    @Test func terminalStates() {
        let terminal = Set(TaskState.allCases.filter(\.isTerminal))
        #expect(terminal == Self.terminal)
        #expect(!TaskState.unreachable.isTerminal)
        #expect(!TaskState.unknown.isTerminal)
    }

    @Test func fullTransitionMatrix() {
        for from in TaskState.allCases {
            let allowed = Self.expectedNext[from] ?? []
            for to in TaskState.allCases {
                let expected = from == to || allowed.contains(to)
                let actual = TaskStateMachine.isLegalTransition(from: from, to: to)
                #expect(actual == expected, "\(from) -> \(to)")
            }
            let next = Set(TaskStateMachine.nextStates(from: from))
            #expect(next == allowed, "next states from \(from)")
        }
    }

    @Test func happyPath() throws {
        var machine = TaskStateMachine(taskID: TaskID("t1"))
        #expect(machine.state == .staging)
        #expect(try machine.transition(to: .starting))
        #expect(try machine.transition(to: .running))
        #expect(try machine.transition(to: .killing))
        #expect(try machine.transition(to: .killed))
        #expect(machine.state == .killed)
    }

    @Test func repeatedStateIsAcceptedAndReportsNoChange() throws {
        var machine = TaskStateMachine(taskID: TaskID("t1"), state: .running)
        let changed = try machine.transition(to: .running)
        #expect(!changed)
        try machine.transition(to: .finished)
        let changedAgain = try machine.transition(to: .finished)
        #expect(!changedAgain)
        #expect(machine.state == .finished)
    }

    @Test func terminalStatesAreFinal() {
        var machine = TaskStateMachine(taskID: TaskID("web-1"), state: .finished)
        let error = #expect(throws: KeelError.self) { try machine.transition(to: .running) }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message.hasPrefix("task web-1 is already FINISHED; it cannot become RUNNING") == true)
        #expect(machine.state == .finished)
        #expect(!machine.canTransition(to: .unreachable))
    }

    @Test(arguments: [
        (TaskState.running, TaskState.starting),
        (.running, .staging),
        (.killing, .running),
        (.killing, .starting),
        (.starting, .staging),
        (.unreachable, .staging),
    ])
    func backwardTransitionsAreRejected(from: TaskState, to: TaskState) {
        var machine = TaskStateMachine(taskID: TaskID("t"), state: from)
        let error = #expect(throws: KeelError.self) { try machine.transition(to: to) }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message.contains("cannot go from \(from) to \(to)") == true)
        #expect(machine.state == from)
    }

    @Test func illegalTransitionMessageListsAllowedStates() {
        var machine = TaskStateMachine(taskID: TaskID("t"), state: .killing)
        let error = #expect(throws: KeelError.self) { try machine.transition(to: .running) }
        #expect(
            error?.message
                == "task t cannot go from KILLING to RUNNING; from KILLING it may only become one of: FINISHED, FAILED, KILLED, ERROR, LOST, DROPPED, UNREACHABLE, GONE, GONE_BY_OPERATOR, UNKNOWN"
        )
    }

    @Test func unreachableTasksCanComeBackOrBeGone() throws {
        var returning = TaskStateMachine(taskID: TaskID("t"), state: .running)
        try returning.transition(to: .unreachable)
        try returning.transition(to: .running)
        #expect(returning.state == .running)

        var gone = TaskStateMachine(taskID: TaskID("t"), state: .unreachable)
        try gone.transition(to: .gone)
        #expect(gone.state.isTerminal)

        var lost = TaskStateMachine(taskID: TaskID("t"), state: .unreachable)
        try lost.transition(to: .lost)
        #expect(lost.state == .lost)
    }

    @Test func unknownCanResolveToAnything() throws {
        for target in TaskState.allCases where target != .unknown {
            var machine = TaskStateMachine(taskID: TaskID("t"), state: .running)
            try machine.transition(to: .unknown)
            try machine.transition(to: target)
            #expect(machine.state == target)
        }
    }
}
