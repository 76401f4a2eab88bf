package import GRPCCore
package import GRPCNIOTransportHTTP2Posix
import ServiceLifecycle

/// A long-lived gRPC client to another Keel service, run as a `Service`.
///
/// Add it to the daemon's `ServiceGroup` so its connections run for the daemon's lifetime and
/// close on graceful shutdown. Calls made before `run()` starts wait for it.
package struct ManagedClient: Service {
    /// The underlying client; wrap it in a generated `...Client(wrapping:)`.
    package let client: GRPCClient<HTTP2ClientTransport.Posix>
    /// Where it connects.
    package let endpoint: Endpoint

    /// Creates a client for `endpoint`; `token` supplies a bearer token for each call.
    package init(endpoint: Endpoint, token: (@Sendable () -> String?)? = nil) throws {
        self.endpoint = endpoint
        self.client = GRPCClient(
            transport: try makeClientTransport(endpoint),
            interceptors: [ClientCallInterceptor(token: token)]
        )
    }

    package func run() async throws {
        try await withGracefulShutdownHandler {
            try await client.runConnections()
        } onGracefulShutdown: {
            client.beginGracefulShutdown()
        }
    }
}

/// Makes a plaintext HTTP/2 transport to `endpoint` that reconnects with backoff.
package func makeClientTransport(_ endpoint: Endpoint) throws -> HTTP2ClientTransport.Posix {
    var config = HTTP2ClientTransport.Posix.Config.defaults
    config.backoff.initial = .milliseconds(100)
    config.backoff.max = .seconds(2)
    config.connection.maxIdleTime = nil
    return try HTTP2ClientTransport.Posix(
        target: endpoint.dialable.target,
        transportSecurity: .plaintext,
        config: config
    )
}

/// Runs `body` with a short-lived client to `endpoint` (for the CLI and tests).
package func withKeelClient<Result: Sendable>(
    _ endpoint: Endpoint,
    token: (@Sendable () -> String?)? = nil,
    streamID: (@Sendable () -> String?)? = nil,
    isolation: isolated (any Actor)? = #isolation,
    _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Result
) async throws -> Result {
    try await withGRPCClient(
        transport: try makeClientTransport(endpoint),
        interceptors: [ClientCallInterceptor(token: token, streamID: streamID)],
        isolation: isolation,
        handleClient: body
    )
}
