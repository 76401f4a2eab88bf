import Foundation
package import KeelAPI

/// Turns an OTLP export request into validated ``SpanRecord``s, counting the spans it rejects.
///
/// Rejected: a trace id that is not 16 bytes or all zero, a span id that is not 8 bytes or all zero,
/// a parent span id that is neither empty nor 8 bytes, a start time of 0 or past year 2262.
/// Tolerated and repaired: an end before the start (set to the start), a missing `service.name`
/// (`unknown_service`), overlong names and values (truncated), too many attributes or events (the
/// rest dropped), events without a time (the span's start).
package enum OTLPSpanDecoder {
    /// The outcome of decoding one export request.
    package struct Decoded: Sendable {
        /// The spans to store.
        package var spans: [SpanRecord] = []
        /// How many spans were rejected.
        package var rejected = 0
        /// Up to ``maxReasons`` distinct reasons, for the partial-success message.
        package var reasons: [String] = []
    }

    /// The service name used when a resource has no `service.name`.
    package static let unknownService = "unknown_service"
    /// Limits that keep one bad exporter from bloating the store.
    static let maxNameLength = 512
    static let maxKeyLength = 256
    static let maxValueLength = 4_096
    static let maxAttributes = 128
    static let maxEvents = 128
    static let maxReasons = 3

    /// Decodes every span of `request`.
    package static func decode(_ request: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest) -> Decoded {
        var decoded = Decoded()
        for resourceSpans in request.resourceSpans {
            let resource = AttributeRendering.strings(resourceSpans.resource.attributes, limit: maxAttributes)
            let service = resource["service.name"].flatMap { $0.isEmpty ? nil : $0 } ?? unknownService
            for scopeSpans in resourceSpans.scopeSpans {
                for span in scopeSpans.spans {
                    switch record(span, service: service) {
                    case .success(let record):
                        decoded.spans.append(record)
                    case .failure(let rejection):
                        decoded.rejected += 1
                        if decoded.reasons.count < maxReasons, !decoded.reasons.contains(rejection.reason) {
                            decoded.reasons.append(rejection.reason)
                        }
                    }
                }
            }
        }
        return decoded
    }

    /// The partial-success message for a request with rejected spans.
    package static func message(for decoded: Decoded) -> String {
        let total = decoded.rejected + decoded.spans.count
        return "rejected \(decoded.rejected) of \(total) spans: " + decoded.reasons.joined(separator: "; ")
            + "; fix the exporter so it sends 16-byte trace ids, 8-byte span ids and start times"
    }

    private struct Rejection: Error {
        var reason: String
    }

    private static func record(_ span: Opentelemetry_Proto_Trace_V1_Span, service: String) -> Result<SpanRecord, Rejection> {
        // Built only when a span is rejected.
        var label: String { "span '\(truncated(span.name, to: 64))' from \(service)" }
        guard span.traceID.count == 16 else {
            return .failure(Rejection(reason: "\(label) has a \(span.traceID.count)-byte trace_id (need 16)"))
        }
        guard span.traceID.contains(where: { $0 != 0 }) else {
            return .failure(Rejection(reason: "\(label) has an all-zero trace_id"))
        }
        guard span.spanID.count == 8 else {
            return .failure(Rejection(reason: "\(label) has a \(span.spanID.count)-byte span_id (need 8)"))
        }
        guard span.spanID.contains(where: { $0 != 0 }) else {
            return .failure(Rejection(reason: "\(label) has an all-zero span_id"))
        }
        guard span.parentSpanID.isEmpty || span.parentSpanID.count == 8 else {
            return .failure(Rejection(reason: "\(label) has a \(span.parentSpanID.count)-byte parent_span_id (need 0 or 8)"))
        }
        guard span.startTimeUnixNano > 0, span.startTimeUnixNano <= UInt64(Int64.max) else {
            return .failure(Rejection(reason: "\(label) has start_time_unix_nano \(span.startTimeUnixNano) (need a real time)"))
        }
        let start = Int64(span.startTimeUnixNano)
        let end = span.endTimeUnixNano <= UInt64(Int64.max) ? max(start, Int64(span.endTimeUnixNano)) : start
        var attributes = AttributeRendering.strings(span.attributes, limit: maxAttributes)
        if span.droppedAttributesCount > 0 {
            attributes["otel.dropped_attributes_count"] = "\(span.droppedAttributesCount)"
        }
        let events = span.events.prefix(maxEvents).map { event in
            let time = event.timeUnixNano > 0 && event.timeUnixNano <= UInt64(Int64.max) ? Int64(event.timeUnixNano) : start
            return SpanEventRecord(
                name: truncated(event.name, to: maxNameLength),
                timeNanos: time,
                attributes: AttributeRendering.strings(event.attributes, limit: maxAttributes)
            )
        }
        return .success(SpanRecord(
            traceID: hex(span.traceID),
            spanID: hex(span.spanID),
            parentSpanID: hex(span.parentSpanID),
            name: truncated(span.name, to: maxNameLength),
            service: truncated(service, to: maxNameLength),
            kind: span.kind.rawValue,
            startNanos: start,
            endNanos: end,
            error: errorMessage(span, events: events),
            attributes: attributes,
            events: Array(events)
        ))
    }

    /// The status message of a span that ended with an error; else ''.
    private static func errorMessage(_ span: Opentelemetry_Proto_Trace_V1_Span, events: [SpanEventRecord]) -> String {
        guard span.status.code == .error else { return "" }
        if !span.status.message.isEmpty { return truncated(span.status.message, to: maxValueLength) }
        if let message = events.last(where: { $0.name == "exception" })?.attributes["exception.message"], !message.isEmpty {
            return message
        }
        return "the span ended with an error status but no message"
    }

    /// Lowercase hex of `bytes`.
    static func hex(_ bytes: Data) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// `text` cut to at most `limit` characters, marked with `…` when cut.
    static func truncated(_ text: String, to limit: Int) -> String {
        // No more bytes than the limit: no more characters either (counting bytes is cheap,
        // counting characters is not).
        guard text.utf8.count > limit, text.count > limit else { return text }
        return String(text.prefix(limit - 1)) + "…"
    }
}
