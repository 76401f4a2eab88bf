import Foundation
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The launcher's checkpoint and recovery with the real executables: tasks survive a `kill -9`
/// of keel-launcher and their true outcome still reaches the framework (`keel run`).
@Suite("Launcher recovery", .serialized)
struct LauncherRecoveryTests {
    @Test("after kill -9 of the launcher, tasks keep running and their true exit codes are delivered")
    func killNineAndRestart() async throws {
        let marker = "keel-recovery-\(UUID().uuidString.prefix(8))"
        let gates = FileManager.default.temporaryDirectory.appendingPathComponent(marker).path
        try FileManager.default.createDirectory(atPath: gates, withIntermediateDirectories: true)
        let cluster = try await DaemonClusterFixture(launcherResources: "cpus:4;mem:4096")
        do {
            try await recover(cluster, gates: gates, marker: marker)
        } catch {
            await cleanUp(cluster, gates: gates, marker: marker)
            throw error
        }
        await cleanUp(cluster, gates: gates, marker: marker)
    }

    private func recover(_ cluster: DaemonClusterFixture, gates: String, marker: String) async throws {
        // Each task writes its pid, then waits for its gate file and exits with its code.
        func run(_ name: String, code: Int32) throws -> ChildProcess {
            let script = "echo $$ > '\(gates)/\(name).pid'; while [ ! -e '\(gates)/\(name)' ]; do sleep 0.1; done; "
                + "echo \(name) done; exit \(code) # \(marker)"
            return try cluster.keel(["run", "--name", name, "--cpus", "0.1", "--mem", "32", "--shell", "--", script])
        }
        // The task's own `$$` is its pid in its PID namespace where the launcher gives it one, so
        // its pid on the node is found by its command line: the shell running the script (not the
        // supervisor or `keel run`, whose arguments hold the script too).
        @Sendable func pid(_ name: String) throws -> Int32 {
            guard FileManager.default.fileExists(atPath: "\(gates)/\(name).pid") else {
                throw TestFailure("\(name) has not started yet")
            }
            let shells = processes(containing: "\(gates)/\(name).pid").filter { pid in
                let commandLine = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()
                return String(decoding: commandLine.prefix { $0 != 0 }, as: UTF8.self) == "/bin/sh"
            }
            guard shells.count == 1, let pid = shells.first else {
                throw TestFailure("expected one shell running task \(name), found \(shells)")
            }
            return pid
        }
        let spanning = try run("spanning", code: 3)
        let finishing = try run("finishing", code: 0)
        let endsWhileDown = try run("ends-while-down", code: 5)
        for run in [spanning, finishing, endsWhileDown] {
            try await run.waitForStderr("TASK_RUNNING", timeout: .seconds(120))
        }
        try await waitUntil("every task wrote its pid", timeout: .seconds(30)) {
            ["spanning", "finishing", "ends-while-down"].allSatisfy { (try? pid($0)) != nil }
        }
        let pids = try ["spanning", "finishing", "ends-while-down"].map(pid)
        let agentsBefore = try await agentIDs(cluster)
        #expect(agentsBefore.count == 1, "\(agentsBefore)")

        try await cluster.killLauncher()
        #expect(pids.allSatisfy(processAlive), "every task outlives a kill -9 of its launcher")

        try FileManager.default.createDirectory(atPath: "\(gates)/ends-while-down", withIntermediateDirectories: false)
        try await waitUntil("the task gated on ends-while-down exits", timeout: .seconds(30)) { !processAlive(pids[2]) }
        #expect(endsWhileDown.exitStatus == nil, "nothing is reported while the launcher is down")

        try await cluster.startLauncher()
        let restartedLog = cluster.launcherLog
        #expect(restartedLog.contains("re-attaching as the same agent"), "\(restartedLog)")
        let agentsAfter = try await agentIDs(cluster)
        #expect(agentsAfter == agentsBefore, "the restarted launcher is the same agent")

        // The task that ended while the launcher was down: its exit code arrives after the restart.
        let downStatus = try await endsWhileDown.wait(timeout: .seconds(60))
        #expect(downStatus == 5, "keel run should exit with the task's code 5: \(endsWhileDown.stderr)")
        #expect(endsWhileDown.stderr.contains("TASK_FAILED"), "\(endsWhileDown.stderr)")
        #expect(endsWhileDown.stdout.contains("ends-while-down done"), "\(endsWhileDown.stdout)")

        // The two others were re-attached and are still running under the new launcher.
        #expect(processAlive(pids[0]) && processAlive(pids[1]))
        #expect(spanning.exitStatus == nil && finishing.exitStatus == nil)
        for name in ["spanning", "finishing"] {
            try FileManager.default.createDirectory(atPath: "\(gates)/\(name)", withIntermediateDirectories: false)
        }
        let spanningStatus = try await spanning.wait(timeout: .seconds(60))
        #expect(spanningStatus == 3, "\(spanning.stderr)")
        #expect(spanning.stderr.contains("TASK_FAILED"), "\(spanning.stderr)")
        #expect(spanning.stderr.contains("exited with 3"), "\(spanning.stderr)")
        let finishingStatus = try await finishing.wait(timeout: .seconds(60))
        #expect(finishingStatus == 0, "\(finishing.stderr)")
        #expect(finishing.stderr.contains("TASK_FINISHED"), "\(finishing.stderr)")
        #expect(finishing.stdout.contains("finishing done"), "\(finishing.stdout)")
    }

    /// The ids of the agents the broker knows, from `keel agents --json`.
    private func agentIDs(_ cluster: DaemonClusterFixture) async throws -> [String] {
        let agents = try cluster.keel(["agents", "--json"])
        try await agents.wait(timeout: .seconds(60))
        guard agents.exitStatus == 0,
            let object = try JSONSerialization.jsonObject(with: Data(agents.stdout.utf8)) as? [String: Any],
            let list = object["agents"] as? [[String: Any]]
        else {
            throw TestFailure("keel agents --json failed: \(agents.stderr)\n\(agents.stdout)")
        }
        return list.compactMap { (($0["agentInfo"] as? [String: Any])?["id"] as? [String: Any])?["value"] as? String }
    }

    private func cleanUp(_ cluster: DaemonClusterFixture, gates: String, marker: String) async {
        await cluster.stop()
        for pid in processes(containing: marker) {
            kill(pid, SIGKILL)
        }
        try? FileManager.default.removeItem(atPath: gates)
    }
}
