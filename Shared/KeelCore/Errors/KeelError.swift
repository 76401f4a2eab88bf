/// The error type thrown by Keel's domain code.
///
/// Every error carries a machine-readable ``Code`` (stable across releases, suitable for
/// mapping onto RPC status codes), a human-readable ``message`` that says what was wrong and
/// what to do about it, and optionally the underlying error that caused it.
package struct KeelError: Error, CustomStringConvertible {
    /// The category of a ``KeelError``; modelled on the gRPC status codes.
    ///
    /// This is a struct wrapping a private enum rather than an enum so that new codes can be
    /// added without breaking exhaustive `switch` statements in callers. Compare codes with
    /// `==`, e.g. `error.code == .notFound`.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Kind: Hashable, Sendable {
            case invalidArgument
            case notFound
            case alreadyExists
            case failedPrecondition
            case permissionDenied
            case unauthenticated
            case resourceExhausted
            case unavailable
            case internalError
        }

        private let kind: Kind

        private init(_ kind: Kind) {
            self.kind = kind
        }

        /// The caller supplied a malformed or out-of-range value; retrying unchanged will fail again.
        package static let invalidArgument = Code(.invalidArgument)
        /// The named entity (task, agent, framework, offer, ...) does not exist.
        package static let notFound = Code(.notFound)
        /// The entity the caller tried to create already exists.
        package static let alreadyExists = Code(.alreadyExists)
        /// The request is well-formed but the system is not in a state that allows it
        /// (e.g. a terminal task asked to run again, or subtracting resources that are not there).
        package static let failedPrecondition = Code(.failedPrecondition)
        /// The caller is known but not allowed to perform the operation.
        package static let permissionDenied = Code(.permissionDenied)
        /// The caller could not be identified (missing or invalid credentials).
        package static let unauthenticated = Code(.unauthenticated)
        /// A quota, capacity or rate limit was exceeded.
        package static let resourceExhausted = Code(.resourceExhausted)
        /// A dependency is temporarily unreachable; retrying later may succeed.
        package static let unavailable = Code(.unavailable)
        /// An invariant inside Keel was broken; this is a bug and should be reported.
        package static let internalError = Code(.internalError)

        /// The code in `SCREAMING_SNAKE_CASE`, as used in logs and wire formats (e.g. `NOT_FOUND`).
        package var description: String {
            switch kind {
            case .invalidArgument: "INVALID_ARGUMENT"
            case .notFound: "NOT_FOUND"
            case .alreadyExists: "ALREADY_EXISTS"
            case .failedPrecondition: "FAILED_PRECONDITION"
            case .permissionDenied: "PERMISSION_DENIED"
            case .unauthenticated: "UNAUTHENTICATED"
            case .resourceExhausted: "RESOURCE_EXHAUSTED"
            case .unavailable: "UNAVAILABLE"
            case .internalError: "INTERNAL"
            }
        }
    }

    /// What kind of failure this is; use it for programmatic handling.
    package var code: Code
    /// A sentence for humans saying what was wrong and what to do; do not parse it.
    package var message: String
    /// The lower-level error that led to this one, if any.
    package var cause: (any Error)?

    /// Creates an error; `message` should say what was wrong and how to fix it.
    package init(code: Code, message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// `CODE: message`, followed by `(caused by: ...)` when there is a cause.
    package var description: String {
        var text = "\(code): \(message)"
        if let cause {
            text += " (caused by: \(cause))"
        }
        return text
    }
}

extension KeelError {
    /// Shorthand for a ``Code/invalidArgument`` error.
    package static func invalidArgument(_ message: String, cause: (any Error)? = nil) -> KeelError {
        KeelError(code: .invalidArgument, message: message, cause: cause)
    }

    /// Shorthand for a ``Code/notFound`` error.
    package static func notFound(_ message: String, cause: (any Error)? = nil) -> KeelError {
        KeelError(code: .notFound, message: message, cause: cause)
    }

    /// Shorthand for an ``Code/alreadyExists`` error.
    package static func alreadyExists(_ message: String, cause: (any Error)? = nil) -> KeelError {
        KeelError(code: .alreadyExists, message: message, cause: cause)
    }

    /// Shorthand for a ``Code/failedPrecondition`` error.
    package static func failedPrecondition(_ message: String, cause: (any Error)? = nil) -> KeelError {
        KeelError(code: .failedPrecondition, message: message, cause: cause)
    }

    /// Shorthand for an ``Code/internalError`` error.
    package static func internalError(_ message: String, cause: (any Error)? = nil) -> KeelError {
        KeelError(code: .internalError, message: message, cause: cause)
    }

    /// The caller is known but not allowed to do this.
    package static func permissionDenied(_ message: String, cause: (any Error)? = nil) -> KeelError {
        KeelError(code: .permissionDenied, message: message, cause: cause)
    }

    /// The caller did not prove who it is.
    package static func unauthenticated(_ message: String, cause: (any Error)? = nil) -> KeelError {
        KeelError(code: .unauthenticated, message: message, cause: cause)
    }

    /// Something needed is temporarily away; retrying later may succeed.
    package static func unavailable(_ message: String, cause: (any Error)? = nil) -> KeelError {
        KeelError(code: .unavailable, message: message, cause: cause)
    }
}
