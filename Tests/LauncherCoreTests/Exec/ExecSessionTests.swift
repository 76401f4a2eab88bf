import Foundation
@preconcurrency import Glibc
import LauncherCore
import Testing

/// Commands run inside a task with ``TaskExecTarget`` and ``ExecSession``: real processes, pipes
/// and (where the kernel allows) real namespaces.
@Suite("Exec sessions")
struct ExecSessionTests {
    /// Everything a finished session produced.
    struct Outcome {
        var stdout = ""
        var stderr = ""
        var status: TerminationStatus
    }

    static func collect(_ session: ExecSession) async -> Outcome {
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        for await chunk in session.output {
            switch chunk {
            case .stdout(let bytes): stdout += bytes
            case .stderr(let bytes): stderr += bytes
            }
            session.consumed(chunk)
        }
        let status = (try? await session.process.wait()) ?? .unknown
        return Outcome(
            stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self), status: status)
    }

    @Test("runs in the sandbox with the given environment, passes stdin and returns output and exit status")
    func plainExec() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let target = try TaskExecTarget(
            command: ["sh", "-c", "echo \"$GREETING\"; pwd; tr a-z A-Z; echo err >&2; exit 4"],
            environment: ["PATH": "/usr/bin:/bin", "GREETING": "hello"], sandbox: sandbox, user: nil, cgroup: nil,
            taskPID: nil)
        #expect(target.namespaces.isEmpty)
        let session = try ExecSession(target, logger: ProcessTestSupport.logger)
        try await session.writeStdin(Array("quiet\n".utf8))
        session.closeStdin()
        let outcome = await Self.collect(session)
        #expect(outcome.stdout == "hello\n\(sandbox.root)\nQUIET\n")
        #expect(outcome.stderr == "err\n")
        #expect(outcome.status == .exited(code: 4))
    }

    @Test("an unknown program is a launch error that names it")
    func unknownProgram() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        #expect(throws: LauncherError.self) {
            _ = try TaskExecTarget(
                command: ["no-such-program-for-exec"], environment: ["PATH": "/usr/bin:/bin"], sandbox: sandbox,
                user: nil, cgroup: nil, taskPID: nil)
        }
    }

    @Test("enters the PID and mount namespaces of a task that has its own", .enabled(if: geteuid() == 0))
    func entersNamespaces() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        // A stand-in for a namespaced task: `sleep` as PID 1 of a new PID namespace with its own /proc.
        let namespaced = try TaskProcess.launch(
            TaskLaunchSpec(
                command: .argv(["unshare", "--pid", "--mount", "--fork", "--mount-proc", "--kill-child", "sleep", "300"]),
                environment: ProcessTestSupport.environment, sandbox: sandbox),
            logger: ProcessTestSupport.logger)
        let leader = namespaced.pid
        do {
            try await runInNamespaces(leader: leader, sandbox: sandbox)
        } catch {
            await namespaced.terminate(gracePeriod: .zero)
            throw error
        }
        await namespaced.terminate(gracePeriod: .zero)
    }

    private func runInNamespaces(leader: Int32, sandbox: TaskSandbox) async throws {
        var taskPID: Int32?
        let found = await ProcessTestSupport.eventually {
            taskPID = TaskExecTarget.taskPID(leader: leader, cgroup: nil)
            guard let pid = taskPID, pid != leader else { return false }
            // The child is in the new namespace from its fork on, but mounts its /proc only after
            // that: wait until it runs `sleep`, which it execs once the mount is done.
            let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
            return comm == "sleep\n"
                && TaskExecTarget.namespace("pid", of: pid) != TaskExecTarget.namespace("pid", of: getpid())
        }
        #expect(found, "unshare did not start its namespaced child with its own /proc")
        let pid = try #require(taskPID)

        let target = try TaskExecTarget(
            command: ["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'; pwd"], environment: ["PATH": "/usr/bin:/bin"],
            sandbox: sandbox, user: nil, cgroup: nil, taskPID: pid)
        #expect(target.namespaces == ["pid", "mnt"])
        let session = try ExecSession(target, logger: ProcessTestSupport.logger)
        session.closeStdin()
        let outcome = await Self.collect(session)
        #expect(outcome.status == .exited(code: 0), "stderr: \(outcome.stderr)")
        let lines = outcome.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "stdout: \(outcome.stdout)")
        // Inside the task's PID namespace the shell's pid is tiny and /proc shows only its few processes.
        let shellPID = Int(lines.first ?? "") ?? .max
        let visible = Int(lines.dropFirst().first ?? "") ?? .max
        #expect(shellPID < 10, "stdout: \(outcome.stdout)")
        #expect(visible < 10, "stdout: \(outcome.stdout)")
        #expect(lines.last == sandbox.root)
    }
}
