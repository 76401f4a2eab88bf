import GRPCCore
import HealthCore
import KeelAPI
import KeelRPC
import Synchronization
import Testing

@Suite("LauncherClientPool: pooled HTTP/2 clients of launchers")
struct LauncherClientPoolTests {
    @Test("pings reach a launcher over HTTP/2 and reuse one client per endpoint")
    func pingsAndReuse() async throws {
        let launcher = FakeLauncher(agentID: "a1")
        let bound = Mutex<Int?>(nil)
        let server = RPCServer(
            serviceName: "test-launcher", endpoint: Endpoint(host: "127.0.0.1", port: 0), services: [launcher],
            logger: Fixtures.logger, onListening: { endpoint in bound.withLock { $0 = endpoint.port } }
        )
        let pool = LauncherClientPool(idleTimeout: .seconds(60))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            group.addTask { try await pool.run() }
            let listening = await eventually { bound.withLock { $0 } != nil }
            try #require(listening)
            let endpoint = Endpoint(host: "127.0.0.1", port: try #require(bound.withLock { $0 }))
            var options = CallOptions.defaults
            options.timeout = .seconds(60)
            for _ in 0..<2 {
                let response = try await pool.launcher(at: endpoint).ping(Keel_V1_PingRequest(), options: options)
                #expect(response.agentID.value == "a1")
            }
            #expect(launcher.pings == 2)
            #expect(pool.count == 1)
            group.cancelAll()
        }
    }

    @Test("a call to a launcher that is not there fails fast with UNAVAILABLE")
    func unreachable() async throws {
        let pool = LauncherClientPool(idleTimeout: .seconds(60))
        let (refusing, port) = try LoopbackServer.refusingPort()
        defer { LoopbackServer.closeDescriptor(refusing) }
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            var options = CallOptions.defaults
            options.timeout = .seconds(60)
            options.waitForReady = false
            let error = await #expect(throws: RPCError.self) {
                try await pool.launcher(at: Endpoint(host: "127.0.0.1", port: port)).ping(Keel_V1_PingRequest(), options: options)
            }
            #expect(error?.code == .unavailable)
            group.cancelAll()
        }
    }

    @Test("clients unused for the idle timeout are closed when another is asked for")
    func idle() async throws {
        let pool = LauncherClientPool(idleTimeout: .zero)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            _ = try pool.launcher(at: Endpoint(host: "127.0.0.1", port: 7001))
            _ = try pool.launcher(at: Endpoint(host: "127.0.0.1", port: 7002))
            let pruned = await eventually { pool.count == 1 }
            #expect(pruned)
            group.cancelAll()
        }
    }
}
