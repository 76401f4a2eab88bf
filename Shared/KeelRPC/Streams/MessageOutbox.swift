import Synchronization

/// The outgoing messages of one long-lived stream: queued by any number of producers, taken by
/// the stream's single writer in whole batches.
///
/// An `AsyncStream` hands its consumer one element per wake-up. Under load, messages pile up
/// while the writer waits for the transport; taking everything queued at once lets the writer
/// merge them (``next()`` + a merge step) into fewer, larger messages, so a burst of task
/// launches or status updates costs a few frames, flushes and wake-ups instead of one each.
///
/// With a ``minimumInterval`` the writer also paces itself: it takes at most one batch per
/// interval, so under a steady flow messages gather for up to that long instead of going out
/// one or two at a time (but not once the flow stops: see ``waitOut(_:)``). The first message
/// after a quiet interval goes out at once, so an idle stream adds no delay, and so does a
/// message after a batch of one (nothing gathered during the last interval: a sparse stream, or
/// the end of a burst, need not wait). Every message costs each process on its way (the
/// launcher, the broker, the framework) a fixed amount of CPU for framing, wake-ups and
/// bookkeeping, which batching shares: in the launch benchmark a 5 ms interval on the agent and framework streams cut
/// keel's CPU per task from 5.4 to 3.9–4.4 ms and, with more tasks per second, also lowered the
/// median time from launch to TASK_FINISHED (``StreamPacing/interval`` is now 20 ms).
package final class MessageOutbox<Message: Sendable>: Sendable {
    private struct State {
        var queue: [Message] = []
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
        /// When the writer last took a batch.
        var lastTaken: ContinuousClock.Instant?
        /// How many messages that batch had.
        var lastBatchSize = 0
    }

    private let state = Mutex(State())
    /// The shortest time between two batches; zero takes every batch at once.
    package let minimumInterval: Duration
    /// How the writer waits out the rest of an interval (a sleep; replaceable in tests).
    private let pause: @Sendable (Duration) async -> Void

    /// The writer does not wait out the interval when this many messages are already queued.
    package static var fullBatch: Int { 512 }

    /// An outbox whose writer takes at most one batch per `minimumInterval`, waiting with
    /// `pause` (a cancelled wait ends at once and the writer takes what is queued).
    package init(
        minimumInterval: Duration = .zero,
        pause: @escaping @Sendable (Duration) async -> Void = { try? await Task.sleep(for: $0) }
    ) {
        precondition(minimumInterval >= .zero, "an outbox's interval cannot be negative")
        self.minimumInterval = minimumInterval
        self.pause = pause
    }

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
        // At most one wait per batch, also when the wait ends early (cancellation).
        var paused = false
        while true {
            if !paused, let rest = pauseBeforeTaking() {
                paused = true
                await waitOut(rest)
            }
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

    /// Waits out `rest` of the interval in slices of a quarter interval, and stops early after a
    /// slice in which nothing was queued: the flow has stopped (the end of a burst), and what is
    /// queued goes out now instead of up to an interval later. Under a steady flow every slice
    /// brings messages and the batch gathers for the whole interval, as before.
    private func waitOut(_ rest: Duration) async {
        let slice = minimumInterval / 4
        var remaining = rest
        var queued = state.withLock(\.queue.count)
        while remaining > .zero, !Task.isCancelled {
            let step = min(remaining, slice)
            await pause(step)
            remaining -= step
            let now = state.withLock(\.queue.count)
            if now == queued || now >= Self.fullBatch { return }
            queued = now
        }
    }

    /// How long the writer waits before taking what is queued: the rest of the interval since
    /// the last batch, if messages are queued but fewer than ``fullBatch`` and the outbox is
    /// open; `nil` to take at once. Messages sent during the wait go out with the batch.
    private func pauseBeforeTaking() -> Duration? {
        guard minimumInterval > .zero else { return nil }
        return state.withLock { state -> Duration? in
            // A last batch of one message: nothing gathered while the writer was busy, so
            // there is no flow worth waiting for (a sparse stream, the last messages of a burst).
            guard !state.queue.isEmpty, state.queue.count < Self.fullBatch, !state.finished,
                state.lastBatchSize > 1, let last = state.lastTaken
            else { return nil }
            let elapsed = ContinuousClock.now - last
            return elapsed < minimumInterval ? minimumInterval - elapsed : nil
        }
    }

    /// `.some(everything queued)`, `.some(nil)` once finished and drained, `nil` if there is
    /// nothing to take yet.
    private func take() -> [Message]?? {
        state.withLock { state -> [Message]?? in
            if !state.queue.isEmpty {
                defer { state.queue.removeAll(keepingCapacity: true) }
                if minimumInterval > .zero {
                    state.lastTaken = .now
                    state.lastBatchSize = state.queue.count
                }
                return .some(state.queue)
            }
            return state.finished ? .some(nil) : nil
        }
    }
}

/// How Keel's long-lived streams pace their writers.
package enum StreamPacing {
    /// The ``MessageOutbox/minimumInterval`` of agent streams and framework subscriptions.
    ///
    /// 20 ms: in the launch benchmark (2000 tasks, interleaved) 15 ms instead of 5 cut the
    /// broker's CPU per task by 0.08-0.09 ms and the framework's by 0.03, and 40 ms a further
    /// 0.05 and 0.02; the launcher's hardly moves. What it costs is latency under a steady flow
    /// only: a message waits at most this long for the batch it goes out with (an idle stream
    /// sends at once), which stays small next to what a busy launcher queues anyway (the median
    /// launch to TASK_FINISHED in that run is over a second, and fell with the longer interval).
    package static let interval = Duration.milliseconds(20)
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
