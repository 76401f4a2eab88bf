import GRPCCore
import KeelAPI
import SwiftProtobuf
import Testing
import TracerCore

@Suite("Query API status codes and limits")
struct QueryValidationTests {
    @Test("TaskTimeline without a task id is INVALID_ARGUMENT")
    func emptyTaskID() async throws {
        try await withTracer { tracer in
            let error = await rpcError { _ = try await tracer.tracer.taskTimeline(.init()) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("task_id is empty") == true)
        }
    }

    @Test("TaskTimeline of a task without spans is NOT_FOUND and says spans may still be on their way")
    func unknownTask() async throws {
        try await withTracer { tracer in
            let error = await rpcError { _ = try await tracer.tracer.taskTimeline(.with { $0.taskID.value = "ghost" }) }
            #expect(error?.code == .notFound)
            #expect(error?.message.contains("no spans recorded for task ghost yet") == true)
        }
    }

    @Test("WhyPending is UNIMPLEMENTED for now")
    func whyPending() async throws {
        try await withTracer { tracer in
            let error = await rpcError { _ = try await tracer.tracer.whyPending(.with { $0.taskID.value = "t" }) }
            #expect(error?.code == .unimplemented)
            #expect(error?.message.contains("later version") == true)
        }
    }

    @Test("SearchSpans rejects an empty attribute key")
    func emptyAttributeKey() async throws {
        try await withTracer { tracer in
            let error = await rpcError { _ = try await tracer.tracer.searchSpans(.with { $0.attributes = ["": "x"] }) }
            #expect(error?.code == .invalidArgument)
        }
    }

    @Test("SearchSpans answers 100 spans by default and at most 1000")
    func searchLimits() async throws {
        try await withTracer { tracer in
            let spans = (0..<1_005).map { Fixtures.record("tick", task: nil, offsetMillis: Int64($0)) }
            try await tracer.store.insert(spans)
            let byDefault = try await tracer.tracer.searchSpans(.init())
            let small = try await tracer.tracer.searchSpans(.with { $0.limit = 7 })
            let huge = try await tracer.tracer.searchSpans(.with { $0.limit = 50_000 })
            #expect(byDefault.spans.count == 100)
            #expect(small.spans.count == 7)
            #expect(huge.spans.count == 1_000)
            #expect(byDefault.spans.first?.start == Google_Protobuf_Timestamp(seconds: 1_700_000_001, nanos: 4_000_000))
        }
    }

    @Test("SearchSpans filters by attributes, name prefix, service and since over gRPC")
    func searchFilters() async throws {
        try await withTracer { tracer in
            _ = try await tracer.traces.export(Fixtures.request(service: "keel-broker", [
                Fixtures.span("status TASK_RUNNING", task: "a", offsetMillis: 10),
                Fixtures.span("status TASK_FAILED", task: "b", offsetMillis: 20, attributes: ["keel.state": "TASK_FAILED"]),
                Fixtures.span("offer", task: "b", offsetMillis: 5),
            ]))
            _ = try await tracer.traces.export(Fixtures.request(service: "keel-launcher", [
                Fixtures.span("status TASK_FAILED", task: "b", offsetMillis: 19)
            ]))
            let failed = try await tracer.tracer.searchSpans(.with {
                $0.attributes = ["keel.state": "TASK_FAILED"]
                $0.service = "keel-broker"
            })
            let statuses = try await tracer.tracer.searchSpans(.with {
                $0.namePrefix = "status"
                $0.since = Google_Protobuf_Timestamp(seconds: 1_700_000_000, nanos: 15_000_000)
            })
            #expect(failed.spans.map(\.name) == ["status TASK_FAILED"])
            #expect(failed.spans.first?.attributes["keel.task_id"] == "b")
            #expect(statuses.spans.map(\.service) == ["keel-broker", "keel-launcher"])
        }
    }
}
