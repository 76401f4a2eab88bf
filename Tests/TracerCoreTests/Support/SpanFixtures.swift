import Foundation
import KeelAPI
import SwiftProtobuf
import TracerCore

/// Builds OTLP messages and store records for tests.
enum Fixtures {
    /// A fixed base time (2023-11-14T22:13:20Z) in Unix nanoseconds; hop offsets are added to it.
    static let base: UInt64 = 1_700_000_000_000_000_000

    /// `count` random bytes, never all zero.
    static func randomID(_ count: Int) -> Data {
        var bytes = (0..<count).map { _ in UInt8.random(in: 0...255) }
        bytes[0] |= 1
        return Data(bytes)
    }

    /// A string attribute.
    static func attribute(_ key: String, _ value: String) -> Opentelemetry_Proto_Common_V1_KeyValue {
        .with {
            $0.key = key
            $0.value.stringValue = value
        }
    }

    /// An OTLP span starting `offsetMillis` after ``base`` and lasting `durationMillis`.
    static func span(
        _ name: String,
        task: String? = nil,
        offsetMillis: UInt64,
        durationMillis: UInt64 = 1,
        traceID: Data = randomID(16),
        spanID: Data = randomID(8),
        attributes: [String: String] = [:],
        events: [Opentelemetry_Proto_Trace_V1_Span.Event] = [],
        errorMessage: String? = nil
    ) -> Opentelemetry_Proto_Trace_V1_Span {
        .with {
            $0.traceID = traceID
            $0.spanID = spanID
            $0.name = name
            $0.kind = .internal
            $0.startTimeUnixNano = base + offsetMillis * 1_000_000
            $0.endTimeUnixNano = base + (offsetMillis + durationMillis) * 1_000_000
            var all = attributes
            if let task {
                all["keel.task_id"] = task
                all["keel.framework_id"] = "fw-1"
            }
            $0.attributes = all.sorted { $0.key < $1.key }.map { attribute($0.key, $0.value) }
            $0.events = events
            if let errorMessage {
                $0.status.code = .error
                $0.status.message = errorMessage
            }
        }
    }

    /// An OTLP span event `offsetMillis` after ``base``.
    static func event(_ name: String, task: String?, offsetMillis: UInt64) -> Opentelemetry_Proto_Trace_V1_Span.Event {
        .with {
            $0.name = name
            $0.timeUnixNano = base + offsetMillis * 1_000_000
            if let task { $0.attributes = [attribute("keel.task_id", task)] }
        }
    }

    /// An export request with one resource (`service.name = service`) holding `spans`.
    static func request(
        service: String?,
        _ spans: [Opentelemetry_Proto_Trace_V1_Span]
    ) -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest {
        .with {
            $0.resourceSpans = [
                .with {
                    if let service { $0.resource.attributes = [attribute("service.name", service)] }
                    $0.scopeSpans = [.with { $0.spans = spans }]
                }
            ]
        }
    }

    /// A store record for `task` starting `offsetMillis` after ``base``.
    static func record(_ name: String, task: String?, offsetMillis: Int64, service: String = "keel-broker") -> SpanRecord {
        let start = Int64(base) + offsetMillis * 1_000_000
        var attributes: [String: String] = ["keel.framework_id": "fw-1"]
        if let task { attributes["keel.task_id"] = task }
        return SpanRecord(
            traceID: hex(randomID(16)),
            spanID: hex(randomID(8)),
            name: name,
            service: service,
            startNanos: start,
            endNanos: start + 1_000_000,
            attributes: attributes
        )
    }

    /// Lowercase hex of `data`.
    static func hex(_ data: Data) -> String {
        data.map { String(format: "%02x", $0) }.joined()
    }

    /// A protobuf duration of `millis` milliseconds.
    static func millis(_ millis: Int64) -> Google_Protobuf_Duration {
        Google_Protobuf_Duration(seconds: millis / 1000, nanos: Int32((millis % 1000) * 1_000_000))
    }
}
