package import GRPCCore
package import KeelAPI
import KeelCore
import KeelRPC
package import Logging
import SwiftProtobuf

/// The `keel.v1.Tracer` query API behind `keel trace`: task timelines and span search.
package struct TracerQueryService: Keel_V1_Tracer.SimpleServiceProtocol {
    /// `SearchSpans` answers this many spans when the request sets no limit.
    package static let defaultSearchLimit = 100
    /// `SearchSpans` never answers more than this many spans; larger limits are lowered to it.
    package static let maxSearchLimit = 1_000
    /// The most attribute filters one search may carry.
    package static let maxAttributeFilters = 32

    private let store: SpanStore
    private let configuration: TracerConfiguration
    private let logger: Logger

    /// Creates the service over an opened store.
    package init(store: SpanStore, configuration: TracerConfiguration, logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    /// The task's hops ordered by start time; INVALID_ARGUMENT without a task id, NOT_FOUND when
    /// no span names the task yet.
    package func taskTimeline(
        request: Keel_V1_TaskTimelineRequest,
        context: ServerContext
    ) async throws -> Keel_V1_TaskTimelineResponse {
        try await mappingErrors {
            let taskID = request.taskID.value
            guard !taskID.isEmpty else {
                throw KeelError.invalidArgument("task_id is empty; pass the ID of the task to trace, e.g. `keel trace TASK_ID`")
            }
            let hops = try await store.taskHops(taskID, limit: configuration.maxTimelineHops)
            guard !hops.isEmpty else {
                throw KeelError.notFound(
                    "no spans recorded for task \(taskID) yet; spans arrive within a second or two of each hop. "
                        + "Check the task ID, and that the daemons export to this tracer (KEEL_TRACER)"
                )
            }
            return Timeline.response(taskID: request.taskID, hops: hops)
        }
    }

    /// Spans matching every filter of the request, newest first (100 by default, at most 1000).
    package func searchSpans(
        request: Keel_V1_SearchSpansRequest,
        context: ServerContext
    ) async throws -> Keel_V1_SearchSpansResponse {
        try await mappingErrors {
            let search = try Self.search(from: request)
            let hops = try await store.search(search)
            return .with { $0.spans = hops.map { $0.proto() } }
        }
    }

    /// Not implemented yet: always UNIMPLEMENTED, pointing at `TaskTimeline` instead.
    package func whyPending(
        request: Keel_V1_WhyPendingRequest,
        context: ServerContext
    ) async throws -> Keel_V1_WhyPendingResponse {
        throw RPCError(
            code: .unimplemented,
            message: "WhyPending is not implemented by this keel-tracer; it comes in a later version. "
                + "Meanwhile use TaskTimeline (`keel trace TASK_ID`) to see the task's last hop"
        )
    }

    /// Validates a search request and applies the limit rules (0 → 100, above 1000 → 1000).
    static func search(from request: Keel_V1_SearchSpansRequest) throws -> SpanSearch {
        guard request.attributes.count <= maxAttributeFilters else {
            throw KeelError.invalidArgument(
                "the search has \(request.attributes.count) attribute filters; use at most \(maxAttributeFilters)"
            )
        }
        if request.attributes.keys.contains("") {
            throw KeelError.invalidArgument("an attribute filter has an empty key; name the attribute, e.g. keel.task_id")
        }
        var limit = request.limit == 0 ? defaultSearchLimit : Int(request.limit)
        limit = min(limit, maxSearchLimit)
        return SpanSearch(
            attributes: request.attributes,
            namePrefix: request.namePrefix,
            service: request.service,
            sinceNanos: request.hasSince ? Timeline.nanoseconds(request.since) : nil,
            limit: limit
        )
    }
}
