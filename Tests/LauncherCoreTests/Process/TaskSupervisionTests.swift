import Foundation
@preconcurrency import Glibc
import LauncherCore
import Testing

@Suite("Tasks under keel-task-supervisor")
struct TaskSupervisionTests {
    /// Launches `command` under the supervisor, with its exit-status file in `workDir`.
    /// Launches `command` under a supervisor, executed by the launcher or, with `forked`,
    /// forked by a supervisor spawner.
    static func launchSupervised(_ command: TaskCommand, workDir: String, forked: Bool = false) throws -> (TaskProcess, String) {
        let supervisor = try #require(TaskSupervision.supervisorBesideExecutable())
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let statusFile = workDir + "/exit-status"
        let spec = TaskLaunchSpec(command: command, environment: ProcessTestSupport.environment, sandbox: sandbox)
        let spawner = try ProcessTestSupport.spawner(supervisor: supervisor, if: forked)
        let process = try TaskProcess.launch(
            spec, supervision: TaskSupervision(supervisor: supervisor, exitStatusFile: statusFile), spawner: spawner,
            logger: ProcessTestSupport.logger)
        if let spawner { #expect(!spawner.isBroken, "the spawner started the supervisor") }
        return (process, statusFile)
    }

    @Test("an exit code and a signal are told apart, also when the code is 128+N; executed or forked", arguments: [
        ("exit 137", TerminationStatus.exited(code: 137)),
        ("kill -KILL $$", TerminationStatus.signaled(signal: SIGKILL, coreDumped: false)),
        ("exit 0", TerminationStatus.exited(code: 0)),
    ], [false, true])
    func trueStatus(example: (script: String, expected: TerminationStatus), forked: Bool) async throws {
        let (script, expected) = example
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let (process, statusFile) = try Self.launchSupervised(.shell(script), workDir: workDir, forked: forked)
        let status = try await process.wait()
        #expect(status == expected)
        #expect(TaskProcess.readExitStatus(statusFile) == expected)
    }

    @Test("a link or an old record at the exit-status path is replaced, never written through; executed or forked",
          arguments: [false, true])
    func exitStatusFileReplaced(forked: Bool) async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let victim = workDir + "/victim"
        try ProcessTestSupport.write("untouched\n", to: victim)
        #expect(symlink(victim, workDir + "/exit-status") == 0)
        let (process, statusFile) = try Self.launchSupervised(.shell("exit 5"), workDir: workDir, forked: forked)
        #expect(try await process.wait() == .exited(code: 5))
        #expect(TaskProcess.readExitStatus(statusFile) == .exited(code: 5))
        let type = try FileManager.default.attributesOfItem(atPath: statusFile)[.type] as? FileAttributeType
        #expect(type == .typeRegular, "the link was replaced by a file")
        #expect(ProcessTestSupport.contents(victim) == "untouched\n")

        // An old record is replaced as well.
        let (again, _) = try Self.launchSupervised(.shell("exit 6"), workDir: workDir, forked: forked)
        #expect(try await again.wait() == .exited(code: 6))
        #expect(ProcessTestSupport.contents(statusFile) == "exited 6\n")
    }

    @Test("a re-attached task whose exit status is written has ended, even while its supervisor lives on")
    func reattachReadsTheStatusFirst() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let statusFile = workDir + "/exit-status"
        try ProcessTestSupport.write("exited 5\n", to: statusFile)
        // This very process stands for a supervisor that went on to serve another task.
        let pid = getpid()
        let startTime = try #require(TaskProcess.processStartTime(of: pid))
        let process = TaskProcess.reattach(
            pid: pid, startTime: startTime, exitStatusFile: statusFile, command: .argv(["true"]), cgroup: nil,
            logger: ProcessTestSupport.logger)
        #expect(try await process.wait() == .exited(code: 5))
        #expect(!process.signalGroup(SIGTERM), "an ended task is not signalled")
    }

    @Test("the task starts with no signal ignored or blocked, though its supervisor ignores some; executed or forked",
          arguments: [false, true])
    func cleanSignalState(forked: Bool) async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let (process, _) = try Self.launchSupervised(
            .argv(["grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"]), workDir: workDir, forked: forked)
        let status = try await process.wait()
        let stdout = try #require(
            FileManager.default.enumerator(atPath: workDir)?.compactMap { $0 as? String }.first { $0.hasSuffix("/stdout") })
        let output = ProcessTestSupport.contents(workDir + "/" + stdout) ?? ""
        #expect(status == .exited(code: 0), "\(output)")
        #expect(ProcessTestSupport.signalsAtDefaults(in: output), "\(output)")
    }

    @Test("SIGTERM to the group stops the task; the supervisor survives it and records the signal; executed or forked",
          arguments: [false, true])
    func terminate(forked: Bool) async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let (process, statusFile) = try Self.launchSupervised(.argv(["sleep", "1000"]), workDir: workDir, forked: forked)
        // Both running their programs: until the task has executed `sleep`, it is a fork of the
        // supervisor that still holds the supervisor's descriptors for a moment.
        #expect(await ProcessTestSupport.eventually {
            let members = ProcessTestSupport.liveMembers(ofGroup: process.pid)
            return members.count == 2 && members.contains { ProcessTestSupport.commandLine(of: $0).first == "sleep" }
        })
        // Nothing ties supervisor or task to the launcher: no pipe, socket or terminal is open
        // (besides the supervisor's own signalfd, through which it learns of the task's exit).
        for pid in ProcessTestSupport.liveMembers(ofGroup: process.pid) {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            let targets = fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)") }
                .filter { !(pid == process.pid && $0 == "anon_inode:[signalfd]") }
            #expect(targets.count == 3, "only stdin, stdout and stderr are open: \(targets)")
            #expect(targets.allSatisfy { $0 == "/dev/null" || $0.hasPrefix(workDir) }, "\(targets)")
        }
        let status = await process.terminate(gracePeriod: .seconds(20))
        #expect(status == .signaled(signal: SIGTERM, coreDumped: false))
        #expect(TaskProcess.readExitStatus(statusFile) == status)
        // The kernel tears the group down asynchronously after SIGKILL.
        #expect(await ProcessTestSupport.eventually { ProcessTestSupport.liveMembers(ofGroup: process.pid).isEmpty })
    }

    @Test("a program the supervisor cannot start is recorded as exit code 127, with the reason on stderr")
    func unstartableProgram() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let supervisor = try #require(TaskSupervision.supervisorBesideExecutable())
        let statusFile = workDir + "/exit-status"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: supervisor)
        process.arguments = [statusFile, workDir + "/missing", "missing"]
        let stderr = Pipe()
        process.standardError = stderr
        try process.run()
        let output = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 127)
        #expect(TaskProcess.readExitStatus(statusFile) == .exited(code: 127))
        #expect(output.contains("cannot start '\(workDir)/missing'"), "\(output)")
    }

    @Test("a cgroup the task cannot join: exit code 127 and the reason on its stderr, and the program never runs")
    func joinFailure() async throws {
        try checkJoinFailure(pidNamespace: false)
    }

    @Test(
        "a cgroup the task cannot join in a PID namespace: exit code 127, the reason in its rotated stderr",
        .enabled(if: PIDNamespaceTestSupport.available, PIDNamespaceTestSupport.skipReason))
    func joinFailureInNamespace() async throws {
        try checkJoinFailure(pidNamespace: true)
    }

    /// Runs the supervisor itself with a `--join-cgroup` file that does not exist; in a PID
    /// namespace, with the output going through its pipes to rotated files.
    func checkJoinFailure(pidNamespace: Bool) throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let supervisor = try #require(TaskSupervision.supervisorBesideExecutable())
        let statusFile = workDir + "/exit-status"
        let missing = workDir + "/no-such-cgroup/cgroup.procs"
        var options = ["--join-cgroup", missing]
        if pidNamespace {
            options += [
                "--pid-namespace", "--stdout", workDir + "/stdout", "--stderr", workDir + "/stderr",
                "--log-max-size", "65536", "--log-max-files", "2",
            ]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: supervisor)
        process.arguments = options + [statusFile, "/bin/sh", "sh", "-c", "touch '\(workDir)/ran'"]
        let stderr = Pipe()
        process.standardError = stderr
        try process.run()
        let direct = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let output = pidNamespace ? ProcessTestSupport.contents(workDir + "/stderr") ?? "" : direct
        #expect(process.terminationStatus == 127)
        #expect(TaskProcess.readExitStatus(statusFile) == .exited(code: 127))
        #expect(
            output == "keel-task-supervisor: cannot join cgroup '\(missing)': No such file or directory\n",
            "\(output)")
        #expect(!FileManager.default.fileExists(atPath: workDir + "/ran"))
    }
}
