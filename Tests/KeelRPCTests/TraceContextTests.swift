import Foundation
import GRPCCore
import GRPCInProcessTransport
import InMemoryTracing
import KeelAPI
import KeelRPC
import Logging
import SwiftProtobuf
import Testing
import Tracing

/// The tracer every test of this suite records into. The instrumentation system can be
/// bootstrapped once per process, and only this suite does it.
let testTracer: InMemoryTracer = {
    let tracer = InMemoryTracer()
    InstrumentationSystem.bootstrap(tracer)
    return tracer
}()

@Suite("Trace context", .serialized)
struct TraceContextTests {
    @Test("a call carries the caller's trace to a server span, which ends with the call")
    func propagation() async throws {
        let tracer = testTracer
        let inProcess = InProcessTransport()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = GRPCServer(
            transport: inProcess.server,
            services: [HealthService()],
            interceptors: [ServerCallInterceptor(serviceName: "test", logger: logger)]
        )
        let client = GRPCClient(transport: inProcess.client, interceptors: [ClientCallInterceptor()])
        let (callerTrace, callerSpan) = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            group.addTask { try await client.runConnections() }
            defer {
                server.beginGracefulShutdown()
                client.beginGracefulShutdown()
            }
            return try await withSpan("caller") { span in
                let health = Grpc_Health_V1_Health.Client(wrapping: client)
                let reply = try await health.check(Grpc_Health_V1_HealthCheckRequest())
                #expect(reply.status == .serving)
                let context = try #require(span.context.inMemorySpanContext)
                return (context.traceID, context.spanID)
            }
        }
        let serverSpan = try #require(tracer.finishedSpans.first { $0.operationName == "grpc.health.v1.Health/Check" })
        #expect(serverSpan.kind == .server)
        #expect(serverSpan.spanContext.traceID == callerTrace)
        #expect(serverSpan.spanContext.parentSpanID == callerSpan)
        #expect(serverSpan.attributes["rpc.method"]?.toSpanAttribute() == "Check")
    }

    @Test("a task hop is a span with the task id and the hop's own start and end")
    func taskHop() throws {
        let tracer = testTracer
        let start = Date(timeIntervalSince1970: 1_700_000_000)
        let end = start.addingTimeInterval(0.25)
        TaskHopRecorder.record(
            "launch", taskID: "t-42", frameworkID: "f-1", agentID: "a-1", start: start, end: end,
            attributes: ["keel.resources": "cpus:1"]
        )
        let hop = try #require(tracer.finishedSpans.last { $0.operationName == "launch" })
        #expect(hop.attributes["keel.task_id"]?.toSpanAttribute() == "t-42")
        #expect(hop.attributes["keel.agent_id"]?.toSpanAttribute() == "a-1")
        #expect(hop.attributes["keel.resources"]?.toSpanAttribute() == "cpus:1")
        #expect(hop.startInstant.nanosecondsSinceEpoch == 1_700_000_000_000_000_000)
        #expect(hop.endInstant.nanosecondsSinceEpoch - hop.startInstant.nanosecondsSinceEpoch == 250_000_000)
    }
}
