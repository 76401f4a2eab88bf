import KeelStore
import Logging

extension Broker {
    /// The most queued writes taken into one store transaction, so that a large backlog is
    /// stored in several transactions of bounded size rather than one huge one.
    static let writeBatchLimit = 2048

    /// The shortest time between the starts of two store transactions, after one that stored
    /// several writes.
    ///
    /// Under a steady flow of changes (status updates of many tasks) the persister otherwise
    /// commits whatever arrived during the previous commit, often a write or two; waiting out the
    /// rest of the interval lets the changes gather, so a task changed several times in a row is
    /// serialized and stored once, and the commit and the hops to SQLite's thread are shared by
    /// more writes. A change waits at most this long more before it is stored; the broker acts on
    /// it in memory at once, and a caller that needs it stored (``mutateDurably(_:)``) waits for it.
    static let persistInterval = Duration.milliseconds(10)

    /// Stores the queued writes until the queue is finished (or the task cancelled) and drained.
    ///
    /// Whatever is queued when the persister comes round is stored together in one transaction
    /// (writes to the same key coalesced), so a burst of changes costs one commit, not one each.
    /// Batches are stored one after the other, in queue order. A barrier splits a batch: the
    /// writes before it are committed before it is resumed, with the first failure since the
    /// previous barrier (`nil` when everything was stored). A message held until stored goes out
    /// after the writes queued before it were committed, unless the latest write of the key it
    /// depends on failed.
    func persist() async {
        // The first failure since the last barrier, reported to the barrier's waiter.
        var failure: String?
        var previousBatch: ContinuousClock.Instant?
        // How many writes the previous batch took: after a batch of one, nothing gathered while
        // it was stored, so the next goes at once (an idle broker, the last change of a burst).
        var previousCount = 0
        // Messages waiting for the commit of the writes queued before them, and the keys whose
        // latest write failed.
        var held: [AgentMessage] = []
        var unstored: Set<String> = []
        while true {
            if let previousBatch, previousCount > 1 {
                let remaining = Self.persistInterval - (ContinuousClock.now - previousBatch)
                if remaining > .zero { try? await Task.sleep(for: remaining) }
            }
            guard let taken = await writes.next(limit: Self.writeBatchLimit) else { break }
            previousBatch = .now
            previousCount = taken.count
            var batch = StoreBatch()
            for write in taken {
                switch write {
                case .barrier(let waiter):
                    if let error = await commit(batch, unstored: &unstored) { failure = failure ?? error }
                    batch = StoreBatch()
                    release(&held, unstored: unstored)
                    waiter.resume(returning: failure)
                    failure = nil
                case .sendWhenStored(let message):
                    held.append(message)
                default:
                    batch.add(write)
                }
            }
            if let error = await commit(batch, unstored: &unstored) { failure = failure ?? error }
            release(&held, unstored: unstored)
        }
    }

    /// Sends the held messages, except those that depend on a key in `unstored` (their
    /// launchers resend the updates they would have acknowledged, which stores them again).
    private func release(_ held: inout [AgentMessage], unstored: Set<String>) {
        guard !held.isEmpty else { return }
        defer { held.removeAll(keepingCapacity: true) }
        var dropped = 0
        read { state in
            for message in held {
                if let key = message.dependsOn, unstored.contains(key) {
                    dropped += 1
                } else {
                    _ = state.send(message.message, to: message.agentID)
                }
            }
        }
        if dropped > 0 {
            logger.error(
                "not passing acknowledgements on: the updates they acknowledge could not be stored; the launcher resends them",
                metadata: ["keel.acknowledgements": "\(dropped)"])
        }
    }

    /// Stores `batch` in one transaction, and keeps `unstored` (the keys whose latest write
    /// failed) current. - Returns: the first failure, or `nil` if all of it was stored.
    ///
    /// When the transaction fails, its operations are tried again one at a time, so that one
    /// write the store refuses (a value over its size limit) does not take the others with it;
    /// every write that still fails is logged.
    private func commit(_ batch: StoreBatch, unstored: inout Set<String>) async -> String? {
        guard !batch.isEmpty else { return nil }
        let (operations, unserializable) = batch.operations()
        var failure: String?
        for (key, error) in unserializable {
            let reported = logFailure(key: key, error)
            failure = failure ?? reported
            unstored.insert(key)
        }
        guard !operations.isEmpty else { return failure }
        do {
            _ = try await store.transaction(operations, conditions: [])
            for operation in operations { unstored.remove(operation.key) }
            return failure
        } catch {
            guard operations.count > 1 else {
                let reported = logFailure(key: operations[0].key, error)
                unstored.insert(operations[0].key)
                return failure ?? reported
            }
            let metadata: Logger.Metadata = ["keel.writes": "\(operations.count)", "keel.error": "\(error)"]
            logger.error("could not persist a batch of changes; storing them one at a time", metadata: metadata)
        }
        for operation in operations {
            do {
                _ = try await store.transaction([operation], conditions: [])
                unstored.remove(operation.key)
            } catch {
                let reported = logFailure(key: operation.key, error)
                failure = failure ?? reported
                unstored.insert(operation.key)
            }
        }
        return failure
    }

    /// Logs that the write of `key` failed. - Returns: the failure as reported to a barrier.
    private func logFailure(key: String, _ error: any Error) -> String {
        logger.error("could not persist a change", metadata: ["keel.key": "\(key)", "keel.error": "\(error)"])
        return "\(error)"
    }
}

extension StoreOperation {
    /// The key (or prefix) the operation changes, for log messages.
    fileprivate var key: String {
        switch self {
        case .put(let key, _, _), .delete(let key): key
        case .deletePrefix(let prefix): prefix
        }
    }
}
