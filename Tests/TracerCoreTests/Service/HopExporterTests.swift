import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import KeelAPI
@testable import KeelRPC
import Logging
import ServiceLifecycle
import SwiftProtobuf
import Testing
import TracerCore

/// Task hops sent by a daemon's ``HopExporter`` to keel-tracer's OTLP receiver over HTTP/2 on
/// loopback, and read back with `TaskTimeline`.
@Suite("Hop exporter")
struct HopExporterTests {
    @Test("queued hops reach the tracer as spans of one trace per task, with their times and attributes, also when the daemon stops right after")
    func hopsReachTheTracer() async throws {
        try await withSpanStore { store, _ in
            let server = GRPCServer(
                transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
                services: [
                    OTLPReceiver(store: store, logger: quietLogger),
                    TracerQueryService(store: store, configuration: .defaults, logger: quietLogger),
                ]
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.serve() }
                defer { server.beginGracefulShutdown() }
                let port = try #require(try await server.listeningAddress?.port)
                let endpoint = Endpoint(host: "127.0.0.1", port: port)
                let exporter = try HopExporter(endpoint: endpoint, serviceName: "keel-broker", logger: quietLogger)
                let services = ServiceGroup(services: [exporter], logger: quietLogger)
                group.addTask { try await services.run() }

                let start: UInt64 = 1_700_000_000_000_000_000
                func hop(_ name: String, task: String, at offsetMillis: UInt64, attributes: [String: String] = [:]) -> HopExporter.Hop {
                    HopExporter.Hop(
                        name: name, taskID: task, frameworkID: "fw-1", agentID: task == "web-1" ? "agent-1" : "",
                        startNanos: start + offsetMillis * 1_000_000, endNanos: start + (offsetMillis + 5) * 1_000_000,
                        attributes: attributes)
                }
                exporter.enqueue(hop("offer", task: "web-1", at: 0))
                exporter.enqueue(hop("launch", task: "web-1", at: 10, attributes: ["keel.resources": "cpus:0.5"]))
                exporter.enqueue(hop("launch", task: "web-2", at: 20))

                let client = GRPCClient(transport: try makeClientTransport(endpoint))
                group.addTask { try await client.runConnections() }
                defer { client.beginGracefulShutdown() }
                let tracer = Keel_V1_Tracer.Client(wrapping: client)
                let deadline = ContinuousClock.now + .seconds(30)
                // The task's timeline once it has `count` hops.
                func waitForHops(_ task: String, count: Int) async throws -> Keel_V1_TaskTimelineResponse {
                    while true {
                        do {
                            let timeline = try await tracer.taskTimeline(.with { $0.taskID.value = task })
                            if timeline.hops.count >= count { return timeline }
                        } catch let error as RPCError where error.code == .notFound {}
                        guard ContinuousClock.now < deadline else { throw TimedOut(what: "\(count) hops of \(task)") }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
                let timeline = try await waitForHops("web-1", count: 2)
                #expect(timeline.hops.map(\.name) == ["offer", "launch"])
                #expect(timeline.hops.allSatisfy { $0.service == "keel-broker" })
                #expect(timeline.hops[1].attributes["keel.resources"] == "cpus:0.5")
                #expect(timeline.hops[1].attributes["keel.framework_id"] == "fw-1")
                #expect(timeline.hops[1].attributes["keel.agent_id"] == "agent-1")
                #expect(timeline.hops[1].start == Google_Protobuf_Timestamp(seconds: 1_700_000_000, nanos: 10_000_000))
                #expect(timeline.hops[1].end == Google_Protobuf_Timestamp(seconds: 1_700_000_000, nanos: 15_000_000))
                // One trace per task, a span id per hop.
                #expect(timeline.hops[0].traceID == timeline.hops[1].traceID)
                #expect(timeline.hops[0].spanID != timeline.hops[1].spanID)
                let other = try await waitForHops("web-2", count: 1)
                #expect(other.hops.map(\.name) == ["launch"])
                #expect(other.hops.first?.traceID != timeline.hops[0].traceID)
                #expect(other.hops.first?.attributes["keel.agent_id"] == nil)

                // A hop queued just before the daemon stops still goes out.
                exporter.enqueue(hop("status TASK_FINISHED", task: "web-2", at: 30))
                await services.triggerGracefulShutdown()
                let finished = try await waitForHops("web-2", count: 2)
                #expect(finished.hops.map(\.name) == ["launch", "status TASK_FINISHED"])
            }
        }
    }

    @Test("with the tracer unreachable hops are dropped, and the daemon still stops at once")
    func unreachableTracer() async throws {
        // A port bound but not listening refuses connections and stays ours for the test.
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        try #require(bound)
        let endpoint = Endpoint(host: "127.0.0.1", port: Int(UInt16(bigEndian: address.sin_port)))
        let exporter = try HopExporter(endpoint: endpoint, serviceName: "keel-launcher", logger: quietLogger)
        let services = ServiceGroup(services: [exporter], logger: quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await services.run() }
            exporter.enqueue(HopExporter.Hop(
                name: "launcher.start", taskID: "t", frameworkID: "f", agentID: "", startNanos: 1, endNanos: 2,
                attributes: [:]))
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }

    @Test("a request framed from spans serialized one by one is the request SwiftProtobuf makes of the nested messages")
    func framedRequest() throws {
        let resource = Opentelemetry_Proto_Resource_V1_Resource.with {
            $0.attributes = [.with { $0.key = "service.name"; $0.value.stringValue = "keel-broker" }]
        }
        let longValue = String(repeating: "x", count: 300)
        for count in [0, 1, 3, 200] {
            var spans: [Opentelemetry_Proto_Trace_V1_Span] = []
            for index in 0..<count {
                let attributes: [String: String] = index == 1 ? ["keel.message": longValue] : [:]
                let hop = HopExporter.Hop(
                    name: "task.status", taskID: "task-\(index)", frameworkID: "fw", agentID: index % 2 == 0 ? "agent" : "",
                    startNanos: UInt64(index), endNanos: UInt64(index) + 5, attributes: attributes)
                spans.append(Self.span(hop, spanID: UInt64(index) + 1))
            }
            let expected = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest.with {
                $0.resourceSpans = [.with {
                    $0.resource = resource
                    $0.scopeSpans = [.with {
                        $0.scope.name = HopExporter.scopeName
                        $0.spans = spans
                    }]
                }]
            }
            let framed = try HopExporter.request(
                resource: resource.serializedBytes(), spans: spans.map { try $0.serializedBytes() })
            #expect(framed == (try expected.serializedBytes() as [UInt8]), "\(count) spans")
            let decoded = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: framed)
            #expect(decoded == expected, "\(count) spans")
        }
    }

    @Test("a hop's span written directly is the span SwiftProtobuf serializes")
    func encodedSpan() throws {
        let hops = [
            HopExporter.Hop(
                name: "task.status TASK_RUNNING", taskID: "web-1", frameworkID: "fw-1", agentID: "agent-1",
                startNanos: 1_700_000_000_000_000_000, endNanos: 1_700_000_000_000_500_000,
                attributes: ["keel.message": String(repeating: "m", count: 200), "keel.pid": "4242", "keel.empty": ""]),
            HopExporter.Hop(name: "", taskID: "", frameworkID: "", agentID: "", startNanos: 0, endNanos: 0, attributes: [:]),
            HopExporter.Hop(
                name: "offer", taskID: "t", frameworkID: "f", agentID: "", startNanos: 1, endNanos: UInt64.max,
                attributes: ["": "no key"]),
        ]
        for (index, hop) in hops.enumerated() {
            let spanID = UInt64(index) &* 0x9E37_79B9_7F4A_7C15 | 1
            let expected: [UInt8] = try Self.span(hop, spanID: spanID).serializedBytes()
            #expect(HopExporter.encodedSpan(hop, spanID: spanID) == expected, "hop \(index)")
        }
    }

    @Test("a task's trace id depends on its framework and task ids only, and is never zero")
    func traceIDs() {
        let first = HopExporter.traceID(frameworkID: "fw-1", taskID: "web-1")
        #expect(first.count == 16)
        #expect(first.contains { $0 != 0 })
        #expect(first == HopExporter.traceID(frameworkID: "fw-1", taskID: "web-1"))
        #expect(first != HopExporter.traceID(frameworkID: "fw-2", taskID: "web-1"))
        #expect(HopExporter.traceID(frameworkID: "a/b", taskID: "c") != HopExporter.traceID(frameworkID: "a", taskID: "b/c"))
        var generator = SpanIDGenerator(seed: 0)
        let ids = (0..<1000).map { _ in generator.next() }
        #expect(Set(ids).count == ids.count && !ids.contains(0))
    }
}

private struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

extension HopExporterTests {
    /// The OTLP span of `hop` as a message: what ``HopExporter/encodedSpan(_:spanID:)`` must serialize.
    static func span(_ hop: HopExporter.Hop, spanID: UInt64) -> Opentelemetry_Proto_Trace_V1_Span {
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.traceID = HopExporter.traceID(frameworkID: hop.frameworkID, taskID: hop.taskID)
        span.spanID = withUnsafeBytes(of: spanID.bigEndian) { Data($0) }
        span.name = hop.name
        span.kind = .internal
        span.startTimeUnixNano = hop.startNanos
        span.endTimeUnixNano = hop.endNanos
        var attributes: [Opentelemetry_Proto_Common_V1_KeyValue] = []
        attributes.reserveCapacity(hop.attributes.count + 3)
        func add(_ key: String, _ value: String) {
            var attribute = Opentelemetry_Proto_Common_V1_KeyValue()
            attribute.key = key
            attribute.value.stringValue = value
            attributes.append(attribute)
        }
        add("keel.task_id", hop.taskID)
        add("keel.framework_id", hop.frameworkID)
        if !hop.agentID.isEmpty { add("keel.agent_id", hop.agentID) }
        for (key, value) in hop.attributes { add(key, value) }
        span.attributes = attributes
        return span
    }
}
