package import GRPCCore
import GRPCNIOTransportHTTP2Posix
package import Logging
import ServiceLifecycle

/// A Keel daemon's gRPC server on its main port, run as a `Service`.
///
/// Every server carries the standard `grpc.health.v1.Health` service and the
/// ``ServerCallInterceptor``. `onListening` is called once the port is bound (with the bound
/// address, useful when the configured port is 0); daemons use it to report readiness.
package struct RPCServer: Service {
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let endpoint: Endpoint
    private let logger: Logger
    private let onListening: @Sendable (Endpoint) async throws -> Void

    /// The health service registered on this server; set statuses on it.
    package let health: HealthService

    /// Creates the server. Nothing is bound until `run()`.
    package init(
        serviceName: String,
        endpoint: Endpoint,
        services: [any RegistrableRPCService],
        health: HealthService = HealthService(),
        interceptors: [ConditionalInterceptor<any ServerInterceptor>] = [],
        logger: Logger,
        onListening: @escaping @Sendable (Endpoint) async throws -> Void = { _ in }
    ) {
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.rpc.maxRequestPayloadSize = 16 * 1024 * 1024
        let transport = HTTP2ServerTransport.Posix(
            address: endpoint.bindAddress,
            transportSecurity: .plaintext,
            config: config
        )
        self.server = GRPCServer(
            transport: transport,
            services: services + [health],
            interceptorPipeline: [.apply(ServerCallInterceptor(serviceName: serviceName, logger: logger), to: .all)]
                + interceptors
        )
        self.endpoint = endpoint
        self.logger = logger
        self.health = health
        self.onListening = onListening
    }

    /// How long in-flight calls may take to finish after graceful shutdown begins before they
    /// are cancelled (long-lived streams end on their own; this bounds any that do not).
    package static let drainTimeout: Duration = .seconds(10)

    private enum Outcome: Sendable {
        case served
        case drainTimedOut
    }

    /// Serves until graceful shutdown, then drains in-flight calls for at most
    /// ``drainTimeout`` before cancelling what is left.
    package func run() async throws {
        try await withThrowingTaskGroup(of: Outcome.self) { group in
            group.addTask {
                do {
                    try await withGracefulShutdownHandler {
                        try await server.serve()
                    } onGracefulShutdown: {
                        health.shutDown()
                        server.beginGracefulShutdown()
                    }
                } catch is CancellationError {
                    // Cancelled after the drain timeout: a normal end.
                }
                return .served
            }
            group.addTask {
                guard let address = try await server.listeningAddress, let port = address.port else {
                    throw RPCError(code: .unavailable, message: "the gRPC server on \(endpoint) did not start listening")
                }
                let bound = Endpoint(host: endpoint.host, port: port)
                logger.info("grpc listening", metadata: ["keel.address": "\(bound)"])
                try await onListening(bound)
                try await gracefulShutdown()
                try await Task.sleep(for: Self.drainTimeout)
                return .drainTimedOut
            }
            while let outcome = try await group.next() {
                switch outcome {
                case .served:
                    group.cancelAll()
                    return
                case .drainTimedOut:
                    logger.warning("calls still open after the drain timeout; cancelling them")
                    group.cancelAll()
                }
            }
        }
    }
}
