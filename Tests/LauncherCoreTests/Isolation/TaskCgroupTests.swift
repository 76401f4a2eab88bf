import Foundation
@preconcurrency import Glibc
import LauncherCore
import Testing

@Suite(
    "Task cgroups with real processes",
    .enabled(if: CgroupTestSupport.available(.memory, .pids, .freezer), CgroupTestSupport.skipReason)
)
struct TaskCgroupTests {
    @Test("the process is inside every cgroup before its command runs, with the limits written")
    func joinsBeforeExec() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let limits = TaskResourceLimits(memoryMiB: 96, cpus: 0.25, maxProcesses: 77)
        let result = try await CgroupTestSupport.withCgroup("join", limits: limits) { cgroup in
            let process = try CgroupTestSupport.launch(.argv(["cat", "/proc/self/cgroup"]), in: sandbox, cgroup: cgroup)
            let status = try await process.wait()
            #expect(status == .exited(code: 0))
            let membership = ProcessTestSupport.contents(sandbox.stdoutPath) ?? ""
            #expect(membership.split(separator: "\n").filter { $0.hasSuffix("/" + cgroup.path) }.count >= 3, "\(membership)")
            let memoryDir = try #require(cgroup.directory(for: .memory))
            let pidsDir = try #require(cgroup.directory(for: .pids))
            let memoryFile = memoryDir + (memoryDir.contains("/memory/") ? "/memory.limit_in_bytes" : "/memory.max")
            #expect(ProcessTestSupport.contents(memoryFile)?.hasPrefix("\(96 * 1_048_576)") == true)
            #expect(ProcessTestSupport.contents(pidsDir + "/pids.max")?.hasPrefix("77") == true)
            #expect(cgroup.endRecord().memoryLimitation == nil)
        }
        #expect(result.removed)
        #expect(CgroupTestSupport.allRemoved(result.directories))
    }

    @Test(
        "a hard CPU limit writes the CFS quota for the task's cpus",
        .enabled(if: CgroupTestSupport.available(.cpu), CgroupTestSupport.skipReason)
    )
    func hardCPULimit() async throws {
        var limits = TaskResourceLimits(memoryMiB: 64, cpus: 0.25, maxProcesses: 16)
        limits.hardCPULimit = true
        #expect(limits.cfsQuotaMicros == 25_000)
        _ = try await CgroupTestSupport.withCgroup("cfs", limits: limits) { cgroup in
            let cpuDir = try #require(cgroup.directory(for: .cpu))
            if FileManager.default.fileExists(atPath: cpuDir + "/cpu.cfs_quota_us") {
                #expect(ProcessTestSupport.contents(cpuDir + "/cpu.cfs_quota_us")?.hasPrefix("25000") == true)
                #expect(ProcessTestSupport.contents(cpuDir + "/cpu.cfs_period_us")?.hasPrefix("100000") == true)
            } else {
                #expect(ProcessTestSupport.contents(cpuDir + "/cpu.max")?.hasPrefix("25000 100000") == true)
            }
        }
    }

    @Test("a memory hog over its 64 MiB limit is OOM-killed and reported with limit and peak")
    func memoryHog() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let limits = TaskResourceLimits(memoryMiB: 64, cpus: 1, maxProcesses: 64)
        let result = try await CgroupTestSupport.withCgroup("oom", limits: limits) { cgroup in
            // `tail` keeps the whole newline-free stream in memory: 400 MiB, far over the limit.
            let process = try CgroupTestSupport.launch(
                .argv(["/bin/sh", "-c", "head -c 400M /dev/zero | tail > /dev/null"]), in: sandbox, cgroup: cgroup)
            let status = try await process.wait()
            #expect(status != .exited(code: 0), "the hog should not survive its limit")
            let limitation = try #require(cgroup.endRecord().memoryLimitation)
            let record = cgroup.endRecord()
            #expect(record.memoryLimitation == limitation)
            #expect(await !cgroup.isReusable(known: record.readings), "an OOM kill on record is not handed to the next task")
            #expect(limitation.limitBytes == 64 * 1_048_576)
            #expect(limitation.oomKills >= 1)
            if let peak = limitation.peakBytes {
                #expect(peak > 32 * 1_048_576 && peak <= 64 * 1_048_576)
            }
            #expect(limitation.description.contains("64 MiB"))
        }
        #expect(result.removed)
        #expect(CgroupTestSupport.allRemoved(result.directories))
    }

    @Test("a fork bomb is stopped by the pids limit and the machine can still start processes")
    func forkBomb() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let limits = TaskResourceLimits(memoryMiB: 256, cpus: 1, maxProcesses: 20)
        let result = try await CgroupTestSupport.withCgroup("forkbomb", limits: limits) { cgroup in
            // Bounded so that a broken limit cannot hurt the machine: at most 300 sleeps.
            let script = "i=0; while [ $i -lt 300 ]; do sleep 1000 & i=$((i+1)); done; echo all > spawned; wait"
            let process = try CgroupTestSupport.launch(.shell(script), in: sandbox, cgroup: cgroup)
            let pidsDir = try #require(cgroup.directory(for: .pids))
            let refused = await ProcessTestSupport.eventually {
                let events = ProcessTestSupport.contents(pidsDir + "/pids.events") ?? ""
                return events.split(separator: "\n").contains { $0.hasPrefix("max ") && $0 != "max 0" }
            }
            #expect(refused, "the kernel should have refused forks at pids.max")
            #expect(cgroup.pids.count <= 20)
            #expect(!FileManager.default.fileExists(atPath: sandbox.root + "/spawned"))
            // Outside the cgroup, processes still start.
            let outside = try ProcessTestSupport.launch(.argv(["true"]), in: sandbox)
            let outsideStatus = try await outside.wait()
            #expect(outsideStatus == .exited(code: 0))
            _ = await process.terminate(gracePeriod: .milliseconds(100))
            let empty = await cgroup.killAll()
            #expect(empty)
            #expect(cgroup.pids.isEmpty)
        }
        #expect(result.removed)
        #expect(CgroupTestSupport.allRemoved(result.directories))
    }

    @Test("a tree ignoring SIGTERM, with a double-forked setsid child, is fully killed via the cgroup")
    func stubbornTree() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let limits = TaskResourceLimits(memoryMiB: 128, cpus: 1, maxProcesses: 64)
        let result = try await CgroupTestSupport.withCgroup("stubborn", limits: limits) { cgroup in
            let script = """
                trap '' TERM
                sh -c 'echo $$ > child.tmp; mv child.tmp child.pid; exec sleep 1000' &
                ( setsid sh -c 'echo $$ > escaped.tmp; mv escaped.tmp escaped.pid; exec sleep 1000' & )
                wait
                """
            let process = try CgroupTestSupport.launch(.shell(script), in: sandbox, cgroup: cgroup)
            let child = try #require(await ProcessTestSupport.waitForPid(in: sandbox.root + "/child.pid"))
            let escaped = try #require(await ProcessTestSupport.waitForPid(in: sandbox.root + "/escaped.pid"))
            let escapedGroup = ProcessTestSupport.processGroup(of: escaped)
            #expect(escapedGroup != nil && escapedGroup != process.pid, "the escaped child must have left the group")
            #expect(cgroup.pids.contains(escaped))

            let status = await process.terminate(gracePeriod: .milliseconds(300))

            #expect(status == .signaled(signal: SIGKILL, coreDumped: false))
            let allDead = await ProcessTestSupport.eventually {
                ProcessTestSupport.isDead(child) && ProcessTestSupport.isDead(escaped)
            }
            #expect(allDead)
            #expect(cgroup.pids.isEmpty)
        }
        #expect(result.removed)
        #expect(CgroupTestSupport.allRemoved(result.directories))
    }
}
