import Foundation
@preconcurrency import Glibc
import KeelAPI
import KeelCore
import KeelRPC
import LauncherCore
import SwiftProtobuf
import Testing

/// One launcher's task side over a work dir: what a `keel-launcher` process builds, minus gRPC.
struct LauncherUnderTest {
    let manager: TaskManager
    let updates: StatusUpdateManager
    let checkpoints: TaskCheckpointStore

    init(
        workDir: String, isolation: NodeIsolation = .processGroupOnly, taskLogLimits: TaskLogLimits = .defaults,
        cgroupPoolSize: Int = 64, reuseSupervisors: Bool = true
    ) throws {
        let supervisor = try #require(
            TaskSupervision.supervisorBesideExecutable(), "keel-task-supervisor must be built next to the tests")
        let endpoint = try Endpoint(parsing: "127.0.0.1:1")
        let configuration = LauncherConfiguration(
            broker: endpoint, advertisedAddress: endpoint, workDir: workDir, hostname: "test",
            resources: try Resources(parsing: "cpus:1;mem:1024"), defaultKillGracePeriod: .seconds(1),
            isolation: isolation, taskSupervisor: supervisor, taskLogLimits: taskLogLimits, cgroupPoolSize: cgroupPoolSize,
            reuseSupervisors: reuseSupervisors)
        checkpoints = TaskCheckpointStore(workDir: workDir, logger: ProcessTestSupport.logger)
        updates = StatusUpdateManager(initialBackoff: .seconds(60), maxBackoff: .seconds(60), checkpoints: checkpoints)
        manager = TaskManager(
            configuration: configuration, updates: updates, identity: AgentIdentity(agentID: "agent-1"),
            checkpoints: checkpoints, logger: ProcessTestSupport.logger)
    }

    /// Runs the manager while `body` runs, then stops it as a crash would leave things: the
    /// tasks keep running and their checkpoints stay.
    func running(_ body: @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await manager.run() }
            defer { group.cancelAll() }
            try await body()
        }
    }

    /// Waits until the latest pending update of `key` satisfies `condition`, and returns it.
    func waitForUpdate(
        _ key: LauncherTaskKey, timeout: Duration = .seconds(30), _ condition: (Keel_V1_TaskStatus) -> Bool
    ) async -> Keel_V1_TaskStatus? {
        var found: Keel_V1_TaskStatus?
        _ = await ProcessTestSupport.eventually(timeout: timeout) {
            found = updates.pending(key).last.flatMap { condition($0) ? $0 : nil }
            return found != nil
        }
        return found
    }
}

@Suite("Task recovery after a launcher restart")
struct TaskRecoveryTests {
    static let framework = Keel_V1_FrameworkInfo.with { $0.id.value = "fw-1" }

    /// A task that runs until `gate` exists, then exits with `code`.
    static func gatedTask(_ id: String, gate: String, code: Int32) -> Keel_V1_TaskInfo {
        .with {
            $0.taskID.value = id
            $0.command.shell = "while [ ! -e '\(gate)' ]; do sleep 0.05; done; exit \(code)"
        }
    }

    static func key(_ id: String) -> LauncherTaskKey {
        LauncherTaskKey(frameworkID: "fw-1", taskID: id)
    }

    /// Starts `tasks` in a first launcher, waits until each is RUNNING, and stops that launcher
    /// without touching the tasks; returns the supervisors' pids.
    static func startAndAbandon(_ tasks: [Keel_V1_TaskInfo], workDir: String) async throws -> [String: Int32] {
        let first = try LauncherUnderTest(workDir: workDir)
        try await first.running {
            for task in tasks {
                first.manager.launch(framework: framework, task: task)
            }
            for task in tasks {
                let running = await first.waitForUpdate(key(task.taskID.value)) { $0.state == .taskRunning }
                #expect(running != nil, "task \(task.taskID.value) should reach TASK_RUNNING")
            }
        }
        // As after a crash of a launcher that had sent those updates: they are on disk.
        await first.checkpoints.flush()
        var pids: [String: Int32] = [:]
        for task in tasks {
            pids[task.taskID.value] = first.checkpoints.record(key(task.taskID.value))?.supervisorPID
        }
        return pids
    }

    @Test("a running task is re-attached and its true exit code is reported when it ends")
    func reattachRunning() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        let gate = workDir + "/gate"
        defer {
            try? ProcessTestSupport.write("", to: gate)
            ProcessTestSupport.removeTree(workDir)
        }
        let pids = try await Self.startAndAbandon([Self.gatedTask("t-run", gate: gate, code: 7)], workDir: workDir)
        let pid = try #require(pids["t-run"])
        #expect(!ProcessTestSupport.isDead(pid), "the task outlives its launcher")

        let second = try LauncherUnderTest(workDir: workDir)
        second.manager.recover(.sameBoot(agentID: "agent-1"))
        #expect(second.manager.container(taskID: "t-run")?.process?.pid == pid)
        // Nothing to fetch: no TASK_STARTING before TASK_RUNNING.
        #expect(second.updates.pending(Self.key("t-run")).map(\.state) == [.taskRunning])
        let reported = second.manager.runningTasks.map(\.task.taskID.value)
        #expect(reported == ["t-run"])
        try await second.running {
            try ProcessTestSupport.write("", to: gate)
            let terminal = await second.waitForUpdate(Self.key("t-run")) { $0.state.isTerminal }
            #expect(terminal?.state == .taskFailed)
            #expect(terminal?.exitCode == 7)
            #expect(terminal?.message == "exited with 7")
        }
    }

    @Test("a task that ended while the launcher was down gets its exit code delivered after the restart")
    func endedWhileDown() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let gate = workDir + "/gate"
        let pids = try await Self.startAndAbandon([Self.gatedTask("t-down", gate: gate, code: 3)], workDir: workDir)
        let pid = try #require(pids["t-down"])
        try ProcessTestSupport.write("", to: gate)
        #expect(await ProcessTestSupport.eventually { ProcessTestSupport.isDead(pid) })

        let second = try LauncherUnderTest(workDir: workDir)
        second.manager.recover(.sameBoot(agentID: "agent-1"))
        // Reported at registration without a latest status: its updates are still pending.
        let reported = try #require(second.manager.runningTasks.first)
        #expect(reported.task.taskID.value == "t-down")
        #expect(!reported.hasLatestStatus)
        try await second.running {
            let terminal = await second.waitForUpdate(Self.key("t-down")) { $0.state.isTerminal }
            #expect(terminal?.state == .taskFailed)
            #expect(terminal?.exitCode == 3)
        }
        let key = Self.key("t-down")
        for status in second.updates.pending(key) {
            #expect(second.updates.acknowledge(frameworkID: "fw-1", taskID: "t-down", uuid: status.uuid))
        }
        await second.checkpoints.flush()
        #expect(!TaskCheckpointStore.read(workDir: workDir, logger: ProcessTestSupport.logger).records.contains { $0.key == key })
    }

    /// Flips a byte in the payload of the newest journal record of `key`, and appends a record of
    /// another task after it, so that it is damage and not a write cut short at the end.
    static func damageNewestRecord(of key: LauncherTaskKey, journal path: String) throws {
        var bytes = try #require(FileManager.default.contents(atPath: path)).map { $0 }
        let keyBytes = Array(key.frameworkID.utf8) + [0] + Array(key.taskID.utf8)
        let start = try #require(
            (0...(bytes.count - keyBytes.count)).reversed().first { Array(bytes[$0..<($0 + keyBytes.count)]) == keyBytes })
        // Past the key and the payload's checksum, inside the payload.
        bytes[start + keyBytes.count + 4 + 10] ^= 0xff
        JournalFrame(key: LauncherTaskKey(frameworkID: key.frameworkID, taskID: "after-the-damage"), payload: nil).append(to: &bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test("a corrupt task checkpoint reports that task lost and leaves the others alone")
    func corruptCheckpoint() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        let gate = workDir + "/gate"
        defer {
            try? ProcessTestSupport.write("", to: gate)
            // t-bad's task may still be between two looks at the gate.
            ProcessTestSupport.killProcesses(mentioning: workDir)
            ProcessTestSupport.removeTree(workDir)
        }
        let tasks = [Self.gatedTask("t-good", gate: gate, code: 0), Self.gatedTask("t-bad", gate: gate, code: 0)]
        _ = try await Self.startAndAbandon(tasks, workDir: workDir)
        let store = TaskCheckpointStore(workDir: workDir, logger: ProcessTestSupport.logger)
        try Self.damageNewestRecord(of: Self.key("t-bad"), journal: store.journalPath)

        let second = try LauncherUnderTest(workDir: workDir)
        second.manager.recover(.sameBoot(agentID: "agent-1"))
        let lost = try #require(second.updates.pending(Self.key("t-bad")).last)
        #expect(lost.state == .taskLost)
        #expect(lost.reason == .agentRestarted)
        #expect(lost.message.contains("could not read its checkpoint"), "\(lost.message)")
        try await second.running {
            try ProcessTestSupport.write("", to: gate)
            let terminal = await second.waitForUpdate(Self.key("t-good")) { $0.state.isTerminal }
            #expect(terminal?.state == .taskFinished)
            #expect(terminal?.exitCode == 0)
        }
    }

    @Test("after a reboot the old tasks' checkpoints are dropped and their supervisors killed")
    func rebootDropsTasks() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let pids = try await Self.startAndAbandon(
            [Self.gatedTask("t-old", gate: workDir + "/never", code: 0)], workDir: workDir)
        let pid = try #require(pids["t-old"])

        let second = try LauncherUnderTest(workDir: workDir)
        second.manager.recover(.rebooted(previousAgentID: "agent-1"))
        #expect(second.manager.snapshot.isEmpty)
        #expect(second.updates.pendingCount == 0)
        await second.checkpoints.flush()
        #expect(TaskCheckpointStore.read(workDir: workDir, logger: ProcessTestSupport.logger).records.isEmpty)
        #expect(await ProcessTestSupport.eventually { ProcessTestSupport.isDead(pid) })
    }
}

@Suite(
    "Task recovery with cgroups",
    .enabled(if: CgroupTestSupport.available(.memory, .pids, .freezer), CgroupTestSupport.skipReason)
)
struct TaskRecoveryCgroupTests {
    /// The task cgroups under the root of `isolation`, in every hierarchy.
    static func cgroupPaths(_ isolation: NodeIsolation) -> Set<String> {
        Set(isolation.assignments.values.flatMap { isolator in
            let parent = isolator.directory(isolation.settings.root)
            return ((try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [])
                .filter { !$0.hasPrefix(".") }
                .filter { (try? FileManager.default.contentsOfDirectory(atPath: parent + "/" + $0)) != nil }
                .map { isolation.settings.root + "/" + $0 }
        })
    }

    @Test("at start, an own task cgroup no checkpoint owns is killed and removed; other cgroups are kept")
    func leftoverCgroups() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        let gate = workDir + "/gate"
        // A root of its own: nothing here may touch the cgroups of other tests.
        let isolation = NodeIsolation.detect(
            settings: NodeIsolation.Settings(root: "keel-test-recovery-\(getpid())", maxProcessesPerTask: 64),
            logger: ProcessTestSupport.logger)
        let limits = TaskResourceLimits(memoryMiB: 64, cpus: nil, maxProcesses: nil)
        let orphan = try #require(
            try isolation.makeTaskCgroup(name: "orphan", limits: limits, logger: ProcessTestSupport.logger))
        let stranger = try #require(
            try isolation.makeTaskCgroup(name: "stranger", limits: limits, logger: ProcessTestSupport.logger))
        let orphanSandbox = try ProcessTestSupport.makeSandbox(in: workDir, task: "orphan")
        let strangerSandbox = try ProcessTestSupport.makeSandbox(in: workDir, task: "stranger")
        let orphanProcess = try CgroupTestSupport.launch(.argv(["sleep", "1000"]), in: orphanSandbox, cgroup: orphan)
        let strangerProcess = try CgroupTestSupport.launch(
            .argv(["sleep", "1000"]), in: strangerSandbox, cgroup: stranger)
        defer {
            orphanProcess.signalGroup(SIGKILL)
            strangerProcess.signalGroup(SIGKILL)
            try? ProcessTestSupport.write("", to: gate)
            ProcessTestSupport.removeTree(workDir)
        }
        // The orphan was made by this launcher (its task record is lost); the stranger by another.
        let notes = TaskCheckpointStore(workDir: workDir, logger: ProcessTestSupport.logger)
        notes.recordCgroup(orphan.path)
        await notes.flush()
        #expect(await ProcessTestSupport.eventually { orphan.pids.contains(orphanProcess.pid) })

        let first = try LauncherUnderTest(workDir: workDir, isolation: isolation)
        let task = TaskRecoveryTests.gatedTask("t-cg", gate: gate, code: 5)
        try await first.running {
            first.manager.launch(framework: TaskRecoveryTests.framework, task: task)
            #expect(await first.waitForUpdate(TaskRecoveryTests.key("t-cg")) { $0.state == .taskRunning } != nil)
        }
        let taskCgroup = try #require(first.checkpoints.record(TaskRecoveryTests.key("t-cg"))?.cgroup)

        let second = try LauncherUnderTest(workDir: workDir, isolation: isolation)
        second.manager.recover(.sameBoot(agentID: "agent-1"))
        try await second.running {
            let swept = await ProcessTestSupport.eventually(timeout: .seconds(30)) {
                orphanProcess.terminationStatus != nil && CgroupTestSupport.allRemoved(orphan.directories)
            }
            #expect(swept, "the orphan cgroup should be killed and removed")
            #expect(Self.cgroupPaths(isolation) == [taskCgroup, stranger.path], "the others are kept")
            #expect(strangerProcess.terminationStatus == nil)
            try ProcessTestSupport.write("", to: gate)
            let terminal = await second.waitForUpdate(TaskRecoveryTests.key("t-cg")) { $0.state.isTerminal }
            #expect(terminal?.exitCode == 5)
        }
        #expect(Self.cgroupPaths(isolation) == [stranger.path])
        #expect(second.checkpoints.recordedCgroups.isEmpty)
        await stranger.destroy()
        for isolator in isolation.assignments.values {
            rmdir(isolator.directory(isolation.settings.root))
        }
    }
}
