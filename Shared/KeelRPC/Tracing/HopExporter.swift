import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import KeelAPI
package import Logging
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

/// Sends task hops to keel-tracer as OTLP spans, without the machinery of live spans.
///
/// A task's life is a handful of hops in each daemon (offer, launch, every status, the process
/// start), hundreds per second under load. Made as spans of the daemon's tracer each hop cost
/// keel-broker about 40 µs: random ids, a span object with a dictionary of attribute
/// existentials, locks, a hand-off to the batch processor and a conversion to OTLP. Dropping the
/// hops took 0.2 ms of the broker's 0.55 ms of CPU per task and 0.08 of the launcher's 1.0 in the
/// launch benchmark. A hop is a finished fact with its own start and end, so it needs none of
/// that: it is queued as a small record, and what is queued goes out every ``interval`` as one
/// OTLP `ExportTraceServiceRequest` to the OTLP endpoint the daemon's other spans go to (so any
/// OTLP collector takes them as well as keel-tracer does).
///
/// All hops of a task share one trace, whose id is derived from the framework and task ids:
/// a task's life, in the broker and on its node, is one trace in any OTLP viewer. When the
/// tracer cannot be reached, or the queue is full, hops are dropped and the drop is logged.
package final class HopExporter: Service, Sendable {
    /// One hop, as ``TaskHopRecorder/record(_:taskID:frameworkID:agentID:start:end:attributes:)`` takes it.
    struct Hop: Sendable {
        var name: String
        var taskID: String
        var frameworkID: String
        var agentID: String
        var startNanos: UInt64
        var endNanos: UInt64
        var attributes: [String: String]
    }

    private struct Queue {
        var hops: [Hop] = []
        /// Hops dropped because the queue was full, since the last report.
        var dropped = 0
    }

    /// The exporter of this process, if tracing goes to an endpoint.
    private static let installed = Mutex<HopExporter?>(nil)

    /// How often queued hops are sent.
    package static let interval = Duration.milliseconds(500)
    /// The most hops kept waiting; more are dropped.
    static let capacity = 100_000
    /// The most hops in one export request.
    static let requestLimit = 5_000

    private let queue = Mutex(Queue())
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let resource: Opentelemetry_Proto_Resource_V1_Resource
    private let endpoint: Endpoint
    private let logger: Logger
    /// Whether the last export failed (so only the first failure of a streak is logged).
    private let failing = Mutex(false)

    /// Creates an exporter to the OTLP/gRPC `endpoint` for spans of `serviceName`.
    package init(endpoint: Endpoint, serviceName: String, logger: Logger) throws {
        self.endpoint = endpoint
        self.logger = logger
        client = GRPCClient(transport: try makeClientTransport(endpoint))
        resource = .with {
            $0.attributes = [.with {
                $0.key = "service.name"
                $0.value.stringValue = serviceName
            }]
        }
    }

    /// Makes this the exporter ``TaskHopRecorder`` records into (before it runs: hops recorded
    /// meanwhile wait in its queue).
    package func install() {
        Self.installed.withLock { $0 = self }
    }

    /// The installed exporter, if any.
    static var current: HopExporter? { installed.withLock { $0 } }

    /// Queues a hop for the next export.
    func enqueue(_ hop: Hop) {
        queue.withLock { queue in
            guard queue.hops.count < Self.capacity else {
                queue.dropped += 1
                return
            }
            queue.hops.append(hop)
        }
    }

    /// Sends what is queued every ``interval`` until graceful shutdown, then what is left. Never
    /// throws: losing hops must not stop the daemon.
    package func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                do {
                    try await self.client.runConnections()
                } catch {
                    self.logger.warning(
                        "the connection to the tracer ended; task hops are dropped from now on",
                        metadata: ["keel.tracer": "\(self.endpoint)", "keel.error": "\(error)"])
                }
            }
            var generator = SpanIDGenerator()
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.interval) }
                await exportQueued(&generator)
            }
            await exportQueued(&generator)
            client.beginGracefulShutdown()
        }
    }

    /// Sends everything queued, in requests of at most ``requestLimit`` hops.
    private func exportQueued(_ generator: inout SpanIDGenerator) async {
        let (hops, dropped) = queue.withLock { queue in
            defer {
                queue.hops.removeAll(keepingCapacity: true)
                queue.dropped = 0
            }
            return (queue.hops, queue.dropped)
        }
        if dropped > 0 {
            logger.warning(
                "dropped task hops: more were recorded than keel-tracer took in time",
                metadata: ["keel.hops_dropped": "\(dropped)", "keel.tracer": "\(endpoint)"])
        }
        var start = 0
        while start < hops.count {
            let end = min(start + Self.requestLimit, hops.count)
            await export(hops[start..<end], generator: &generator)
            start = end
        }
    }

    private func export(_ hops: ArraySlice<Hop>, generator: inout SpanIDGenerator) async {
        let request: [UInt8]
        do {
            request = try Self.request(
                resource: resource.serializedBytes(), spans: hops.map { Self.encodedSpan($0, spanID: generator.next()) })
        } catch {
            logger.error("cannot encode task hops; dropping them", metadata: ["keel.error": "\(error)"])
            return
        }
        var options = CallOptions.defaults
        options.timeout = .seconds(10)
        options.waitForReady = false
        do {
            let response = try await client.unary(
                request: ClientRequest(message: request),
                descriptor: Opentelemetry_Proto_Collector_Trace_V1_TraceService.Method.Export.descriptor,
                serializer: EncodedMessageSerializer(),
                deserializer: ProtobufDeserializer<Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse>(),
                options: options
            ) { try $0.message }
            if response.hasPartialSuccess, response.partialSuccess.rejectedSpans > 0 {
                logger.warning(
                    "keel-tracer rejected task hops",
                    metadata: [
                        "keel.hops_rejected": "\(response.partialSuccess.rejectedSpans)",
                        "keel.error": "\(response.partialSuccess.errorMessage)",
                    ])
            }
            failing.withLock { $0 = false }
        } catch {
            let first = failing.withLock { failing in
                defer { failing = true }
                return !failing
            }
            if first {
                logger.warning(
                    "cannot send task hops to the tracer; dropping them until it answers",
                    metadata: ["keel.tracer": "\(endpoint)", "keel.hops_dropped": "\(hops.count)", "keel.error": "\(error)"])
            }
        }
    }

    /// The instrumentation scope the hops are reported under.
    static let scopeName = "keel.task-hops"

    /// An `ExportTraceServiceRequest` holding one `ResourceSpans` of `resource` with one
    /// `ScopeSpans` of ``scopeName`` and `spans`, all given serialized: the same bytes
    /// SwiftProtobuf makes of the nested message, which computes the size of every nested
    /// message again at each level above it (for a span's attributes, five times over), while
    /// spans serialized one by one and framed here are sized once each.
    static func request(resource: [UInt8], spans: [[UInt8]]) throws -> [UInt8] {
        let scope = try Opentelemetry_Proto_Common_V1_InstrumentationScope.with { $0.name = scopeName }
            .serializedBytes() as [UInt8]
        // ScopeSpans { 1: scope, 2: span... }, ResourceSpans { 1: resource, 2: scope spans },
        // ExportTraceServiceRequest { 1: resource spans }.
        let scopeSpansSize = spans.reduce(ProtobufFraming.fieldSize(1, scope.count)) { $0 + ProtobufFraming.fieldSize(2, $1.count) }
        let resourceSpansSize = ProtobufFraming.fieldSize(1, resource.count) + ProtobufFraming.fieldSize(2, scopeSpansSize)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ProtobufFraming.fieldSize(1, resourceSpansSize))
        ProtobufFraming.appendHeader(1, length: resourceSpansSize, to: &bytes)
        ProtobufFraming.appendHeader(1, length: resource.count, to: &bytes)
        bytes += resource
        ProtobufFraming.appendHeader(2, length: scopeSpansSize, to: &bytes)
        ProtobufFraming.appendHeader(1, length: scope.count, to: &bytes)
        bytes += scope
        for span in spans {
            ProtobufFraming.appendHeader(2, length: span.count, to: &bytes)
            bytes += span
        }
        return bytes
    }

    /// The OTLP span of `hop`, serialized: the bytes SwiftProtobuf makes of the span message
    /// (the tests compare the two), written directly. A span is a handful of fixed fields and string attributes, and
    /// going through the message took a twentieth of the broker's CPU per task (every attribute
    /// is a message in a message, sized again at each level).
    static func encodedSpan(_ hop: Hop, spanID: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160 + hop.name.utf8.count + hop.taskID.utf8.count + hop.frameworkID.utf8.count)
        // trace_id = 1, span_id = 2 (bytes); name = 5; kind = 6 (SPAN_KIND_INTERNAL);
        // start_time_unix_nano = 7, end_time_unix_nano = 8 (fixed64); attributes = 9.
        let trace = traceID(frameworkID: hop.frameworkID, taskID: hop.taskID)
        ProtobufFraming.appendHeader(1, length: trace.count, to: &bytes)
        bytes += trace
        ProtobufFraming.appendHeader(2, length: 8, to: &bytes)
        withUnsafeBytes(of: spanID.bigEndian) { bytes += $0 }
        ProtobufFraming.appendString(5, hop.name, to: &bytes)
        bytes += [6 << 3, 1]
        ProtobufFraming.appendFixed64(7, hop.startNanos, to: &bytes)
        ProtobufFraming.appendFixed64(8, hop.endNanos, to: &bytes)
        func attribute(_ key: String, _ value: String) {
            // KeyValue { key = 1; value = 2: AnyValue { string_value = 1 } }; a oneof member is
            // written even when empty.
            let valueLength = ProtobufFraming.fieldSize(1, value.utf8.count)
            let keyLength = key.isEmpty ? 0 : ProtobufFraming.fieldSize(1, key.utf8.count)
            ProtobufFraming.appendHeader(9, length: keyLength + ProtobufFraming.fieldSize(2, valueLength), to: &bytes)
            ProtobufFraming.appendString(1, key, to: &bytes)
            ProtobufFraming.appendHeader(2, length: valueLength, to: &bytes)
            ProtobufFraming.appendHeader(1, length: value.utf8.count, to: &bytes)
            bytes += value.utf8
        }
        attribute("keel.task_id", hop.taskID)
        attribute("keel.framework_id", hop.frameworkID)
        if !hop.agentID.isEmpty { attribute("keel.agent_id", hop.agentID) }
        for (key, value) in hop.attributes { attribute(key, value) }
        return bytes
    }

    /// The trace of a task's hops: 16 bytes of FNV-1a over the framework id's length, the
    /// framework id and the task id, never all zero.
    static func traceID(frameworkID: String, taskID: String) -> Data {
        var high: UInt64 = 0xcbf2_9ce4_8422_2325
        var low: UInt64 = 0x6c62_272e_07bb_0142
        func mix(_ byte: UInt8) {
            high = (high ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            low = (low ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            low = low ^ (high >> 29)
        }
        withUnsafeBytes(of: UInt64(frameworkID.utf8.count).littleEndian) { for byte in $0 { mix(byte) } }
        for byte in frameworkID.utf8 { mix(byte) }
        for byte in taskID.utf8 { mix(byte) }
        if high == 0 && low == 0 { low = 1 }
        var bytes = Data(capacity: 16)
        withUnsafeBytes(of: high.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: low.bigEndian) { bytes.append(contentsOf: $0) }
        return bytes
    }
}

/// Span ids for one exporter: SplitMix64 from a random seed, never zero.
struct SpanIDGenerator {
    private var state: UInt64

    init(seed: UInt64 = UInt64.random(in: .min ... .max)) {
        state = seed
    }

    mutating func next() -> UInt64 {
        while true {
            state &+= 0x9e37_79b9_7f4a_7c15
            var value = state
            value = (value ^ (value >> 30)) &* 0xbf58_476d_1ce4_e5b9
            value = (value ^ (value >> 27)) &* 0x94d0_49bb_1331_11eb
            value ^= value >> 31
            if value != 0 { return value }
        }
    }
}

/// The wire format of a length-delimited protobuf field (wire type 2): its key and length.
enum ProtobufFraming {
    /// The bytes of field `number` holding `length` bytes, key and length included.
    static func fieldSize(_ number: Int, _ length: Int) -> Int {
        varintSize(UInt64(number << 3 | 2)) + varintSize(UInt64(length)) + length
    }

    /// Appends the key and length of field `number` holding `length` bytes.
    static func appendHeader(_ number: Int, length: Int, to bytes: inout [UInt8]) {
        appendVarint(UInt64(number << 3 | 2), to: &bytes)
        appendVarint(UInt64(length), to: &bytes)
    }

    /// Appends string field `number` unless `value` is empty (proto3 leaves defaults out).
    static func appendString(_ number: Int, _ value: String, to bytes: inout [UInt8]) {
        guard !value.isEmpty else { return }
        appendHeader(number, length: value.utf8.count, to: &bytes)
        bytes += value.utf8
    }

    /// Appends `fixed64` field `number` unless `value` is 0.
    static func appendFixed64(_ number: Int, _ value: UInt64, to bytes: inout [UInt8]) {
        guard value != 0 else { return }
        appendVarint(UInt64(number << 3 | 1), to: &bytes)
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    static func varintSize(_ value: UInt64) -> Int {
        var size = 1
        var rest = value >> 7
        while rest != 0 {
            size += 1
            rest >>= 7
        }
        return size
    }

    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }
}

/// Sends a message that is already serialized as it is.
struct EncodedMessageSerializer: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
        Bytes(message)
    }
}
