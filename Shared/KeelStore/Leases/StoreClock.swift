/// The time source for lease TTLs, injectable so tests can move time by hand.
///
/// Wraps any `Clock` whose duration is `Duration` (``continuous`` in production, a manual clock in tests)
/// and measures time as an offset from the moment the wrapper was created, so deadlines are plain
/// `Duration`s that fit in a value-type state machine.
package struct StoreClock: Sendable {
    private let nowOffset: @Sendable () -> Duration
    private let sleepUntilOffset: @Sendable (Duration) async throws -> Void

    /// Wraps `clock`; its `now` becomes offset zero.
    package init<C: Clock>(_ clock: C) where C.Duration == Duration {
        let origin = clock.now
        self.nowOffset = { origin.duration(to: clock.now) }
        self.sleepUntilOffset = { offset in
            try await clock.sleep(until: origin.advanced(by: offset), tolerance: nil)
        }
    }

    /// The real monotonic clock (`ContinuousClock`), which keeps counting while the machine sleeps.
    package static var continuous: StoreClock {
        StoreClock(ContinuousClock())
    }

    /// Time elapsed since this wrapper was created.
    package func now() -> Duration {
        self.nowOffset()
    }

    /// Suspends until `offset` (as returned by ``now()``) is reached. Throws `CancellationError` if cancelled.
    package func sleep(until offset: Duration) async throws {
        try await self.sleepUntilOffset(offset)
    }

    /// Suspends for `duration`. Throws `CancellationError` if cancelled.
    package func sleep(for duration: Duration) async throws {
        try await self.sleep(until: self.now() + duration)
    }
}
