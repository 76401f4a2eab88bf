import KeelAPI
import KeelCore
import KeelStore
import SwiftProtobuf

/// Store writes taken together for one store transaction, at most one per key.
///
/// A later write to a key replaces the earlier one in the batch (the last one wins: a put after
/// a delete is a put, a delete after a put is a delete), because a transaction may touch a key
/// only once and only the latest state matters. The batch keeps the order in which keys were
/// first written. Values are serialized only in ``operations()``, so a task changed many times
/// within a batch is serialized once.
struct StoreBatch {
    private var writes: [StoreWrite] = []
    private var positions: [String: Int] = [:]

    /// Whether the batch holds no write.
    var isEmpty: Bool { writes.isEmpty }

    /// How many keys the batch writes.
    var count: Int { writes.count }

    /// Adds `write`, replacing an earlier write to the same key. A barrier or a held message is not a write and is ignored.
    mutating func add(_ write: StoreWrite) {
        guard let key = write.storeKey else { return }
        if let position = positions[key] {
            writes[position] = write
        } else {
            positions[key] = writes.count
            writes.append(write)
        }
    }

    /// The store operations of the batch, with the keys whose value could not be serialized.
    func operations() -> (operations: [StoreOperation], failures: [(key: String, error: any Error)]) {
        var operations: [StoreOperation] = []
        operations.reserveCapacity(writes.count)
        var failures: [(key: String, error: any Error)] = []
        for write in writes {
            do {
                if let operation = try write.storeOperation() { operations.append(operation) }
            } catch {
                failures.append((write.storeKey ?? "", error))
            }
        }
        return (operations, failures)
    }
}

extension StoreWrite {
    /// The store key the write changes; `nil` for a barrier.
    var storeKey: String? {
        switch self {
        case .putTask(let task): task.storeKey
        case .putAgent(let info): Broker.agentPrefix + info.id.value
        case .deleteAgent(let id): Broker.agentPrefix + id.value
        case .putWeight(let weight): ClusterPolicy.weightPrefix + weight.role
        case .deleteWeight(let role): ClusterPolicy.weightPrefix + role
        case .putQuota(let config): ClusterPolicy.quotaPrefix + config.role
        case .deleteQuota(let role): ClusterPolicy.quotaPrefix + role
        case .putReservations(let record): ClusterPolicy.reservationPrefix + record.agentID.value
        case .deleteReservations(let id): ClusterPolicy.reservationPrefix + id.value
        case .putDraining(let id): ClusterPolicy.drainingPrefix + id.value
        case .deleteDraining(let id): ClusterPolicy.drainingPrefix + id.value
        case .barrier, .sendWhenStored: nil
        }
    }

    /// The put or delete that stores the write; `nil` for a barrier.
    ///
    /// - Throws: when the record cannot be serialized.
    func storeOperation() throws -> StoreOperation? {
        guard let key = storeKey else { return nil }
        switch self {
        case .putTask(let task): return .put(key: key, value: try task.serializedBytes())
        case .putAgent(let info): return .put(key: key, value: try info.serializedBytes())
        case .putWeight(let weight): return .put(key: key, value: try weight.serializedBytes())
        case .putQuota(let config): return .put(key: key, value: try config.serializedBytes())
        case .putReservations(let record): return .put(key: key, value: try record.serializedBytes())
        case .putDraining: return .put(key: key, value: Array("draining".utf8))
        case .deleteAgent, .deleteWeight, .deleteQuota, .deleteReservations, .deleteDraining: return .delete(key: key)
        case .barrier, .sendWhenStored: return nil
        }
    }
}

extension Keel_V1_Task {
    /// The key the broker stores the task under.
    var storeKey: String { Broker.taskPrefix + frameworkID.value + "/" + taskID.value }
}
