import KeelStore
import Testing

@Suite("Watching changes")
struct WatchTests {
    @Test("a watch delivers puts and deletes under its prefix, in revision order")
    func liveEventsInOrder() async throws {
        try await withStore { store in
            let stream = try await store.watch(prefix: "svc/")
            let r1 = try await store.put("svc/a", value: "1".bytes)
            _ = try await store.put("other/x", value: "ignored".bytes)
            let r3 = try await store.put("svc/b", value: "2".bytes)
            let r4 = try await store.put("svc/a", value: "3".bytes)
            #expect(try await store.delete("svc/b"))
            let r6 = try await store.transaction(
                [.put(key: "svc/c", value: "4".bytes), .delete(key: "svc/a")],
                conditions: []
            ).revision

            let events = try await collect(stream, count: 6)
            #expect(events.map(\.kind) == [.put, .put, .put, .delete, .put, .delete])
            #expect(events.map(\.key) == ["svc/a", "svc/b", "svc/a", "svc/b", "svc/c", "svc/a"])
            #expect(events.map(\.modRevision) == [r1, r3, r4, r4.next, r6, r6])
            #expect(events[2].value == "3".bytes)
            #expect(events[2].createRevision == r1)
            #expect(events[3].value.isEmpty)
        }
    }

    @Test("watching from a revision first replays the changes after it")
    func replayFromRevision() async throws {
        try await withStore { store in
            _ = try await store.put("cfg/a", value: "1".bytes)
            let checkpoint = try await store.put("cfg/b", value: "2".bytes)
            let r3 = try await store.put("cfg/a", value: "3".bytes)
            #expect(try await store.delete("cfg/b"))

            let stream = try await store.watch(prefix: "cfg/", fromRevision: checkpoint)
            let r5 = try await store.put("cfg/c", value: "5".bytes)

            let events = try await collect(stream, count: 3)
            #expect(events.map(\.modRevision) == [r3, r3.next, r5])
            #expect(events.map(\.kind) == [.put, .delete, .put])
            #expect(events.map(\.key) == ["cfg/a", "cfg/b", "cfg/c"])
        }
    }

    @Test("watching from a revision older than the retained history throws compacted")
    func compactedHistory() async throws {
        var configuration = SQLiteStore.Configuration()
        configuration.historyLimit = 4
        try await withStore(configuration: configuration) { store in
            for index in 0..<20 {
                _ = try await store.put("k/\(index % 3)", value: [UInt8(index)])
            }
            let old = try await store.watch(prefix: "k/", fromRevision: 1)
            let error = try await streamError(old)
            #expect((error as? StoreError)?.code == .compacted)

            // A recent revision is still replayable.
            let current = try await store.currentRevision()
            let recent = try await store.watch(prefix: "k/", fromRevision: Revision(current.rawValue - 2))
            let events = try await collect(recent, count: 2)
            #expect(events.map(\.modRevision) == [Revision(current.rawValue - 1), current])
        }
    }

    @Test("a watcher that falls too far behind ends with compacted instead of losing events")
    func slowWatcherOverflow() async throws {
        var configuration = SQLiteStore.Configuration()
        configuration.watchBufferLimit = 3
        try await withStore(configuration: configuration) { store in
            let stream = try await store.watch(prefix: "")
            for index in 0..<5 {
                _ = try await store.put("k\(index)", value: [])
            }
            var received = 0
            var failure: (any Error)?
            do {
                for try await _ in stream { received += 1 }
            } catch {
                failure = error
            }
            #expect(received == 3)
            #expect((failure as? StoreError)?.code == .compacted)
        }
    }

    @Test("closing the store ends watches with unavailable; cancelled watches unregister")
    func closeAndCancel() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await SQLiteStore.open(path: directory.storePath, logger: quietLogger)

        let cancelled = try await store.watch(prefix: "")
        #expect(store.watcherCount == 1)
        try await withDeadline("the cancelled watcher to unregister") {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        for try await _ in cancelled {}
                    } catch {}
                }
                group.cancelAll()
            }
        }
        #expect(store.watcherCount == 0)

        let open = try await store.watch(prefix: "")
        try await store.close()
        let error = try await streamError(open)
        #expect((error as? StoreError)?.code == .unavailable)
        let afterClose = await #expect(throws: StoreError.self) { try await store.get("k") }
        #expect(afterClose?.code == .unavailable)
    }
}
