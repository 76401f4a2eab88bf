import Logging
import Metrics
import ServiceLifecycle

/// Runs a ``SpanStore`` in the daemon's service group: prunes it every
/// ``TracerConfiguration/pruneInterval`` until graceful shutdown, then closes it.
///
/// Put it first in the group: the group stops services in reverse order, so the store closes after
/// the gRPC server has drained its in-flight exports and queries.
package struct SpanStoreService: Service {
    /// The store it runs.
    package let store: SpanStore

    /// Wraps `store`.
    package init(_ store: SpanStore) {
        self.store = store
    }

    /// Prunes until graceful shutdown or cancellation, then closes the store.
    package func run() async throws {
        let logger = store.logger
        logger.debug(
            "span pruning started",
            metadata: [
                "keel.retention": "\(store.configuration.retention)",
                "keel.max_spans": "\(store.configuration.maxSpans)",
            ]
        )
        do {
            try await cancelWhenGracefulShutdown {
                try await pruneLoop()
            }
        } catch is CancellationError {
            // Graceful shutdown or cancellation: a normal end.
        }
        logger.debug("span pruning stopped")
        try await store.close()
    }

    private func pruneLoop() async throws {
        let pruned = Counter(label: "keel_tracer_spans_pruned_total")
        let stored = Gauge(label: "keel_tracer_spans_stored")
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                let removed = try await store.prune()
                pruned.increment(by: removed)
                stored.record(try await store.count())
                if removed > 0 {
                    store.logger.info("pruned spans", metadata: ["keel.spans": "\(removed)"])
                }
            } catch {
                if store.gate.isClosed { return }
                store.logger.error("span pruning failed; retrying next interval", metadata: ["keel.error": "\(error)"])
            }
            try await Task.sleep(for: store.configuration.pruneInterval)
        }
    }
}
