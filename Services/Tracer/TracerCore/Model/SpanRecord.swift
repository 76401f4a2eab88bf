/// The attribute that ties a span or span event to a task; indexed by the store.
package let taskIDAttribute = "keel.task_id"

/// One validated span as the store keeps it: ids in lowercase hex, times in Unix nanoseconds.
package struct SpanRecord: Sendable, Equatable {
    /// The 16-byte trace id as 32 lowercase hex digits.
    package var traceID: String
    /// The 8-byte span id as 16 lowercase hex digits.
    package var spanID: String
    /// The parent's span id in hex; empty for a root span.
    package var parentSpanID: String
    /// The operation name, e.g. `launch` or `status TASK_RUNNING`.
    package var name: String
    /// The exporting service (`service.name` of the OTLP resource), e.g. `keel-broker`.
    package var service: String
    /// The OTLP span kind number (0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    package var kind: Int
    /// When the span started, in nanoseconds since the Unix epoch.
    package var startNanos: Int64
    /// When the span ended, in nanoseconds since the Unix epoch; never before ``startNanos``.
    package var endNanos: Int64
    /// The status message when the span ended with an error; empty otherwise.
    package var error: String
    /// The span's attributes, every value rendered as a string.
    package var attributes: [String: String]
    /// The span's events, in the order the exporter sent them.
    package var events: [SpanEventRecord]

    /// Creates a record.
    package init(
        traceID: String,
        spanID: String,
        parentSpanID: String = "",
        name: String,
        service: String,
        kind: Int = 1,
        startNanos: Int64,
        endNanos: Int64,
        error: String = "",
        attributes: [String: String] = [:],
        events: [SpanEventRecord] = []
    ) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.name = name
        self.service = service
        self.kind = kind
        self.startNanos = startNanos
        self.endNanos = endNanos
        self.error = error
        self.attributes = attributes
        self.events = events
    }

    /// The `keel.task_id` attribute, or nil when the span names no task.
    package var taskID: String? {
        attributes[taskIDAttribute].flatMap { $0.isEmpty ? nil : $0 }
    }
}

/// A timestamped event inside a span; it is a hop of a task when it carries `keel.task_id` itself.
package struct SpanEventRecord: Sendable, Equatable {
    /// The event's name.
    package var name: String
    /// When it happened, in nanoseconds since the Unix epoch.
    package var timeNanos: Int64
    /// The event's own attributes (not the span's), rendered as strings.
    package var attributes: [String: String]

    /// Creates an event record.
    package init(name: String, timeNanos: Int64, attributes: [String: String] = [:]) {
        self.name = name
        self.timeNanos = timeNanos
        self.attributes = attributes
    }

    /// The event's own `keel.task_id` attribute, or nil when it names no task.
    package var taskID: String? {
        attributes[taskIDAttribute].flatMap { $0.isEmpty ? nil : $0 }
    }
}
