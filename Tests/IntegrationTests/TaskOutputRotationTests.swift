import Foundation
import Testing

/// The launcher caps task output by rotating its files, and `keel run` (which follows the task's
/// stdout with TailLog) still prints every line across the rotations.
@Suite("Task output rotation")
struct TaskOutputRotationTests {
    @Test("keel run prints every line of a task whose stdout is rotated while it is followed")
    func followsAcrossRotations() async throws {
        let cluster = try await DaemonClusterFixture(
            launcherResources: "cpus:2;mem:2048",
            launcherEnvironment: ["KEEL_TASK_LOG_MAX_SIZE": "8K", "KEEL_TASK_LOG_MAX_FILES": "2"])
        do {
            // About 28 KiB in 100 paced bursts: several rotations of 8 KiB files during the run.
            let script = """
                i=1; while [ $i -le 1000 ]; do echo "line $i of the rotation test"; \
                [ $((i % 10)) = 0 ] && sleep 0.1; i=$((i+1)); done; true
                """
            let run = try cluster.keel(["run", "--name", "chatty", "--cpus", "0.1", "--mem", "32", "--shell", "--", script])
            let status = try await run.wait(timeout: .seconds(120))
            #expect(status == 0, "\(run.stderr)")
            let expected = (1...1000).map { "line \($0) of the rotation test\n" }.joined()
            #expect(run.stdout == expected, "every line once, in order (\(run.stdout.count) of \(expected.count) bytes)")
            #expect(run.stderr.contains("TASK_FINISHED"), "\(run.stderr)")
            // Only the newest two files of at most 8 KiB are left in the sandbox.
            let sandboxes = "\(cluster.dataDir)/launcher/sandboxes"
            let files = FileManager.default.enumerator(atPath: sandboxes)?.compactMap { $0 as? String } ?? []
            let outputs = files.filter { ($0 as NSString).lastPathComponent.hasPrefix("stdout") }
            #expect(outputs.map { ($0 as NSString).lastPathComponent }.sorted() == ["stdout", "stdout.1"], "\(outputs)")
            for path in outputs {
                let size = (try FileManager.default.attributesOfItem(atPath: "\(sandboxes)/\(path)")[.size] as? NSNumber)?.intValue
                #expect((size ?? 0) <= 8192, "\(path): \(size ?? -1) bytes")
            }
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}
