import Logging
import SQLiteNIO
import Synchronization

extension SQLiteStore {
    /// Creates a lease that expires `ttl` after its last keep-alive (granularity:
    /// ``Configuration/leaseCheckInterval``). The lease survives restarts; its TTL restarts on open.
    package func grantLease(ttl: Duration) async throws -> LeaseID {
        let milliseconds = ttl.components.seconds * 1000 + ttl.components.attoseconds / 1_000_000_000_000_000
        guard milliseconds > 0 else {
            throw StoreError.invalidArgument("lease TTL \(ttl) is too short; use at least one millisecond")
        }
        let lease = try await self.write("granting a lease") { batch in
            let rows = try await batch.connection.execute(
                "INSERT INTO keel_leases (ttl_ms) VALUES (?) RETURNING id",
                [.integer(numericCast(milliseconds))]
            )
            guard let id = rows.first?.column("id")?.integer else {
                throw StoreError.internalError("inserting a lease returned no ID")
            }
            return LeaseID(Int64(id))
        }
        let now = self.configuration.clock.now()
        self.state.withLock { $0.leases.start(lease, ttl: .milliseconds(milliseconds), now: now) }
        self.logger.debug("granted lease", metadata: ["keel.lease.id": "\(lease)", "keel.lease.ttl": "\(ttl)"])
        return lease
    }

    /// Restarts the lease's TTL. - Throws: ``StoreError/Code/notFound`` if it already ended.
    package func keepAlive(_ lease: LeaseID) async throws {
        guard !self.gate.isClosed else {
            throw StoreError.unavailable("the store at \(self.path) is closed")
        }
        let now = self.configuration.clock.now()
        let alive = self.state.withLock { $0.leases.keepAlive(lease, now: now) }
        guard alive else {
            throw StoreError.notFound(
                "lease \(lease) does not exist (it expired or was revoked); grant a new lease and re-create its keys"
            )
        }
    }

    /// Ends the lease now and deletes its keys. - Throws: ``StoreError/Code/notFound`` if it already ended.
    package func revokeLease(_ lease: LeaseID) async throws {
        let revoked = try await self.revoke(lease, ifDueAt: nil)
        guard revoked != nil else {
            throw StoreError.notFound("lease \(lease) does not exist (it expired or was already revoked)")
        }
    }

    /// Revokes every lease whose deadline has passed. Called periodically by ``run()``; tests that drive
    /// a manual clock may call it directly. - Returns: the leases that were revoked.
    @discardableResult
    package func expireLeases() async throws -> [LeaseID] {
        let now = self.configuration.clock.now()
        let due = self.state.withLock { $0.leases.due(at: now) }
        var expired: [LeaseID] = []
        for lease in due {
            // Re-checked under the write lock: a keep-alive that arrived meanwhile wins.
            if let deleted = try await self.revoke(lease, ifDueAt: now) {
                expired.append(lease)
                self.logger.info(
                    "lease expired",
                    metadata: ["keel.lease.id": "\(lease)", "keel.store.deleted_keys": "\(deleted)"]
                )
            }
        }
        return expired
    }

    /// Deletes the lease's keys and row in one write. With `now`, only if the lease is still due then.
    /// - Returns: the number of keys deleted, or `nil` if the lease was not live (or no longer due).
    private func revoke(_ lease: LeaseID, ifDueAt now: Duration?) async throws -> Int? {
        try await self.write("revoking lease \(lease)") { batch in
            guard let timer = self.state.withLock({ $0.leases.take(lease, ifDueAt: now) }) else {
                return nil
            }
            do {
                let deleted = try await batch.deleteKeys(of: lease)
                _ = try await batch.connection.execute(
                    "DELETE FROM keel_leases WHERE id = ?",
                    [SQLRows.integer(lease)]
                )
                return deleted
            } catch {
                // The transaction rolls back; keep the timer so the revoke is retried.
                self.state.withLock { $0.leases.restore(lease, timer) }
                throw error
            }
        }
    }

    /// Starts a full-TTL timer for every persisted lease. - Returns: how many leases were loaded.
    func loadLeases() async throws -> Int {
        let rows = try await self.writer.execute("SELECT id, ttl_ms FROM keel_leases")
        let now = self.configuration.clock.now()
        var count = 0
        self.state.withLock { state in
            for row in rows {
                guard let id = row.column("id")?.integer, let ttl = row.column("ttl_ms")?.integer else { continue }
                state.leases.start(LeaseID(Int64(id)), ttl: .milliseconds(ttl), now: now)
                count += 1
            }
        }
        return count
    }
}
