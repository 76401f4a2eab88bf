import Foundation
@preconcurrency import Glibc
import LauncherCore
import Testing

@Suite("TaskProcess launching and waiting")
struct TaskProcessTests {
    @Test("echo hello writes to the stdout file and exits 0")
    func echoHello() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)

        let process = try ProcessTestSupport.launch(.argv(["echo", "hello"]), in: sandbox)
        #expect(process.pid > 0)
        let status = try await process.wait()

        #expect(status == .exited(code: 0))
        #expect(status.isSuccess)
        #expect(process.terminationStatus == status)
        #expect(ProcessTestSupport.contents(sandbox.stdoutPath) == "hello\n")
        #expect(ProcessTestSupport.contents(sandbox.stderrPath) == "")
    }

    @Test("a shell command's exit code is reported")
    func exitCode() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)

        let process = try ProcessTestSupport.launch(.shell("exit 3"), in: sandbox)
        let status = try await process.wait()

        #expect(status == .exited(code: 3))
        #expect(status.description == "exited with code 3")
    }

    @Test("a process killed by a signal is reported as signaled")
    func signaled() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)

        let process = try ProcessTestSupport.launch(.shell("kill -KILL $$"), in: sandbox)
        let status = try await process.wait()

        #expect(status == .signaled(signal: SIGKILL, coreDumped: false))
    }

    @Test("environment, working directory and stderr reach the child; nothing else is inherited")
    func environmentAndDirectories() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let script = #"printf '%s|%s|%s\n' "$KEEL_GREETING" "$(pwd)" "${HOME-unset}"; echo oops >&2"#

        let process = try ProcessTestSupport.launch(
            .shell(script), in: sandbox, extraEnvironment: ["KEEL_GREETING": "hi there"])
        let status = try await process.wait()

        #expect(status == .exited(code: 0))
        #expect(ProcessTestSupport.contents(sandbox.stdoutPath) == "hi there|\(sandbox.root)|unset\n")
        #expect(ProcessTestSupport.contents(sandbox.stderrPath) == "oops\n")
    }

    @Test("the child leads its own session and process group, with stdin from /dev/null")
    func sessionLeader() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)

        // Fields 5 and 6 of /proc/<pid>/stat are the process group and session IDs.
        let process = try ProcessTestSupport.launch(
            .shell("cut -d' ' -f5,6 /proc/$$/stat; readlink /proc/$$/fd/0"), in: sandbox)
        let status = try await process.wait()

        #expect(status == .exited(code: 0))
        let expected = "\(process.pid) \(process.pid)\n/dev/null\n"
        #expect(ProcessTestSupport.contents(sandbox.stdoutPath) == expected)
    }

    @Test("descriptors the launcher opened without O_CLOEXEC are not inherited")
    func descriptorsClosed() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let leaky = open("/dev/null", O_RDONLY)
        #expect(leaky > 2)
        defer { close(leaky) }

        // `ls` lists its own descriptors: 0-2 plus the one it reads /proc/self/fd through.
        let process = try ProcessTestSupport.launch(.argv(["ls", "/proc/self/fd"]), in: sandbox)
        let status = try await process.wait()

        #expect(status == .exited(code: 0))
        let descriptors = (ProcessTestSupport.contents(sandbox.stdoutPath) ?? "").split(separator: "\n")
        #expect(descriptors == ["0", "1", "2", "3"])
    }

    @Test("a missing executable is a launch error naming the command and errno text")
    func missingExecutable() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)

        for command in [TaskCommand.argv(["/nonexistent/keel-missing", "x"]), .argv(["keel-missing-program"])] {
            let error = #expect(throws: LauncherError.self) {
                try ProcessTestSupport.launch(command, in: sandbox)
            }
            #expect(error?.code == .launchFailed)
            #expect(error?.message.contains("keel-missing") == true)
            #expect(error?.message.contains("No such file or directory") == true)
            #expect((error?.cause as? SystemCallError)?.errno == ENOENT)
        }
    }

    @Test("a non-executable file is a launch error with Permission denied")
    func nonExecutable() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        try ProcessTestSupport.write("#!/bin/sh\nexit 0\n", to: sandbox.root + "/script.sh")

        let error = #expect(throws: LauncherError.self) {
            try ProcessTestSupport.launch(.argv(["./script.sh"]), in: sandbox)
        }
        #expect(error?.code == .launchFailed)
        #expect(error?.message.contains("./script.sh") == true)
        #expect(error?.message.contains("Permission denied") == true)
    }

    @Test("bad specs and unknown users are rejected before spawning")
    func invalidSpecs() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)

        let empty = #expect(throws: LauncherError.self) {
            try ProcessTestSupport.launch(.argv([]), in: sandbox)
        }
        #expect(empty?.code == .invalidArgument)
        let badEnvironment = #expect(throws: LauncherError.self) {
            try ProcessTestSupport.launch(.argv(["true"]), in: sandbox, extraEnvironment: ["A=B": "c"])
        }
        #expect(badEnvironment?.code == .invalidArgument)
        let unknownUser = #expect(throws: LauncherError.self) {
            try ProcessTestSupport.launch(.argv(["true"]), in: sandbox, user: "keel-no-such-user")
        }
        #expect(unknownUser?.code == .notFound)
        #expect(unknownUser?.message.contains("keel-no-such-user") == true)
    }

    @Test("a task can run as another user", .enabled(if: geteuid() == 0, "switching users needs root"))
    func runsAsUser() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let nobody = try TaskUser.lookup(name: "nobody")
        try sandbox.setOwner(nobody)

        let process = try ProcessTestSupport.launch(
            .shell("id -u; id -g; touch made-by-task"), in: sandbox, user: "nobody")
        let status = try await process.wait()

        #expect(status == .exited(code: 0))
        #expect(process.user == nobody)
        #expect(ProcessTestSupport.contents(sandbox.stdoutPath) == "\(nobody.uid)\n\(nobody.gid)\n")
        let owner = try FileManager.default.attributesOfItem(atPath: sandbox.root + "/made-by-task")[.ownerAccountID] as? NSNumber
        #expect(owner?.uint32Value == nobody.uid)
    }

    @Test("many processes run and are reaped concurrently")
    func concurrentProcesses() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }

        let results = try await withThrowingTaskGroup(of: (Int32, TerminationStatus).self) { group in
            for code in Int32(0)..<24 {
                let sandbox = try ProcessTestSupport.makeSandbox(in: workDir, task: "task-\(code)")
                let process = try ProcessTestSupport.launch(.shell("exit \(code)"), in: sandbox)
                group.addTask { (code, try await process.wait()) }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }

        #expect(results.count == 24)
        for (code, status) in results {
            #expect(status == .exited(code: code))
        }
    }

    @Test("wait throws CancellationError when cancelled and the process keeps running")
    func cancelledWait() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let process = try ProcessTestSupport.launch(.argv(["sleep", "1000"]), in: sandbox)

        let outcome = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    _ = try await process.wait()
                    return false
                } catch {
                    return true
                }
            }
            group.cancelAll()
            return await group.next() ?? false
        }

        #expect(outcome)
        #expect(process.terminationStatus == nil)
        let status = await process.terminate(gracePeriod: .seconds(5))
        #expect(status == .signaled(signal: SIGTERM, coreDumped: false))
    }
}
