@preconcurrency import Glibc

/// The error type thrown by the launcher's process machinery (sandboxes, users, task processes).
///
/// Every error carries a machine-readable ``Code``, a human-readable ``message`` that says what
/// was wrong and what to do about it, and optionally the lower-level error that caused it
/// (usually a ``SystemCallError`` naming the failed call and its `errno`).
package struct LauncherError: Error, CustomStringConvertible {
    /// The category of a ``LauncherError``.
    ///
    /// A struct wrapping a private enum rather than an enum, so that new codes can be added
    /// without breaking exhaustive `switch` statements in callers. Compare with `==`,
    /// e.g. `error.code == .launchFailed`.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Kind: Hashable, Sendable {
            case invalidArgument
            case notFound
            case permissionDenied
            case launchFailed
            case fetchFailed
            case internalError
        }

        private let kind: Kind

        private init(_ kind: Kind) {
            self.kind = kind
        }

        /// The caller supplied a malformed value (empty argv, bad ID, path escaping the sandbox
        /// by syntax); retrying unchanged will fail again.
        package static let invalidArgument = Code(.invalidArgument)
        /// A named file, directory or user does not exist.
        package static let notFound = Code(.notFound)
        /// The operation is not allowed: a path escapes the sandbox, or the launcher lacks the
        /// privilege it needs (e.g. switching users without running as root).
        package static let permissionDenied = Code(.permissionDenied)
        /// The task's process could not be started (missing or non-executable program,
        /// `posix_spawn` failure); the task should be reported as failed.
        package static let launchFailed = Code(.launchFailed)
        /// A task's artifact could not be fetched into its sandbox (unreachable or missing source,
        /// HTTP error, checksum mismatch, failed extraction); the task fails with
        /// REASON_FETCHER_FAILED.
        package static let fetchFailed = Code(.fetchFailed)
        /// An unexpected system failure or broken invariant inside the launcher.
        package static let internalError = Code(.internalError)

        /// The code in `SCREAMING_SNAKE_CASE`, as used in logs (e.g. `LAUNCH_FAILED`).
        package var description: String {
            switch kind {
            case .invalidArgument: "INVALID_ARGUMENT"
            case .notFound: "NOT_FOUND"
            case .permissionDenied: "PERMISSION_DENIED"
            case .launchFailed: "LAUNCH_FAILED"
            case .fetchFailed: "FETCH_FAILED"
            case .internalError: "INTERNAL"
            }
        }
    }

    /// What kind of failure this is; use it for programmatic handling.
    package var code: Code
    /// A sentence for humans saying what was wrong and what to do; do not parse it.
    package var message: String
    /// The lower-level error that led to this one, if any (often a ``SystemCallError``).
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

/// A failed system call: which call, on what, and the `errno` it set.
///
/// Used as the ``LauncherError/cause`` of launcher errors so callers can inspect the exact
/// `errno` (e.g. `ENOENT` versus `EACCES`) without parsing messages.
package struct SystemCallError: Error, Hashable, CustomStringConvertible {
    /// The name of the failed call, e.g. `"posix_spawn"` or `"realpath"`.
    package var call: String
    /// The `errno` value the call reported.
    package var errno: Int32

    /// Records that `call` failed with `errno`.
    package init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// The C library's text for ``errno``, e.g. `"No such file or directory"`.
    package var errnoText: String {
        String(cString: strerror(errno))
    }

    /// `call: text (errno N)`.
    package var description: String {
        "\(call): \(errnoText) (errno \(errno))"
    }
}

extension LauncherError {
    /// Builds an error from a failed system call, choosing the code from `errno`:
    /// `ENOENT`/`ENOTDIR` → ``Code/notFound``, `EACCES`/`EPERM` → ``Code/permissionDenied``,
    /// anything else → `fallback`.
    static func system(
        _ call: String, errno: Int32, message: String, fallback: Code = .internalError
    ) -> LauncherError {
        let cause = SystemCallError(call: call, errno: errno)
        let code: Code =
            switch errno {
            case ENOENT, ENOTDIR: .notFound
            case EACCES, EPERM: .permissionDenied
            default: fallback
            }
        return LauncherError(code: code, message: "\(message): \(cause.errnoText)", cause: cause)
    }
}
