/// Leader election built only on the store's primitives, following etcd's `concurrency.Election`
/// recipe so the same keys work against etcd:
///
/// - each candidate owns the key `<election>/<lease in hex>`, written with its lease, value = candidate;
/// - the candidate whose key has the lowest create revision is the leader;
/// - a waiting candidate watches the election prefix and re-checks after every delete;
/// - leadership ends when the key is deleted: ``KeyValueStore/resign(_:)``, lease revocation or expiry.
extension KeyValueStore {
    /// Registers `candidate` under `lease` and waits until it leads `election`.
    ///
    /// Campaigning again with the same lease reuses the existing candidacy (updating its value).
    /// If the calling task is cancelled while waiting, the candidacy is withdrawn and
    /// `CancellationError` is thrown.
    /// - Throws: ``StoreError/Code/notFound`` if the lease ends before leadership is reached.
    package func campaign(election: String, candidate: String, lease: LeaseID) async throws -> LeaderKey {
        try KeyValidation.check(election: election)
        let prefix = election + "/"
        let key = prefix + String(lease.rawValue, radix: 16)
        let value = Array(candidate.utf8)
        try KeyValidation.check(key: key)

        let created = try await self.transaction(
            [.put(key: key, value: value, lease: lease)],
            conditions: [.keyAbsent(key: key)]
        )
        if !created.succeeded {
            // A previous campaign with this lease: keep its place in line, refresh the value.
            guard let existing = try await self.get(key), existing.lease == lease else {
                throw StoreError.conflict(
                    "candidacy key '\(key)' changed while campaigning; campaign again with a fresh lease"
                )
            }
            if existing.value != value {
                _ = try await self.put(key, value: value, lease: lease)
            }
        }

        do {
            while true {
                let snapshot = try await self.snapshot(prefix: prefix)
                let members = snapshot.keyValues
                guard let mine = members.first(where: { $0.key == key }) else {
                    throw StoreError.notFound(
                        "candidacy '\(key)' in election '\(election)' was deleted while waiting "
                            + "(lease \(lease) ended or someone resigned it); grant a new lease and campaign again"
                    )
                }
                if !members.contains(where: { $0.createRevision < mine.createRevision }) {
                    return LeaderKey(
                        election: election,
                        candidate: candidate,
                        key: key,
                        createRevision: mine.createRevision,
                        lease: lease
                    )
                }
                try await self.waitForDelete(prefix: prefix, after: snapshot.revision)
                try Task.checkCancellation()
            }
        } catch is CancellationError {
            _ = try? await self.delete(key)
            throw CancellationError()
        }
    }

    /// The leading candidate's value, or `nil` if nobody campaigns in `election`.
    package func leader(election: String) async throws -> String? {
        try KeyValidation.check(election: election)
        let members = try await self.range(prefix: election + "/")
        guard let leader = members.min(by: { $0.createRevision < $1.createRevision }) else {
            return nil
        }
        return String(decoding: leader.value, as: UTF8.self)
    }

    /// Deletes the leader key if it still belongs to this candidacy (same create revision).
    /// Resigning an already-lost leadership is a no-op.
    package func resign(_ leader: LeaderKey) async throws {
        guard let current = try await self.get(leader.key), current.createRevision == leader.createRevision else {
            return
        }
        _ = try await self.transaction(
            [.delete(key: leader.key)],
            conditions: [.modRevisionEquals(key: leader.key, revision: current.modRevision)]
        )
    }

    /// Returns after the first delete under `prefix` later than `revision` (or when history was compacted,
    /// which forces a re-check). Returns early if the task is cancelled.
    private func waitForDelete(prefix: String, after revision: Revision) async throws {
        let events = try await self.watch(prefix: prefix, fromRevision: revision)
        do {
            for try await event in events where event.kind == .delete {
                return
            }
        } catch let error as StoreError where error.code == .compacted {
            return
        }
    }
}
