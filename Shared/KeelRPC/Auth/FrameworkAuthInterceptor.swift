package import GRPCCore
import JWTKit
import KeelCore

/// The verified claims of the framework token of the call being handled, if any.
package enum RequestAuth {
    /// Set by ``FrameworkAuthInterceptor`` for the duration of a call (and its response stream).
    @TaskLocal package static var claims: FrameworkClaims?
    /// The verified token itself, for a service that calls another on the framework's behalf
    /// (the broker forwarding UpdateFramework to the registry).
    @TaskLocal package static var token: String?
    /// The `keel-stream-id` metadata of the call: which subscription of the framework it
    /// comes from (see `Event.Subscribed.stream_id`).
    @TaskLocal package static var streamID: String?

    /// The metadata key that carries ``streamID``.
    package static let streamIDKey = "keel-stream-id"
}

/// Verifies the `authorization: Bearer <token>` of every call to the services it is applied to
/// and makes the claims available as ``RequestAuth/claims``.
///
/// A call with a token that does not verify fails with `UNAUTHENTICATED` before the handler
/// runs; so does a call without a token unless the interceptor was made with
/// `requiresToken: false` (the handler then sees no claims and authenticates the caller another
/// way).
package struct FrameworkAuthInterceptor: ServerInterceptor {
    private let verifier: TokenVerifier
    private let requiresToken: Bool

    /// Creates the interceptor.
    package init(verifier: TokenVerifier, requiresToken: Bool = true) {
        self.verifier = verifier
        self.requiresToken = requiresToken
    }

    package func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        guard let token = request.metadata.bearerToken else {
            guard requiresToken else { return try await next(request, context) }
            throw RPCError(
                code: .unauthenticated,
                message: "missing framework token: register with keel-registry and send 'authorization: Bearer <token>'"
            )
        }
        let claims: FrameworkClaims
        do {
            claims = try await verifier.verify(token)
        } catch let error as KeelError {
            throw error.rpcError
        }
        var streamID: String?
        for value in request.metadata[stringValues: RequestAuth.streamIDKey] {
            streamID = value
            break
        }
        return try await RequestAuth.$claims.withValue(claims) {
            try await RequestAuth.$token.withValue(token) {
                try await RequestAuth.$streamID.withValue(streamID) {
                    var response = try await next(request, context)
                    if case .success(var contents) = response.accepted {
                        let producer = contents.producer
                        contents.producer = { writer in
                            try await RequestAuth.$claims.withValue(claims) { try await producer(writer) }
                        }
                        response.accepted = .success(contents)
                    }
                    return response
                }
            }
        }
    }
}

/// Checks that the call's token speaks for `frameworkID`.
///
/// - Throws: `KeelError` `.permissionDenied` when the token is for another framework, and
///   `.unauthenticated` when the call carried no verified token.
package func requireFramework(_ frameworkID: String) throws {
    guard let claims = RequestAuth.claims else {
        throw KeelError(code: .unauthenticated, message: "this call needs a framework token")
    }
    guard claims.sub.value == frameworkID else {
        throw KeelError(
            code: .permissionDenied,
            message: "the token is for framework \(claims.sub.value), not \(frameworkID); use the token issued for this framework"
        )
    }
}
