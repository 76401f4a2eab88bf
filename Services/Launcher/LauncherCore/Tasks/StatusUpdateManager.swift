package import Foundation
package import KeelAPI
import Logging
import SwiftProtobuf
import Synchronization

/// Delivers status updates reliably, as the Mesos agent's status update manager does: per task,
/// updates go out in order, one at a time; the head is resent with exponential backoff until the
/// framework's acknowledgement comes back, then the next one is sent.
///
/// Updates survive broker disconnections: when the stream is re-established ``connect(_:)`` sends
/// every queue head again. They survive a launcher restart too: with a ``TaskCheckpointStore``,
/// a new update is written to its task's checkpoint before it is sent, and the next launcher puts
/// the queue back with ``restore(frameworkID:updates:)``. Writing does not hold up the caller or
/// other tasks: an update waits in its queue, not yet `stored`, until the checkpoint writer says
/// it is on disk, and is sent then if it is the head.
package final class StatusUpdateManager: Sendable {
    /// Sends a message up the current agent stream; returns false when it could not.
    package typealias Sender = @Sendable (Keel_V1_AgentMessage) -> Bool

    private struct Pending {
        var frameworkID: String
        var status: Keel_V1_TaskStatus
        var nextAttempt: ContinuousClock.Instant
        var backoff: Duration
        /// Whether the update is on disk (always, without a checkpoint); only stored updates are sent.
        var stored: Bool
    }

    private struct State {
        var queues: [LauncherTaskKey: [Pending]] = [:]
        var sender: Sender?
    }

    /// The tasks' queues, spread over shards by task, each with its own lock: a task's updates
    /// only need ordering among themselves, and with one lock the checkpoint writer threads
    /// reporting stored updates, the acknowledgements and the new updates of every task all
    /// waited for each other. Every shard holds the current sender.
    private final class Shard: Sendable {
        let state = Mutex(State())
    }

    private static let shardCount = 16
    private let shards: [Shard] = (0..<StatusUpdateManager.shardCount).map { _ in Shard() }
    private let initialBackoff: Duration
    private let maxBackoff: Duration
    private let checkpoints: TaskCheckpointStore?

    /// Creates the manager with the given resend backoff; with `checkpoints`, queues are durable.
    package init(initialBackoff: Duration, maxBackoff: Duration, checkpoints: TaskCheckpointStore? = nil) {
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.checkpoints = checkpoints
    }

    /// Puts back the unacknowledged updates of a task read from its checkpoint (oldest first);
    /// they are sent once a stream is connected.
    package func restore(frameworkID: String, updates: [Keel_V1_TaskStatus]) {
        guard let first = updates.first else { return }
        let key = LauncherTaskKey(frameworkID: frameworkID, taskID: first.taskID.value)
        shard(key).state.withLock { state in
            state.queues[key] = updates.map {
                Pending(frameworkID: frameworkID, status: $0, nextAttempt: .now, backoff: initialBackoff, stored: true)
            }
        }
    }

    /// Queues an update; it is sent as soon as it is on disk if it is the first pending one of
    /// its task.
    package func enqueue(frameworkID: String, status: Keel_V1_TaskStatus) {
        let key = LauncherTaskKey(frameworkID: frameworkID, taskID: status.taskID.value)
        let uuid = status.uuid
        shard(key).state.withLock { state in
            let pending = Pending(
                frameworkID: frameworkID, status: status, nextAttempt: .now + initialBackoff, backoff: initialBackoff,
                stored: checkpoints == nil)
            state.queues[key, default: []].append(pending)
            // Recorded under the lock, so that a task's checkpoint sees its queue's changes in order.
            checkpoints?.recordPending(key, updates: state.queues[key]?.map(\.status) ?? [], reported: status) {
                [weak self] in self?.stored(key, uuid: uuid)
            }
            if pending.stored, state.queues[key]?.count == 1 {
                _ = state.sender?(Self.message(pending))
            }
        }
    }

    /// Marks an update as on disk, and sends it if it heads its task's queue.
    private func stored(_ key: LauncherTaskKey, uuid: Data) {
        shard(key).state.withLock { state in
            guard var queue = state.queues[key], let index = queue.firstIndex(where: { $0.status.uuid == uuid }) else {
                return
            }
            queue[index].stored = true
            if index == 0 {
                queue[0].nextAttempt = .now + queue[0].backoff
                _ = state.sender?(Self.message(queue[0]))
            }
            state.queues[key] = queue
        }
    }

    /// Handles an acknowledgement: drops the matching head and sends the next update.
    ///
    /// Returns false for an acknowledgement of nothing pending (a duplicate); that is harmless.
    @discardableResult
    package func acknowledge(frameworkID: String, taskID: String, uuid: Data) -> Bool {
        let key = LauncherTaskKey(frameworkID: frameworkID, taskID: taskID)
        return shard(key).state.withLock { state in
            guard var queue = state.queues[key], let head = queue.first, head.status.uuid == uuid else { return false }
            queue.removeFirst()
            checkpoints?.recordPending(key, updates: queue.map(\.status), reported: nil)
            if var next = queue.first, next.stored {
                next.nextAttempt = .now + initialBackoff
                queue[0] = next
                _ = state.sender?(Self.message(next))
            }
            state.queues[key] = queue.isEmpty ? nil : queue
            return true
        }
    }

    /// Installs the sender of a new stream (or nil when it broke) and resends every head.
    package func connect(_ sender: Sender?) {
        for shard in shards {
            shard.state.withLock { state in
                state.sender = sender
                guard let sender else { return }
                for (key, queue) in state.queues {
                    guard var head = queue.first, head.stored else { continue }
                    _ = sender(Self.message(head))
                    head.nextAttempt = .now + head.backoff
                    state.queues[key]?[0] = head
                }
            }
        }
    }

    /// Resends every head whose retry time has come, doubling its backoff.
    package func resendDue(now: ContinuousClock.Instant = .now) {
        for shard in shards {
            shard.state.withLock { state in
                guard let sender = state.sender else { return }
                for (key, queue) in state.queues {
                    guard var head = queue.first, head.stored, head.nextAttempt <= now else { continue }
                    _ = sender(Self.message(head))
                    head.backoff = min(head.backoff * 2, maxBackoff)
                    head.nextAttempt = now + head.backoff
                    state.queues[key]?[0] = head
                }
            }
        }
    }

    /// The updates not yet acknowledged for a task, oldest first.
    package func pending(_ key: LauncherTaskKey) -> [Keel_V1_TaskStatus] {
        shard(key).state.withLock { $0.queues[key]?.map(\.status) ?? [] }
    }

    /// How many updates wait for acknowledgement in all.
    package var pendingCount: Int {
        shards.reduce(0) { total, shard in total + shard.state.withLock { $0.queues.values.reduce(0) { $0 + $1.count } } }
    }

    private func shard(_ key: LauncherTaskKey) -> Shard {
        var hasher = Hasher()
        hasher.combine(key)
        return shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(Self.shardCount))]
    }

    private static func message(_ pending: Pending) -> Keel_V1_AgentMessage {
        .with {
            $0.statusUpdate.frameworkID.value = pending.frameworkID
            $0.statusUpdate.status = pending.status
        }
    }
}
