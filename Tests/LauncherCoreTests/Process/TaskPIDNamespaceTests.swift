import Foundation
@preconcurrency import Glibc
import LauncherCore
import Testing

/// Helpers for tasks in PID namespaces of their own.
enum PIDNamespaceTestSupport {
    /// Whether the launcher could give tasks PID namespaces here (root, kernel support), found
    /// by the launcher's own check.
    static let available: Bool = {
        guard let supervisor = TaskSupervision.supervisorBesideExecutable() else { return false }
        return NodeIsolation.checkPIDNamespaces(supervisor: supervisor, logger: ProcessTestSupport.logger)
    }()

    static let skipReason: Comment = "needs root and a kernel that allows unshare(CLONE_NEWPID | CLONE_NEWNS)"

    /// Launches `command` under the supervisor in a PID namespace; its exit-status file is in
    /// `workDir`. The supervisor is executed by the launcher (and forks itself as the namespace's
    /// init) or, with `forked`, forked by a spawner straight into the new namespace.
    static func launch(
        _ command: TaskCommand, workDir: String, environment: [String: String] = [:], cgroup: TaskCgroup? = nil,
        user: String? = nil, forked: Bool = false
    ) throws -> (TaskProcess, TaskSandbox, String) {
        let supervisor = try #require(TaskSupervision.supervisorBesideExecutable())
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        if let user { try sandbox.setOwner(try TaskUser.lookup(name: user)) }
        let statusFile = workDir + "/exit-status"
        let spec = TaskLaunchSpec(
            command: command, environment: ProcessTestSupport.environment.merging(environment) { _, new in new },
            sandbox: sandbox, user: user)
        let spawner = try ProcessTestSupport.spawner(supervisor: supervisor, if: forked)
        let process = try TaskProcess.launch(
            spec, cgroup: cgroup,
            supervision: TaskSupervision(supervisor: supervisor, exitStatusFile: statusFile, pidNamespace: true),
            spawner: spawner, logger: ProcessTestSupport.logger)
        if let spawner { #expect(!spawner.isBroken, "the spawner started the supervisor") }
        return (process, sandbox, statusFile)
    }

    /// Host pids of live processes whose command line is exactly `arguments`.
    static func processes(withCommandLine arguments: [String]) -> [Int32] {
        let wanted = arguments.joined(separator: "\0") + "\0"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            ProcessTestSupport.contents("/proc/\(pid)/cmdline") == wanted && !ProcessTestSupport.isDead(pid)
        }
    }

    /// A number no other test uses, to make a process findable by its command line.
    static func uniqueSeconds() -> String {
        "\(Int.random(in: 1_000_000...999_999_999))"
    }
}

@Suite("Tasks in PID namespaces of their own", .enabled(if: PIDNamespaceTestSupport.available, PIDNamespaceTestSupport.skipReason))
struct TaskPIDNamespaceTests {
    @Test("a task sees only its own processes in /proc and ps, and cannot signal the launcher or its supervisor; executed or forked",
        arguments: [false, true])
    func seesOnlyItself(forked: Bool) async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let script = """
            echo "self $$"
            echo "proc $(ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' ')"
            echo "ps $(ps -e -o pid= | tr -s ' \\n' ' ')"
            if kill -0 "$LAUNCHER_PID" 2>/dev/null; then echo "launcher reachable"; else echo "launcher unreachable"; fi
            if kill -0 "$(cat supervisor-pid)" 2>/dev/null; then echo "supervisor reachable"; else echo "supervisor unreachable"; fi
            exit 3
            """
        // The task waits for the file naming its supervisor's host pid before it looks.
        let (process, sandbox, statusFile) = try PIDNamespaceTestSupport.launch(
            .shell("while [ ! -e supervisor-pid ]; do sleep 0.02; done; " + script), workDir: workDir,
            environment: ["LAUNCHER_PID": "\(getpid())"], forked: forked)
        try ProcessTestSupport.write("\(process.pid)\n", to: sandbox.root + "/supervisor-pid.tmp")
        rename(sandbox.root + "/supervisor-pid.tmp", sandbox.root + "/supervisor-pid")
        let status = try await process.wait()
        let output = ProcessTestSupport.contents(sandbox.stdoutPath) ?? ""
        #expect(status == .exited(code: 3), "\(output)")
        #expect(TaskProcess.readExitStatus(statusFile) == .exited(code: 3))
        let lines = Dictionary(
            output.split(separator: "\n").map { line -> (String, String) in
                let parts = line.split(separator: " ", maxSplits: 1)
                return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
            }, uniquingKeysWith: { first, _ in first })
        #expect(lines["self"] == "2", "the task is PID 2, under the namespace's init: \(output)")
        let procPids = (lines["proc"] ?? "").split(separator: " ").compactMap { Int($0) }
        #expect(procPids.contains(1) && procPids.contains(2), "\(output)")
        // A handful: the init, the shell and its pipeline. (Their numbers grow with every `sleep`
        // of the wait loop above, so they are counted, not compared.)
        #expect(procPids.count < 15, "only the task's own few processes are in /proc: \(output)")
        let psPids = (lines["ps"] ?? "").split(separator: " ").compactMap { Int($0) }
        #expect(!psPids.isEmpty && psPids.count < 15, "ps -e lists only the task's processes: \(output)")
        #expect(lines["launcher"] == "unreachable", "\(output)")
        #expect(lines["supervisor"] == "unreachable", "\(output)")
        // The node's /proc is untouched by the task's private mount.
        #expect(FileManager.default.fileExists(atPath: "/proc/\(getpid())"))
    }

    @Test("the true exit status is recorded: a code, a code above 128, a signal; executed or forked", arguments: [
        ("exit 7", TerminationStatus.exited(code: 7)),
        ("exit 137", TerminationStatus.exited(code: 137)),
        ("kill -KILL $$", TerminationStatus.signaled(signal: SIGKILL, coreDumped: false)),
        ("kill -TERM $$", TerminationStatus.signaled(signal: SIGTERM, coreDumped: false)),
    ], [false, true])
    func trueStatus(example: (script: String, expected: TerminationStatus), forked: Bool) async throws {
        let (script, expected) = example
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let (process, _, statusFile) = try PIDNamespaceTestSupport.launch(.shell(script), workDir: workDir, forked: forked)
        let status = try await process.wait()
        #expect(status == expected)
        #expect(TaskProcess.readExitStatus(statusFile) == expected)
    }

    @Test("the task starts with no signal ignored or blocked, though its supervisor keeps some; executed or forked",
        arguments: [false, true])
    func cleanSignalState(forked: Bool) async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let (process, sandbox, _) = try PIDNamespaceTestSupport.launch(
            .argv(["grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"]), workDir: workDir, forked: forked)
        let status = try await process.wait()
        let output = ProcessTestSupport.contents(sandbox.stdoutPath) ?? ""
        #expect(status == .exited(code: 0), "\(output)")
        #expect(ProcessTestSupport.signalsAtDefaults(in: output), "\(output)")
    }

    @Test("orphans are reaped by the namespace's init: no zombies pile up; executed or forked", arguments: [false, true])
    func reapsOrphans(forked: Bool) async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        // Each `( … & )` leaves an orphan that exits at once and is reparented to init.
        let script = """
            for i in 1 2 3 4 5; do (true &); done
            i=0; while ps -e -o stat= | grep -q '^Z' && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done
            ps -e -o stat=,comm=
            """
        let (process, sandbox, _) = try PIDNamespaceTestSupport.launch(.shell(script), workDir: workDir, forked: forked)
        let status = try await process.wait()
        let output = ProcessTestSupport.contents(sandbox.stdoutPath) ?? ""
        #expect(status == .exited(code: 0), "\(output)")
        #expect(!output.split(separator: "\n").contains { $0.hasPrefix("Z") }, "\(output)")
    }

    @Test("terminate stops the task and kills a double-forked daemon that left its process group; executed or forked", arguments: [false, true])
    func terminateKillsEverything(forked: Bool) async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let seconds = PIDNamespaceTestSupport.uniqueSeconds()
        let script = "(setsid sleep \(seconds) &); echo started > ready; exec sleep 1000"
        let (process, sandbox, statusFile) = try PIDNamespaceTestSupport.launch(.shell(script), workDir: workDir, forked: forked)
        var daemons: [Int32] = []
        let started = await ProcessTestSupport.eventually {
            daemons = PIDNamespaceTestSupport.processes(withCommandLine: ["sleep", seconds])
            return !daemons.isEmpty && FileManager.default.fileExists(atPath: sandbox.root + "/ready")
        }
        defer { for pid in daemons { kill(pid, SIGKILL) } }
        #expect(started)
        for pid in daemons {
            #expect(ProcessTestSupport.processGroup(of: pid) != process.pid, "the daemon left the task's process group")
        }
        let status = await process.terminate(gracePeriod: .seconds(20))
        #expect(status == .signaled(signal: SIGTERM, coreDumped: false))
        #expect(TaskProcess.readExitStatus(statusFile) == status)
        #expect(await ProcessTestSupport.eventually { daemons.allSatisfy(ProcessTestSupport.isDead) })
    }

    @Test("SIGKILL to the process group ends the namespace at once, daemons included; executed or forked", arguments: [false, true])
    func groupKill(forked: Bool) async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let seconds = PIDNamespaceTestSupport.uniqueSeconds()
        let script = "trap '' TERM; (setsid sleep \(seconds) &); while :; do sleep 1; done"
        let (process, _, _) = try PIDNamespaceTestSupport.launch(.shell(script), workDir: workDir, forked: forked)
        var daemons: [Int32] = []
        #expect(await ProcessTestSupport.eventually {
            daemons = PIDNamespaceTestSupport.processes(withCommandLine: ["sleep", seconds])
            return !daemons.isEmpty
        })
        defer { for pid in daemons { kill(pid, SIGKILL) } }
        // The task ignores SIGTERM, so terminate escalates to SIGKILL of the group.
        _ = await process.terminate(gracePeriod: .milliseconds(300))
        #expect(await ProcessTestSupport.eventually { daemons.allSatisfy(ProcessTestSupport.isDead) })
        // The kernel tears the group down asynchronously after SIGKILL.
        #expect(await ProcessTestSupport.eventually { ProcessTestSupport.liveMembers(ofGroup: process.pid).isEmpty })
    }

    @Test(
        "with cgroups, the cgroup kill reaches every process of the task in its namespace; executed or forked",
        .enabled(if: CgroupTestSupport.available(.freezer, .pids), CgroupTestSupport.skipReason), arguments: [false, true])
    func cgroupKill(forked: Bool) async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let seconds = PIDNamespaceTestSupport.uniqueSeconds()
        let script = "trap '' TERM; (setsid sh -c 'trap \"\" TERM; exec sleep \(seconds)' &); while :; do sleep 1; done"
        let result = try await CgroupTestSupport.withCgroup("pidns", limits: TaskResourceLimits(memoryMiB: nil, cpus: nil, maxProcesses: nil)) { cgroup in
            let (process, _, _) = try PIDNamespaceTestSupport.launch(.shell(script), workDir: workDir, cgroup: cgroup, forked: forked)
            var daemons: [Int32] = []
            #expect(await ProcessTestSupport.eventually {
                daemons = PIDNamespaceTestSupport.processes(withCommandLine: ["sleep", seconds])
                return !daemons.isEmpty
            })
            defer { for pid in daemons { kill(pid, SIGKILL) } }
            // The cgroup lists the task's processes by their pids on the node.
            #expect(daemons.allSatisfy { cgroup.pids.contains($0) }, "\(daemons) in \(cgroup.pids)")
            #expect(!cgroup.pids.contains(process.pid), "the supervisor stays outside the task's cgroups")
            #expect(await cgroup.killAll(timeout: .seconds(30)))
            let status = try await process.wait()
            #expect(status == .signaled(signal: SIGKILL, coreDumped: false))
            #expect(daemons.allSatisfy(ProcessTestSupport.isDead))
        }
        #expect(result.removed)
    }
}
