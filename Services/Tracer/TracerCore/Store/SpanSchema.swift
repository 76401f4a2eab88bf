import KeelCore
import Logging
import KeelStore
import SQLiteNIO

/// The span store's file layout and its forward-only migrations.
///
/// `tracer_schema` records the applied migrations. To change the layout append a ``Migration`` with
/// the next version; never edit a released one. A file from a newer build is refused, not misread.
enum SpanSchema {
    /// One forward step, applied in its own transaction.
    struct Migration: Sendable {
        let version: Int
        let statements: [String]
    }

    /// All migrations in order.
    static let migrations: [Migration] = [
        Migration(
            version: 1,
            statements: [
                // `id` grows with arrival order: the span cap drops the lowest ids first.
                // `task_id` is `keel.task_id` pulled out of `attributes` so timelines use an index.
                // `error` is the status message of a span that ended with an error, '' otherwise.
                """
                CREATE TABLE spans (
                    id INTEGER PRIMARY KEY,
                    trace_id TEXT NOT NULL,
                    span_id TEXT NOT NULL,
                    parent_span_id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    service TEXT NOT NULL,
                    kind INTEGER NOT NULL,
                    start_ns INTEGER NOT NULL,
                    end_ns INTEGER NOT NULL,
                    error TEXT NOT NULL,
                    task_id TEXT,
                    attributes TEXT NOT NULL,
                    received_ns INTEGER NOT NULL,
                    UNIQUE (trace_id, span_id)
                ) STRICT
                """,
                "CREATE INDEX spans_by_task ON spans (task_id, start_ns) WHERE task_id IS NOT NULL",
                "CREATE INDEX spans_by_start ON spans (start_ns)",
                "CREATE INDEX spans_by_received ON spans (received_ns)",
                // Events go with their span: pruning a span deletes its events.
                """
                CREATE TABLE span_events (
                    trace_id TEXT NOT NULL,
                    span_id TEXT NOT NULL,
                    idx INTEGER NOT NULL,
                    name TEXT NOT NULL,
                    time_ns INTEGER NOT NULL,
                    task_id TEXT,
                    attributes TEXT NOT NULL,
                    PRIMARY KEY (trace_id, span_id, idx),
                    FOREIGN KEY (trace_id, span_id) REFERENCES spans (trace_id, span_id) ON DELETE CASCADE
                ) STRICT, WITHOUT ROWID
                """,
                "CREATE INDEX span_events_by_task ON span_events (task_id, time_ns) WHERE task_id IS NOT NULL",
            ]
        )
    ]

    /// The version of a fully migrated file.
    static var latestVersion: Int { migrations.last?.version ?? 0 }

    /// Per-connection settings.
    ///
    /// WAL lets queries read while exports write. `synchronous = NORMAL` does not fsync each commit:
    /// after a power loss the last few hundred milliseconds of spans may be gone, which is acceptable
    /// for debug traces and keeps exports cheap. The WAL file is trimmed back to 64 MiB after checkpoints.
    static func configure(_ connection: SQLiteConnection) async throws {
        _ = try await connection.execute("PRAGMA journal_mode = WAL")
        _ = try await connection.execute("PRAGMA synchronous = NORMAL")
        _ = try await connection.execute("PRAGMA foreign_keys = ON")
        _ = try await connection.execute("PRAGMA journal_size_limit = 67108864")
    }

    /// Creates the schema table if needed and applies every pending migration.
    static func migrate(_ connection: SQLiteConnection, path: String, logger: Logger) async throws {
        _ = try await connection.execute(
            "CREATE TABLE IF NOT EXISTS tracer_schema (version INTEGER PRIMARY KEY NOT NULL) STRICT"
        )
        let rows = try await connection.execute("SELECT coalesce(max(version), 0) AS version FROM tracer_schema")
        let current = rows.first?.column("version")?.integer ?? 0
        guard current <= latestVersion else {
            throw KeelError.failedPrecondition(
                "the span store \(path) has schema version \(current) but this keel-tracer only knows up to "
                    + "\(latestVersion); run a newer keel-tracer, or move the file away to start an empty store"
            )
        }
        for migration in migrations where migration.version > current {
            logger.info("applying span store migration", metadata: ["keel.store.schema_version": "\(migration.version)"])
            try await connection.inTransaction {
                for statement in migration.statements {
                    _ = try await connection.execute(statement)
                }
                _ = try await connection.execute(
                    "INSERT INTO tracer_schema (version) VALUES (?)",
                    [.integer(numericCast(migration.version))]
                )
            }
        }
    }
}
