import Foundation
@preconcurrency import Glibc
import KeelAPI
import KeelRPC
import LauncherCore
import SwiftProtobuf
import Testing

@Suite("Task output capped and rotated by keel-task-supervisor")
struct TaskLogRotationTests {
    /// Launches `command` under the supervisor with `limits`, in a sandbox of `workDir`; with
    /// `forked`, the supervisor is forked by a supervisor spawner instead of executed.
    static func launch(
        _ command: TaskCommand, limits: TaskLogLimits, workDir: String, pidNamespace: Bool = false, forked: Bool = false
    ) throws -> (TaskProcess, TaskSandbox, String) {
        let supervisor = try #require(TaskSupervision.supervisorBesideExecutable())
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let statusFile = workDir + "/exit-status"
        let spec = TaskLaunchSpec(command: command, environment: ProcessTestSupport.environment, sandbox: sandbox)
        let spawner = try ProcessTestSupport.spawner(supervisor: supervisor, if: forked)
        let process = try TaskProcess.launch(
            spec,
            supervision: TaskSupervision(
                supervisor: supervisor, exitStatusFile: statusFile, pidNamespace: pidNamespace, logLimits: limits),
            spawner: spawner, logger: ProcessTestSupport.logger)
        if let spawner { #expect(!spawner.isBroken, "the spawner started the supervisor") }
        return (process, sandbox, statusFile)
    }

    /// The size of `path` in bytes, or `nil` if it does not exist.
    static func size(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue
    }

    /// Lines `line 1` … `line count` (each newline-terminated), as the tasks below print them.
    static func lines(_ range: ClosedRange<Int>, prefix: String = "line") -> String {
        range.map { "\(prefix) \($0)\n" }.joined()
    }

    @Test(
        "a task writing more than the cap leaves at most N files of at most the cap each, newest in stdout; executed or forked",
        arguments: [false, true])
    func capsAndRotates(forked: Bool) async throws {
        try await checkCapsAndRotates(pidNamespace: false, forked: forked)
    }

    @Test(
        "output is capped and rotated the same for a task in a PID namespace; executed or forked",
        .enabled(if: PIDNamespaceTestSupport.available, PIDNamespaceTestSupport.skipReason), arguments: [false, true])
    func capsAndRotatesInNamespace(forked: Bool) async throws {
        try await checkCapsAndRotates(pidNamespace: true, forked: forked)
    }

    func checkCapsAndRotates(pidNamespace: Bool, forked: Bool) async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let limits = try TaskLogLimits(maxFileBytes: 4096, maxFiles: 3)
        // About 60 KiB on stdout, a little on stderr, then a distinctive exit code.
        let script = "i=1; while [ $i -le 5000 ]; do echo \"line $i\"; i=$((i+1)); done; echo oops >&2; exit 9"
        let (process, sandbox, statusFile) = try Self.launch(
            .shell(script), limits: limits, workDir: workDir, pidNamespace: pidNamespace, forked: forked)
        let status = try await process.wait()
        #expect(status == .exited(code: 9))
        #expect(TaskProcess.readExitStatus(statusFile) == .exited(code: 9))

        let names = try FileManager.default.contentsOfDirectory(atPath: sandbox.root).filter { $0.hasPrefix("stdout") }
        #expect(Set(names) == ["stdout", "stdout.1", "stdout.2"], "\(names)")
        for name in names {
            let size = try #require(Self.size(sandbox.root + "/" + name))
            #expect(size > 0 && size <= 4096, "\(name) has \(size) bytes")
        }
        // The files, oldest first, are one unbroken tail of the output, ending in stdout.
        let kept = ["stdout.2", "stdout.1", "stdout"].map { ProcessTestSupport.contents(sandbox.root + "/" + $0) ?? "" }.joined()
        let full = Self.lines(1...5000)
        #expect(kept.count > 8192)
        #expect(full.hasSuffix(kept), "the kept output is the newest output, without gaps")
        #expect(ProcessTestSupport.contents(sandbox.stdoutPath)?.hasSuffix("line 5000\n") == true)
        #expect(ProcessTestSupport.contents(sandbox.stderrPath) == "oops\n")
    }

    @Test("with one file, the cap truncates by starting over")
    func singleFile() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let limits = try TaskLogLimits(maxFileBytes: 1000, maxFiles: 1)
        let (process, sandbox, _) = try Self.launch(
            .shell("i=1; while [ $i -le 1000 ]; do echo \"line $i\"; i=$((i+1)); done"), limits: limits, workDir: workDir)
        _ = try await process.wait()
        let names = try FileManager.default.contentsOfDirectory(atPath: sandbox.root).filter { $0.hasPrefix("stdout") }
        #expect(names == ["stdout"])
        let size = try #require(Self.size(sandbox.stdoutPath))
        #expect(size > 0 && size <= 1000)
        #expect(ProcessTestSupport.contents(sandbox.stdoutPath)?.hasSuffix("line 1000\n") == true)
    }

    @Test("a follower reads every byte once across rotations: the rest of the old file, then the new one")
    func followerAcrossRotation() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        let gates = workDir + "/gates"
        try FileManager.default.createDirectory(atPath: gates, withIntermediateDirectories: true)
        defer { ProcessTestSupport.removeTree(workDir) }
        let limits = try TaskLogLimits(maxFileBytes: 2048, maxFiles: 3)
        // Block k is 100 lines (about 1.4 KiB), then the task waits for gate k: the file rotates
        // every other block or so, and the follower reads between blocks.
        let script = """
            k=1; while [ $k -le 6 ]; do
              i=1; while [ $i -le 100 ]; do echo "block $k line $i"; i=$((i+1)); done
              while [ ! -e '\(gates)/'$k ]; do sleep 0.02; done; k=$((k+1))
            done
            """
        let (process, sandbox, _) = try Self.launch(.shell(script), limits: limits, workDir: workDir)
        let follower = SandboxLogFollower(sandbox: sandbox, path: "stdout")
        var read = ""
        var expected = ""
        var rotations = 0
        for block in 1...6 {
            expected += (1...100).map { "block \(block) line \($0)\n" }.joined()
            let complete = await ProcessTestSupport.eventually {
                while let chunk = try? follower.next(length: 700), !chunk.data.isEmpty {
                    if chunk.offset == 0, !read.isEmpty { rotations += 1 }
                    read += String(decoding: chunk.data, as: UTF8.self)
                }
                return read.count >= expected.count
            }
            #expect(complete, "block \(block) was read")
            try ProcessTestSupport.write("", to: "\(gates)/\(block)")
        }
        _ = try await process.wait()
        while let chunk = try? follower.next(length: 700), !chunk.data.isEmpty {
            read += String(decoding: chunk.data, as: UTF8.self)
        }
        #expect(read == expected, "every byte read exactly once, in order")
        #expect(rotations >= 3, "the file was rotated while followed (\(rotations) times)")
    }

    @Test("the cap holds while the launcher is down: the supervisor rotates on its own")
    func rotatesWhileLauncherIsDown() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        let gate = workDir + "/gate"
        defer {
            ProcessTestSupport.killProcesses(mentioning: workDir)
            ProcessTestSupport.removeTree(workDir)
        }
        let limits = try TaskLogLimits(maxFileBytes: 2048, maxFiles: 2)
        let key = LauncherTaskKey(frameworkID: "fw-1", taskID: "t-chatty")
        let task = Keel_V1_TaskInfo.with {
            $0.taskID.value = key.taskID
            $0.command.shell = """
                while [ ! -e '\(gate)' ]; do sleep 0.05; done
                i=1; while [ $i -le 1000 ]; do echo "line $i"; i=$((i+1)); done
                """
        }
        let first = try LauncherUnderTest(workDir: workDir, taskLogLimits: limits)
        try await first.running {
            first.manager.launch(framework: .with { $0.id.value = "fw-1" }, task: task)
            #expect(await first.waitForUpdate(key) { $0.state == .taskRunning } != nil)
        }
        let supervisor = try #require(first.checkpoints.record(key)?.supervisorPID)
        let sandbox = try TaskSandbox(existingAt: try #require(first.checkpoints.record(key)?.sandbox))
        // No launcher runs now; the task writes about 8 KiB and ends.
        try ProcessTestSupport.write("", to: gate)
        #expect(await ProcessTestSupport.eventually { ProcessTestSupport.isDead(supervisor) })
        let names = try FileManager.default.contentsOfDirectory(atPath: sandbox.root).filter { $0.hasPrefix("stdout") }
        #expect(names.sorted() == ["stdout", "stdout.1"])
        for name in names {
            #expect((Self.size(sandbox.root + "/" + name) ?? 0) <= 2048, "\(name)")
        }
        #expect(ProcessTestSupport.contents(sandbox.stdoutPath)?.hasSuffix("line 999\nline 1000\n") == true)

        let second = try LauncherUnderTest(workDir: workDir, taskLogLimits: limits)
        second.manager.recover(.sameBoot(agentID: "agent-1"))
        try await second.running {
            let terminal = await second.waitForUpdate(key) { $0.state.isTerminal }
            #expect(terminal?.state == .taskFinished)
        }
    }

    @Test("sizes are parsed as bytes or with binary K, M, G suffixes; nonsense is refused")
    func parseSize() throws {
        #expect(TaskLogLimits.parseSize("1048576") == 1 << 20)
        #expect(TaskLogLimits.parseSize("10M") == 10 << 20)
        #expect(TaskLogLimits.parseSize("512K") == 512 << 10)
        #expect(TaskLogLimits.parseSize("2GiB") == 2 << 30)
        for bad in ["", "0", "-5", "10X", "M", "1.5M", "99999999999999999G"] {
            #expect(TaskLogLimits.parseSize(bad) == nil, "'\(bad)'")
        }
        #expect(throws: LauncherError.self) { try TaskLogLimits(maxFileBytes: 0, maxFiles: 5) }
        #expect(throws: LauncherError.self) { try TaskLogLimits(maxFileBytes: 10, maxFiles: 0) }
    }
}
