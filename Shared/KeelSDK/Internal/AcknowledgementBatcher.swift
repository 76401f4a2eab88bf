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

    private let pending = Mutex<[Keel_V1_Acknowledgement]>([])
    private let signals: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation

    init() {
        (signals, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues the acknowledgement of `status` for the next call.
    func add(_ status: Keel_V1_TaskStatus) {
        pending.withLock {
            $0.append(.with {
                $0.agentID = status.agentID
                $0.taskID = status.taskID
                $0.uuid = status.uuid
            })
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
                let batch = pending.withLock { pending -> [Keel_V1_Acknowledgement] in
                    let batch = Array(pending.prefix(Self.maxPerCall))
                    pending.removeFirst(batch.count)
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
        }
    }

    /// Ends ``run(send:failed:refused:)`` once the acknowledgements queued so far are sent.
    func finish() {
        signal.finish()
    }
}
