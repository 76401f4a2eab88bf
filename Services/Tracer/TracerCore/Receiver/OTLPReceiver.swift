package import GRPCCore
package import KeelAPI
import KeelCore
import KeelRPC
package import Logging
import Metrics
import SwiftProtobuf

/// The OTLP/gRPC trace receiver (`opentelemetry.proto.collector.trace.v1.TraceService/Export`) every
/// Keel daemon's swift-otel exporter sends its spans to.
///
/// Valid spans are stored in one transaction; invalid ones are counted in `partial_success` with a
/// message naming what was wrong (the exporter logs it and does not retry). When the store cannot
/// write, the call fails with `UNAVAILABLE`, which OTLP exporters retry with backoff.
package struct OTLPReceiver: Opentelemetry_Proto_Collector_Trace_V1_TraceService.SimpleServiceProtocol {
    private let store: SpanStore
    private let logger: Logger
    private let accepted = Counter(label: "keel_tracer_spans_accepted_total")
    private let rejected = Counter(label: "keel_tracer_spans_rejected_total")

    /// Creates the receiver over an opened store.
    package init(store: SpanStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// Stores the request's valid spans; reports rejected ones in `partial_success`.
    package func export(
        request: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest,
        context: ServerContext
    ) async throws -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse {
        try await mappingErrors {
            let decoded = OTLPSpanDecoder.decode(request)
            let stored = try await store.insert(decoded.spans)
            accepted.increment(by: decoded.spans.count)
            guard decoded.rejected > 0 else {
                logger.trace("stored spans", metadata: ["keel.spans": "\(stored)", "keel.rpc.peer": "\(context.remotePeer)"])
                return Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse()
            }
            rejected.increment(by: decoded.rejected)
            let message = OTLPSpanDecoder.message(for: decoded)
            logger.warning(
                "rejected spans",
                metadata: [
                    "keel.spans.rejected": "\(decoded.rejected)",
                    "keel.spans.stored": "\(stored)",
                    "keel.rpc.peer": "\(context.remotePeer)",
                    "keel.reason": "\(message)",
                ]
            )
            return .with {
                $0.partialSuccess.rejectedSpans = Int64(decoded.rejected)
                $0.partialSuccess.errorMessage = message
            }
        }
    }
}
