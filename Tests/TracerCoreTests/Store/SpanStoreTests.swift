import Foundation
import Testing
import TracerCore

@Suite("Span store")
struct SpanStoreTests {
    @Test("spans, attributes and events survive a close and reopen")
    func roundTrip() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var span = Fixtures.record("launch", task: "task-1", offsetMillis: 10)
        span.parentSpanID = "00f067aa0ba902b7"
        span.error = "agent went away"
        span.attributes["keel.agent_id"] = "agent-7"
        span.events = [SpanEventRecord(name: "retry", timeNanos: span.startNanos + 500, attributes: ["attempt": "2"])]

        let first = try await SpanStore.open(path: directory.storePath, logger: quietLogger)
        let stored = try await first.insert([span])
        try await first.close()
        #expect(stored == 1)

        let second = try await SpanStore.open(path: directory.storePath, logger: quietLogger)
        let count = try await second.count()
        let hops = try await second.taskHops("task-1", limit: 100)
        let found = try await second.search(SpanSearch(attributes: ["keel.agent_id": "agent-7"]))
        let again = try await second.insert([span])
        try await second.close()

        #expect(count == 1)
        #expect(hops.count == 1)
        let hop = try #require(hops.first)
        #expect(hop.name == "launch")
        #expect(hop.service == "keel-broker")
        #expect(hop.traceID == span.traceID)
        #expect(hop.spanID == span.spanID)
        #expect(hop.startNanos == span.startNanos)
        #expect(hop.endNanos == span.endNanos)
        #expect(hop.error == "agent went away")
        #expect(hop.attributes == span.attributes)
        #expect(!hop.isEvent)
        #expect(found.map(\.spanID) == [span.spanID])
        #expect(again == 0, "re-sending a stored span (an exporter retry) must not store it twice")
    }

    @Test("pruning removes spans older than the retention, with their events, and keeps newer ones")
    func retention() async throws {
        var configuration = TracerConfiguration.defaults
        configuration.retention = .seconds(3_600)
        try await withSpanStore(configuration: configuration) { store, _ in
            let now = Date()
            var old = Fixtures.record("offer", task: "old-task", offsetMillis: 0)
            old.events = [SpanEventRecord(name: "note", timeNanos: old.startNanos, attributes: ["keel.task_id": "old-task"])]
            try await store.insert([old], receivedAt: now.addingTimeInterval(-7_200))
            try await store.insert([Fixtures.record("offer", task: "new-task", offsetMillis: 0)], receivedAt: now)

            let removed = try await store.prune(now: now)
            let oldHops = try await store.taskHops("old-task", limit: 10)
            let newHops = try await store.taskHops("new-task", limit: 10)
            let count = try await store.count()

            #expect(removed == 1)
            #expect(oldHops.isEmpty, "the span and its event must both be gone")
            #expect(newHops.count == 1)
            #expect(count == 1)
        }
    }

    @Test("the span cap drops the spans that arrived first")
    func cap() async throws {
        var configuration = TracerConfiguration.defaults
        configuration.maxSpans = 5
        try await withSpanStore(configuration: configuration) { store, _ in
            for index in 0..<8 {
                try await store.insert([Fixtures.record("hop-\(index)", task: "t", offsetMillis: Int64(index))])
            }
            let count = try await store.count()
            let names = try await store.taskHops("t", limit: 100).map(\.name)
            #expect(count == 5)
            #expect(names == ["hop-3", "hop-4", "hop-5", "hop-6", "hop-7"])
        }
    }

    @Test("concurrent inserts are all stored")
    func concurrentInserts() async throws {
        try await withSpanStore { store, _ in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for writer in 0..<16 {
                    group.addTask {
                        let spans = (0..<10).map { Fixtures.record("hop", task: "task-\(writer)", offsetMillis: Int64($0)) }
                        return try await store.insert(spans)
                    }
                }
                var stored = 0
                for try await count in group { stored += count }
                #expect(stored == 160)
            }
            let count = try await store.count()
            let hops = try await store.taskHops("task-3", limit: 100)
            #expect(count == 160)
            #expect(hops.count == 10)
        }
    }

    @Test("an export larger than one statement stores every new span and its events once, and skips the stored ones")
    func largeExport() async throws {
        try await withSpanStore { store, _ in
            let spans = (0..<250).map { index -> SpanRecord in
                var span = Fixtures.record("hop", task: "task-\(index % 5)", offsetMillis: Int64(index))
                span.events = (0..<3).map {
                    SpanEventRecord(name: "step-\($0)", timeNanos: span.startNanos + Int64($0), attributes: span.attributes)
                }
                return span
            }
            let first = try await store.insert(Array(spans[..<150]))
            // A retry of the last 50 together with 100 new ones.
            let second = try await store.insert(Array(spans[100...]))
            let count = try await store.count()
            let hops = try await store.taskHops("task-2", limit: 1000)
            #expect(first == 150)
            #expect(second == 100)
            #expect(count == 250)
            #expect(hops.filter { !$0.isEvent }.count == 50)
            #expect(hops.filter(\.isEvent).count == 150, "each of task-2's 50 spans has 3 events, stored once")
        }
    }

    @Test("a closed store refuses work with UNAVAILABLE and closing twice is harmless")
    func closed() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await SpanStore.open(path: directory.storePath, logger: quietLogger)
        try await store.close()
        try await store.close()
        var failure: (any Error)?
        do {
            try await store.insert([Fixtures.record("offer", task: "t", offsetMillis: 0)])
        } catch {
            failure = error
        }
        let description = failure.map { "\($0)" } ?? "no error"
        #expect(description.hasPrefix("UNAVAILABLE"), "got: \(description)")
    }

    @Test("a timeline longer than the limit keeps the most recent hops, still in start order")
    func timelineLimit() async throws {
        try await withSpanStore { store, _ in
            let spans = (0..<5).map { Fixtures.record("hop-\($0)", task: "long", offsetMillis: Int64($0)) }
            try await store.insert(spans.shuffled())
            let names = try await store.taskHops("long", limit: 3).map(\.name)
            #expect(names == ["hop-2", "hop-3", "hop-4"])
        }
    }

    @Test("search filters by service, name prefix, attributes and start time, newest first")
    func search() async throws {
        try await withSpanStore { store, _ in
            try await store.insert([
                Fixtures.record("status TASK_RUNNING", task: "a", offsetMillis: 1, service: "keel-broker"),
                Fixtures.record("status TASK_FINISHED", task: "a", offsetMillis: 5, service: "keel-broker"),
                Fixtures.record("launcher.start", task: "a", offsetMillis: 3, service: "keel-launcher"),
                Fixtures.record("status TASK_RUNNING", task: "b", offsetMillis: 2, service: "keel-broker"),
                Fixtures.record("ßtatus ünïcode", task: "c", offsetMillis: 4, service: "keel-broker"),
            ])
            let status = try await store.search(SpanSearch(namePrefix: "status ", service: "keel-broker"))
            let ofA = try await store.search(SpanSearch(attributes: ["keel.task_id": "a", "keel.framework_id": "fw-1"]))
            let since = try await store.search(SpanSearch(sinceNanos: Int64(Fixtures.base) + 3_000_000))
            let unicode = try await store.search(SpanSearch(namePrefix: "ßtatus ü"))
            let limited = try await store.search(SpanSearch(limit: 2))
            let none = try await store.search(SpanSearch(attributes: ["keel.framework_id": "fw-2"]))

            #expect(status.map(\.name) == ["status TASK_FINISHED", "status TASK_RUNNING", "status TASK_RUNNING"])
            #expect(ofA.map(\.name) == ["status TASK_FINISHED", "launcher.start", "status TASK_RUNNING"])
            #expect(since.map(\.name) == ["status TASK_FINISHED", "ßtatus ünïcode", "launcher.start"])
            #expect(unicode.count == 1)
            #expect(limited.count == 2)
            #expect(none.isEmpty)
        }
    }
}
