import Synchronization

/// The store writes that the broker's changes produced, waiting for the persister in the order of
/// the changes.
///
/// ``Broker/mutate(_:)`` appends while it holds the state lock, so the queue's order is the order
/// in which the changes happened. The one consumer, the persister, takes everything queued at
/// that moment (up to a bound) with ``next(limit:)`` and stores it as one batch. After
/// ``finish()``, or when the consumer's task is cancelled, nothing more is accepted and the
/// consumer still gets what was queued before.
final class WriteQueue: Sendable {
    private struct State {
        var items: [StoreWrite] = []
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
    }

    private let state = Mutex(State())

    /// Appends `writes` in order. - Returns: `false` (dropping them) once the queue is finished.
    @discardableResult
    func enqueue(_ writes: some Collection<StoreWrite>) -> Bool {
        guard !writes.isEmpty else { return true }
        let (accepted, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !state.finished else { return (false, nil) }
            state.items.append(contentsOf: writes)
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return accepted
    }

    /// Refuses further writes; the consumer drains what is queued and then gets `nil`.
    func finish() {
        let waiter = state.withLock { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// The writes queued now, oldest first, at most `limit` of them; waits while none are
    /// queued. - Returns: `nil` once the queue is finished and empty.
    func next(limit: Int) async -> [StoreWrite]? {
        precondition(limit > 0, "a batch needs room for at least one write")
        while true {
            enum Taken { case writes([StoreWrite]), ended, empty }
            let taken: Taken = state.withLock { state in
                if state.items.isEmpty { return state.finished ? .ended : .empty }
                if state.items.count <= limit {
                    defer { state.items = [] }
                    return .writes(state.items)
                }
                defer { state.items.removeFirst(limit) }
                return .writes(Array(state.items.prefix(limit)))
            }
            switch taken {
            case .writes(let writes): return writes
            case .ended: return nil
            case .empty: break
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let ready = state.withLock { state in
                        guard state.items.isEmpty, !state.finished else { return true }
                        precondition(state.waiter == nil, "a WriteQueue has one consumer")
                        state.waiter = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                finish()
            }
        }
    }
}
