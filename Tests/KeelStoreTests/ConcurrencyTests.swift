import KeelStore
import Testing

@Suite("Concurrent use")
struct ConcurrencyTests {
    @Test("concurrent writers are serialized: every write gets its own revision")
    func concurrentWriters() async throws {
        try await withStore { store in
            let stream = try await store.watch(prefix: "")
            let revisions = try await withThrowingTaskGroup(of: Revision.self) { group in
                for index in 0..<40 {
                    group.addTask {
                        try await store.put("k/\(index % 7)", value: [UInt8(index)])
                    }
                }
                var all: [Revision] = []
                for try await revision in group {
                    all.append(revision)
                }
                return all
            }
            #expect(Set(revisions).count == 40)
            #expect(revisions.max() == 40)
            #expect(try await store.currentRevision() == 40)

            let events = try await collect(stream, count: 40)
            #expect(events.map(\.modRevision) == (1...40).map { Revision(Int64($0)) })
        }
    }

    @Test("a snapshot plus a watch from its revision sees every later change exactly once")
    func listThenWatch() async throws {
        try await withStore { store in
            _ = try await store.put("pods/a", value: [1])
            let snapshot = try await store.snapshot(prefix: "pods/")
            #expect(snapshot.revision == 1)
            #expect(snapshot.keyValues.map(\.key) == ["pods/a"])
            _ = try await store.put("pods/b", value: [2])

            let stream = try await store.watch(prefix: "pods/", fromRevision: snapshot.revision)
            _ = try await store.put("pods/c", value: [3])
            let events = try await collect(stream, count: 2)
            #expect(events.map(\.key) == ["pods/b", "pods/c"])

            let empty = try await store.snapshot(prefix: "nothing/")
            #expect(empty.keyValues.isEmpty)
            #expect(empty.revision == 3)
        }
    }

    @Test("callers cancelled mid-flight never leave a half-done transaction behind")
    func cancelledCallers() async throws {
        try await withStore { store in
            await withTaskGroup(of: Void.self) { group in
                for index in 0..<30 {
                    group.addTask {
                        _ = try? await store.transaction(
                            [.put(key: "c/\(index)", value: [1]), .put(key: "d/\(index)", value: [2])],
                            conditions: [.keyAbsent(key: "c/\(index)")]
                        )
                    }
                }
                group.cancelAll()
            }
            // Each transaction either fully happened or not at all, and the store still accepts writes.
            let cs = try await store.range(prefix: "c/").count
            let ds = try await store.range(prefix: "d/").count
            #expect(cs == ds)
            let revision = try await store.put("after", value: [])
            #expect(revision == Revision(Int64(cs + 1)))
        }
    }
}
