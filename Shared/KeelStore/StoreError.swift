/// The error every ``KeyValueStore`` operation throws.
///
/// Callers branch on ``code``; ``message`` is written for the operator reading a log line and says
/// what went wrong and what to do about it; ``cause`` keeps the underlying backend error, if any.
package struct StoreError: Error, CustomStringConvertible {
    /// A stable, backend-independent classification of a ``StoreError``.
    ///
    /// Wraps a private enum so that new codes can be added without breaking exhaustive switches.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: Hashable, Sendable {
            case invalidArgument
            case conflict
            case notFound
            case compacted
            case unavailable
            case internalError
        }

        private let wrapped: Wrapped

        private init(_ wrapped: Wrapped) {
            self.wrapped = wrapped
        }

        /// The request itself is malformed (bad key, oversized value, overlapping transaction ops).
        /// Retrying the same request will fail again.
        package static let invalidArgument = Code(.invalidArgument)

        /// A compare-and-swap or transaction precondition did not hold; nothing was written.
        /// Re-read the key and retry with the fresh revision.
        package static let conflict = Code(.conflict)

        /// A referenced entity (lease, key) does not exist, e.g. an expired or revoked lease.
        package static let notFound = Code(.notFound)

        /// A watch asked for history that is no longer retained (or the watcher fell too far behind).
        /// Re-read the current state with `range(prefix:)` and watch again from that revision.
        package static let compacted = Code(.compacted)

        /// The store cannot serve requests right now (closed, disk gone, I/O failure). Retry later.
        package static let unavailable = Code(.unavailable)

        /// An invariant was broken or the backend failed unexpectedly. Not retryable; report it.
        package static let internalError = Code(.internalError)

        /// The code's name, e.g. `conflict`.
        package var description: String {
            switch self.wrapped {
            case .invalidArgument: "invalidArgument"
            case .conflict: "conflict"
            case .notFound: "notFound"
            case .compacted: "compacted"
            case .unavailable: "unavailable"
            case .internalError: "internalError"
            }
        }
    }

    /// What kind of failure this is.
    package var code: Code

    /// What went wrong and what the caller or operator should do.
    package var message: String

    /// The underlying error (for example an SQLite error), if there is one.
    package var cause: (any Error)?

    /// Creates an error with a code, a human-readable message and an optional underlying cause.
    package init(code: Code, message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// `code: message (cause: …)`.
    package var description: String {
        if let cause {
            return "\(self.code): \(self.message) (cause: \(String(describing: cause)))"
        }
        return "\(self.code): \(self.message)"
    }
}

extension StoreError {
    /// An ``Code/invalidArgument`` error.
    package static func invalidArgument(_ message: String) -> StoreError {
        StoreError(code: .invalidArgument, message: message)
    }

    /// A ``Code/conflict`` error.
    package static func conflict(_ message: String) -> StoreError {
        StoreError(code: .conflict, message: message)
    }

    /// A ``Code/notFound`` error.
    package static func notFound(_ message: String) -> StoreError {
        StoreError(code: .notFound, message: message)
    }

    /// A ``Code/compacted`` error.
    package static func compacted(_ message: String) -> StoreError {
        StoreError(code: .compacted, message: message)
    }

    /// A ``Code/unavailable`` error.
    package static func unavailable(_ message: String, cause: (any Error)? = nil) -> StoreError {
        StoreError(code: .unavailable, message: message, cause: cause)
    }

    /// An ``Code/internalError`` error.
    package static func internalError(_ message: String, cause: (any Error)? = nil) -> StoreError {
        StoreError(code: .internalError, message: message, cause: cause)
    }
}
