package import Logging
import NIOCore
package import SQLiteNIO

/// Cancellation-safe access to SQLite, shared by KeelStore's store and keel-tracer's span store.
extension SQLiteConnection {
    /// Runs one SQL statement and returns its rows, regardless of the calling task's cancellation.
    ///
    /// SQLiteNIO's `async` API skips queued work when the calling task is cancelled. Inside a write
    /// transaction that would leave it half-done, and would even make its `ROLLBACK` fail, wedging the
    /// connection. The `EventLoopFuture` API always runs the statement, so every store statement goes
    /// through here; callers observe cancellation between operations, never inside one.
    package func execute(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        let rows: EventLoopFuture<[SQLiteRow]> = self.query(sql, binds)
        return try await rows.get()
    }

    /// Opens a connection, regardless of the calling task's cancellation (see ``execute(_:_:)``).
    package static func openIgnoringCancellation(path: String, logger: Logger) async throws -> SQLiteConnection {
        let connection: EventLoopFuture<SQLiteConnection> = self.open(storage: .file(path: path), logger: logger)
        return try await connection.get()
    }

    /// Closes the connection, regardless of the calling task's cancellation (see ``execute(_:_:)``).
    package func closeIgnoringCancellation() async throws {
        let done: EventLoopFuture<Void> = self.close()
        try await done.get()
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`, rolling back if it throws. The caller must
    /// hold exclusive write access to the connection.
    package func inTransaction<T>(_ body: () async throws -> T) async throws -> T {
        _ = try await execute("BEGIN IMMEDIATE")
        do {
            let result = try await body()
            _ = try await execute("COMMIT")
            return result
        } catch {
            _ = try? await execute("ROLLBACK")
            throw error
        }
    }
}
