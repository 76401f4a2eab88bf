import Foundation
import KeelAPI
import KeelCore
import KeelRPC
import LauncherCore
import SwiftProtobuf
import Testing

@Suite(
    "TaskManager with cgroups",
    .enabled(if: CgroupTestSupport.available(.memory, .pids, .freezer), CgroupTestSupport.skipReason)
)
struct TaskManagerIsolationTests {
    @Test("a task over its mem is reported TASK_FAILED with reason CONTAINER_LIMITATION_MEMORY")
    func oomReported() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let endpoint = try Endpoint(parsing: "127.0.0.1:1")
        let configuration = LauncherConfiguration(
            broker: endpoint, advertisedAddress: endpoint, workDir: workDir, hostname: "test",
            resources: try Resources(parsing: "cpus:1;mem:1024"), isolation: CgroupTestSupport.isolation,
            cgroupPoolSize: 0)
        let updates = StatusUpdateManager(initialBackoff: .seconds(60), maxBackoff: .seconds(60))
        let manager = TaskManager(
            configuration: configuration, updates: updates, identity: AgentIdentity(), logger: ProcessTestSupport.logger)
        let taskID = "oom-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let key = LauncherTaskKey(frameworkID: "framework-1", taskID: taskID)
        let framework = Keel_V1_FrameworkInfo.with { $0.id.value = key.frameworkID }
        let task = Keel_V1_TaskInfo.with {
            $0.taskID.value = taskID
            $0.command.shell = "head -c 400M /dev/zero | tail > /dev/null"
            $0.resources = (try? Resources(parsing: "cpus:0.5;mem:64"))?.proto ?? []
        }

        let terminal = await withTaskGroup(of: Keel_V1_TaskStatus?.self) { group in
            group.addTask {
                try? await manager.run()
                return nil
            }
            manager.launch(framework: framework, task: task)
            var found: Keel_V1_TaskStatus?
            _ = await ProcessTestSupport.eventually(timeout: .seconds(60)) {
                found = updates.pending(key).first { $0.state.isTerminal }
                return found != nil
            }
            group.cancelAll()
            return found
        }

        let status = try #require(terminal)
        #expect(status.state == .taskFailed)
        #expect(status.reason == .containerLimitationMemory)
        #expect(status.message.contains("64 MiB"), "\(status.message)")
        let leftovers = CgroupTestSupport.isolation.assignments.values.map { isolator in
            isolator.directory("keel-test")
        }.flatMap { root in
            ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix(taskID) }
        }
        #expect(leftovers.isEmpty, "the task's cgroups should be removed: \(leftovers)")
    }
}
