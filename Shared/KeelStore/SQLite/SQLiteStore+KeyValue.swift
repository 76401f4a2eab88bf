import Logging
import SQLiteNIO
import Synchronization

extension SQLiteStore {
    /// Returns the key's current record, or `nil` if it does not exist.
    package func get(_ key: String) async throws -> KeyValue? {
        try KeyValidation.check(key: key)
        return try await self.read("reading '\(key)'") { connection in
            let rows = try await connection.execute(
                "SELECT \(SQLRows.kvColumns) FROM keel_kv WHERE key = ?",
                [SQLRows.blob(key)]
            )
            return try rows.first.map(SQLRows.keyValue(_:))
        }
    }

    /// Returns every key starting with `prefix`, sorted by key bytes.
    package func range(prefix: String) async throws -> [KeyValue] {
        try await self.snapshot(prefix: prefix).keyValues
    }

    /// Returns the keys under `prefix` and the revision they reflect, read in one SQLite statement
    /// (so from one consistent WAL snapshot).
    package func snapshot(prefix: String) async throws -> StoreSnapshot {
        try KeyValidation.check(prefix: prefix)
        return try await self.read("reading prefix '\(prefix)'") { connection in
            let clause = SQLRows.prefixClause(prefix, column: "kv.key")
            // LEFT JOIN so the revision comes back even when no key matches.
            let rows = try await connection.execute(
                """
                SELECT meta.value AS header_revision, \(SQLRows.kvColumns(table: "kv"))
                FROM keel_meta AS meta LEFT JOIN keel_kv AS kv ON \(clause.sql)
                WHERE meta.name = 'revision'
                ORDER BY kv.key
                """,
                clause.binds
            )
            guard let revision = rows.first?.column("header_revision")?.integer else {
                throw StoreError.internalError("the store file has no revision counter; the file is damaged")
            }
            let keyValues = try rows.filter { $0.column("key")?.isNull == false }.map(SQLRows.keyValue(_:))
            return StoreSnapshot(revision: Revision(Int64(revision)), keyValues: keyValues)
        }
    }

    /// Writes `value` under `key`, attached to `lease` or detached when `nil`.
    package func put(_ key: String, value: [UInt8], lease: LeaseID?) async throws -> Revision {
        try KeyValidation.check(key: key)
        try KeyValidation.check(value: value, key: key)
        return try await self.write("writing '\(key)'") { batch in
            try await batch.put(key, value: value, lease: lease)
            return batch.revision
        }
    }

    /// Applies `operations` at one revision if all `conditions` hold; otherwise writes nothing.
    package func transaction(
        _ operations: [StoreOperation],
        conditions: [StoreCondition]
    ) async throws -> TransactionResult {
        try KeyValidation.check(conditions: conditions)
        try KeyValidation.checkNoOverlap(operations)
        return try await self.write("running a transaction") { batch in
            for condition in conditions {
                if try await !batch.holds(condition) {
                    return TransactionResult(succeeded: false, revision: batch.baseRevision, deletedCount: 0)
                }
            }
            var deleted = 0
            // Consecutive puts go in together (the keys are distinct, checked above).
            var puts: [(key: String, value: [UInt8], lease: LeaseID?)] = []
            for operation in operations {
                if case .put(let key, let value, let lease) = operation {
                    puts.append((key, value, lease))
                    continue
                }
                if !puts.isEmpty {
                    try await batch.putAll(puts)
                    puts.removeAll()
                }
                switch operation {
                case .put:
                    break
                case .delete(let key):
                    deleted += try await batch.delete(key) ? 1 : 0
                case .deletePrefix(let prefix):
                    deleted += try await batch.delete(prefix: prefix)
                }
            }
            if !puts.isEmpty { try await batch.putAll(puts) }
            let revision = batch.events.isEmpty ? batch.baseRevision : batch.revision
            return TransactionResult(succeeded: true, revision: revision, deletedCount: deleted)
        }
    }

    /// Deletes `key`. - Returns: whether it existed.
    package func delete(_ key: String) async throws -> Bool {
        try KeyValidation.check(key: key)
        return try await self.write("deleting '\(key)'") { batch in
            try await batch.delete(key)
        }
    }

    /// Deletes every key starting with the non-empty `prefix`. - Returns: how many were deleted.
    package func delete(prefix: String) async throws -> Int {
        try KeyValidation.check(nonEmptyPrefix: prefix, operation: "delete(prefix:)")
        return try await self.write("deleting prefix '\(prefix)'") { batch in
            try await batch.delete(prefix: prefix)
        }
    }

    /// Streams changes under `prefix`, replaying retained changes after `fromRevision` first.
    package func watch(prefix: String, fromRevision: Revision?) async throws -> WatchStream {
        try KeyValidation.check(prefix: prefix)
        if let fromRevision, fromRevision < .zero {
            throw StoreError.invalidArgument("watch fromRevision \(fromRevision) is negative")
        }
        return try await self.gate.withRead {
            self.hub.subscribe(prefix: prefix, fromRevision: fromRevision)
        }
    }

    /// Runs `body` on the reader connection, mapping SQLite failures to ``StoreError``.
    func read<T>(
        _ activity: @autoclosure () -> String,
        _ body: (SQLiteConnection) async throws -> T
    ) async throws -> T {
        try await self.gate.withRead {
            do {
                return try await body(self.reader)
            } catch {
                throw Self.storeError(error, while: activity())
            }
        }
    }

    /// Runs `body` as one serialized write transaction and publishes its events after commit.
    ///
    /// The revision counter is bumped (once) only if the batch recorded events. Any error rolls the
    /// transaction back, so a failed call leaves no trace.
    func write<T>(
        _ activity: @autoclosure () -> String,
        _ body: (inout WriteBatch) async throws -> T
    ) async throws -> T {
        try await self.gate.withWrite {
            let base = self.state.withLock(\.revision)
            let clock = self.configuration.clock
            var batch = WriteBatch(connection: self.writer, baseRevision: base) { lease in
                let now = clock.now()
                return self.state.withLock { $0.leases.isLive(lease, at: now) }
            }
            let result: T
            do {
                _ = try await self.writer.execute("BEGIN IMMEDIATE")
            } catch {
                throw Self.storeError(error, while: "starting a write transaction for \(activity())")
            }
            do {
                result = try await body(&batch)
                if !batch.events.isEmpty {
                    _ = try await self.writer.execute(
                        "UPDATE keel_meta SET value = ? WHERE name = 'revision'",
                        [SQLRows.integer(batch.revision)]
                    )
                }
                _ = try await self.writer.execute("COMMIT")
            } catch {
                do {
                    _ = try await self.writer.execute("ROLLBACK")
                } catch let rollbackError {
                    self.logger.error(
                        "rollback failed",
                        metadata: ["keel.store.activity": "\(activity())", "keel.error": "\(rollbackError)"]
                    )
                }
                throw Self.storeError(error, while: activity())
            }
            if !batch.events.isEmpty {
                self.state.withLock { $0.revision = batch.revision }
                self.hub.publish(batch.events)
                self.logger.trace(
                    "committed",
                    metadata: [
                        "keel.store.activity": "\(activity())",
                        "keel.store.revision": "\(batch.revision)",
                        "keel.store.events": "\(batch.events.count)",
                    ]
                )
            }
            return result
        }
    }
}
