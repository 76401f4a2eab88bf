import Foundation
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `KEEL_CONCURRENCY_EXECUTOR` chooses where a daemon runs its Swift concurrency work.
@Suite("concurrency executor")
struct ConcurrencyExecutorTests {
    private func startRegistry(executor: String, in directory: URL, notify: NotifySocket) throws -> ChildProcess {
        try SystemdNotifyTests.startRegistry(
            dataDirectory: directory.appendingPathComponent("data-\(executor)"), notify: notify,
            environment: ["KEEL_CONCURRENCY_EXECUTOR": executor])
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
        try await SystemdNotifyTests.expectReadyThenStop(registry, notify: socket)
    }
}
