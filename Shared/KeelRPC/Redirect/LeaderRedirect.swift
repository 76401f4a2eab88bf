package import GRPCCore

/// How a Keel service that is not the leader sends callers to the one that is.
///
/// A follower answers with status `UNAVAILABLE` and the trailing metadata `keel-leader: host:port`
/// naming the leader's gRPC address; a client that sees it repeats the call there. Without the
/// key, `UNAVAILABLE` means what it always means (try again later, same address).
package enum LeaderRedirect {
    /// The metadata key that carries the leader's `host:port`.
    package static let metadataKey = "keel-leader"

    /// The error a follower answers with: `UNAVAILABLE`, naming `leader` in the metadata.
    package static func error(leader: Endpoint, message: String? = nil) -> RPCError {
        var metadata = Metadata()
        metadata.addString(leader.description, forKey: metadataKey)
        return RPCError(
            code: .unavailable,
            message: message ?? "this node is not the leader; the leader is at \(leader)",
            metadata: metadata
        )
    }

    /// The leader named by `error`, if it is a redirect with a parsable address.
    package static func leader(in error: any Error) -> Endpoint? {
        guard let error = error as? RPCError, error.code == .unavailable else { return nil }
        for value in error.metadata[stringValues: metadataKey] {
            if let endpoint = try? Endpoint(parsing: value) { return endpoint }
        }
        return nil
    }
}

/// Answers every call with a ``LeaderRedirect`` while `leader()` names another node.
///
/// Install it in front of the services a follower must not serve; when `leader()` returns nil
/// (this node leads, or nobody does yet) calls pass through.
package struct LeaderRedirectInterceptor: ServerInterceptor {
    private let leader: @Sendable () -> Endpoint?

    /// Creates the interceptor; `leader` is asked on every call.
    package init(leader: @escaping @Sendable () -> Endpoint?) {
        self.leader = leader
    }

    package func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        if let leader = leader() { throw LeaderRedirect.error(leader: leader) }
        return try await next(request, context)
    }
}
