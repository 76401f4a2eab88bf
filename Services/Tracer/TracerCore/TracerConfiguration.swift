import KeelCore

/// What keel-tracer needs to run, filled by its `main` from flags and `KEEL_*` variables.
package struct TracerConfiguration: Sendable {
    /// How long a span is kept after it arrives; older spans are pruned.
    package var retention: Duration
    /// The most spans kept; beyond it the spans that arrived first are dropped.
    package var maxSpans: Int
    /// How often retention and the span cap are enforced.
    package var pruneInterval: Duration
    /// The most hops one `TaskTimeline` answer carries (the most recent ones).
    package var maxTimelineHops: Int

    /// The defaults: 7 days of retention, at most 1 000 000 spans, pruned every minute,
    /// up to 1 000 hops per timeline.
    package static var defaults: TracerConfiguration {
        TracerConfiguration(
            retention: .seconds(7 * 86_400),
            maxSpans: 1_000_000,
            pruneInterval: .seconds(60),
            maxTimelineHops: 1_000
        )
    }

    /// Creates a configuration.
    package init(retention: Duration, maxSpans: Int, pruneInterval: Duration, maxTimelineHops: Int) {
        self.retention = retention
        self.maxSpans = maxSpans
        self.pruneInterval = pruneInterval
        self.maxTimelineHops = maxTimelineHops
    }

    /// Checks that every value is usable.
    ///
    /// - Throws: ``KeelError/Code/invalidArgument`` naming the bad value and what to use instead.
    package func validate() throws {
        guard retention > .zero else {
            throw KeelError.invalidArgument(
                "the retention is \(retention); it must be longer than zero, e.g. 7d (KEEL_RETENTION / --retention)"
            )
        }
        guard maxSpans > 0 else {
            throw KeelError.invalidArgument(
                "the span cap is \(maxSpans); it must be at least 1, e.g. 1000000 (KEEL_MAX_SPANS / --max-spans)"
            )
        }
        guard pruneInterval > .zero else {
            throw KeelError.invalidArgument("the prune interval is \(pruneInterval); it must be longer than zero, e.g. 60s")
        }
        guard maxTimelineHops > 0 else {
            throw KeelError.invalidArgument("the timeline hop limit is \(maxTimelineHops); it must be at least 1")
        }
    }
}
