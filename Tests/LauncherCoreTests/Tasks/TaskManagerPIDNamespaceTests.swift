import Foundation
@preconcurrency import Glibc
import KeelAPI
import KeelRPC
import LauncherCore
import SwiftProtobuf
import Testing

@Suite(
    "The launcher runs tasks in PID namespaces of their own",
    .enabled(if: PIDNamespaceTestSupport.available, PIDNamespaceTestSupport.skipReason))
struct TaskManagerPIDNamespaceTests {
    static let framework = Keel_V1_FrameworkInfo.with { $0.id.value = "fw-1" }

    /// The node's cgroups (where usable) with PID namespaces on.
    static let isolation = NodeIsolation(
        settings: CgroupTestSupport.isolation.settings, assignments: CgroupTestSupport.isolation.assignments,
        prlimitPath: CgroupTestSupport.isolation.prlimitPath, pidNamespaces: true)

    static func key(_ id: String) -> LauncherTaskKey {
        LauncherTaskKey(frameworkID: "fw-1", taskID: id)
    }

    @Test("the capability is advertised")
    func capability() {
        #expect(Self.isolation.capabilities.contains("isolation:pid-namespace"))
        #expect(!NodeIsolation.processGroupOnly.capabilities.contains("isolation:pid-namespace"))
    }

    @Test("a task survives a launcher restart in its namespace, and its true exit code is reported")
    func recovery() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        let gate = workDir + "/gate"
        defer {
            ProcessTestSupport.killProcesses(mentioning: workDir)
            ProcessTestSupport.removeTree(workDir)
        }
        let task = Keel_V1_TaskInfo.with {
            $0.taskID.value = "t-ns"
            $0.command.shell = "echo \"pid $$\"; while [ ! -e '\(gate)' ]; do sleep 0.05; done; echo bye; exit 7"
        }
        let first = try LauncherUnderTest(workDir: workDir, isolation: Self.isolation)
        try await first.running {
            first.manager.launch(framework: Self.framework, task: task)
            #expect(await first.waitForUpdate(Self.key("t-ns")) { $0.state == .taskRunning } != nil)
        }
        let supervisor = try #require(first.checkpoints.record(Self.key("t-ns"))?.supervisorPID)
        #expect(!ProcessTestSupport.isDead(supervisor), "the task outlives its launcher")

        let second = try LauncherUnderTest(workDir: workDir, isolation: Self.isolation)
        second.manager.recover(.sameBoot(agentID: "agent-1"))
        #expect(second.manager.container(taskID: "t-ns")?.process?.pid == supervisor)
        try await second.running {
            try ProcessTestSupport.write("", to: gate)
            let terminal = await second.waitForUpdate(Self.key("t-ns")) { $0.state.isTerminal }
            #expect(terminal?.state == .taskFailed)
            #expect(terminal?.exitCode == 7)
            let sandbox = try #require(second.manager.container(taskID: "t-ns")?.sandbox)
            #expect(ProcessTestSupport.contents(sandbox.stdoutPath) == "pid 2\nbye\n")
        }
    }

    @Test("a kill ends the task as TASK_KILLED and takes a double-forked daemon with it")
    func kill() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let seconds = PIDNamespaceTestSupport.uniqueSeconds()
        let launcher = try LauncherUnderTest(workDir: workDir, isolation: Self.isolation)
        try await launcher.running {
            launcher.manager.launch(framework: Self.framework, task: .with {
                $0.taskID.value = "t-kill"
                $0.command.shell = "(setsid sh -c 'trap \"\" TERM; exec sleep \(seconds)' &); exec sleep 1000"
            })
            #expect(await launcher.waitForUpdate(Self.key("t-kill")) { $0.state == .taskRunning } != nil)
            var daemons: [Int32] = []
            #expect(await ProcessTestSupport.eventually {
                daemons = PIDNamespaceTestSupport.processes(withCommandLine: ["sleep", seconds])
                return !daemons.isEmpty
            })
            defer { for pid in daemons { Glibc.kill(pid, SIGKILL) } }
            launcher.manager.kill(frameworkID: "fw-1", taskID: "t-kill", gracePeriod: .seconds(10))
            let terminal = await launcher.waitForUpdate(Self.key("t-kill")) { $0.state.isTerminal }
            #expect(terminal?.state == .taskKilled, "\(terminal?.message ?? "")")
            #expect(await ProcessTestSupport.eventually { daemons.allSatisfy(ProcessTestSupport.isDead) })
        }
    }

    /// A task that prints its pid and then every pid it sees in `/proc`, then runs `rest`.
    static func listingTask(_ id: String, then rest: String = "exit 0") -> Keel_V1_TaskInfo {
        .with {
            $0.taskID.value = id
            $0.command.shell = "echo \"self $$\"; for p in /proc/[0-9]*; do echo \"${p#/proc/}\"; done; \(rest)"
        }
    }

    /// The pids a ``listingTask(_:then:)`` saw, and its own.
    static func listing(_ sandbox: TaskSandbox?) -> (own: String, seen: Set<String>) {
        let lines = (sandbox.flatMap { ProcessTestSupport.contents($0.stdoutPath) } ?? "").split(separator: "\n").map(String.init)
        let own = lines.first.map { String($0.dropFirst("self ".count)) } ?? ""
        return (own, Set(lines.dropFirst()))
    }

    /// Launches ``listingTask(_:then:)`` `id` for fw-1 and waits for its end: its last status, its
    /// supervisor's pid and what it saw.
    static func runListing(
        _ id: String, on launcher: LauncherUnderTest
    ) async -> (status: Keel_V1_TaskStatus?, supervisor: Int32?, own: String, seen: Set<String>) {
        launcher.manager.launch(framework: framework, task: listingTask(id))
        let ended = await launcher.waitForUpdate(key(id)) { $0.state.isTerminal }
        let (own, seen) = listing(launcher.manager.container(taskID: id)?.sandbox)
        return (ended, launcher.checkpoints.record(key(id))?.supervisorPID, own, seen)
    }

    /// Runs `body` on a running launcher with PID namespaces, in a work dir that goes afterwards
    /// together with every process that mentions it.
    static func withLauncher(
        reuseSupervisors: Bool = true, _ body: @Sendable (LauncherUnderTest) async throws -> Void
    ) async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer {
            ProcessTestSupport.killProcesses(mentioning: workDir)
            ProcessTestSupport.removeTree(workDir)
        }
        let launcher = try LauncherUnderTest(workDir: workDir, isolation: isolation, reuseSupervisors: reuseSupervisors)
        try await launcher.running { try await body(launcher) }
    }

    @Test("tasks of one framework and user share a supervisor one after the other, each seeing only itself; others do not")
    func reuse() async throws {
        let seconds = PIDNamespaceTestSupport.uniqueSeconds()
        try await Self.withLauncher { launcher in
            // The first leaves a double-forked daemon behind, which must not outlive it.
            launcher.manager.launch(framework: Self.framework, task: Self.listingTask(
                "first", then: "(setsid sh -c 'trap \"\" TERM; exec sleep \(seconds)' &); exit 3"))
            let first = await launcher.waitForUpdate(Self.key("first")) { $0.state.isTerminal }
            #expect(first?.state == .taskFailed && first?.exitCode == 3, "\(first?.message ?? "")")
            let supervisor = try #require(launcher.checkpoints.record(Self.key("first"))?.supervisorPID)
            #expect(PIDNamespaceTestSupport.processes(withCommandLine: ["sleep", seconds]).isEmpty, "its leftover is gone")

            let second = await Self.runListing("second", on: launcher)
            #expect(second.status?.state == .taskFinished, "\(second.status?.message ?? "")")
            #expect(second.supervisor == supervisor, "the same supervisor")
            #expect(second.seen == ["1", second.own], "only init and itself: \(second.seen), itself \(second.own)")

            let other = Keel_V1_FrameworkInfo.with { $0.id.value = "fw-2" }
            launcher.manager.launch(framework: other, task: Self.listingTask("third"))
            let third = await launcher.waitForUpdate(LauncherTaskKey(frameworkID: "fw-2", taskID: "third")) { $0.state.isTerminal }
            #expect(third?.state == .taskFinished)
            let thirdSupervisor = launcher.checkpoints.record(LauncherTaskKey(frameworkID: "fw-2", taskID: "third"))?.supervisorPID
            #expect(thirdSupervisor != nil && thirdSupervisor != supervisor, "another framework's task has a supervisor of its own")

            // The first framework's reuse key in a task's arguments and environment is the
            // task's business: the spawner reads the key from the supervisor's options only.
            let posing = Keel_V1_FrameworkInfo.with { $0.id.value = "fw-3" }
            launcher.manager.launch(framework: posing, task: .with {
                $0.taskID.value = "fourth"
                $0.command.argv.args = ["/bin/sh", "-c", "exit 0", "--pid-namespace", "--reuse-key", "fw-1 "]
                $0.command.environment.variables = [.with { $0.name = "--reuse-key"; $0.value = "fw-1 " }]
            })
            let fourthKey = LauncherTaskKey(frameworkID: "fw-3", taskID: "fourth")
            let fourth = await launcher.waitForUpdate(fourthKey) { $0.state.isTerminal }
            #expect(fourth?.state == .taskFinished, "\(fourth?.message ?? "")")
            let fourthSupervisor = launcher.checkpoints.record(fourthKey)?.supervisorPID
            #expect(
                fourthSupervisor != nil && fourthSupervisor != supervisor && fourthSupervisor != thirdSupervisor,
                "a task naming another framework's key in its command has a supervisor of its own")
        }
    }

    @Test("a supervisor whose task changed the mount table, or was stopped, is handled right for the next task")
    func reuseAfterMountAndKill() async throws {
        try await Self.withLauncher { launcher in
            launcher.manager.launch(framework: Self.framework, task: .with {
                $0.taskID.value = "mounts"
                $0.command.shell = "mkdir -p m && mount -t tmpfs none m"
            })
            let mounts = await launcher.waitForUpdate(Self.key("mounts")) { $0.state.isTerminal }
            #expect(mounts?.state == .taskFinished, "\(mounts?.message ?? "")")
            let first = try #require(launcher.checkpoints.record(Self.key("mounts"))?.supervisorPID)

            launcher.manager.launch(framework: Self.framework, task: .with {
                $0.taskID.value = "stopped"
                $0.command.shell = "exec sleep 1000"
            })
            #expect(await launcher.waitForUpdate(Self.key("stopped")) { $0.state == .taskRunning } != nil)
            let second = try #require(launcher.checkpoints.record(Self.key("stopped"))?.supervisorPID)
            #expect(second != first, "not the supervisor whose namespace has a new mount")
            launcher.manager.kill(frameworkID: "fw-1", taskID: "stopped", gracePeriod: .seconds(10))
            let stopped = await launcher.waitForUpdate(Self.key("stopped")) { $0.state.isTerminal }
            #expect(stopped?.state == .taskKilled, "\(stopped?.message ?? "")")

            let after = await Self.runListing("after", on: launcher)
            #expect(after.status?.state == .taskFinished, "\(after.status?.message ?? "")")
            #expect(after.supervisor == second, "the stopped task's supervisor serves on")
            #expect(after.seen == ["1", after.own], "\(after.seen), itself \(after.own)")
        }
    }

    @Test("with supervisor reuse off, every task gets a supervisor and namespaces of its own, and is PID 2 there")
    func noReuse() async throws {
        try await Self.withLauncher(reuseSupervisors: false) { launcher in
            var supervisors: [Int32] = []
            for id in ["one", "two"] {
                let ended = await Self.runListing(id, on: launcher)
                #expect(ended.status?.state == .taskFinished, "\(ended.status?.message ?? "")")
                supervisors.append(try #require(ended.supervisor))
                #expect(ended.own == "2" && ended.seen == ["1", "2"], "\(ended.seen), itself \(ended.own)")
            }
            #expect(supervisors[0] != supervisors[1])
        }
    }
}
