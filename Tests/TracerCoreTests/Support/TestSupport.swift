import Foundation
import GRPCCore
import GRPCInProcessTransport
import KeelAPI
import Logging
import TracerCore

/// A fresh directory under the system temp directory, removed by ``remove()``.
struct TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("tracer-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// The span store file inside the directory.
    var storePath: String { url.appendingPathComponent("tracer.sqlite").path }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}

/// A logger that discards everything, so test output stays readable.
let quietLogger = Logger(label: "keel.tracer.tests") { _ in SwiftLogNoOpLogHandler() }

/// Opens a span store on a new temp file, runs `body`, then always closes the store and removes the file.
func withSpanStore<T>(
    configuration: TracerConfiguration = .defaults,
    _ body: (SpanStore, TemporaryDirectory) async throws -> T
) async throws -> T {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let store = try await SpanStore.open(path: directory.storePath, configuration: configuration, logger: quietLogger)
    do {
        let result = try await body(store, directory)
        try await store.close()
        return result
    } catch {
        try? await store.close()
        throw error
    }
}

/// The tracer's two services on an in-process gRPC server, with clients for both.
struct TracerHarness {
    let store: SpanStore
    let traces: Opentelemetry_Proto_Collector_Trace_V1_TraceService.Client<InProcessTransport.Client>
    let tracer: Keel_V1_Tracer.Client<InProcessTransport.Client>
}

/// Runs the OTLP receiver and the query service over `InProcessTransport` against a temp store.
func withTracer<T>(
    configuration: TracerConfiguration = .defaults,
    _ body: (TracerHarness) async throws -> T
) async throws -> T {
    try await withSpanStore(configuration: configuration) { store, _ in
        let inProcess = InProcessTransport()
        let server = GRPCServer(
            transport: inProcess.server,
            services: [
                OTLPReceiver(store: store, logger: quietLogger),
                TracerQueryService(store: store, configuration: configuration, logger: quietLogger),
            ]
        )
        let client = GRPCClient(transport: inProcess.client)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            group.addTask { try await client.runConnections() }
            let harness = TracerHarness(
                store: store,
                traces: .init(wrapping: client),
                tracer: .init(wrapping: client)
            )
            let result: Result<T, any Error>
            do {
                result = .success(try await body(harness))
            } catch {
                result = .failure(error)
            }
            client.beginGracefulShutdown()
            server.beginGracefulShutdown()
            try await group.waitForAll()
            return try result.get()
        }
    }
}

/// Runs `body` and returns the `RPCError` it threw, or nil if it succeeded or threw something else.
func rpcError(_ body: () async throws -> Void) async -> RPCError? {
    do {
        try await body()
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        return nil
    }
}
