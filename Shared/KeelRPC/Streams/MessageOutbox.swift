import Synchronization

/// The outgoing messages of one long-lived stream: queued by any number of producers, taken by
/// the stream's single writer in whole batches.
///
/// An `AsyncStream` hands its consumer one element per wake-up. Under load, messages pile up
/// while the writer waits for the transport; taking everything queued at once lets the writer
/// merge them (``next()`` + a merge step) into fewer, larger messages, so a burst of task
/// launches or status updates costs a few frames, flushes and wake-ups instead of one each.
package final class MessageOutbox<Message: Sendable>: Sendable {
    private struct State {
        var queue: [Message] = []
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
    }

    private let state = Mutex(State())

    package init() {}

    /// Queues `message` for the writer; `false` (and dropped) once the outbox is finished.
    ///
    /// A waiting writer is only woken here; it takes the queue when it runs, by which time the
    /// producers may have queued more. Handing it the one message at hand instead made an idle
    /// stream send every message of a steady flow alone.
    @discardableResult
    package func send(_ message: Message) -> Bool {
        let (accepted, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !state.finished else { return (false, nil) }
            state.queue.append(message)
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return accepted
    }

    /// Ends the outbox: the writer gets what is still queued, then `nil`; later sends are dropped.
    package func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Everything queued, in order, waiting for at least one message; `nil` once the outbox is
    /// finished and drained, or when the calling task is cancelled.
    package func next() async -> [Message]? {
        while true {
            if let ready = take() { return ready }
            if Task.isCancelled { return nil }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { state -> Bool in
                        if !state.queue.isEmpty || state.finished || Task.isCancelled { return true }
                        state.waiter = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume()
            }
        }
    }

    /// `.some(everything queued)`, `.some(nil)` once finished and drained, `nil` if there is
    /// nothing to take yet.
    private func take() -> [Message]?? {
        state.withLock { state -> [Message]?? in
            if !state.queue.isEmpty {
                defer { state.queue.removeAll(keepingCapacity: true) }
                return .some(state.queue)
            }
            return state.finished ? .some(nil) : nil
        }
    }
}

/// `messages` with each run of consecutive messages that `item` picks out replaced by `batch`
/// of their items, at most `limit` items per batch, everything else kept in place. A run of one
/// stays the message it was. How a stream writer merges what ``MessageOutbox/next()`` returned.
package func mergingRuns<Message, Item>(
    _ messages: [Message], limit: Int, item: (Message) -> Item?, batch: ([Item]) -> Message
) -> [Message] {
    guard messages.count > 1 else { return messages }
    var result: [Message] = []
    var run: [(message: Message, item: Item)] = []
    func flush() {
        if run.count == 1 {
            result.append(run[0].message)
        } else if !run.isEmpty {
            result.append(batch(run.map(\.item)))
        }
        run.removeAll()
    }
    for message in messages {
        if let item = item(message) {
            run.append((message, item))
            if run.count == limit { flush() }
        } else {
            flush()
            result.append(message)
        }
    }
    flush()
    return result
}
