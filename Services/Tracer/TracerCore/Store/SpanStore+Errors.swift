import Foundation
import KeelCore
import SQLiteNIO

extension SpanStore {
    /// Runs a store operation, turning SQLite failures into ``KeelError``s that say what to do.
    func storeOperation<T>(_ activity: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw Self.storeError(error, path: path, while: activity)
        }
    }

    /// Wraps a failure: I/O-ish SQLite errors become `unavailable` (an exporter retries those), the rest
    /// `internalError`. ``KeelError``s pass through.
    static func storeError(_ error: any Error, path: String, while activity: String) -> KeelError {
        if let error = error as? KeelError { return error }
        if let error = error as? SQLiteError {
            switch error.reason {
            case .constraint, .mismatch, .range, .schema, .corrupt, .notADatabase, .format, .misuse, .error:
                return .internalError(
                    "SQLite failed while \(activity) in \(path): \(error.message); if this repeats, stop keel-tracer "
                        + "and move the file away to start an empty store",
                    cause: error
                )
            default:
                return .unavailable(
                    "SQLite failed while \(activity) in \(path): \(error.message); check disk space and file permissions",
                    cause: error
                )
            }
        }
        return .internalError("unexpected failure while \(activity) in \(path)", cause: error)
    }

    /// `date` in nanoseconds since the Unix epoch, clamped to the `Int64` range.
    static func nanoseconds(_ date: Date) -> Int64 {
        let value = date.timeIntervalSince1970 * 1_000_000_000
        guard value.isFinite else { return 0 }
        if value >= Double(Int64.max) { return .max }
        if value <= Double(Int64.min) { return .min }
        return Int64(value)
    }

    /// `duration` in nanoseconds, saturating at the `Int64` range.
    static func saturatingNanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (total, overflow2) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? (whole < 0 ? .min : .max) : total
    }
}
