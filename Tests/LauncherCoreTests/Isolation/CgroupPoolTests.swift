import Foundation
@preconcurrency import Glibc
import KeelAPI
import KeelCore
import KeelRPC
import LauncherCore
import SwiftProtobuf
import Synchronization
import Testing

@Suite("Cgroup pool")
struct CgroupPoolTests {
    @Test("keeps up to its capacity, hands out the most recently kept first, and drains")
    func pool() {
        let pool = CgroupPool(capacity: 2)
        let limits = TaskResourceLimits(memoryMiB: 64, cpus: 1, maxProcesses: 10)
        func kept(_ path: String) -> CgroupPool.Kept { CgroupPool.Kept(path: path, limits: limits) }
        #expect(pool.take() == nil)
        #expect(pool.put(kept("keel/slot-a")) && pool.put(kept("keel/slot-b")))
        #expect(!pool.put(kept("keel/slot-c")), "a full pool keeps no more")
        #expect(pool.take() == kept("keel/slot-b"))
        #expect(pool.drain() == [kept("keel/slot-a")])
        #expect(pool.count == 0)
        let names = Set((0..<100).map { _ in CgroupPool.slotName() })
        #expect(names.count == 100 && names.allSatisfy { $0.hasPrefix("slot-") && $0.count == 21 })
    }
}

@Suite(
    "Cgroup reuse",
    .enabled(if: CgroupTestSupport.available(.memory, .pids, .freezer) && CgroupTestSupport.isolation.canReuseCgroups,
        CgroupTestSupport.skipReason)
)
struct CgroupReuseTests {
    static func read(_ path: String) -> String {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("a reused cgroup takes the next task's limits, defaults included, with its peak reset")
    func reuseResets() async throws {
        let isolation = CgroupTestSupport.isolation
        let path = isolation.taskCgroupPath(name: CgroupPool.slotName())
        var first = TaskResourceLimits(memoryMiB: 64, cpus: 0.5, maxProcesses: 32)
        first.hardCPULimit = true
        let made = try #require(try isolation.makeTaskCgroup(path: path, limits: first, logger: ProcessTestSupport.logger))
        // Whatever happens, the cgroup goes at the end (a reused one is the same directories).
        func checks() async throws {
            let memory = try #require(made.directory(for: .memory))
            let cpu = made.directory(for: .cpu)
            let pids = try #require(made.directory(for: .pids))
            #expect(Self.read(memory + "/memory.limit_in_bytes") == "\(64 << 20)")
            if let cpu { #expect(Self.read(cpu + "/cpu.cfs_quota_us") == "50000") }
            let sandbox = try ProcessTestSupport.makeSandbox(in: try ProcessTestSupport.makeWorkDir(), task: "reuse")
            defer { ProcessTestSupport.removeTree(sandbox.root) }
            let process = try CgroupTestSupport.launch(.argv(["/bin/true"]), in: sandbox, cgroup: made)
            _ = try await process.wait()
            // What the launcher reads once at a task's end, and hands to the reuse check.
            let record = made.endRecord()
            #expect(record.memoryLimitation == nil)
            // With the unified hierarchy among them, its `cgroup.events` is read (once).
            if record.readings.populated != nil {
                #expect(record.readings.populated == false, "nothing is left in the task's cgroups")
                #expect(record.readings.frozen == false)
                if CgroupTestSupport.isolation.assignments[.memory]?.mechanism == "cgroups/v1" {
                    #expect(record.readings.oomKills == 0, "read after the cgroup was found empty")
                }
            }
            #expect(await made.isReusable(known: record.readings), "a cgroup whose task exited normally can be reused")
            #expect(await made.isReusable(), "and so it is when everything is read again")

            let second = TaskResourceLimits(memoryMiB: 128, cpus: nil, maxProcesses: nil)
            let reused = try isolation.reuseTaskCgroup(
                path: path, limits: second, previous: made.limits, logger: ProcessTestSupport.logger)
            #expect(reused.path == path && reused.limits.maxProcesses == 256)
            #expect(Self.read(memory + "/memory.limit_in_bytes") == "\(128 << 20)")
            let usage = try #require(UInt64(Self.read(memory + "/memory.usage_in_bytes")))
            #expect(usage <= CgroupPool.reusableMemoryLeftover)
            #expect(UInt64(Self.read(memory + "/memory.max_usage_in_bytes")) ?? .max <= max(usage, 1 << 20), "the peak starts over")
            #expect(Self.read(pids + "/pids.max") == "256", "the node's default pids limit")
            if let cpu {
                #expect(Self.read(cpu + "/cpu.cfs_quota_us") == "-1", "the last task's CPU cap is lifted")
                #expect(Self.read(cpu + "/cpu.shares") == "1024", "the default weight")
            }
        }
        do {
            try await checks()
        } catch {
            await made.destroy()
            throw error
        }
        #expect(await made.destroy())
    }

    @Test("an ended task's cgroup serves the next task; one killed by its memory limit is removed; a stop removes the kept ones")
    func tasksShareKeptCgroups() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        let gate = workDir + "/gate"
        defer {
            try? ProcessTestSupport.write("", to: gate)
            ProcessTestSupport.removeTree(workDir)
        }
        let launcher = try LauncherUnderTest(workDir: workDir, isolation: CgroupTestSupport.isolation, cgroupPoolSize: 4)
        let pool = try #require(launcher.manager.cgroupPool)
        let first = Keel_V1_TaskInfo.with {
            $0.taskID.value = "first"
            $0.command.shell = "exit 0"
            $0.resources = (try? Resources(parsing: "cpus:0.5;mem:64"))?.proto ?? []
        }
        let second = {
            var task = TaskRecoveryTests.gatedTask("second", gate: gate, code: 0)
            task.resources = (try? Resources(parsing: "cpus:0.5;mem:96"))?.proto ?? []
            return task
        }()
        let hog = Keel_V1_TaskInfo.with {
            $0.taskID.value = "hog"
            $0.command.shell = "head -c 400M /dev/zero | tail > /dev/null"
            $0.resources = (try? Resources(parsing: "cpus:0.5;mem:64"))?.proto ?? []
        }
        let hogCgroup = Mutex<String?>(nil)
        try await launcher.running {
            launcher.manager.launch(framework: TaskRecoveryTests.framework, task: first)
            let finished = await launcher.waitForUpdate(TaskRecoveryTests.key("first")) { $0.state.isTerminal }
            #expect(finished?.state == .taskFinished)
            let firstCgroup = try #require(launcher.checkpoints.record(TaskRecoveryTests.key("first"))?.cgroup)
            #expect(firstCgroup.contains("/slot-"), "a cgroup that may be kept is named after the pool: \(firstCgroup)")
            #expect(pool.count == 1, "the first task's cgroup is kept")

            launcher.manager.launch(framework: TaskRecoveryTests.framework, task: second)
            #expect(await launcher.waitForUpdate(TaskRecoveryTests.key("second")) { $0.state == .taskRunning } != nil)
            let secondCgroup = try #require(launcher.checkpoints.record(TaskRecoveryTests.key("second"))?.cgroup)
            #expect(secondCgroup == firstCgroup, "the second task runs in the kept cgroup")
            let memory = try #require(CgroupTestSupport.isolation.assignments[.memory]?.directory(secondCgroup))
            #expect(CgroupReuseTests.read(memory + "/memory.limit_in_bytes") == "\(96 << 20)", "its own memory limit")
            // TASK_RUNNING comes once the supervisor is started; the program joins the cgroup
            // itself right after.
            #expect(
                await ProcessTestSupport.eventually { !CgroupReuseTests.read(memory + "/cgroup.procs").isEmpty },
                "its program is inside")
            try ProcessTestSupport.write("", to: gate)
            #expect(await launcher.waitForUpdate(TaskRecoveryTests.key("second")) { $0.state.isTerminal }?.state == .taskFinished)
            #expect(pool.count == 1)

            launcher.manager.launch(framework: TaskRecoveryTests.framework, task: hog)
            let oom = await launcher.waitForUpdate(TaskRecoveryTests.key("hog"), timeout: .seconds(60)) { $0.state.isTerminal }
            #expect(oom?.reason == .containerLimitationMemory)
            let hogPath = try #require(launcher.checkpoints.record(TaskRecoveryTests.key("hog"))?.cgroup)
            #expect(hogPath == firstCgroup, "the hog got the kept cgroup")
            #expect(pool.count == 0, "a cgroup with an OOM kill on record is not kept")
            #expect(!FileManager.default.fileExists(atPath: memory), "it is removed")
            hogCgroup.withLock { $0 = hogPath }
        }
        #expect(pool.count == 0)
        let removed = try #require(hogCgroup.withLock { $0 })
        #expect(!launcher.checkpoints.recordedCgroups.contains(removed), "its note is gone too")
    }

    @Test("a cgroup a process is still in is reusable only once that process is killed")
    func leftoverProcess() async throws {
        let result = try await CgroupTestSupport.withCgroup("leftover", limits: TaskResourceLimits(memoryMiB: 64, cpus: nil, maxProcesses: nil)) { cgroup in
            let workDir = try ProcessTestSupport.makeWorkDir()
            defer { ProcessTestSupport.removeTree(workDir) }
            let sandbox = try ProcessTestSupport.makeSandbox(in: workDir, task: "leftover")
            let process = try CgroupTestSupport.launch(.argv(["sleep", "1000"]), in: sandbox, cgroup: cgroup)
            // Inside once the join shim has executed sleep, with the same pid.
            #expect(await ProcessTestSupport.eventually { cgroup.pids.contains(process.pid) && ProcessTestSupport.commandLine(of: process.pid).first?.hasSuffix("sleep") == true })
            #expect(await cgroup.isReusable(), "emptied by killing what was left, then reusable")
            #expect(cgroup.pids.isEmpty)
            #expect(try await process.wait() == .signaled(signal: SIGKILL, coreDumped: false))
        }
        #expect(result.removed)
    }

    @Test("a launcher that stops removes the cgroups it kept")
    func stopRemovesKept() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let launcher = try LauncherUnderTest(workDir: workDir, isolation: CgroupTestSupport.isolation, cgroupPoolSize: 4)
        let pool = try #require(launcher.manager.cgroupPool)
        let kept = Mutex("")
        try await launcher.running {
            launcher.manager.launch(framework: TaskRecoveryTests.framework, task: .with {
                $0.taskID.value = "short"
                $0.command.shell = "exit 0"
            })
            #expect(await launcher.waitForUpdate(TaskRecoveryTests.key("short")) { $0.state.isTerminal } != nil)
            let path = try #require(launcher.checkpoints.record(TaskRecoveryTests.key("short"))?.cgroup)
            #expect(await ProcessTestSupport.eventually { pool.count == 1 })
            #expect(launcher.checkpoints.recordedCgroups.contains(path), "a kept cgroup keeps its note")
            kept.withLock { $0 = path }
        }
        let keptCgroup = kept.withLock { $0 }
        #expect(!keptCgroup.isEmpty)
        #expect(pool.count == 0)
        let directories = CgroupTestSupport.isolation.assignments.values.map { $0.directory(keptCgroup) }
        #expect(CgroupTestSupport.allRemoved(directories), "\(directories)")
        #expect(!launcher.checkpoints.recordedCgroups.contains(keptCgroup))
    }
}
