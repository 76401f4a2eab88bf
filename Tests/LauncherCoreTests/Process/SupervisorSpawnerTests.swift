import Dispatch
import Foundation
@preconcurrency import Glibc
import LauncherCore
import Synchronization
import Testing

/// `keel-task-supervisor --spawner` and the launcher's client of it.
@Suite("Supervisor spawner")
struct SupervisorSpawnerTests {
    private static func spec(_ command: TaskCommand, workDir: String) throws -> (TaskLaunchSpec, TaskSupervision) {
        let supervisor = try #require(TaskSupervision.supervisorBesideExecutable())
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let spec = TaskLaunchSpec(command: command, environment: ProcessTestSupport.environment, sandbox: sandbox)
        return (spec, TaskSupervision(supervisor: supervisor, exitStatusFile: workDir + "/exit-status"))
    }

    @Test("a forked supervisor leads its own session in the sandbox, with the task's environment, and is not the launcher's child")
    func forkedSupervisor() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        var (spec, supervision) = try Self.spec(.shell("echo \"$KEEL_PROBE $(pwd)\"; exit 3"), workDir: workDir)
        spec.environment["KEEL_PROBE"] = "probe"
        let spawner = try #require(SupervisorSpawner.start(supervisor: supervision.supervisor, logger: ProcessTestSupport.logger))
        let process = try TaskProcess.launch(spec, supervision: supervision, spawner: spawner, logger: ProcessTestSupport.logger)
        #expect(!spawner.isBroken)
        #expect(ProcessTestSupport.parent(of: process.pid).map { $0 != getpid() } ?? true, "the spawner is its parent")
        #expect(try await process.wait() == .exited(code: 3))
        let output = try String(contentsOfFile: spec.stdoutPath, encoding: .utf8)
        #expect(output == "probe \(spec.workingDirectory)\n")
    }

    @Test("spawns from many threads at once each get their own supervisor")
    func concurrentSpawns() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let supervisor = try #require(TaskSupervision.supervisorBesideExecutable())
        let spawner = try #require(SupervisorSpawner.start(supervisor: supervisor, logger: ProcessTestSupport.logger))
        let count = 24
        let launched = Mutex<[Int: Result<TaskProcess, any Error>]>([:])
        // Each task exits with its own code, so a reply handed to the wrong request would show.
        DispatchQueue.concurrentPerform(iterations: count) { index in
            let result = Result { () throws -> TaskProcess in
                let sandbox = try ProcessTestSupport.makeSandbox(in: workDir, task: "task-\(index)")
                let spec = TaskLaunchSpec(
                    command: .shell("exit \(index + 1)"), environment: ProcessTestSupport.environment, sandbox: sandbox)
                let supervision = TaskSupervision(supervisor: supervisor, exitStatusFile: workDir + "/exit-status-\(index)")
                return try TaskProcess.launch(spec, supervision: supervision, spawner: spawner, logger: ProcessTestSupport.logger)
            }
            launched.withLock { $0[index] = result }
        }
        #expect(!spawner.isBroken)
        let processes = launched.withLock { $0 }
        #expect(processes.count == count)
        var pids: Set<Int32> = []
        for index in 0..<count {
            let process = try #require(try processes[index]?.get())
            pids.insert(process.pid)
            #expect(ProcessTestSupport.parent(of: process.pid).map { $0 != getpid() } ?? true, "forked by the spawner")
            #expect(try await process.wait() == .exited(code: Int32(index + 1)))
        }
        #expect(pids.count == count)
    }

    @Test("a supervisor that cannot be set up is a launch error, as with posix_spawn")
    func setupFailure() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        var (spec, supervision) = try Self.spec(.argv(["true"]), workDir: workDir)
        spec.stdoutPath = workDir + "/missing/stdout"
        let spawner = try #require(SupervisorSpawner.start(supervisor: supervision.supervisor, logger: ProcessTestSupport.logger))
        let error = #expect(throws: LauncherError.self) {
            try TaskProcess.launch(spec, supervision: supervision, spawner: spawner, logger: ProcessTestSupport.logger)
        }
        #expect(error?.code == .launchFailed)
        #expect(error?.message.contains("missing/stdout") == true)
        #expect(!spawner.isBroken, "one failed set-up does not break the spawner")
    }

    @Test("when the spawner is gone, supervisors are executed as before")
    func deadSpawner() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        // The task waits for a gate, so its supervisor is still there when its parent is checked.
        let gate = workDir + "/gate"
        let (spec, supervision) = try Self.spec(.shell("while [ ! -e '\(gate)' ]; do sleep 0.02; done; exit 5"), workDir: workDir)
        let spawner = try #require(SupervisorSpawner.start(supervisor: supervision.supervisor, logger: ProcessTestSupport.logger))
        kill(spawner.pid, SIGKILL)
        #expect(await ProcessTestSupport.eventually { ProcessTestSupport.isDead(spawner.pid) })
        let process = try TaskProcess.launch(spec, supervision: supervision, spawner: spawner, logger: ProcessTestSupport.logger)
        #expect(spawner.isBroken)
        #expect(ProcessTestSupport.parent(of: process.pid) == getpid(), "executed by the launcher itself")
        try ProcessTestSupport.write("", to: gate)
        #expect(try await process.wait() == .exited(code: 5))
    }
}
