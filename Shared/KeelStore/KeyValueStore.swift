/// The stream of changes returned by ``KeyValueStore/watch(prefix:fromRevision:)``.
///
/// It ends by throwing a ``StoreError``: ``StoreError/Code/compacted`` when the requested history is gone
/// or the consumer fell too far behind (re-read with `range(prefix:)` and watch again from that revision),
/// ``StoreError/Code/unavailable`` when the store closes. Stop consuming (or cancel the task) to end it.
package typealias WatchStream = AsyncThrowingStream<WatchEvent, any Error>

/// The small key-value store every Keel control-plane service persists its state in.
///
/// The model is etcd v3's, so that an etcd backend maps onto it 1:1:
/// - one global ``Revision`` bumped by every committed write; each key records `createRevision`,
///   `modRevision` and `version`;
/// - keys are non-empty UTF-8 strings (≤ 1024 bytes, no NUL), ordered by their bytes;
///   ``range(prefix:)`` is etcd's prefix range;
/// - ``transaction(_:conditions:)`` is etcd's `Txn` (if all compares hold, apply all ops at one revision);
/// - ``watch(prefix:fromRevision:)`` is etcd's watch with `start_revision = fromRevision + 1`;
/// - leases have a TTL, are kept alive explicitly, and delete their keys when revoked or expired;
/// - elections follow etcd's `concurrency.Election` recipe: the candidacy key with the lowest
///   create revision under `<election>/` leads.
///
/// Values are raw bytes (usually protobuf); JSON helpers exist for small Codable records.
/// Every method throws ``StoreError``.
package protocol KeyValueStore: Sendable {
    /// Returns the key's current record, or `nil` if it does not exist.
    func get(_ key: String) async throws -> KeyValue?

    /// Returns every key starting with `prefix`, sorted by key bytes. An empty prefix means all keys.
    func range(prefix: String) async throws -> [KeyValue]

    /// Like ``range(prefix:)``, plus the store revision the result reflects (etcd's response header
    /// revision). This is the list-then-watch pattern: read a snapshot, then
    /// `watch(prefix:fromRevision: snapshot.revision)` to get exactly the changes made after it.
    func snapshot(prefix: String) async throws -> StoreSnapshot

    /// Writes `value` under `key`, attached to `lease` (or detached from any lease when `nil`).
    /// - Returns: the revision of this write.
    /// - Throws: ``StoreError/Code/notFound`` if the lease does not exist (anymore).
    func put(_ key: String, value: [UInt8], lease: LeaseID?) async throws -> Revision

    /// Writes `value` only if the key's current mod revision is `expectedModRevision`
    /// (`nil`: only if the key does not exist).
    /// - Returns: the revision of this write.
    /// - Throws: ``StoreError/Code/conflict`` if the comparison fails; nothing is written then.
    func compareAndPut(
        _ key: String,
        value: [UInt8],
        expectedModRevision: Revision?,
        lease: LeaseID?
    ) async throws -> Revision

    /// Applies all `operations` atomically at one new revision if every condition holds; otherwise
    /// writes nothing and returns `succeeded == false`. Two operations may not touch the same key.
    func transaction(_ operations: [StoreOperation], conditions: [StoreCondition]) async throws
        -> TransactionResult

    /// Deletes `key`. - Returns: `true` if it existed.
    func delete(_ key: String) async throws -> Bool

    /// Deletes every key starting with `prefix` (which must not be empty). - Returns: how many were deleted.
    func delete(prefix: String) async throws -> Int

    /// Streams changes to keys starting with `prefix`, in revision order.
    ///
    /// When `fromRevision` is given, changes with a revision greater than it are replayed first;
    /// if they are no longer retained the stream throws ``StoreError/Code/compacted``.
    /// When it returns, the watch is registered: every later write is delivered.
    func watch(prefix: String, fromRevision: Revision?) async throws -> WatchStream

    /// Creates a lease that ends `ttl` after its last keep-alive. Whole seconds map onto etcd best.
    func grantLease(ttl: Duration) async throws -> LeaseID

    /// Restarts the lease's TTL. - Throws: ``StoreError/Code/notFound`` if it already ended.
    func keepAlive(_ lease: LeaseID) async throws

    /// Ends the lease now, deleting its keys (watchers see delete events).
    /// - Throws: ``StoreError/Code/notFound`` if it already ended.
    func revokeLease(_ lease: LeaseID) async throws

    /// Registers `candidate` in `election` under `lease` and waits until it is the leader.
    ///
    /// Cancel the calling task to stop waiting (the candidacy is withdrawn).
    /// - Throws: ``StoreError/Code/notFound`` if the lease ends while waiting.
    func campaign(election: String, candidate: String, lease: LeaseID) async throws -> LeaderKey

    /// The current leader's candidate value, or `nil` if nobody is campaigning.
    func leader(election: String) async throws -> String?

    /// Gives up leadership (or a pending candidacy) by deleting the leader key.
    func resign(_ leader: LeaderKey) async throws

    /// The store's latest committed revision.
    func currentRevision() async throws -> Revision
}

extension KeyValueStore {
    /// Writes `value` under `key` without a lease. - Returns: the revision of this write.
    package func put(_ key: String, value: [UInt8]) async throws -> Revision {
        try await self.put(key, value: value, lease: nil)
    }

    /// ``compareAndPut(_:value:expectedModRevision:lease:)`` without a lease.
    package func compareAndPut(
        _ key: String,
        value: [UInt8],
        expectedModRevision: Revision?
    ) async throws -> Revision {
        try await self.compareAndPut(key, value: value, expectedModRevision: expectedModRevision, lease: nil)
    }

    /// Default compare-and-put, built on ``transaction(_:conditions:)`` exactly like an etcd `Txn`.
    package func compareAndPut(
        _ key: String,
        value: [UInt8],
        expectedModRevision: Revision?,
        lease: LeaseID?
    ) async throws -> Revision {
        let condition: StoreCondition =
            if let expectedModRevision {
                .modRevisionEquals(key: key, revision: expectedModRevision)
            } else {
                .keyAbsent(key: key)
            }
        let result = try await self.transaction(
            [.put(key: key, value: value, lease: lease)],
            conditions: [condition]
        )
        guard result.succeeded else {
            let expected = expectedModRevision.map { "mod revision \($0)" } ?? "no existing key"
            throw StoreError.conflict(
                "compare-and-put on '\(key)' expected \(expected) but the key changed (store revision "
                    + "\(result.revision)); re-read the key and retry with its current mod revision"
            )
        }
        return result.revision
    }

    /// Watches `prefix` for changes committed after this call returns.
    package func watch(prefix: String) async throws -> WatchStream {
        try await self.watch(prefix: prefix, fromRevision: nil)
    }
}
