import Foundation
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Operator access to a running task through the real cluster: `keel exec`, `keel ls`, `keel cat`.
@Suite("Operator access", .serialized)
struct ExecTests {
    @Test("keel exec runs a command in a running task's cgroups and environment; keel ls and cat read its sandbox")
    func execIntoRunningTask() async throws {
        let cluster = try await LocalClusterFixture()
        let marker = "keel-exec-task-\(UUID().uuidString.prefix(8))"
        var run: ChildProcess?
        do {
            let sleeper = try cluster.keel(["run", "--name", "sleeper", "--shell", "--", "echo up; sleep 600; echo \(marker)"])
            run = sleeper
            try await sleeper.waitForStderr("TASK_RUNNING", timeout: .seconds(90))
            let taskID = try #require(EndToEndTests.taskID(in: sleeper.stderr))
            try await waitUntil("the task's shell runs", timeout: .seconds(30)) { !Self.taskProcesses(marker, cluster).isEmpty }

            try await runsInTheTask(cluster, taskID: taskID, marker: marker)
            try await passesStandardInput(cluster, taskID: taskID)
            try await killsTheCommandWhenTheClientGoes(cluster, taskID: taskID)
            try await refusesBadRequests(cluster, taskID: taskID)
            try await readsTheSandbox(cluster, taskID: taskID)

            sleeper.signal(SIGINT)
            _ = try await sleeper.wait(timeout: .seconds(60))
            try await refusesAnEndedTask(cluster, taskID: taskID)
        } catch {
            run?.signal(SIGKILL)
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    // MARK: Steps

    private func runsInTheTask(_ cluster: LocalClusterFixture, taskID: String, marker: String) async throws {
        let exec = try await cluster.keelResult([
            "exec", taskID, "--", "/bin/sh", "-c", "cat /proc/self/cgroup; echo \"task=$KEEL_TASK_ID\"; pwd; echo oops >&2; exit 3",
        ])
        #expect(exec.exitStatus == 3, "keel exec: \(exec.stderr)")
        #expect(exec.stdout.contains("task=\(taskID)\n"), "stdout: \(exec.stdout)")
        #expect(exec.stderr.contains("oops"), "stderr: \(exec.stderr)")
        #expect(exec.stdout.contains("/\(taskID)/"), "the working directory is not the sandbox: \(exec.stdout)")

        // Every cgroup of the task's shell (the task's supervisor is outside them) is the exec's.
        let taskPID = try #require(Self.taskProcesses(marker, cluster).first { pid in
            let commandLine = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()
            return !String(decoding: commandLine, as: UTF8.self).contains("keel-task-supervisor")
        })
        let taskCgroups = try String(contentsOfFile: "/proc/\(taskPID)/cgroup", encoding: .utf8)
            .split(separator: "\n").filter { $0.contains("/keel/") }
        #expect(!taskCgroups.isEmpty, "the task has no keel cgroup")
        for line in taskCgroups {
            #expect(exec.stdout.contains(line + "\n"), "the exec is not in the task's cgroup \(line): \(exec.stdout)")
        }
    }

    private func passesStandardInput(_ cluster: LocalClusterFixture, taskID: String) async throws {
        // The command stops after one line rather than at end of input: while tests run in
        // parallel, a sibling process started meanwhile can hold the write end of this test's
        // stdin pipe, so end of input may come late.
        let child = try ChildProcess(
            "\(cluster.binDir)/keel", ["exec", "-i", taskID, "--", "/bin/sh", "-c", "read line; echo \"got: $line\""],
            environment: cluster.environment, stdin: "hello from stdin\n")
        let status = try await child.wait(timeout: .seconds(60))
        #expect(status == 0, "keel exec -i: \(child.stderr)")
        #expect(child.stdout == "got: hello from stdin\n")
    }

    private func killsTheCommandWhenTheClientGoes(_ cluster: LocalClusterFixture, taskID: String) async throws {
        let marker = "keel-exec-orphan-\(UUID().uuidString.prefix(8))"
        let exec = try cluster.keel(["exec", taskID, "--", "/bin/sh", "-c", "echo started >&2; sleep 300; echo \(marker)"])
        try await exec.waitForStderr("started", timeout: .seconds(60))
        #expect(!Self.taskProcesses(marker, cluster).isEmpty, "the exec'd command is not running")
        exec.signal(SIGKILL)
        _ = try await exec.wait(timeout: .seconds(30))
        try await waitUntil("the exec'd command is killed once its client is gone", timeout: .seconds(30)) {
            Self.taskProcesses(marker, cluster).isEmpty
        }
    }

    private func refusesBadRequests(_ cluster: LocalClusterFixture, taskID: String) async throws {
        let unknown = try await cluster.keelResult(["exec", "no-such-task", "--", "true"])
        #expect(unknown.exitStatus != 0)
        #expect(unknown.stderr.contains("no-such-task is not known"), "stderr: \(unknown.stderr)")

        let empty = try await cluster.keelResult(["exec", taskID])
        #expect(empty.exitStatus != 0)
        #expect(empty.stderr.contains("give the command after --"), "stderr: \(empty.stderr)")

        let missing = try await cluster.keelResult(["exec", taskID, "--", "no-such-program-\(taskID)"])
        #expect(missing.exitStatus != 0)
        #expect(missing.stderr.contains("no-such-program"), "stderr: \(missing.stderr)")
    }

    private func readsTheSandbox(_ cluster: LocalClusterFixture, taskID: String) async throws {
        let list = try await cluster.keelResult(["ls", taskID])
        #expect(list.exitStatus == 0, "keel ls: \(list.stderr)")
        #expect(list.stdout.contains("stdout"), "keel ls: \(list.stdout)")
        #expect(list.stdout.contains("stderr"), "keel ls: \(list.stdout)")

        let cat = try await cluster.keelResult(["cat", taskID, "stdout"])
        #expect(cat.exitStatus == 0, "keel cat: \(cat.stderr)")
        #expect(cat.stdout == "up\n")

        for path in ["../../../../../../etc/passwd", "/etc/passwd"] {
            let escape = try await cluster.keelResult(["cat", taskID, path])
            #expect(escape.exitStatus != 0, "keel cat \(path) was not refused")
            #expect(escape.stderr.contains("escapes the sandbox"), "keel cat \(path): \(escape.stderr)")
            #expect(!escape.stdout.contains("root:"))
        }
        let listUp = try await cluster.keelResult(["ls", taskID, ".."])
        #expect(listUp.exitStatus != 0)
        #expect(listUp.stderr.contains("escapes the sandbox"), "keel ls ..: \(listUp.stderr)")
    }

    /// Live processes with `marker` in their command line that run in the cluster's sandboxes
    /// (not the `keel` CLI that passed the marker along).
    static func taskProcesses(_ marker: String, _ cluster: LocalClusterFixture) -> [Int32] {
        processes(containing: marker).filter { EndToEndTests.isDescendant($0, of: cluster) }
    }

    private func refusesAnEndedTask(_ cluster: LocalClusterFixture, taskID: String) async throws {
        let exec = try await cluster.keelResult(["exec", taskID, "--", "true"])
        #expect(exec.exitStatus != 0)
        #expect(exec.stderr.contains("has ended"), "stderr: \(exec.stderr)")
    }
}
