import Foundation
import Testing

/// The `keel-job-runner` example, a framework written only with KeelSDK, against a real local
/// cluster: it runs every task to completion, retries failures, and reports what happened.
@Suite("Job runner example")
struct JobRunnerTests {
    @Test("five tasks, one of which fails once, all finish; the failed one on its second attempt")
    func retriesToCompletion() async throws {
        try await withCluster { cluster, directory in
            let marker = directory.appendingPathComponent("failed-once").path
            // Task 2 fails the first time (leaving the marker) and succeeds when run again.
            let script = "if [ \"$KEEL_JOB_INDEX\" = 2 ] && [ ! -e '\(marker)' ]; then touch '\(marker)'; exit 3; fi; echo ok"
            let runner = try runJobRunner(cluster, ["--tasks", "5", "--parallel", "2", "--retries", "2", "--shell", "--", script])
            let status = try await runner.wait(timeout: .seconds(240))
            #expect(status == 0, "stdout:\n\(runner.stdout)\nstderr:\n\(runner.stderr)")
            #expect(runner.stdout.contains("5 of 5 tasks finished, 0 failed"), "\(runner.stdout)")
            #expect(runner.stdout.contains("task 2: taskFinished after 2 attempt(s)"), "\(runner.stdout)")
            #expect(runner.stdout.contains("task 0: taskFinished after 1 attempt(s)"), "\(runner.stdout)")
            #expect(runner.stderr.contains("task 2 ended taskFailed (attempt 1); retrying"), "\(runner.stderr)")
            #expect(FileManager.default.fileExists(atPath: marker))
        }
    }

    @Test("a task that always fails is given up after its retries, and the runner exits non-zero")
    func givesUp() async throws {
        try await withCluster { cluster, _ in
            let runner = try runJobRunner(cluster, ["--tasks", "2", "--parallel", "2", "--retries", "1", "--", "false"])
            let status = try await runner.wait(timeout: .seconds(240))
            #expect(status == 1, "stdout:\n\(runner.stdout)\nstderr:\n\(runner.stderr)")
            #expect(runner.stdout.contains("0 of 2 tasks finished, 2 failed"), "\(runner.stdout)")
            #expect(runner.stdout.contains("task 1: taskFailed after 2 attempt(s)"), "\(runner.stdout)")
        }
    }

    /// Starts the runner against `cluster`.
    private func runJobRunner(_ cluster: LocalClusterFixture, _ arguments: [String]) throws -> ChildProcess {
        try ChildProcess(
            "\(cluster.binDir)/keel-job-runner",
            ["--registry", "127.0.0.1:\(cluster.basePort + 2)", "--broker", "127.0.0.1:\(cluster.basePort)"] + arguments
        )
    }

    /// Runs `body` with a local cluster and a temporary directory; both are gone afterwards,
    /// also when `body` fails.
    private func withCluster(_ body: (LocalClusterFixture, URL) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keel-job-runner-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cluster = try await LocalClusterFixture()
        do {
            try await body(cluster, directory)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}
