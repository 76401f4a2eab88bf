package import GRPCCore
import Tracing

/// Carries the current trace context to the callee (W3C `traceparent`) and, when given, the
/// caller's bearer token.
package struct ClientCallInterceptor: ClientInterceptor {
    private let token: (@Sendable () -> String?)?
    private let streamID: (@Sendable () -> String?)?

    /// Creates the interceptor. `token` is asked for the bearer token on every call, and
    /// `streamID` for the framework's current subscription (sent as `keel-stream-id`).
    package init(token: (@Sendable () -> String?)? = nil, streamID: (@Sendable () -> String?)? = nil) {
        self.token = token
        self.streamID = streamID
    }

    package func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>,
        context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        if let current = ServiceContext.current {
            InstrumentationSystem.instrument.inject(current, into: &request.metadata, using: MetadataInjector())
        }
        if let token = token?(), !token.isEmpty {
            request.metadata.replaceOrAddString("Bearer \(token)", forKey: "authorization")
        }
        if let streamID = streamID?(), !streamID.isEmpty {
            request.metadata.replaceOrAddString(streamID, forKey: RequestAuth.streamIDKey)
        }
        return try await next(request, context)
    }
}

extension Metadata {
    /// The bearer token of the `authorization` header, if any.
    package var bearerToken: String? {
        for value in self[stringValues: "authorization"] {
            let prefix = "Bearer "
            if value.hasPrefix(prefix) { return String(value.dropFirst(prefix.count)) }
        }
        return nil
    }
}
