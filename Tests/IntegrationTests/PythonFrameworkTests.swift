import Foundation
import Testing

/// A framework written in Python with stubs generated from Protos/ (grpcio) runs a task on a
/// real cluster: the API is usable from any language over HTTP/2.
@Suite("Python framework")
struct PythonFrameworkTests {
    @Test("the Python example framework runs tasks to TASK_FINISHED and TASK_FAILED with their exit codes")
    func pythonFramework() async throws {
        let check = try ChildProcess("/usr/bin/env", ["python3", "-c", "import grpc, grpc_tools"])
        guard try await check.wait(timeout: .seconds(60)) == 0 else {
            Issue.record("python3 with grpcio and grpcio-tools is needed: pip install grpcio grpcio-tools (\(check.stderr))")
            return
        }
        let cluster = try await LocalClusterFixture()
        do {
            let script = Self.repositoryRoot() + "/Examples/python-framework/framework.py"
            let arguments = ["--registry", "127.0.0.1:\(cluster.basePort + 2)", "--broker", "127.0.0.1:\(cluster.basePort)"]

            let finished = try ChildProcess("/usr/bin/env", ["python3", script] + arguments + ["--", "echo", "hello"])
            let finishedStatus = try await finished.wait(timeout: .seconds(120))
            #expect(finishedStatus == 0, "stderr: \(finished.stderr)")
            #expect(finished.stderr.contains("TASK_RUNNING"))
            #expect(finished.stderr.contains("TASK_FINISHED"))

            let failed = try ChildProcess("/usr/bin/env", ["python3", script] + arguments + ["--", "sh", "-c", "exit 3"])
            let failedStatus = try await failed.wait(timeout: .seconds(120))
            #expect(failedStatus == 3, "stderr: \(failed.stderr)")
            #expect(failed.stderr.contains("TASK_FAILED"))
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    /// The repository root: the folder above Tests/ holding Package.swift.
    static func repositoryRoot(file: String = #filePath) -> String {
        var url = URL(fileURLWithPath: file).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
            url.deleteLastPathComponent()
        }
        return FileManager.default.currentDirectoryPath
    }
}
