import KeelAPI
import SwiftProtobuf
import Synchronization

/// Sends the driver's automatic acknowledgements in the background, many per call.
///
/// The event loop hands each update's acknowledgement over and goes on with the next event at
/// once, instead of waiting a round trip per update. One `Acknowledge` call is in flight at a
/// time; whatever arrives meanwhile goes out together in the next call (up to
/// ``maxPerCall``), so a burst of updates costs a few calls, and a single update is still
/// acknowledged without delay.
///
/// A call that fails is not retried: the launcher resends every update until it is
/// acknowledged, and the driver acknowledges the resent update then.
final class AcknowledgementBatcher: Sendable {
    /// The most acknowledgements one call carries.
    static let maxPerCall = 1000

    private struct State {
        var pending: [Keel_V1_Acknowledgement] = []
        var sending = false
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    private let signals: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation

    init() {
        (signals, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues the acknowledgements of `statuses` for the next call, all at once, so that the
    /// updates of one event go out together rather than the first alone.
    func add(_ statuses: [Keel_V1_TaskStatus]) {
        guard !statuses.isEmpty else { return }
        state.withLock { state in
            for status in statuses {
                state.pending.append(.with {
                    $0.agentID = status.agentID
                    $0.taskID = status.taskID
                    $0.uuid = status.uuid
                })
            }
        }
        signal.yield()
    }

    /// Sends queued acknowledgements with `send` until cancelled; `send` returns the refusals.
    func run(
        send: @Sendable ([Keel_V1_Acknowledgement]) async throws -> [String],
        failed: @Sendable (_ count: Int, _ error: any Error) -> Void,
        refused: @Sendable ([String]) -> Void
    ) async {
        for await _ in signals {
            while !Task.isCancelled {
                let batch = state.withLock { state -> [Keel_V1_Acknowledgement] in
                    let batch = Array(state.pending.prefix(Self.maxPerCall))
                    state.pending.removeFirst(batch.count)
                    state.sending = !batch.isEmpty
                    return batch
                }
                guard !batch.isEmpty else { break }
                do {
                    let refusals = try await send(batch)
                    if !refusals.isEmpty { refused(refusals) }
                } catch {
                    failed(batch.count, error)
                }
            }
            resumeIdleWaiters()
        }
        state.withLock { $0.sending = false }
        resumeIdleWaiters()
    }

    /// Returns once nothing is queued or being sent (or at once if so).
    func waitUntilIdle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                guard state.pending.isEmpty, !state.sending else {
                    state.idleWaiters.append(continuation)
                    return false
                }
                return true
            }
            if idle { continuation.resume() }
        }
    }

    private func resumeIdleWaiters() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard state.pending.isEmpty || Task.isCancelled else { return [] }
            state.sending = false
            defer { state.idleWaiters.removeAll() }
            return state.idleWaiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// The batcher of the subscription in progress, for the driver to wait on when its body ends.
final class CurrentAcknowledgements: Sendable {
    private let current = Mutex<AcknowledgementBatcher?>(nil)

    func set(_ batcher: AcknowledgementBatcher?) {
        current.withLock { $0 = batcher }
    }

    /// Waits, at most `timeout`, until the acknowledgements queued so far are sent.
    func flush(timeout: Duration) async {
        guard let batcher = current.withLock({ $0 }) else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await batcher.waitUntilIdle() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }
}
