/// The live leases and their deadlines: a value-type state machine kept inside the store's `Mutex`.
///
/// Deadlines live only in memory. On open every persisted lease gets a full TTL again, which is what
/// etcd does after a leader change, so a restart never expires a lease whose holder is still alive.
struct LeaseTimers: Sendable {
    struct Timer: Sendable, Hashable {
        /// The TTL granted; each keep-alive moves the deadline to `now + ttl`.
        var ttl: Duration
        /// When the lease expires, as a ``StoreClock`` offset.
        var deadline: Duration
    }

    private(set) var timers: [LeaseID: Timer] = [:]

    /// Starts (or restarts) the timer of `lease`.
    mutating func start(_ lease: LeaseID, ttl: Duration, now: Duration) {
        self.timers[lease] = Timer(ttl: ttl, deadline: now + ttl)
    }

    /// Pushes the deadline to `now + ttl`. - Returns: `false` if the lease is not live
    /// (including a lease past its deadline that the expiry pass has not reaped yet, as in etcd).
    mutating func keepAlive(_ lease: LeaseID, now: Duration) -> Bool {
        guard var timer = self.timers[lease], timer.deadline > now else { return false }
        timer.deadline = now + timer.ttl
        self.timers[lease] = timer
        return true
    }

    /// Whether `lease` exists and has not passed its deadline at `now`.
    func isLive(_ lease: LeaseID, at now: Duration) -> Bool {
        guard let timer = self.timers[lease] else { return false }
        return timer.deadline > now
    }

    /// Leases whose deadline is at or before `now`, oldest deadline first.
    func due(at now: Duration) -> [LeaseID] {
        self.timers
            .filter { $0.value.deadline <= now }
            .sorted { ($0.value.deadline, $0.key.rawValue) < ($1.value.deadline, $1.key.rawValue) }
            .map(\.key)
    }

    /// Removes the timer of `lease` if it is (still) due at `now`, or unconditionally when `now` is `nil`.
    /// - Returns: the removed timer, so a failed revoke can put it back with ``restore(_:_:)``.
    mutating func take(_ lease: LeaseID, ifDueAt now: Duration?) -> Timer? {
        guard let timer = self.timers[lease] else { return nil }
        if let now, timer.deadline > now { return nil }
        self.timers.removeValue(forKey: lease)
        return timer
    }

    /// Puts back a timer removed by ``take(_:ifDueAt:)`` (after a failed revoke, so it is retried).
    mutating func restore(_ lease: LeaseID, _ timer: Timer) {
        self.timers[lease] = timer
    }
}
