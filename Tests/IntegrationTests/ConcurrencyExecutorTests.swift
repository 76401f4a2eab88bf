import Foundation
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `KEEL_CONCURRENCY_EXECUTOR` chooses where a daemon runs its Swift concurrency work.
@Suite("concurrency executor")
struct ConcurrencyExecutorTests {
    private func startRegistry(executor: String, in directory: URL, notify: NotifySocket) throws -> ChildProcess {
        try ChildProcess(
            "\(LocalClusterFixture.buildDirectory())/keel-registry",
            [],
            environment: [
                "NOTIFY_SOCKET": notify.path,
                "KEEL_CONCURRENCY_EXECUTOR": executor,
                "KEEL_LISTEN": "127.0.0.1:0",
                "KEEL_ADMIN_LISTEN": "127.0.0.1:0",
                "KEEL_DATA_DIR": directory.appendingPathComponent("data-\(executor)").path,
                "KEEL_EXIT_WITH_PARENT": "1",
            ]
        )
    }

    @Test("an unknown executor is refused with exit 64 and a message naming the choices")
    func unknownExecutor() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keel-executor-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let socket = try NotifySocket(path: directory.appendingPathComponent("notify").path)
        defer { socket.close() }

        let registry = try startRegistry(executor: "threads", in: directory, notify: socket)
        let status = try await registry.wait(timeout: .seconds(60))
        #expect(status == 64)
        #expect(registry.stderr.contains("KEEL_CONCURRENCY_EXECUTOR='threads' is not an executor: use eventloops (the default) or dispatch"))
        #expect(!socket.received().contains("READY=1"))
    }

    @Test("both executors serve", arguments: ["dispatch", "eventloops"])
    func bothExecutorsServe(executor: String) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keel-executor-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let socket = try NotifySocket(path: directory.appendingPathComponent("notify").path)
        defer { socket.close() }

        let registry = try startRegistry(executor: executor, in: directory, notify: socket)
        try await waitUntil("keel-registry sends READY=1", timeout: .seconds(60)) {
            if registry.exitStatus != nil { throw TestFailure("keel-registry exited:\n\(registry.stderr)") }
            return socket.received().contains("READY=1")
        }
        registry.signal(SIGTERM)
        let status = try await registry.wait(timeout: .seconds(30))
        #expect(status == 0, "keel-registry exited with \(status): \(registry.stderr)")
    }
}
