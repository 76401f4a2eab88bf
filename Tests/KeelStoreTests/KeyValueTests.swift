import KeelStore
import Testing

@Suite("Key-value operations on the SQLite store")
struct KeyValueTests {
    @Test("put, get, range and delete")
    func basicOperations() async throws {
        try await withStore { store in
            #expect(try await store.get("a/missing") == nil)

            _ = try await store.put("a/2", value: "two".bytes)
            _ = try await store.put("a/1", value: "one".bytes)
            _ = try await store.put("b/1", value: [])
            _ = try await store.put("a", value: "root".bytes)

            let one = try #require(try await store.get("a/1"))
            #expect(one.value == "one".bytes)
            #expect(one.lease == nil)
            let empty = try #require(try await store.get("b/1"))
            #expect(empty.value == [])

            let underA = try await store.range(prefix: "a/")
            #expect(underA.map(\.key) == ["a/1", "a/2"])
            let all = try await store.range(prefix: "")
            #expect(all.map(\.key) == ["a", "a/1", "a/2", "b/1"])

            #expect(try await store.delete("a/1"))
            #expect(try await !store.delete("a/1"))
            #expect(try await store.get("a/1") == nil)

            _ = try await store.put("a/3", value: "three".bytes)
            #expect(try await store.delete(prefix: "a/") == 2)
            let remaining = try await store.range(prefix: "")
            #expect(remaining.map(\.key) == ["a", "b/1"])
        }
    }

    @Test("range uses bytewise prefix bounds, including multi-byte UTF-8")
    func prefixBounds() async throws {
        try await withStore { store in
            for key in ["ä/1", "ä/2", "äb", "a/1", "ã/1", "z"] {
                _ = try await store.put(key, value: key.bytes)
            }
            let umlaut = try await store.range(prefix: "ä/")
            #expect(umlaut.map(\.key) == ["ä/1", "ä/2"])
            let umlautAll = try await store.range(prefix: "ä")
            #expect(umlautAll.map(\.key) == ["ä/1", "ä/2", "äb"])
        }
    }

    @Test("every write bumps the global revision; create revision and version are tracked")
    func revisions() async throws {
        try await withStore { store in
            #expect(try await store.currentRevision() == .zero)
            let first = try await store.put("k", value: "1".bytes)
            let second = try await store.put("k", value: "2".bytes)
            let other = try await store.put("other", value: "x".bytes)
            #expect(first == 1)
            #expect(second == 2)
            #expect(other == 3)

            let k = try #require(try await store.get("k"))
            #expect(k.createRevision == first)
            #expect(k.modRevision == second)
            #expect(k.version == 2)

            // Deleting a missing key changes nothing, so the revision stays.
            #expect(try await !store.delete("missing"))
            #expect(try await store.currentRevision() == 3)
            #expect(try await store.delete("k"))
            #expect(try await store.currentRevision() == 4)

            // Re-creating starts a new life: new create revision, version 1.
            let recreated = try await store.put("k", value: "3".bytes)
            let fresh = try #require(try await store.get("k"))
            #expect(fresh.createRevision == recreated)
            #expect(fresh.version == 1)
        }
    }

    @Test("compare-and-put succeeds on the expected revision and leaves state unchanged on conflict")
    func compareAndPut() async throws {
        try await withStore { store in
            let created = try await store.compareAndPut("cfg", value: "v1".bytes, expectedModRevision: nil)

            let duplicate = await #expect(throws: StoreError.self) {
                try await store.compareAndPut("cfg", value: "other".bytes, expectedModRevision: nil)
            }
            #expect(duplicate?.code == .conflict)

            let stale = await #expect(throws: StoreError.self) {
                try await store.compareAndPut("cfg", value: "v2".bytes, expectedModRevision: Revision(created.rawValue + 7))
            }
            #expect(stale?.code == .conflict)
            let afterConflict = try #require(try await store.get("cfg"))
            #expect(afterConflict.value == "v1".bytes)
            #expect(afterConflict.modRevision == created)
            #expect(try await store.currentRevision() == created)

            let updated = try await store.compareAndPut("cfg", value: "v2".bytes, expectedModRevision: created)
            #expect(updated == created.next)
            #expect(try await store.get("cfg")?.value == "v2".bytes)
        }
    }

    @Test("transactions apply all operations at one revision or none at all")
    func transactionAllOrNothing() async throws {
        try await withStore { store in
            let base = try await store.put("jobs/1", value: "pending".bytes)
            _ = try await store.put("tmp/a", value: [1])
            _ = try await store.put("tmp/b", value: [2])
            let before = try await store.currentRevision()

            let failed = try await store.transaction(
                [.put(key: "jobs/1", value: "running".bytes), .put(key: "jobs/2", value: "new".bytes)],
                conditions: [.modRevisionEquals(key: "jobs/1", revision: base), .keyExists(key: "missing")]
            )
            #expect(!failed.succeeded)
            #expect(failed.revision == before)
            #expect(try await store.get("jobs/1")?.value == "pending".bytes)
            #expect(try await store.get("jobs/2") == nil)
            #expect(try await store.currentRevision() == before)

            let applied = try await store.transaction(
                [
                    .put(key: "jobs/1", value: "running".bytes),
                    .put(key: "jobs/2", value: "new".bytes),
                    .deletePrefix("tmp/"),
                ],
                conditions: [.modRevisionEquals(key: "jobs/1", revision: base), .keyAbsent(key: "jobs/2")]
            )
            #expect(applied.succeeded)
            #expect(applied.revision == before.next)
            #expect(applied.deletedCount == 2)
            let jobs = try await store.range(prefix: "jobs/")
            #expect(jobs.map(\.modRevision) == [before.next, before.next])
            #expect(try await store.range(prefix: "tmp/").isEmpty)

            let overlapping = await #expect(throws: StoreError.self) {
                try await store.transaction([.put(key: "x", value: []), .delete(key: "x")], conditions: [])
            }
            #expect(overlapping?.code == .invalidArgument)
        }
    }

    @Test("a transaction's puts keep create revisions, bump versions and report both to watchers")
    func transactionPutsTrackRevisions() async throws {
        try await withStore { store in
            let created = try await store.put("batch/old", value: "1".bytes)
            _ = try await store.put("batch/old", value: "2".bytes)
            let watch = try await store.watch(prefix: "batch/")

            let applied = try await store.transaction(
                [
                    .put(key: "batch/old", value: "3".bytes),
                    .put(key: "batch/new", value: []),
                    .delete(key: "batch/missing"),
                ],
                conditions: []
            )
            #expect(applied.succeeded)
            let old = try #require(try await store.get("batch/old"))
            #expect(old.createRevision == created)
            #expect(old.modRevision == applied.revision)
            #expect(old.version == 3)
            #expect(old.value == "3".bytes)
            let new = try #require(try await store.get("batch/new"))
            #expect(new.createRevision == applied.revision)
            #expect(new.version == 1)
            #expect(new.value.isEmpty)

            let events = try await collect(watch, count: 2)
            #expect(events.map(\.key) == ["batch/old", "batch/new"])
            #expect(events.map(\.createRevision) == [created, applied.revision])
            #expect(events.allSatisfy { $0.kind == .put && $0.modRevision == applied.revision })
        }
    }

    @Test("a transaction of hundreds of puts around a delete keeps every key's revisions and reports the puts in order")
    func largeTransaction() async throws {
        try await withStore { store in
            let existing = try await store.put("many/0100", value: "old".bytes)
            _ = try await store.put("many/gone", value: [1])
            let watch = try await store.watch(prefix: "many/")
            let keys = (0..<450).map { "many/" + String(String(10_000 + $0).dropFirst()) }
            var operations = keys[..<300].map { StoreOperation.put(key: $0, value: Array($0.utf8)) }
            operations.append(.delete(key: "many/gone"))
            operations += keys[300...].map { StoreOperation.put(key: $0, value: Array($0.utf8)) }

            let applied = try await store.transaction(operations, conditions: [])
            #expect(applied.succeeded && applied.deletedCount == 1)
            let stored = try await store.range(prefix: "many/")
            #expect(stored.map(\.key) == keys)
            #expect(stored.allSatisfy { $0.value == Array($0.key.utf8) && $0.modRevision == applied.revision })
            let updated = try #require(stored.first { $0.key == "many/0100" })
            #expect(updated.createRevision == existing && updated.version == 2)
            #expect(stored.filter { $0.version == 1 }.count == 449)

            let events = try await collect(watch, count: 451)
            #expect(events.map(\.key) == Array(keys[..<300]) + ["many/gone"] + Array(keys[300...]))
            #expect(events[100].createRevision == existing)
            #expect(events[0].createRevision == applied.revision)
        }
    }

    @Test("invalid keys are rejected with invalidArgument")
    func badKeys() async throws {
        try await withStore { store in
            let longKey = String(repeating: "k", count: 1025)
            for key in ["", longKey, "nul\0inside"] {
                let error = await #expect(throws: StoreError.self) {
                    try await store.put(key, value: [1])
                }
                #expect(error?.code == .invalidArgument)
                #expect(error?.message.isEmpty == false)
            }
            let getError = await #expect(throws: StoreError.self) { try await store.get("") }
            #expect(getError?.code == .invalidArgument)
            let prefixError = await #expect(throws: StoreError.self) { try await store.delete(prefix: "") }
            #expect(prefixError?.code == .invalidArgument)
            // The longest allowed key works.
            _ = try await store.put(String(repeating: "k", count: 1024), value: [1])
            #expect(try await store.currentRevision() == 1)
        }
    }

    @Test("JSON helpers round-trip Codable values")
    func json() async throws {
        struct Agent: Codable, Equatable {
            var id: String
            var cpus: Double
        }
        try await withStore { store in
            let agent = Agent(id: "a1", cpus: 4)
            let revision = try await store.putJSON("agents/a1", agent)
            let loaded = try await store.getJSON("agents/a1", as: Agent.self)
            #expect(loaded == agent)
            let missing = try await store.getJSON("agents/none", as: Agent.self)
            #expect(missing == nil)

            _ = try await store.compareAndPutJSON("agents/a1", Agent(id: "a1", cpus: 8), expectedModRevision: revision)
            #expect(try await store.getJSON("agents/a1", as: Agent.self)?.cpus == 8)

            _ = try await store.put("agents/bad", value: [0xFF])
            let error = await #expect(throws: StoreError.self) {
                try await store.getJSON("agents/bad", as: Agent.self)
            }
            #expect(error?.code == .internalError)
        }
    }
}
