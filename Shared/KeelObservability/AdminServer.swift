import Hummingbird
package import Logging
import NIOCore
package import Prometheus
import ServiceLifecycle
import Synchronization

/// The admin HTTP/1.1 endpoint every daemon serves on its own port: `/metrics` (Prometheus text
/// format), `/healthz` (the process is alive) and `/readyz` (the daemon is ready to serve).
package struct AdminServer: Service {
    private let application: Application<RouterResponder<BasicRequestContext>>

    /// Creates the server; `onListening` receives the bound port (useful with port 0).
    package init(
        host: String,
        port: Int,
        registry: PrometheusCollectorRegistry,
        readiness: Readiness,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        let router = Router()
        router.get("metrics") { _, _ -> Response in
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer))
            )
        }
        router.get("healthz") { _, _ -> String in
            "ok\n"
        }
        router.get("readyz") { _, _ -> Response in
            let (ready, reason) = readiness.state
            return Response(
                status: ready ? .ok : .serviceUnavailable,
                body: ResponseBody(byteBuffer: ByteBuffer(string: ready ? "ready\n" : "not ready: \(reason)\n"))
            )
        }
        var adminLogger = logger
        adminLogger.logLevel = max(logger.logLevel, .notice)
        self.application = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "keel-admin"),
            onServerRunning: { channel in
                logger.info("admin http listening", metadata: ["keel.address": "\(host):\(channel.localAddress?.port ?? port)"])
                await onListening(channel.localAddress?.port ?? port)
            },
            logger: adminLogger
        )
    }

    package func run() async throws {
        try await application.run()
    }
}

/// Whether a daemon is ready to serve, as reported by `/readyz` and to systemd.
package final class Readiness: Sendable {
    private let storage = Mutex<(Bool, String)>((false, "starting"))

    /// Creates a not-ready readiness.
    package init() {}

    /// Whether the daemon is ready, and if not, why.
    package var state: (ready: Bool, reason: String) {
        storage.withLock { $0 }
    }

    /// Marks the daemon ready.
    package func markReady() {
        storage.withLock { $0 = (true, "") }
    }

    /// Marks the daemon not ready, saying why.
    package func markNotReady(_ reason: String) {
        storage.withLock { $0 = (false, reason) }
    }
}
