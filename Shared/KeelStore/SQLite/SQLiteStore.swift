package import Logging
import SQLiteNIO
import Synchronization

/// The embedded ``KeyValueStore`` backend: one SQLite file in WAL mode.
///
/// - One writer connection runs each write as a `BEGIN IMMEDIATE … COMMIT` transaction; writes are
///   serialized (FIFO) by an ``AccessGate``, and each committed change bumps the global revision,
///   which is persisted in the file (`keel_meta`).
/// - A second connection serves reads concurrently with writes, always seeing the last commit.
/// - Watch history is kept in memory (bounded, see ``Configuration/historyLimit``); after a reopen,
///   watching from an earlier revision reports ``StoreError/Code/compacted``.
/// - Lease deadlines are in memory and driven by ``run()`` (the store is a `Service`); on open every
///   persisted lease gets its full TTL again, as etcd does after a leader change.
///
/// Open with ``open(path:logger:configuration:)``, run it in a `ServiceGroup`, and ``close()`` it when
/// the service group has finished.
package final class SQLiteStore: KeyValueStore {
    /// Tunables for an ``SQLiteStore``.
    package struct Configuration: Sendable {
        /// How many recent change events are kept for `watch(prefix:fromRevision:)` replay.
        package var historyLimit: Int = 10_000
        /// How many undelivered events one watcher may buffer before it is ended with `.compacted`.
        package var watchBufferLimit: Int = 16_384
        /// How often ``SQLiteStore/run()`` checks for expired leases (the expiry granularity).
        package var leaseCheckInterval: Duration = .milliseconds(250)
        /// The time source for lease TTLs; inject a manual clock in tests.
        package var clock: StoreClock = .continuous

        /// The defaults: 10 000 events of history, 250 ms lease checks, the continuous clock.
        package init() {}
    }

    /// Mutable store state guarded by one `Mutex`: the committed revision and the lease timers.
    struct State: Sendable {
        var revision: Revision
        var leases = LeaseTimers()
    }

    let path: String
    let logger: Logger
    let configuration: Configuration
    let writer: SQLiteConnection
    let reader: SQLiteConnection
    let gate: AccessGate
    let hub: WatchHub
    let state: Mutex<State>

    private init(
        path: String,
        logger: Logger,
        configuration: Configuration,
        writer: SQLiteConnection,
        reader: SQLiteConnection,
        revision: Revision
    ) {
        self.path = path
        self.logger = logger
        self.configuration = configuration
        self.writer = writer
        self.reader = reader
        self.gate = AccessGate(path: path)
        self.hub = WatchHub(
            historyLimit: configuration.historyLimit,
            bufferLimit: configuration.watchBufferLimit,
            compactedRevision: revision
        )
        self.state = Mutex(State(revision: revision))
    }

    /// Opens (creating if needed) the store file at `path`, applies schema migrations and loads leases.
    ///
    /// - Parameters:
    ///   - path: the SQLite file; `-wal` and `-shm` files appear next to it. Prefer an absolute path.
    ///   - logger: receives open/close, migration and lease-expiry messages (metadata keys `keel.*`).
    ///   - configuration: history size, lease check interval and clock.
    /// - Throws: ``StoreError/Code/unavailable`` if the file cannot be opened or migrated.
    package static func open(
        path: String,
        logger: Logger,
        configuration: Configuration = Configuration()
    ) async throws -> SQLiteStore {
        var logger = logger
        logger[metadataKey: "keel.store.path"] = "\(path)"
        let writer: SQLiteConnection
        do {
            writer = try await SQLiteConnection.openIgnoringCancellation(path: path, logger: logger)
        } catch {
            throw StoreError.unavailable(
                "cannot open the store file at \(path); check that the directory exists and is writable",
                cause: error
            )
        }
        var reader: SQLiteConnection?
        do {
            try await Schema.configure(writer)
            try await Schema.migrate(writer, logger: logger)
            let opened = try await SQLiteConnection.openIgnoringCancellation(path: path, logger: logger)
            reader = opened
            try await Schema.configure(opened)
            _ = try await opened.execute("PRAGMA query_only = ON")

            let revision = try await Self.loadRevision(writer)
            let store = SQLiteStore(
                path: path,
                logger: logger,
                configuration: configuration,
                writer: writer,
                reader: opened,
                revision: revision
            )
            let leases = try await store.loadLeases()
            logger.info(
                "opened store",
                metadata: ["keel.store.revision": "\(revision)", "keel.store.leases": "\(leases)"]
            )
            return store
        } catch {
            try? await reader?.closeIgnoringCancellation()
            try? await writer.closeIgnoringCancellation()
            throw Self.storeError(error, while: "opening the store at \(path)")
        }
    }

    /// Closes the file after in-flight operations finish. Watchers end with ``StoreError/Code/unavailable``;
    /// later calls fail with ``StoreError/Code/unavailable``. Calling it twice is harmless.
    ///
    /// Always call it before releasing the store: SQLiteNIO asserts (in debug builds) that its
    /// connections were closed.
    package func close() async throws {
        let closed = try await self.gate.close {
            self.hub.shutdown(.unavailable("the store at \(self.path) was closed; the watch ended"))
            do {
                try await self.reader.closeIgnoringCancellation()
                try await self.writer.closeIgnoringCancellation()
            } catch {
                throw Self.storeError(error, while: "closing the store")
            }
        }
        if closed {
            self.logger.info("closed store", metadata: ["keel.store.revision": "\(self.state.withLock(\.revision))"])
        }
    }

    /// The latest committed revision.
    package func currentRevision() async throws -> Revision {
        guard !self.gate.isClosed else {
            throw StoreError.unavailable("the store at \(self.path) is closed")
        }
        return self.state.withLock(\.revision)
    }

    /// The number of live watch streams (for diagnostics and tests).
    package var watcherCount: Int {
        self.hub.watcherCount
    }

    private static func loadRevision(_ connection: SQLiteConnection) async throws -> Revision {
        let rows = try await connection.execute("SELECT value FROM keel_meta WHERE name = 'revision'")
        guard let value = rows.first?.column("value")?.integer else {
            throw StoreError.internalError("the store file has no revision counter; the file is damaged")
        }
        return Revision(Int64(value))
    }

    /// Wraps non-``StoreError`` failures: I/O-ish SQLite errors become `unavailable`, the rest `internalError`.
    static func storeError(_ error: any Error, while activity: String) -> StoreError {
        if let error = error as? StoreError {
            return error
        }
        if let error = error as? SQLiteError {
            switch error.reason {
            case .constraint, .mismatch, .range, .schema, .corrupt, .notADatabase, .format, .misuse, .error:
                return .internalError("SQLite failed while \(activity): \(error.message)", cause: error)
            default:
                return .unavailable(
                    "SQLite failed while \(activity): \(error.message); check disk space and file permissions",
                    cause: error
                )
            }
        }
        return .internalError("unexpected failure while \(activity)", cause: error)
    }
}
