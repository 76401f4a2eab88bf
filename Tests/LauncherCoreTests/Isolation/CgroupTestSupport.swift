import Foundation
@preconcurrency import Glibc
import LauncherCore
import Logging
import Testing

/// Shared helpers for the cgroup tests: one detection per test run, and task cgroups that are
/// always destroyed (processes killed, directories removed), also when a test fails.
enum CgroupTestSupport {
    /// The node's isolation, detected once, under a root of its own so tests never touch the
    /// cgroups of a running launcher.
    static let isolation = NodeIsolation.detect(
        settings: NodeIsolation.Settings(root: "keel-test", maxProcessesPerTask: 256), logger: ProcessTestSupport.logger)

    /// Whether `controllers` are all enforced through cgroups here (root, writable hierarchies).
    static func available(_ controllers: CgroupController...) -> Bool {
        controllers.allSatisfy { isolation.assignments[$0] != nil }
    }

    /// Why a cgroup test is skipped: printed by the `.enabled(if:)` trait.
    static let skipReason: Comment =
        "needs writable cgroup hierarchies for memory, pids and freezer (run as root with cgroups mounted read-write)"

    /// Runs `body` with a fresh task cgroup and always destroys it afterwards; returns whether
    /// the destroy removed every directory, so tests can assert it.
    static func withCgroup(
        _ name: String, limits: TaskResourceLimits,
        _ body: (TaskCgroup) async throws -> Void
    ) async throws -> (directories: [String], removed: Bool) {
        let unique = "\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard let cgroup = try isolation.makeTaskCgroup(name: unique, limits: limits, logger: ProcessTestSupport.logger)
        else {
            throw LauncherError(code: .internalError, message: "no cgroup was created although cgroups are available")
        }
        do {
            try await body(cgroup)
        } catch {
            await cgroup.destroy()
            throw error
        }
        let removed = await cgroup.destroy()
        return (cgroup.directories, removed)
    }

    /// Launches `command` in `sandbox` inside `cgroup`.
    static func launch(_ command: TaskCommand, in sandbox: TaskSandbox, cgroup: TaskCgroup) throws -> TaskProcess {
        let spec = TaskLaunchSpec(command: command, environment: ProcessTestSupport.environment, sandbox: sandbox)
        return try TaskProcess.launch(spec, cgroup: cgroup, logger: ProcessTestSupport.logger)
    }

    /// Whether every directory in `directories` is gone.
    static func allRemoved(_ directories: [String]) -> Bool {
        directories.allSatisfy { !FileManager.default.fileExists(atPath: $0) }
    }
}
