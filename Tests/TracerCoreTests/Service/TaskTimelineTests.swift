import Foundation
import GRPCCore
import KeelAPI
import SwiftProtobuf
import Testing
import TracerCore

@Suite("Export and TaskTimeline over gRPC")
struct TaskTimelineTests {
    @Test("hops exported by several services come back in start order with since_previous and total")
    func timeline() async throws {
        try await withTracer { tracer in
            // Exported out of order and interleaved with another task's hops.
            let broker = Fixtures.request(service: "keel-broker", [
                Fixtures.span(
                    "status TASK_RUNNING", task: "web-1", offsetMillis: 250, attributes: ["keel.state": "TASK_RUNNING"]
                ),
                Fixtures.span("offer", task: "web-1", offsetMillis: 0, durationMillis: 5),
                Fixtures.span("launch", task: "web-1", offsetMillis: 40, durationMillis: 10),
                Fixtures.span("launch", task: "other-task", offsetMillis: 45),
            ])
            let launcher = Fixtures.request(service: "keel-launcher", [
                Fixtures.span(
                    "launcher.start", task: "web-1", offsetMillis: 100, durationMillis: 120,
                    attributes: ["keel.agent_id": "agent-1"]
                ),
                Fixtures.span("status TASK_FINISHED", task: "web-1", offsetMillis: 900, durationMillis: 2,
                              attributes: ["keel.exit_code": "0"]),
            ])
            let health = Fixtures.request(service: "keel-health", [
                Fixtures.span("healthy", task: "web-1", offsetMillis: 400, errorMessage: "probe flapped once")
            ])
            for request in [launcher, broker, health] {
                let response = try await tracer.traces.export(request)
                #expect(!response.hasPartialSuccess)
            }

            let timeline = try await tracer.tracer.taskTimeline(.with { $0.taskID.value = "web-1" })
            #expect(timeline.taskID.value == "web-1")
            #expect(timeline.hops.map(\.name) == [
                "offer", "launch", "launcher.start", "status TASK_RUNNING", "healthy", "status TASK_FINISHED",
            ])
            #expect(timeline.hops.map(\.service) == [
                "keel-broker", "keel-broker", "keel-launcher", "keel-broker", "keel-health", "keel-launcher",
            ])
            #expect(!timeline.hops[0].hasSincePrevious)
            let gaps = timeline.hops.dropFirst().map(\.sincePrevious)
            #expect(gaps == [40, 60, 150, 150, 500].map { Fixtures.millis($0) })
            #expect(timeline.total == Fixtures.millis(902))
            #expect(timeline.hops[1].start == Google_Protobuf_Timestamp(seconds: 1_700_000_000, nanos: 40_000_000))
            #expect(timeline.hops[1].end == Google_Protobuf_Timestamp(seconds: 1_700_000_000, nanos: 50_000_000))
            #expect(timeline.hops[2].attributes["keel.agent_id"] == "agent-1")
            #expect(timeline.hops[3].attributes["keel.state"] == "TASK_RUNNING")
            #expect(timeline.hops[4].error == "probe flapped once")
            #expect(timeline.hops[0].error.isEmpty)
            #expect(timeline.hops.allSatisfy { $0.attributes["keel.task_id"] == "web-1" })
            #expect(timeline.hops.allSatisfy { $0.traceID.count == 32 && $0.spanID.count == 16 })

            let other = try await tracer.tracer.taskTimeline(.with { $0.taskID.value = "other-task" })
            #expect(other.hops.map(\.name) == ["launch"])
            #expect(other.total == Fixtures.millis(1))
        }
    }

    @Test("span events that name the task appear as hops; events that do not are left out")
    func events() async throws {
        try await withTracer { tracer in
            let allocate = Fixtures.span(
                "allocate",
                offsetMillis: 10,
                durationMillis: 20,
                events: [
                    Fixtures.event("offer declined", task: "db-1", offsetMillis: 12),
                    Fixtures.event("offer accepted", task: "db-1", offsetMillis: 25),
                    Fixtures.event("offer accepted", task: "db-2", offsetMillis: 26),
                    Fixtures.event("cycle done", task: nil, offsetMillis: 29),
                ]
            )
            let launch = Fixtures.span("launch", task: "db-1", offsetMillis: 30, durationMillis: 3)
            _ = try await tracer.traces.export(Fixtures.request(service: "keel-broker", [allocate, launch]))

            let timeline = try await tracer.tracer.taskTimeline(.with { $0.taskID.value = "db-1" })
            #expect(timeline.hops.map(\.name) == ["offer declined", "offer accepted", "launch"])
            #expect(timeline.hops.map(\.service) == ["keel-broker", "keel-broker", "keel-broker"])
            let gaps = timeline.hops.dropFirst().map(\.sincePrevious)
            #expect(gaps == [Fixtures.millis(13), Fixtures.millis(5)])
            #expect(timeline.hops[0].start == timeline.hops[0].end, "an event has no duration")
            #expect(timeline.hops[0].spanID == Fixtures.hex(allocate.spanID), "an event points at its span")
            #expect(timeline.total == Fixtures.millis(21))
        }
    }

    @Test("spans with bad ids are rejected with partial_success; the valid ones are stored")
    func partialSuccess() async throws {
        try await withTracer { tracer in
            let request = Fixtures.request(service: "keel-launcher", [
                Fixtures.span("launcher.start", task: "t-1", offsetMillis: 0),
                Fixtures.span("short id", task: "t-1", offsetMillis: 1, spanID: Data([1, 2, 3, 4])),
                Fixtures.span("short trace", task: "t-1", offsetMillis: 2, traceID: Data([9])),
                Fixtures.span("zero id", task: "t-1", offsetMillis: 3, spanID: Data(count: 8)),
                Fixtures.span("status TASK_RUNNING", task: "t-1", offsetMillis: 4),
            ])
            let response = try await tracer.traces.export(request)
            #expect(response.partialSuccess.rejectedSpans == 3)
            #expect(response.partialSuccess.errorMessage.contains("4-byte span_id"))
            #expect(response.partialSuccess.errorMessage.contains("1-byte trace_id"))

            let timeline = try await tracer.tracer.taskTimeline(.with { $0.taskID.value = "t-1" })
            #expect(timeline.hops.map(\.name) == ["launcher.start", "status TASK_RUNNING"])
        }
    }

    @Test("odd but harmless input is accepted: no service name, end before start, empty request, retries")
    func oddInput() async throws {
        try await withTracer { tracer in
            var backwards = Fixtures.span("offer", task: "odd", offsetMillis: 50)
            backwards.endTimeUnixNano = 1
            var typed = Fixtures.span("launch", task: "odd", offsetMillis: 60)
            typed.attributes.append(.with {
                $0.key = "keel.exit_code"
                $0.value.intValue = 137
            })
            typed.attributes.append(.with {
                $0.key = "keel.flags"
                $0.value.arrayValue.values = [.with { $0.boolValue = true }, .with { $0.doubleValue = 1.5 }]
            })
            let request = Fixtures.request(service: nil, [backwards, typed])
            _ = try await tracer.traces.export(.init())
            let first = try await tracer.traces.export(request)
            let retry = try await tracer.traces.export(request)
            #expect(!first.hasPartialSuccess)
            #expect(!retry.hasPartialSuccess)

            let timeline = try await tracer.tracer.taskTimeline(.with { $0.taskID.value = "odd" })
            #expect(timeline.hops.count == 2, "a retried export must not duplicate hops")
            #expect(timeline.hops.map(\.service) == ["unknown_service", "unknown_service"])
            #expect(timeline.hops[0].start == timeline.hops[0].end)
            #expect(timeline.hops[1].attributes["keel.exit_code"] == "137")
            #expect(timeline.hops[1].attributes["keel.flags"] == "[true, 1.5]")
        }
    }
}
