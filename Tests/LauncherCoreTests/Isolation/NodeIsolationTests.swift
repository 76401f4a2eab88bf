import Foundation
@preconcurrency import Glibc
import LauncherCore
import Testing

@Suite("Node isolation detection and limits")
struct NodeIsolationTests {
    @Test("limits convert mem and cpus into cgroup values")
    func limitConversion() {
        let limits = TaskResourceLimits(memoryMiB: 64, cpus: 0.5, maxProcesses: 100)
        #expect(limits.memoryBytes == 64 * 1_048_576)
        #expect(limits.cpuShares == 512)
        #expect(limits.cpuWeight == 1 + 510 * 9_999 / 262_142)
        let none = TaskResourceLimits(memoryMiB: 0, cpus: nil, maxProcesses: nil)
        #expect(none.memoryBytes == nil)
        #expect(none.cpuShares == nil)
        #expect(TaskResourceLimits(memoryMiB: nil, cpus: 0.001, maxProcesses: nil).cpuShares == 2)
    }

    @Test("capabilities name the mechanism of every controller in effect")
    func capabilities() {
        let isolation = CgroupTestSupport.isolation
        let capabilities = isolation.capabilities
        #expect(capabilities.first == "isolation:process-group")
        for (controller, isolator) in isolation.assignments {
            #expect(capabilities.contains("\(isolator.mechanism):\(controller)"))
        }
        for controller in isolation.rlimitFallbacks {
            #expect(capabilities.contains("rlimits:\(controller)"))
            #expect(isolation.assignments[controller] == nil)
        }
        #expect(NodeIsolation.processGroupOnly.capabilities == ["isolation:process-group"])
    }

    @Test("without cgroups, memory and pids fall back to prlimit rlimits")
    func rlimitFallback() async throws {
        let isolation = NodeIsolation(
            settings: NodeIsolation.Settings(useCgroups: false), assignments: [:], prlimitPath: "/usr/bin/prlimit")
        #expect(isolation.rlimitFallbacks == [.memory, .pids])
        #expect(isolation.capabilities == ["isolation:process-group", "rlimits:memory", "rlimits:pids"])
        let limits = TaskResourceLimits(memoryMiB: 64, cpus: 1, maxProcesses: 50)
        let cgroup = try #require(try isolation.makeTaskCgroup(name: "t", limits: limits, logger: ProcessTestSupport.logger))
        #expect(cgroup.directories.isEmpty)
        guard access("/usr/bin/prlimit", X_OK) == 0 else { return }
        // The task sees the rlimits that stand in for the missing controllers.
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let process = try CgroupTestSupport.launch(
            .shell("ulimit -v > limits; cat /proc/self/limits | grep 'Max processes' >> limits"), in: sandbox,
            cgroup: cgroup)
        let status = try await process.wait()
        #expect(status == .exited(code: 0))
        let text = ProcessTestSupport.contents(sandbox.root + "/limits") ?? ""
        #expect(text.hasPrefix("\(64 * 1024)\n"), "RLIMIT_AS should be 64 MiB in KiB: \(text)")
        #expect(text.contains("50"), "RLIMIT_NPROC should be 50: \(text)")
    }
}
