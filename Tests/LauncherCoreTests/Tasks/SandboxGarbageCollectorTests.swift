import Foundation
@preconcurrency import Glibc
import KeelAPI
import LauncherCore
import KeelRPC
import SwiftProtobuf
import Testing

@Suite("Sandbox garbage collection")
struct SandboxGarbageCollectorTests {
    static let framework = Keel_V1_FrameworkInfo.with { $0.id.value = "fw-1" }

    static func key(_ id: String) -> LauncherTaskKey {
        LauncherTaskKey(frameworkID: "fw-1", taskID: id)
    }

    /// Runs `script` as task `id` to its end and acknowledges all its updates, as the broker would.
    static func runToEnd(_ id: String, _ script: String, on launcher: LauncherUnderTest, acknowledge: Bool = true) async throws {
        launcher.manager.launch(framework: framework, task: .with {
            $0.taskID.value = id
            $0.command.shell = script
        })
        let terminal = await launcher.waitForUpdate(key(id)) { $0.state.isTerminal }
        #expect(terminal?.state == .taskFinished, "\(terminal?.message ?? "no terminal update")")
        guard acknowledge else { return }
        for update in launcher.updates.pending(key(id)) {
            _ = launcher.updates.acknowledge(frameworkID: "fw-1", taskID: id, uuid: update.uuid)
        }
        #expect(launcher.updates.pending(key(id)).isEmpty)
    }

    /// The bytes of every regular file under `path`.
    static func bytes(under path: String) -> Int {
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total = 0
        for case let name as String in walker {
            let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/" + name)
            if attributes?[.type] as? FileAttributeType == .typeRegular {
                total += (attributes?[.size] as? NSNumber)?.intValue ?? 0
            }
        }
        return total
    }

    @Test("sandboxes of ended tasks go after the age, with the task; running and unacknowledged ones stay")
    func byAge() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        let gate = workDir + "/gate"
        defer {
            // The manager stops without touching its tasks: end them here, also on failure.
            ProcessTestSupport.killProcesses(mentioning: workDir)
            ProcessTestSupport.removeTree(workDir)
        }
        let launcher = try LauncherUnderTest(workDir: workDir)
        try await launcher.running {
            try await Self.runToEnd("t-done", "echo done", on: launcher)
            try await Self.runToEnd("t-unacked", "echo done", on: launcher, acknowledge: false)
            launcher.manager.launch(framework: Self.framework, task: .with {
                $0.taskID.value = "t-running"
                $0.command.shell = "while [ ! -e '\(gate)' ]; do sleep 0.05; done"
            })
            #expect(await launcher.waitForUpdate(Self.key("t-running")) { $0.state == .taskRunning } != nil)
            // A sandbox left by an earlier agent, known to no task, last changed long ago, and a fresh one.
            let stale = workDir + "/sandboxes/fw-old/t-old/run-1"
            let fresh = workDir + "/sandboxes/fw-old/t-new/run-1"
            for path in [stale, fresh] {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                try ProcessTestSupport.write("output", to: path + "/stdout")
            }
            let longAgo = Date(timeIntervalSinceNow: -3 * 86400)
            for path in [stale + "/stdout", stale] {
                try FileManager.default.setAttributes([.modificationDate: longAgo], ofItemAtPath: path)
            }

            let done = try #require(launcher.manager.container(taskID: "t-done")?.sandbox?.root)
            let unacked = try #require(launcher.manager.container(taskID: "t-unacked")?.sandbox?.root)
            let running = try #require(launcher.manager.container(taskID: "t-running")?.sandbox?.root)
            // An acknowledged end already dropped the task's checkpoint; the unacknowledged one keeps it.
            #expect(launcher.checkpoints.record(Self.key("t-done")) == nil)
            #expect(launcher.checkpoints.record(Self.key("t-unacked")) != nil)

            let collector = SandboxGarbageCollector(
                workDir: workDir, settings: .init(maxAge: .seconds(86400), diskWatermark: 1), tasks: launcher.manager,
                logger: ProcessTestSupport.logger)
            // Nothing is a day old yet but the stale sandbox.
            let first = collector.collect()
            #expect(first.map(\.path) == [stale])
            #expect(first.first?.reason == .age)
            #expect(!FileManager.default.fileExists(atPath: workDir + "/sandboxes/fw-old/t-old"))
            #expect(FileManager.default.fileExists(atPath: fresh))

            // Two days later: the ended, acknowledged task goes with its checkpoint and container.
            let later = collector.collect(now: Date(timeIntervalSinceNow: 2 * 86400))
            #expect(Set(later.map(\.path)) == [done, fresh])
            #expect(!FileManager.default.fileExists(atPath: done))
            await launcher.checkpoints.flush()
            #expect(launcher.checkpoints.record(Self.key("t-done")) == nil)
            #expect(
                !TaskCheckpointStore.read(workDir: workDir, logger: ProcessTestSupport.logger).records
                    .contains { $0.key == Self.key("t-done") })
            #expect(launcher.manager.container(taskID: "t-done") == nil)
            for kept in [unacked, running] {
                #expect(FileManager.default.fileExists(atPath: kept + "/stdout"), "\(kept) is kept")
            }
            #expect(launcher.checkpoints.record(Self.key("t-unacked")) != nil)
            #expect(launcher.checkpoints.record(Self.key("t-running")) != nil)
        }
    }

    @Test("under disk pressure the oldest ended sandboxes go first, until usage is below the watermark")
    func diskPressure() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        let gate = workDir + "/gate"
        defer {
            // The manager stops without touching its tasks: end them here, also on failure.
            ProcessTestSupport.killProcesses(mentioning: workDir)
            ProcessTestSupport.removeTree(workDir)
        }
        let launcher = try LauncherUnderTest(workDir: workDir)
        try await launcher.running {
            // Each ended task leaves 100 000 bytes of output; they end in this order.
            let output = "head -c 100000 /dev/zero"
            for id in ["t-1", "t-2", "t-3"] {
                try await Self.runToEnd(id, output, on: launcher)
            }
            launcher.manager.launch(framework: Self.framework, task: .with {
                $0.taskID.value = "t-running"
                $0.command.shell = "\(output); while [ ! -e '\(gate)' ]; do sleep 0.05; done"
            })
            #expect(await launcher.waitForUpdate(Self.key("t-running")) { $0.state == .taskRunning } != nil)
            let roots = try ["t-1", "t-2", "t-3", "t-running"].map { id in
                try #require(launcher.manager.container(taskID: id)?.sandbox?.root)
            }
            #expect(await ProcessTestSupport.eventually { Self.bytes(under: roots[3]) >= 100_000 })

            // A small disk of 500 000 bytes holding just the sandboxes: 80 % full now.
            let sandboxes = workDir + "/sandboxes"
            let collector = SandboxGarbageCollector(
                workDir: workDir, settings: .init(maxAge: .seconds(30 * 86400), diskWatermark: 0.5),
                tasks: launcher.manager, logger: ProcessTestSupport.logger,
                diskUsage: { _ in Double(Self.bytes(under: sandboxes)) / 500_000 })
            let removed = collector.collect()
            #expect(removed.map(\.path) == [roots[0], roots[1]], "oldest first, until at most 50 % is used")
            #expect(removed.allSatisfy { $0.reason == .diskPressure })
            #expect(FileManager.default.fileExists(atPath: roots[2]))
            #expect(FileManager.default.fileExists(atPath: roots[3]))

            // Even a disk that stays full never costs a running task its sandbox.
            let full = SandboxGarbageCollector(
                workDir: workDir, settings: .init(maxAge: .seconds(30 * 86400), diskWatermark: 0),
                tasks: launcher.manager, logger: ProcessTestSupport.logger, diskUsage: { _ in 1 })
            #expect(full.collect().map(\.path) == [roots[2]])
            #expect(FileManager.default.fileExists(atPath: roots[3] + "/stdout"))
        }
    }

    @Test("the file system usage of a real path is a fraction")
    func fileSystemUsage() throws {
        let usage = try #require(SandboxGarbageCollector.fileSystemUsage(of: NSTemporaryDirectory()))
        #expect(usage > 0 && usage <= 1)
        #expect(SandboxGarbageCollector.fileSystemUsage(of: "/no/such/keel/path") == nil)
    }
}
