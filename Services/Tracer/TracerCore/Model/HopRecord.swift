/// A span or span event read back from the store, as `TaskTimeline` and `SearchSpans` report it.
package struct HopRecord: Sendable, Equatable {
    /// The span's or event's name.
    package var name: String
    /// The service that recorded it.
    package var service: String
    /// Start in Unix nanoseconds (an event's time).
    package var startNanos: Int64
    /// End in Unix nanoseconds (an event's time again: events have no duration).
    package var endNanos: Int64
    /// The trace id in hex.
    package var traceID: String
    /// The span id in hex (for an event: the span it belongs to).
    package var spanID: String
    /// The attributes, rendered as strings.
    package var attributes: [String: String]
    /// The error message when the span ended with an error; empty otherwise.
    package var error: String
    /// Whether this is a span event rather than a whole span.
    package var isEvent: Bool

    /// Creates a hop.
    package init(
        name: String,
        service: String,
        startNanos: Int64,
        endNanos: Int64,
        traceID: String,
        spanID: String,
        attributes: [String: String],
        error: String,
        isEvent: Bool
    ) {
        self.name = name
        self.service = service
        self.startNanos = startNanos
        self.endNanos = endNanos
        self.traceID = traceID
        self.spanID = spanID
        self.attributes = attributes
        self.error = error
        self.isEvent = isEvent
    }
}

/// The filters of a span search; every set filter must match.
package struct SpanSearch: Sendable, Equatable {
    /// Attributes the span must carry with exactly these values.
    package var attributes: [String: String]
    /// The span name must start with this; empty matches all.
    package var namePrefix: String
    /// The exporting service must be exactly this; empty matches all.
    package var service: String
    /// Only spans that started at or after this many Unix nanoseconds.
    package var sinceNanos: Int64?
    /// The most spans returned (newest first).
    package var limit: Int

    /// Creates a search.
    package init(
        attributes: [String: String] = [:],
        namePrefix: String = "",
        service: String = "",
        sinceNanos: Int64? = nil,
        limit: Int = 100
    ) {
        self.attributes = attributes
        self.namePrefix = namePrefix
        self.service = service
        self.sinceNanos = sinceNanos
        self.limit = limit
    }
}
