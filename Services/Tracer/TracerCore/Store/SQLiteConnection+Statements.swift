import Logging
import NIOCore
import SQLiteNIO

extension SQLiteConnection {
    /// Runs one SQL statement to completion and returns its rows, even if the calling task is cancelled.
    ///
    /// SQLiteNIO's `async` API skips queued work for a cancelled task. An export RPC that is cancelled
    /// half-way through its `BEGIN IMMEDIATE … COMMIT` would then leave the writer inside an open
    /// transaction (and its `ROLLBACK` could be skipped too), wedging every later export. The
    /// `EventLoopFuture` API always runs the statement, so every span store statement goes through here;
    /// cancellation is observed between store operations, never inside one.
    func runStatement(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        let rows: EventLoopFuture<[SQLiteRow]> = self.query(sql, binds)
        return try await rows.get()
    }

    /// Opens a connection to the file at `path`, even if the calling task is cancelled.
    static func openRunningToCompletion(path: String, logger: Logger) async throws -> SQLiteConnection {
        let connection: EventLoopFuture<SQLiteConnection> = self.open(storage: .file(path: path), logger: logger)
        return try await connection.get()
    }

    /// Closes the connection, even if the calling task is cancelled.
    func closeRunningToCompletion() async throws {
        let closed: EventLoopFuture<Void> = self.close()
        try await closed.get()
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`, rolling back if it throws.
    ///
    /// The caller must hold exclusive write access (see ``StoreGate``).
    func inTransaction<T>(_ body: () async throws -> T) async throws -> T {
        _ = try await runStatement("BEGIN IMMEDIATE")
        do {
            let result = try await body()
            _ = try await runStatement("COMMIT")
            return result
        } catch {
            _ = try? await runStatement("ROLLBACK")
            throw error
        }
    }
}
