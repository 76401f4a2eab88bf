package import GRPCCore
package import Logging
import Metrics
import Tracing

/// Runs every incoming call inside a server span continued from the caller's W3C trace context,
/// logs one line per finished call and counts calls by method and status.
///
/// For streaming responses the span and the log line cover the whole stream, not only its setup.
package struct ServerCallInterceptor: ServerInterceptor {
    private let logger: Logger
    private let serviceName: String

    /// Creates the interceptor; `serviceName` labels the metrics (e.g. `keel-broker`).
    package init(serviceName: String, logger: Logger) {
        self.serviceName = serviceName
        self.logger = logger
    }

    package func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        var parent = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(request.metadata, into: &parent, using: MetadataExtractor())
        let method = context.descriptor.fullyQualifiedMethod
        let span = InstrumentationSystem.tracer.startSpan(method, context: parent, ofKind: .server)
        span.attributes["rpc.system"] = "grpc"
        span.attributes["rpc.method"] = context.descriptor.method
        span.attributes["rpc.service"] = context.descriptor.service.fullyQualifiedService
        span.attributes["net.peer"] = context.remotePeer
        let call = FinishedCall(
            method: method, peer: context.remotePeer, span: span, logger: logger, serviceName: serviceName
        )
        return try await ServiceContext.withValue(span.context) {
            do {
                var response = try await next(request, context)
                switch response.accepted {
                case .success(var contents):
                    let producer = contents.producer
                    let spanContext = span.context
                    contents.producer = { writer in
                        do {
                            let trailers = try await ServiceContext.withValue(spanContext) {
                                try await producer(writer)
                            }
                            call.finish(error: nil)
                            return trailers
                        } catch {
                            call.finish(error: error)
                            throw error
                        }
                    }
                    response.accepted = .success(contents)
                case .failure(let error):
                    call.finish(error: error)
                }
                return response
            } catch {
                call.finish(error: error)
                throw error
            }
        }
    }
}

/// Ends a call's span and records its log line and metrics exactly once.
private struct FinishedCall: Sendable {
    let method: String
    let peer: String
    let span: any Span
    let logger: Logger
    let serviceName: String
    let started = ContinuousClock.now

    func finish(error: (any Error)?) {
        let elapsed = ContinuousClock.now - started
        let status: RPCError.Code? = error.map { ($0 as? RPCError)?.code ?? .unknown }
        let statusText = status.map { "\($0)" } ?? "ok"
        if let error {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error, message: "\(error)"))
        }
        span.end()
        var metadata: Logger.Metadata = [
            "keel.rpc.method": "\(method)",
            "keel.rpc.status": "\(statusText)",
            "keel.rpc.peer": "\(peer)",
            "keel.rpc.duration_ms": "\(elapsed.milliseconds)",
        ]
        if let error { metadata["keel.error"] = "\(error)" }
        if status == nil || status == .cancelled {
            logger.debug("rpc finished", metadata: metadata)
        } else {
            logger.info("rpc failed", metadata: metadata)
        }
        Counter(
            label: "keel_rpc_server_calls_total",
            dimensions: [("service", serviceName), ("method", method), ("status", statusText)]
        ).increment()
        Timer(
            label: "keel_rpc_server_duration_seconds",
            dimensions: [("service", serviceName), ("method", method)]
        ).recordNanoseconds(elapsed.nanoseconds)
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    package var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }

    /// Whole nanoseconds, rounded down.
    package var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
