import Logging
import SQLiteNIO

/// The SQLite file layout and its forward-only migrations.
///
/// `keel_schema` records which migrations have been applied. To change the layout, append a
/// ``Migration`` with the next version; never edit a released one. A file written by a newer build
/// (higher version than ``latestVersion``) is refused rather than misread.
enum Schema {
    /// One forward step of the schema, applied in its own transaction.
    struct Migration: Sendable {
        let version: Int
        let statements: [String]
    }

    /// All migrations in order; `version` values are 1, 2, 3, ….
    static let migrations: [Migration] = [
        Migration(
            version: 1,
            statements: [
                // Single-row-per-name counters; `revision` is the global etcd-style revision.
                """
                CREATE TABLE keel_meta (
                    name TEXT PRIMARY KEY NOT NULL,
                    value INTEGER NOT NULL
                ) STRICT
                """,
                "INSERT INTO keel_meta (name, value) VALUES ('revision', 0)",
                // Keys are stored as UTF-8 BLOBs so ordering and prefix ranges are bytewise, like etcd.
                """
                CREATE TABLE keel_kv (
                    key BLOB PRIMARY KEY NOT NULL,
                    value BLOB NOT NULL,
                    create_revision INTEGER NOT NULL,
                    mod_revision INTEGER NOT NULL,
                    version INTEGER NOT NULL,
                    lease INTEGER
                ) STRICT, WITHOUT ROWID
                """,
                "CREATE INDEX keel_kv_by_lease ON keel_kv (lease) WHERE lease IS NOT NULL",
                // AUTOINCREMENT: a lease ID is never reused, even after the lease is revoked.
                """
                CREATE TABLE keel_leases (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    ttl_ms INTEGER NOT NULL
                ) STRICT
                """,
            ]
        )
    ]

    /// The version a fully migrated file has.
    static var latestVersion: Int { self.migrations.last?.version ?? 0 }

    /// Per-connection settings.
    ///
    /// Durability choice: WAL with `synchronous=FULL`. Each commit fsyncs the WAL before the write is
    /// acknowledged, so a revision a caller (or watcher) has seen survives power loss and is never
    /// handed out again with different contents. `NORMAL` would be faster but may lose the last commits
    /// on power failure, which would let the control plane act on state that then disappears.
    /// Control-plane write rates are low, so the fsync per commit is affordable.
    static func configure(_ connection: SQLiteConnection) async throws {
        _ = try await connection.execute("PRAGMA journal_mode = WAL")
        _ = try await connection.execute("PRAGMA synchronous = FULL")
        _ = try await connection.execute("PRAGMA foreign_keys = ON")
    }

    /// Creates the schema table if needed and applies every pending migration.
    static func migrate(_ connection: SQLiteConnection, logger: Logger) async throws {
        _ = try await connection.execute(
            "CREATE TABLE IF NOT EXISTS keel_schema (version INTEGER PRIMARY KEY NOT NULL) STRICT"
        )
        let rows = try await connection.execute("SELECT coalesce(max(version), 0) AS version FROM keel_schema")
        let current = rows.first?.column("version")?.integer ?? 0
        if current > self.latestVersion {
            throw StoreError.unavailable(
                "the store file has schema version \(current) but this build only knows up to "
                    + "\(self.latestVersion); run a newer Keel build or restore a compatible file"
            )
        }
        for migration in self.migrations where migration.version > current {
            logger.info(
                "applying store schema migration",
                metadata: ["keel.store.schema_version": "\(migration.version)"]
            )
            try await connection.inTransaction {
                for statement in migration.statements {
                    _ = try await connection.execute(statement)
                }
                _ = try await connection.execute(
                    "INSERT INTO keel_schema (version) VALUES (?)",
                    [.integer(numericCast(migration.version))]
                )
            }
        }
    }
}
