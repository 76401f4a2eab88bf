package import Foundation
import Tracing

/// Records the hops of a task's life (offer, launch, process start, each status) as spans
/// carrying `keel.task_id`, which keel-tracer indexes to answer `TaskTimeline`: through the
/// process's ``HopExporter`` when a daemon installed one, else as spans of the tracer of
/// `InstrumentationSystem`.
package enum TaskHopRecorder {
    /// Records a finished span from `start` to `end`.
    package static func record(
        _ name: String,
        taskID: String,
        frameworkID: String,
        agentID: String = "",
        start: Date,
        end: Date,
        attributes: [String: String] = [:]
    ) {
        if let exporter = HopExporter.current {
            exporter.enqueue(HopExporter.Hop(
                name: name, taskID: taskID, frameworkID: frameworkID, agentID: agentID,
                startNanos: nanoseconds(start), endNanos: nanoseconds(max(end, start)), attributes: attributes))
            return
        }
        let tracer = InstrumentationSystem.tracer
        let span = tracer.startSpan(
            name,
            context: ServiceContext.current ?? .topLevel,
            ofKind: .internal,
            at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: nanoseconds(start)),
            function: #function,
            file: #fileID,
            line: #line
        )
        span.attributes["keel.task_id"] = taskID
        span.attributes["keel.framework_id"] = frameworkID
        if !agentID.isEmpty { span.attributes["keel.agent_id"] = agentID }
        for (key, value) in attributes { span.attributes[key] = value }
        span.end(at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: nanoseconds(max(end, start))))
    }

    /// Nanoseconds since the epoch; whole seconds and the fraction are converted apart so the
    /// fraction keeps its precision (a Date holds about a microsecond at today's epoch offsets).
    static func nanoseconds(_ date: Date) -> UInt64 {
        let interval = max(0, date.timeIntervalSince1970)
        let seconds = interval.rounded(.down)
        let fraction = ((interval - seconds) * 1_000_000).rounded() * 1000
        return UInt64(seconds) * 1_000_000_000 + UInt64(fraction)
    }
}
