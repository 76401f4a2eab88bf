import Foundation
@preconcurrency import Glibc
import LauncherCore
import Testing

@Suite(
    "Supervised tasks join their cgroups in the supervisor's child, without a shell shim",
    .enabled(if: CgroupTestSupport.available(.memory, .pids, .freezer), CgroupTestSupport.skipReason)
)
struct TaskSupervisionCgroupTests {
    /// Launches `command` under the supervisor inside `cgroup`, with its exit-status file in `workDir`.
    /// Launches `command` under a supervisor, executed or, with `forked`, forked by a spawner.
    static func launch(
        _ command: TaskCommand, workDir: String, cgroup: TaskCgroup, pidNamespace: Bool, forked: Bool = false
    ) throws -> (TaskProcess, TaskSandbox, String) {
        let supervisor = try #require(TaskSupervision.supervisorBesideExecutable())
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let statusFile = workDir + "/exit-status"
        let spec = TaskLaunchSpec(command: command, environment: ProcessTestSupport.environment, sandbox: sandbox)
        let spawner = try ProcessTestSupport.spawner(supervisor: supervisor, if: forked)
        let process = try TaskProcess.launch(
            spec, cgroup: cgroup,
            supervision: TaskSupervision(
                supervisor: supervisor, exitStatusFile: statusFile, pidNamespace: pidNamespace),
            spawner: spawner, logger: ProcessTestSupport.logger)
        if let spawner { #expect(!spawner.isBroken, "the spawner started the supervisor") }
        return (process, sandbox, statusFile)
    }

    static let limits = TaskResourceLimits(memoryMiB: 64, cpus: 0.1, maxProcesses: 32)

    @Test("the program is inside every cgroup when it starts")
    func joinsBeforeExec() async throws {
        try await checkJoinsBeforeExec(pidNamespace: false)
    }

    @Test(
        "the program is inside every cgroup when it starts, also as PID 2 of its own namespace",
        .enabled(if: PIDNamespaceTestSupport.available, PIDNamespaceTestSupport.skipReason))
    func joinsBeforeExecInNamespace() async throws {
        try await checkJoinsBeforeExec(pidNamespace: true)
    }

    func checkJoinsBeforeExec(pidNamespace: Bool) async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let result = try await CgroupTestSupport.withCgroup("supervised-join", limits: Self.limits) { cgroup in
            // `cat` reads its own membership first thing: no shell runs before it.
            let (process, sandbox, statusFile) = try Self.launch(
                .argv(["cat", "/proc/self/cgroup"]), workDir: workDir, cgroup: cgroup, pidNamespace: pidNamespace)
            let status = try await process.wait()
            let membership = ProcessTestSupport.contents(sandbox.stdoutPath) ?? ""
            #expect(status == .exited(code: 0), "\(ProcessTestSupport.contents(sandbox.stderrPath) ?? "")")
            #expect(TaskProcess.readExitStatus(statusFile) == .exited(code: 0))
            let lines = membership.split(separator: "\n").filter { $0.hasSuffix("/" + cgroup.path) }
            #expect(lines.count == cgroup.directories.count, "\(membership)")
        }
        #expect(result.removed)
        #expect(CgroupTestSupport.allRemoved(result.directories))
    }

    @Test("the task is the supervisor's own child, with its argv[0]; the supervisor stays outside")
    func noShim() async throws {
        try await checkParentChain(pidNamespace: false)
    }

    @Test(
        "in a PID namespace the task is init's child; init and the supervisor stay outside",
        .enabled(if: PIDNamespaceTestSupport.available, PIDNamespaceTestSupport.skipReason))
    func noShimInNamespace() async throws {
        try await checkParentChain(pidNamespace: true)
    }

    @Test(
        "forked into a PID namespace, the supervisor is the init: the task is its child, and it stays outside",
        .enabled(if: PIDNamespaceTestSupport.available, PIDNamespaceTestSupport.skipReason))
    func forkedSupervisorIsInit() async throws {
        try await checkParentChain(pidNamespace: true, forked: true)
    }

    func checkParentChain(pidNamespace: Bool, forked: Bool = false) async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let seconds = PIDNamespaceTestSupport.uniqueSeconds()
        let result = try await CgroupTestSupport.withCgroup("supervised-chain", limits: Self.limits) { cgroup in
            let (process, _, statusFile) = try Self.launch(
                .argv(["sleep", seconds]), workDir: workDir, cgroup: cgroup, pidNamespace: pidNamespace, forked: forked)
            defer { process.signalGroup(SIGKILL) }
            let started = await ProcessTestSupport.eventually {
                cgroup.pids.contains { ProcessTestSupport.commandLine(of: $0) == ["sleep", seconds] }
            }
            #expect(started, "the task never showed up in its cgroups")
            let members = cgroup.pids
            #expect(members.count == 1, "only the task itself is in its cgroups: \(members.sorted())")
            let task = try #require(members.first)
            // The /bin/sh shim would have replaced argv[0] by the executable's path.
            #expect(ProcessTestSupport.commandLine(of: task) == ["sleep", seconds])
            // A forked supervisor's command line is the spawner's, renamed (see Spawner).
            #expect(ProcessTestSupport.commandLine(of: process.pid).contains(forked ? "supervise" : "--join-cgroup"))
            let parent = try #require(ProcessTestSupport.parent(of: task))
            if forked {
                // The spawner forked it straight into the namespace: no process in between.
                #expect(parent == process.pid, "the task is the supervisor's own child")
            } else if pidNamespace {
                #expect(parent != process.pid, "init sits between the supervisor and the task")
                #expect(ProcessTestSupport.parent(of: parent) == process.pid)
                #expect(ProcessTestSupport.commandLine(of: parent) == ProcessTestSupport.commandLine(of: process.pid))
                #expect(!members.contains(parent), "init stays outside the task's cgroups")
            } else {
                #expect(parent == process.pid, "the task is the supervisor's child")
            }
            #expect(!members.contains(process.pid), "the supervisor stays outside the task's cgroups")
            let status = await process.terminate(gracePeriod: .seconds(20))
            #expect(status == .signaled(signal: SIGTERM, coreDumped: false))
            #expect(TaskProcess.readExitStatus(statusFile) == status)
            #expect(await ProcessTestSupport.eventually { cgroup.pids.isEmpty })
        }
        #expect(result.removed)
        #expect(CgroupTestSupport.allRemoved(result.directories))
    }
    @Test(
        "a supervisor serving tasks in a cgroup made anew at the same path each time puts every task in the new one",
        .enabled(if: PIDNamespaceTestSupport.available, PIDNamespaceTestSupport.skipReason))
    func rejoinsARemadeCgroup() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let supervisor = try #require(TaskSupervision.supervisorBesideExecutable())
        let spawner = try #require(SupervisorSpawner.start(supervisor: supervisor, logger: ProcessTestSupport.logger))
        defer { spawner.shutDown() }
        let name = "supervised-rejoin-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        // A supervisor keeps its last task's cgroup.procs files open for the next task in the
        // same cgroups; those of a removed cgroup can no longer be written, so the next task must
        // join the new cgroup by its path, and the one after it too.
        var supervisors: [Int32] = []
        for round in 0..<6 {
            let cgroup = try #require(
                try CgroupTestSupport.isolation.makeTaskCgroup(name: name, limits: Self.limits, logger: ProcessTestSupport.logger))
            let sandbox = try ProcessTestSupport.makeSandbox(in: workDir, task: "task-\(round)")
            let spec = TaskLaunchSpec(
                command: .argv(["cat", "/proc/self/cgroup"]), environment: ProcessTestSupport.environment, sandbox: sandbox)
            let process = try TaskProcess.launch(
                spec, cgroup: cgroup,
                supervision: TaskSupervision(
                    supervisor: supervisor, exitStatusFile: workDir + "/exit-status-\(round)", pidNamespace: true,
                    reuseKey: "framework-1 root"),
                spawner: spawner, logger: ProcessTestSupport.logger)
            let status = try await process.wait()
            #expect(status == .exited(code: 0), "\(ProcessTestSupport.contents(sandbox.stderrPath) ?? "")")
            let membership = ProcessTestSupport.contents(sandbox.stdoutPath) ?? ""
            let lines = membership.split(separator: "\n").filter { $0.hasSuffix("/" + cgroup.path) }
            #expect(lines.count == cgroup.directories.count, "round \(round): \(membership)")
            supervisors.append(process.pid)
            #expect(await cgroup.destroy(), "the cgroup is removed although a supervisor has its files open")
        }
        let served = zip(supervisors, supervisors.dropFirst()).filter { $0 == $1 }.count
        #expect(served >= 2, "a supervisor served consecutive tasks: \(supervisors)")
    }
}
