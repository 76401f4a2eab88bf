import Synchronization

/// Fans committed changes out to watchers and keeps a bounded in-memory history for replay.
///
/// All state lives in one value-type ``State`` behind a `Mutex`. Writers call ``publish(_:)`` while they
/// still hold the store's write lock, so events reach every watcher in revision order; registering a
/// watcher replays history and subscribes under the same mutex, so no event is lost or duplicated
/// between the replay and the live tail.
final class WatchHub: Sendable {
    private let state: Mutex<State>

    /// - Parameters:
    ///   - historyLimit: how many recent events to keep for replay.
    ///   - bufferLimit: how many undelivered events a single watcher may accumulate before it is
    ///     ended with ``StoreError/Code/compacted``.
    ///   - compactedRevision: the revision up to which history is already unknown (the revision at open).
    init(historyLimit: Int, bufferLimit: Int, compactedRevision: Revision) {
        self.state = Mutex(
            State(
                historyLimit: max(1, historyLimit),
                bufferLimit: max(1, bufferLimit),
                compactedRevision: compactedRevision
            )
        )
    }

    /// Registers a watcher for `prefix`, replaying retained events after `fromRevision` first.
    func subscribe(prefix: String, fromRevision: Revision?) -> WatchStream {
        let bufferLimit = self.state.withLock { $0.bufferLimit }
        let (stream, continuation) = WatchStream.makeStream(
            of: WatchEvent.self,
            bufferingPolicy: .bufferingOldest(bufferLimit)
        )
        let outcome = self.state.withLock { state in
            state.subscribe(prefix: prefix, fromRevision: fromRevision, continuation: continuation)
        }
        switch outcome {
        case .subscribed(let id):
            continuation.onTermination = { [weak self] _ in
                self?.unsubscribe(id)
            }
        case .rejected(let error):
            continuation.finish(throwing: error)
        }
        return stream
    }

    /// Appends committed events (all of one revision, in order) to history and delivers them.
    func publish(_ events: [WatchEvent]) {
        guard !events.isEmpty else { return }
        let overflowed = self.state.withLock { state in
            state.publish(events)
        }
        // Finish outside the lock: `finish` runs `onTermination`, which takes the lock again.
        for (continuation, error) in overflowed {
            continuation.finish(throwing: error)
        }
    }

    /// Ends every watcher with `error` and refuses new ones; used when the store closes.
    func shutdown(_ error: StoreError) {
        let continuations = self.state.withLock { state in
            state.shutdown(error)
        }
        for continuation in continuations {
            continuation.finish(throwing: error)
        }
    }

    /// The number of live watchers (for tests and metrics).
    var watcherCount: Int {
        self.state.withLock { $0.watchers.count }
    }

    private func unsubscribe(_ id: UInt64) {
        self.state.withLock { state in
            _ = state.watchers.removeValue(forKey: id)
        }
    }
}

extension WatchHub {
    /// The hub's state machine: watchers, retained history and the compaction point.
    struct State {
        struct Watcher {
            var prefix: String
            /// Only events with a revision greater than this are delivered.
            var after: Revision
            var continuation: WatchStream.Continuation
        }

        enum SubscribeOutcome {
            case subscribed(UInt64)
            case rejected(StoreError)
        }

        let historyLimit: Int
        let bufferLimit: Int
        /// Events with a revision `<=` this are no longer retained.
        var compactedRevision: Revision
        /// Retained events in revision order; trimmed from the front in batches.
        var history: [WatchEvent] = []
        var watchers: [UInt64: Watcher] = [:]
        var nextID: UInt64 = 0
        var closedError: StoreError?

        init(historyLimit: Int, bufferLimit: Int, compactedRevision: Revision) {
            self.historyLimit = historyLimit
            self.bufferLimit = bufferLimit
            self.compactedRevision = compactedRevision
        }

        /// The latest revision the hub has seen.
        var latestRevision: Revision {
            max(self.history.last?.modRevision ?? .zero, self.compactedRevision)
        }

        mutating func subscribe(
            prefix: String,
            fromRevision: Revision?,
            continuation: WatchStream.Continuation
        ) -> SubscribeOutcome {
            if let closedError {
                return .rejected(closedError)
            }
            var after = self.latestRevision
            if let fromRevision {
                if fromRevision < self.compactedRevision {
                    return .rejected(
                        .compacted(
                            "watch on '\(prefix)' asked for changes after revision \(fromRevision), but history "
                                + "up to revision \(self.compactedRevision) is no longer retained; "
                                + "re-read with range(prefix:) and watch from the revision it reflects"
                        )
                    )
                }
                after = fromRevision
                for event in self.history
                where event.modRevision > fromRevision && KeyValidation.key(event.key, hasPrefix: prefix) {
                    if case .dropped = continuation.yield(event) {
                        return .rejected(Self.overflowError(prefix: prefix, limit: self.bufferLimit))
                    }
                }
            }
            let id = self.nextID
            self.nextID += 1
            self.watchers[id] = Watcher(prefix: prefix, after: after, continuation: continuation)
            return .subscribed(id)
        }

        /// Records `events` and yields them to matching watchers; returns the watchers that overflowed
        /// (already removed) together with the error to finish them with.
        mutating func publish(_ events: [WatchEvent]) -> [(WatchStream.Continuation, StoreError)] {
            self.history.append(contentsOf: events)
            if self.history.count > self.historyLimit + self.historyLimit / 4 {
                let drop = self.history.count - self.historyLimit
                self.compactedRevision = self.history[drop - 1].modRevision
                self.history.removeFirst(drop)
            }
            var overflowed: [(WatchStream.Continuation, StoreError)] = []
            var gone: [UInt64] = []
            for (id, watcher) in self.watchers {
                deliver: for event in events
                where event.modRevision > watcher.after && KeyValidation.key(event.key, hasPrefix: watcher.prefix) {
                    switch watcher.continuation.yield(event) {
                    case .enqueued:
                        continue
                    case .dropped:
                        overflowed.append(
                            (watcher.continuation, Self.overflowError(prefix: watcher.prefix, limit: self.bufferLimit))
                        )
                        gone.append(id)
                        break deliver
                    case .terminated:
                        gone.append(id)
                        break deliver
                    @unknown default:
                        continue
                    }
                }
            }
            for id in gone {
                self.watchers.removeValue(forKey: id)
            }
            return overflowed
        }

        mutating func shutdown(_ error: StoreError) -> [WatchStream.Continuation] {
            self.closedError = error
            let continuations = self.watchers.values.map(\.continuation)
            self.watchers.removeAll()
            return continuations
        }

        static func overflowError(prefix: String, limit: Int) -> StoreError {
            .compacted(
                "watcher on '\(prefix)' fell more than \(limit) events behind the store; "
                    + "re-read with range(prefix:) and watch again from the revision it reflects"
            )
        }
    }
}
