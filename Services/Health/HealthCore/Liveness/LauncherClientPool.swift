import GRPCCore
import GRPCNIOTransportHTTP2Posix
package import KeelAPI
import KeelCore
package import KeelRPC
import ServiceLifecycle
import Synchronization

/// Gives out clients of the launcher APIs of agents.
package protocol LauncherConnector: Sendable {
    /// A client of the launcher at `endpoint`.
    ///
    /// - Throws: `KeelError.unavailable` when the connector has shut down.
    func launcher(at endpoint: KeelRPC.Endpoint) throws -> any Keel_V1_Launcher.ClientProtocol
}

/// Long-lived gRPC connections to launchers, one per endpoint, run as a `Service`.
///
/// A client is made on first use and its connections run as a child task of ``run()``; clients
/// unused for the idle timeout are shut down the next time any client is asked for.
package final class LauncherClientPool: LauncherConnector, Service {
    private struct Entry {
        var client: GRPCClient<HTTP2ClientTransport.Posix>
        var lastUsed: ContinuousClock.Instant
    }

    private struct State {
        var entries: [KeelRPC.Endpoint: Entry] = [:]
        var closed = false
    }

    private let state = Mutex(State())
    private let idleTimeout: Duration
    private let started: AsyncStream<GRPCClient<HTTP2ClientTransport.Posix>>
    private let start: AsyncStream<GRPCClient<HTTP2ClientTransport.Posix>>.Continuation

    /// Creates an empty pool; clients close after `idleTimeout` without use.
    package init(idleTimeout: Duration) {
        self.idleTimeout = idleTimeout
        (started, start) = AsyncStream.makeStream()
    }

    /// The pooled client of `endpoint`, made on first use; also closes idle clients.
    package func launcher(at endpoint: KeelRPC.Endpoint) throws -> any Keel_V1_Launcher.ClientProtocol {
        let now = ContinuousClock.now
        let (client, idle): (GRPCClient<HTTP2ClientTransport.Posix>, [GRPCClient<HTTP2ClientTransport.Posix>]) = try state.withLock { state in
            guard !state.closed else { throw KeelError.unavailable("keel-health is shutting down; no new launcher calls") }
            var idle: [GRPCClient<HTTP2ClientTransport.Posix>] = []
            for (key, entry) in state.entries where key != endpoint && now - entry.lastUsed > idleTimeout {
                idle.append(entry.client)
                state.entries[key] = nil
            }
            if var entry = state.entries[endpoint] {
                entry.lastUsed = now
                state.entries[endpoint] = entry
                return (entry.client, idle)
            }
            let client = GRPCClient(transport: try makeClientTransport(endpoint.dialable), interceptors: [ClientCallInterceptor()])
            state.entries[endpoint] = Entry(client: client, lastUsed: now)
            start.yield(client)
            return (client, idle)
        }
        for client in idle { client.beginGracefulShutdown() }
        return Keel_V1_Launcher.Client(wrapping: client)
    }

    /// How many launcher clients are open.
    package var count: Int {
        state.withLock { $0.entries.count }
    }

    /// Runs the connections of every client until graceful shutdown, then closes them all.
    package func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await client in started {
                    group.addTask {
                        try? await client.runConnections()
                        self.forget(client)
                    }
                }
            }
        } onGracefulShutdown: {
            self.close()
        }
    }

    /// Stops handing out clients and shuts every client down.
    private func close() {
        let clients = state.withLock { state in
            state.closed = true
            defer { state.entries.removeAll() }
            return state.entries.values.map(\.client)
        }
        start.finish()
        for client in clients { client.beginGracefulShutdown() }
    }

    /// Drops the entry of a client whose connections ended.
    private func forget(_ client: GRPCClient<HTTP2ClientTransport.Posix>) {
        state.withLock { state in
            for (key, entry) in state.entries where entry.client === client {
                state.entries[key] = nil
            }
        }
    }
}
