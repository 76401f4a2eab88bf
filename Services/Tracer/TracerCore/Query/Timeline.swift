import KeelAPI
import SwiftProtobuf

extension HopRecord {
    /// This hop as a `keel.v1.Hop`; `sincePrevious` is left unset when nil (the first hop).
    func proto(sincePrevious: Int64? = nil) -> Keel_V1_Hop {
        .with {
            $0.name = name
            $0.service = service
            $0.start = Timeline.timestamp(startNanos)
            $0.end = Timeline.timestamp(endNanos)
            if let sincePrevious { $0.sincePrevious = Timeline.duration(sincePrevious) }
            $0.traceID = traceID
            $0.spanID = spanID
            $0.attributes = attributes
            $0.error = error
        }
    }
}

/// Builds a task's timeline from its hops.
enum Timeline {
    /// The `TaskTimeline` answer for hops already ordered by start time: each hop after the first gets
    /// the time since the previous hop's start; `total` runs from the first start to the latest end.
    static func response(taskID: Keel_V1_TaskID, hops: [HopRecord]) -> Keel_V1_TaskTimelineResponse {
        var previousStart: Int64?
        var protos: [Keel_V1_Hop] = []
        protos.reserveCapacity(hops.count)
        for hop in hops {
            protos.append(hop.proto(sincePrevious: previousStart.map { difference(hop.startNanos, $0) }))
            previousStart = hop.startNanos
        }
        return .with {
            $0.taskID = taskID
            $0.hops = protos
            if let first = hops.first, let lastEnd = hops.map(\.endNanos).max() {
                $0.total = duration(difference(lastEnd, first.startNanos))
            }
        }
    }

    /// `later - earlier`, never negative and saturating instead of overflowing.
    static func difference(_ later: Int64, _ earlier: Int64) -> Int64 {
        let (value, overflow) = later.subtractingReportingOverflow(earlier)
        if overflow { return later > earlier ? .max : 0 }
        return max(0, value)
    }

    /// Unix nanoseconds as a protobuf timestamp.
    static func timestamp(_ nanos: Int64) -> Google_Protobuf_Timestamp {
        let (seconds, remainder) = nanos.quotientAndRemainder(dividingBy: 1_000_000_000)
        if remainder < 0 {
            return Google_Protobuf_Timestamp(seconds: seconds - 1, nanos: Int32(remainder + 1_000_000_000))
        }
        return Google_Protobuf_Timestamp(seconds: seconds, nanos: Int32(remainder))
    }

    /// Non-negative nanoseconds as a protobuf duration.
    static func duration(_ nanos: Int64) -> Google_Protobuf_Duration {
        let (seconds, remainder) = nanos.quotientAndRemainder(dividingBy: 1_000_000_000)
        return Google_Protobuf_Duration(seconds: seconds, nanos: Int32(remainder))
    }

    /// A protobuf timestamp as Unix nanoseconds, saturating at the `Int64` range.
    static func nanoseconds(_ timestamp: Google_Protobuf_Timestamp) -> Int64 {
        let (whole, overflow) = timestamp.seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return timestamp.seconds < 0 ? .min : .max }
        let (total, overflow2) = whole.addingReportingOverflow(Int64(timestamp.nanos))
        return overflow2 ? .max : total
    }
}
