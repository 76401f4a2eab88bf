import SQLiteNIO

/// The changes of one write transaction on the writer connection, all at one new revision.
///
/// Created by ``SQLiteStore/write(_:_:)`` inside `BEGIN IMMEDIATE`; each mutation records the
/// ``WatchEvent`` it causes. If the batch ends with events, the revision counter is bumped and the
/// events are published after `COMMIT`; a batch without events leaves the revision unchanged (etcd
/// does not bump the revision for a transaction that changes nothing).
struct WriteBatch {
    let connection: SQLiteConnection
    /// Whether a lease may still have keys attached (exists and is not past its deadline).
    let leaseIsLive: (LeaseID) -> Bool
    /// The revision before this batch.
    let baseRevision: Revision
    /// The revision this batch's changes carry.
    var revision: Revision { self.baseRevision.next }
    /// The events of the changes made so far, in order.
    private(set) var events: [WatchEvent] = []

    init(connection: SQLiteConnection, baseRevision: Revision, leaseIsLive: @escaping (LeaseID) -> Bool) {
        self.connection = connection
        self.baseRevision = baseRevision
        self.leaseIsLive = leaseIsLive
    }

    /// The committed-or-pending record of `key` as seen inside this transaction.
    func fetch(_ key: String) async throws -> KeyValue? {
        let rows = try await self.connection.execute(
            "SELECT \(SQLRows.kvColumns) FROM keel_kv WHERE key = ?",
            [SQLRows.blob(key)]
        )
        return try rows.first.map(SQLRows.keyValue(_:))
    }

    /// Writes `key`, keeping its create revision if it exists and bumping its version.
    ///
    /// - Throws: ``StoreError/Code/notFound`` if `lease` does not exist or is past its deadline.
    mutating func put(_ key: String, value: [UInt8], lease: LeaseID?) async throws {
        try await self.putAll([(key, value, lease)])
    }

    /// How many keys one multi-row put carries (5 bound values each, well under SQLite's limit).
    static let putsPerStatement = 200

    /// Writes distinct keys, each keeping its create revision if it exists and bumping its
    /// version, in few statements: SQLite compiles every statement it is given, which costs more
    /// than writing a row. One upsert per statement keeps the existing rows' create revisions
    /// and returns them, so a put costs no separate lookup. Events are recorded in the order of
    /// `puts`.
    ///
    /// - Precondition: no key appears twice in `puts`.
    /// - Throws: ``StoreError/Code/notFound`` if a lease does not exist or is past its deadline;
    ///   then nothing of `puts` is written.
    mutating func putAll(_ puts: [(key: String, value: [UInt8], lease: LeaseID?)]) async throws {
        for put in puts {
            if let lease = put.lease, !self.leaseIsLive(lease) {
                throw StoreError.notFound(
                    "lease \(lease) does not exist (it expired or was revoked); grant a new lease and write '\(put.key)' again"
                )
            }
        }
        var start = puts.startIndex
        while start < puts.endIndex {
            let chunk = puts[start..<min(start + Self.putsPerStatement, puts.endIndex)]
            start = chunk.endIndex
            var binds: [SQLiteData] = []
            binds.reserveCapacity(chunk.count * 5)
            for put in chunk {
                binds += [
                    SQLRows.blob(put.key), SQLRows.blob(put.value), SQLRows.integer(self.revision),
                    SQLRows.integer(self.revision), SQLRows.integer(put.lease),
                ]
            }
            let values = Array(repeating: "(?, coalesce(?, x''), ?, ?, 1, ?)", count: chunk.count).joined(separator: ", ")
            let rows = try await self.connection.execute(
                """
                INSERT INTO keel_kv (key, value, create_revision, mod_revision, version, lease)
                VALUES \(values)
                ON CONFLICT (key) DO UPDATE SET
                    value = excluded.value,
                    mod_revision = excluded.mod_revision,
                    version = keel_kv.version + 1,
                    lease = excluded.lease
                RETURNING key, create_revision
                """,
                binds
            )
            var created: [String: Int64] = [:]
            for row in rows {
                guard let key = row.column("key").flatMap(SQLRows.string(_:)),
                    let revision = row.column("create_revision")?.integer
                else { continue }
                created[key] = Int64(revision)
            }
            for put in chunk {
                guard let createRevision = created[put.key] else {
                    throw StoreError.internalError("writing '\(put.key)' returned no create revision; the store file is damaged")
                }
                self.events.append(
                    WatchEvent(
                        kind: .put, key: put.key, value: put.value, modRevision: self.revision,
                        createRevision: Revision(createRevision), lease: put.lease
                    )
                )
            }
        }
    }

    /// Deletes `key`. - Returns: whether it existed.
    mutating func delete(_ key: String) async throws -> Bool {
        let rows = try await self.connection.execute(
            "DELETE FROM keel_kv WHERE key = ? RETURNING key",
            [SQLRows.blob(key)]
        )
        self.recordDeletes(rows)
        return !rows.isEmpty
    }

    /// Deletes every key starting with `prefix`. - Returns: how many were deleted.
    mutating func delete(prefix: String) async throws -> Int {
        let clause = SQLRows.prefixClause(prefix)
        let rows = try await self.connection.execute(
            "DELETE FROM keel_kv WHERE \(clause.sql) RETURNING key",
            clause.binds
        )
        self.recordDeletes(rows)
        return rows.count
    }

    /// Deletes every key attached to `lease`. - Returns: how many were deleted.
    mutating func deleteKeys(of lease: LeaseID) async throws -> Int {
        let rows = try await self.connection.execute(
            "DELETE FROM keel_kv WHERE lease = ? RETURNING key",
            [SQLRows.integer(lease)]
        )
        self.recordDeletes(rows)
        return rows.count
    }

    /// Whether `condition` holds inside this transaction.
    func holds(_ condition: StoreCondition) async throws -> Bool {
        switch condition {
        case .modRevisionEquals(let key, let revision):
            return try await self.fetch(key)?.modRevision == revision
        case .keyAbsent(let key):
            return try await self.fetch(key) == nil
        case .keyExists(let key):
            return try await self.fetch(key) != nil
        }
    }

    /// Records delete events for `RETURNING key` rows, sorted by key bytes for a deterministic order.
    private mutating func recordDeletes(_ rows: [SQLiteRow]) {
        let keys = rows.compactMap { $0.column("key").flatMap(SQLRows.string(_:)) }
        for key in keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            self.events.append(WatchEvent(kind: .delete, key: key, value: [], modRevision: self.revision))
        }
    }
}
