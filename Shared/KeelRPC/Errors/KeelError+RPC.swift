package import GRPCCore
package import KeelCore

extension KeelError {
    /// The gRPC status this error is reported with at the RPC edge.
    package var rpcCode: RPCError.Code {
        switch code {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .failedPrecondition: .failedPrecondition
        case .permissionDenied: .permissionDenied
        case .unauthenticated: .unauthenticated
        case .resourceExhausted: .resourceExhausted
        case .unavailable: .unavailable
        default: .internalError
        }
    }

    /// This error as an `RPCError` whose message tells the caller what was wrong.
    package var rpcError: RPCError {
        RPCError(code: rpcCode, message: message, cause: cause)
    }
}

/// Runs an RPC handler body and turns a thrown `KeelError` into the matching `RPCError`.
///
/// Other errors pass through unchanged (grpc-swift reports them as `INTERNAL`).
package func mappingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as KeelError {
        throw error.rpcError
    }
}
