import Logging
import ServiceLifecycle

extension SQLiteStore: Service {
    /// Expires leases every ``Configuration/leaseCheckInterval`` until graceful shutdown, task
    /// cancellation, or ``close()``.
    ///
    /// Returns normally in all three cases. Failures of a single expiry pass are logged and retried on
    /// the next tick. The store is still usable after `run()` returns (leases just stop expiring);
    /// call ``close()`` once the service group is done.
    package func run() async throws {
        self.logger.debug(
            "lease expiry started",
            metadata: ["keel.lease.check_interval": "\(self.configuration.leaseCheckInterval)"]
        )
        do {
            try await cancelWhenGracefulShutdown {
                try await self.expiryLoop()
            }
        } catch is CancellationError {
            // Graceful shutdown or cancellation: a normal end.
        }
        self.logger.debug("lease expiry stopped")
    }

    private func expiryLoop() async throws {
        let clock = self.configuration.clock
        var nextTick = clock.now()
        while !Task.isCancelled, !self.gate.isClosed {
            do {
                try await self.expireLeases()
            } catch {
                if self.gate.isClosed { break }  // Closed mid-pass: nothing left to expire.
                self.logger.error("lease expiry pass failed; retrying", metadata: ["keel.error": "\(error)"])
            }
            nextTick = max(nextTick + self.configuration.leaseCheckInterval, clock.now())
            try await clock.sleep(until: nextTick)
        }
    }
}

/// Runs a ``SQLiteStore`` in a service group and closes it after graceful shutdown.
///
/// Put it first in the group: the group stops services in reverse order, so the store closes
/// after everything that writes to it.
package struct SQLiteStoreService: Service {
    /// The store it runs.
    package let store: SQLiteStore

    /// Wraps `store`.
    package init(_ store: SQLiteStore) {
        self.store = store
    }

    package func run() async throws {
        try await store.run()
        try await store.close()
    }
}
