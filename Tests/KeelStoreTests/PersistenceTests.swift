import KeelStore
import Testing

@Suite("Persistence")
struct PersistenceTests {
    @Test("closing and reopening the file keeps keys, revisions and leases")
    func reopenKeepsData() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }

        let first = try await SQLiteStore.open(path: directory.storePath, logger: quietLogger)
        let lease: LeaseID
        let written: Revision
        do {
            lease = try await first.grantLease(ttl: .seconds(60))
            _ = try await first.put("registry/agents/a1", value: [1, 2, 3], lease: lease)
            _ = try await first.put("registry/agents/a2", value: [4])
            written = try await first.put("registry/agents/a2", value: [5])
            try await first.close()
        } catch {
            try? await first.close()
            throw error
        }
        // Closing twice is harmless.
        try await first.close()

        let second = try await SQLiteStore.open(path: directory.storePath, logger: quietLogger)
        do {
            #expect(try await second.currentRevision() == written)
            let agents = try await second.range(prefix: "registry/agents/")
            #expect(agents.map(\.key) == ["registry/agents/a1", "registry/agents/a2"])
            #expect(agents.map(\.value) == [[1, 2, 3], [5]])
            #expect(agents.last?.version == 2)
            #expect(agents.first?.lease == lease)

            // The next write continues the persisted revision sequence.
            #expect(try await second.put("registry/agents/a3", value: []) == written.next)

            // History from before the restart is gone: replay reports compaction.
            let stale = try await second.watch(prefix: "registry/", fromRevision: Revision(written.rawValue - 1))
            let error = try await streamError(stale)
            #expect((error as? StoreError)?.code == .compacted)

            // The lease survived the restart and still owns its key.
            try await second.keepAlive(lease)
            try await second.revokeLease(lease)
            #expect(try await second.get("registry/agents/a1") == nil)
            try await second.close()
        } catch {
            try? await second.close()
            throw error
        }
    }

    @Test("opening a path in a missing directory fails with unavailable")
    func openFailure() async throws {
        let error = await #expect(throws: StoreError.self) {
            try await SQLiteStore.open(path: "/nonexistent-keel-dir/sub/store.sqlite", logger: quietLogger)
        }
        #expect(error?.code == .unavailable)
    }
}
