import Foundation
import GRPCCore
import KeelAPI
import KeelRPC
import Synchronization
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The whole system: the real executables on loopback ports, driven through the `keel` CLI as a
/// user would, from `keel up` to every daemon gone.
@Suite("End to end", .serialized)
struct EndToEndTests {
    @Test("a local cluster runs, kills, health-checks and traces tasks, then stops completely")
    func localCluster() async throws {
        let cluster = try await LocalClusterFixture()
        var stopped = false
        defer {
            if !stopped { Issue.record("the cluster was not stopped cleanly") }
        }
        do {
            try await runsATaskToFinished(cluster)
            try await reportsAFailingCommand(cluster)
            try await killsAndHealthChecks(cluster)
            try await tracesATask(cluster)
            try await everyDaemonServesMetricsAndHealth(cluster)
            try await listsState(cluster)
            try await managesRoles(cluster)
            try await tearsDownAFramework(cluster)
        } catch {
            await cluster.stop()
            stopped = true
            throw error
        }
        let pids = cluster.daemonPIDs()
        #expect(pids.count == 5)
        await cluster.stop()
        stopped = true
        #expect(cluster.up.exitStatus == 0)
        try await waitUntil("every daemon process is gone", timeout: .seconds(30)) {
            pids.values.allSatisfy { !processAlive($0) }
        }
    }

    // MARK: Steps

    private func runsATaskToFinished(_ cluster: LocalClusterFixture) async throws {
        let run = try await cluster.keelResult(["run", "--name", "hello", "--", "echo", "hello from keel"])
        #expect(run.exitStatus == 0, "keel run failed: \(run.stderr)")
        #expect(run.stdout == "hello from keel\n")
        #expect(run.stderr.contains("TASK_RUNNING"))
        #expect(run.stderr.contains("TASK_FINISHED"))

        let taskID = try #require(Self.taskID(in: run.stderr))
        let logs = try await cluster.keelResult(["logs", taskID])
        #expect(logs.exitStatus == 0, "keel logs failed: \(logs.stderr)")
        #expect(logs.stdout == "hello from keel\n")
    }

    private func reportsAFailingCommand(_ cluster: LocalClusterFixture) async throws {
        let run = try await cluster.keelResult(["run", "--name", "fails", "--shell", "--", "echo oops >&2; exit 7"])
        #expect(run.exitStatus == 7, "expected exit code 7: \(run.stderr)")
        #expect(run.stderr.contains("TASK_FAILED"))
        #expect(run.stderr.contains("exited with 7"))
    }

    private func killsAndHealthChecks(_ cluster: LocalClusterFixture) async throws {
        // A small HTTP server that ignores SIGTERM and has a child that ignores it too: the kill
        // must still leave no process behind.
        let marker = "keel-e2e-\(UUID().uuidString.prefix(8))"
        let script = """
            trap '' TERM; sleep 3600 & exec python3 -c 'import http.server, signal, sys
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()' $PORT0 \(marker)
            """
        let run = try cluster.keel([
            "run", "--name", "web", "--ports", "1", "--health-http", "/", "--health-interval", "1",
            "--grace-period", "1", "--shell", "--", script,
        ])
        try await run.waitForStderr("(healthy)", timeout: .seconds(90))
        #expect(!processes(containing: marker).isEmpty, "the task's server is not running")
        run.signal(SIGINT)
        let status = try await run.wait(timeout: .seconds(60))
        #expect(run.stderr.contains("TASK_KILLED"), "stderr: \(run.stderr)")
        #expect(status != 0)
        try await waitUntil("no process of the killed task is left", timeout: .seconds(20)) {
            processes(containing: marker).isEmpty && processes(containing: "sleep 3600").allSatisfy { !Self.isDescendant($0, of: cluster) }
        }
    }

    private func tracesATask(_ cluster: LocalClusterFixture) async throws {
        let run = try await cluster.keelResult(["run", "--name", "traced", "--", "true"])
        #expect(run.exitStatus == 0)
        let taskID = try #require(Self.taskID(in: run.stderr))
        let expected = ["offer", "launch", "launcher.start", "status TASK_RUNNING", "status TASK_FINISHED"]
        let latest = LatestOutput()
        do {
            try await waitUntil("the tracer has every hop of \(taskID)", timeout: .seconds(60)) {
                let trace = try await cluster.keelResult(["trace", taskID, "--json"])
                latest.set(trace.stdout + trace.stderr)
                return expected.allSatisfy { trace.stdout.contains("\"\($0)\"") }
            }
        } catch {
            Issue.record("trace incomplete: \(latest.get())")
            throw error
        }
        let table = try await cluster.keelResult(["trace", taskID])
        #expect(table.stdout.contains("keel-broker"))
        #expect(table.stdout.contains("keel-launcher"))
    }

    private func everyDaemonServesMetricsAndHealth(_ cluster: LocalClusterFixture) async throws {
        for daemon in cluster.daemons {
            let url = try #require(URL(string: "http://127.0.0.1:\(daemon.admin)/metrics"))
            let (data, response) = try await URLSession.shared.data(from: url)
            let status = (response as? HTTPURLResponse)?.statusCode
            #expect(status == 200, "\(daemon.name) /metrics answered \(String(describing: status))")
            let text = String(decoding: data, as: UTF8.self)
            #expect(text.contains("# TYPE"), "\(daemon.name) /metrics has no metrics")

            let ready = try #require(URL(string: "http://127.0.0.1:\(daemon.admin)/readyz"))
            let (_, readyResponse) = try await URLSession.shared.data(from: ready)
            #expect((readyResponse as? HTTPURLResponse)?.statusCode == 200, "\(daemon.name) is not ready")

            let health = try await withKeelClient(Endpoint(host: "127.0.0.1", port: daemon.grpc)) { client in
                try await Grpc_Health_V1_Health.Client(wrapping: client).check(Grpc_Health_V1_HealthCheckRequest())
            }
            #expect(health.status == .serving, "\(daemon.name) gRPC health is \(health.status)")
        }
    }

    private func listsState(_ cluster: LocalClusterFixture) async throws {
        let tasks = try await cluster.keelResult(["tasks"])
        #expect(tasks.exitStatus == 0)
        #expect(tasks.stdout.contains("TASK_FINISHED"))
        #expect(tasks.stdout.contains("TASK_FAILED"))
        #expect(tasks.stdout.contains("TASK_KILLED"))
        let agents = try await cluster.keelResult(["agents", "--json"])
        #expect(agents.exitStatus == 0)
        #expect(agents.stdout.contains("\"localhost\""))
        let frameworks = try await cluster.keelResult(["frameworks", "--all"])
        #expect(frameworks.stdout.contains("keel run hello"))
    }

    private func managesRoles(_ cluster: LocalClusterFixture) async throws {
        let agents = try await cluster.keelResult(["agents", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(agents.stdout.utf8)) as? [String: Any]
        let first = (json?["agents"] as? [[String: Any]])?.first
        let agentID = try #require(((first?["agentInfo"] as? [String: Any])?["id"] as? [String: Any])?["value"] as? String)

        #expect(try await cluster.keelResult(["weights", "set", "eng=2"]).exitStatus == 0)
        let quota = try await cluster.keelResult(["quota", "set", "eng", "--guarantee", "cpus:0.1", "--limit", "cpus:1;mem:512"])
        #expect(quota.exitStatus == 0, "keel quota set: \(quota.stderr)")
        let reserve = try await cluster.keelResult(["reserve", agentID, "cpus:0.1;mem:16", "--role", "eng"])
        #expect(reserve.exitStatus == 0, "keel reserve: \(reserve.stderr)")
        #expect(reserve.stdout.contains("cpus(eng):0.1"))

        let roles = try await cluster.keelResult(["roles"])
        let eng = roles.stdout.split(separator: "\n").first { $0.hasPrefix("eng ") }.map(String.init) ?? ""
        #expect(eng.contains(" 2 "), "keel roles: \(roles.stdout)")
        #expect(eng.contains("cpus(eng):0.1"), "keel roles: \(roles.stdout)")
        let shown = try await cluster.keelResult(["quota", "get", "eng"])
        #expect(shown.stdout.contains("cpus:1 mem:512"), "keel quota get: \(shown.stdout)")

        // Bad input: a clear message and a failing exit status; nothing changes.
        let negative = try await cluster.keelResult(["quota", "set", "eng", "--guarantee", "cpus:-1"])
        #expect(negative.exitStatus != 0)
        #expect(negative.stderr.contains("cpus:-1"), "keel quota set: \(negative.stderr)")
        let tooMuch = try await cluster.keelResult(["reserve", agentID, "cpus:100000", "--role", "eng"])
        #expect(tooMuch.exitStatus != 0)
        #expect(tooMuch.stderr.contains("free and unreserved"), "keel reserve: \(tooMuch.stderr)")

        let unreserve = try await cluster.keelResult(["unreserve", agentID, "cpus(eng):0.1;mem(eng):16"])
        #expect(unreserve.exitStatus == 0, "keel unreserve: \(unreserve.stderr)")
        #expect(!unreserve.stdout.contains("(eng)"))
    }

    private func tearsDownAFramework(_ cluster: LocalClusterFixture) async throws {
        let victim = try cluster.keel(["run", "--name", "victim", "--", "sleep", "600"])
        try await victim.waitForStderr("TASK_RUNNING")
        let frameworks = try await cluster.keelResult(["frameworks", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(frameworks.stdout.utf8)) as? [String: Any]
        let entries = (json?["frameworks"] as? [[String: Any]]) ?? []
        let info = entries.compactMap { $0["frameworkInfo"] as? [String: Any] }.first { ($0["name"] as? String)?.hasSuffix("victim") == true }
        let id = try #require((info?["id"] as? [String: Any])?["value"] as? String, "no victim in \(frameworks.stdout)")

        let unknown = try await cluster.keelResult(["teardown", "no-such-framework"])
        #expect(unknown.exitStatus != 0)
        #expect(unknown.stderr.contains("not registered"), "keel teardown: \(unknown.stderr)")

        let teardown = try await cluster.keelResult(["teardown", id])
        #expect(teardown.exitStatus == 0, "keel teardown: \(teardown.stderr)")
        _ = try await victim.wait(timeout: .seconds(60))
        #expect(victim.exitStatus != 0)
        try await waitUntil("the victim's task is killed", timeout: .seconds(60)) {
            let tasks = try await cluster.keelResult(["tasks"])
            return tasks.stdout.split(separator: "\n").contains { $0.contains("victim") && $0.contains("TASK_KILLED") }
        }
    }

    // MARK: Helpers

    /// The task id `keel run` printed ("keel: launching task ID on ...").
    static func taskID(in stderr: String) -> String? {
        for line in stderr.split(separator: "\n") where line.hasPrefix("keel: launching task ") {
            return line.dropFirst("keel: launching task ".count).split(separator: " ").first.map(String.init)
        }
        return nil
    }

    /// Whether `pid` runs under the cluster's data directory (i.e. was started by its launcher).
    static func isDescendant(_ pid: Int32, of cluster: LocalClusterFixture) -> Bool {
        let cwd = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd")) ?? ""
        return cwd.hasPrefix(cluster.dataDir)
    }
}

/// The last output seen, for failure messages.
final class LatestOutput: Sendable {
    private let value = Mutex("")
    func set(_ text: String) { value.withLock { $0 = text } }
    func get() -> String { value.withLock { $0 } }
}
