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
}
