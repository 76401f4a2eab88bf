@testable import BrokerCore
import Foundation
import KeelAPI
import KeelCore
import KeelRPC
import KeelStore
import Logging
import SwiftProtobuf
import Synchronization
import Testing

/// The broker's persister: queued writes are stored in batches, one transaction each, with
/// writes to one key coalesced; barriers (``Broker/mutateDurably(_:)``) still wait for every
/// earlier write and report failures.
@Suite("Persistence of the broker's state")
struct PersistenceTests {
    @Test("writes to one key within a batch collapse to the last one, in first-written order")
    func coalescing() throws {
        var task = Keel_V1_Task.with {
            $0.frameworkID.value = "f"
            $0.taskID.value = "t"
            $0.state = .taskStaging
        }
        var batch = StoreBatch()
        batch.add(.putTask(task))
        batch.add(.putDraining(AgentID("a")))
        batch.add(.deleteDraining(AgentID("a")))
        batch.add(.deleteDraining(AgentID("b")))
        batch.add(.putDraining(AgentID("b")))
        task.state = .taskRunning
        batch.add(.putTask(task))
        #expect(batch.count == 3)

        let (operations, failures) = batch.operations()
        #expect(failures.isEmpty)
        #expect(operations == [
            .put(key: Broker.taskPrefix + "f/t", value: try task.serializedBytes()),
            .delete(key: ClusterPolicy.drainingPrefix + "a"),
            .put(key: ClusterPolicy.drainingPrefix + "b", value: Array("draining".utf8)),
        ])
    }

    @Test("the persister takes what is queued at once, up to the bound and in order, and drains after finish")
    func queue() async throws {
        let queue = WriteQueue()
        queue.enqueue((0..<5).map { StoreWrite.putDraining(AgentID("a\($0)")) })
        let first = try #require(await queue.next(limit: 3))
        #expect(first.compactMap(\.storeKey) == (0..<3).map { ClusterPolicy.drainingPrefix + "a\($0)" })
        queue.enqueue([StoreWrite.deleteDraining(AgentID("a0"))])
        queue.finish()
        #expect(!queue.enqueue([StoreWrite.putDraining(AgentID("late"))]))
        let rest = try #require(await queue.next(limit: 3))
        #expect(rest.compactMap(\.storeKey) == ["a3", "a4", "a0"].map { ClusterPolicy.drainingPrefix + $0 })
        #expect(await queue.next(limit: 3) == nil)
    }

    @Test("many task changes in quick succession are all stored and come back after a broker restart")
    func taskChangesSurviveRestart() async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("keel-persist-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let ids = (0..<40).map { "t\($0)" }
        try await InProcessCluster.with(directory: directory) { cluster in
            try await cluster.withConnectedPair(framework: "batch", hostname: "node-b") { pair in
                let offer = try #require(
                    try await pair.frameworkInbox.wait(for: "OFFERS") { $0.type == .offers }.offers.offers.first)
                let accepted = try await cluster.scheduler.accept(.with {
                    $0.frameworkID.value = pair.frameworkID
                    $0.offerIds = [offer.id]
                    $0.operations = [.with {
                        $0.type = .launch
                        $0.launch.taskInfos = ids.map {
                            SchedulerFlowTests.task($0, agentID: pair.agentID, cpus: 0.05, mem: 16)
                        }
                    }]
                }, metadata: bearer(pair.token))
                #expect(accepted.launched.count == ids.count)

                // Every task's updates at once, so that the persister finds many queued.
                for state in [Keel_V1_TaskState.taskStarting, .taskRunning, .taskFinished] {
                    for id in ids {
                        pair.agentWriter.yield(.with {
                            $0.statusUpdate.frameworkID.value = pair.frameworkID
                            $0.statusUpdate.status = .with {
                                $0.taskID.value = id
                                $0.state = state
                                $0.agentID = pair.agentID
                                $0.uuid = Data(UUID().uuidString.utf8)
                                $0.source = .agent
                            }
                        })
                    }
                }
                for id in ids {
                    _ = try await pair.frameworkInbox.wait(for: "FINISHED of \(id)") {
                        $0.update.status.taskID.value == id && $0.update.status.state == .taskFinished
                    }
                }
                // A durable change: it returns once every write queued before it is stored.
                let weight = Keel_V1_WeightInfo.with {
                    $0.role = "eng"
                    $0.weight = 2
                }
                _ = try await cluster.operator_.updateWeights(.with { $0.weights = [weight] })
                let stored = try await cluster.broker.store.range(prefix: Broker.taskPrefix)
                #expect(stored.count == ids.count)
                // Stored in batches: far fewer commits (each bumps the revision) than changes.
                let changes = ids.count * 4 + 1
                #expect(try await cluster.broker.store.currentRevision() < Revision(Int64(changes)))
            }
        }
        try await InProcessCluster.with(directory: directory) { cluster in
            let tasks = try await cluster.operator_.getTasks(.init()).tasks
            #expect(Set(tasks.map(\.taskID.value)) == Set(ids))
            for task in tasks {
                #expect(task.state == .taskFinished, "\(task.taskID.value)")
                #expect(
                    task.statuses.map(\.state) == [.taskStaging, .taskStarting, .taskRunning, .taskFinished],
                    "\(task.taskID.value)"
                )
            }
            let roles = try await cluster.operator_.getRoles(.init()).roles
            #expect(roles.first { $0.name == "eng" }?.weight == 2)
        }
    }

    @Test("a barrier reports a failed batch stored before it, and the next barrier starts clean")
    func barrierReportsFailures() async throws {
        try await Self.withBroker { broker, store in
            // Writes that fail, stored (and failed) before the barrier is even queued.
            store.failing.withLock { $0 = true }
            broker.mutate { state in
                for index in 0..<10 { state.pendingWrites.append(.putDraining(AgentID("a\(index)"))) }
            }
            try await store.waitForFailures(atLeast: 1)
            let failed = await #expect(throws: KeelError.self) { try await broker.mutateDurably { _ in } }
            #expect(failed?.code == .unavailable)
            #expect(failed?.message.contains("the disk is gone") == true)

            // The failure was reported once; a later barrier sees only what happened since.
            store.failing.withLock { $0 = false }
            try await broker.mutateDurably { $0.pendingWrites.append(.putDraining(AgentID("b"))) }
            #expect(try await store.get(ClusterPolicy.drainingPrefix + "b") != nil)

            // A batch with one write the store refuses: the others are still stored.
            let refused = await #expect(throws: KeelError.self) {
                try await broker.mutateDurably { state in
                    state.pendingWrites.append(.putDraining(AgentID("c1")))
                    state.pendingWrites.append(.putDraining(AgentID("bad\0id")))
                    state.pendingWrites.append(.deleteDraining(AgentID("b")))
                    state.pendingWrites.append(.putDraining(AgentID("c2")))
                }
            }
            #expect(refused?.code == .unavailable)
            let keys = try await store.range(prefix: ClusterPolicy.drainingPrefix).map(\.key)
            #expect(keys == ["c1", "c2"].map { ClusterPolicy.drainingPrefix + $0 })
        }
    }

    /// Runs `body` with a running broker over a ``FailingStore`` in a temporary directory.
    static func withBroker(_ body: (Broker, FailingStore) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("keel-persist-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let path = directory.appendingPathComponent("broker.sqlite").path
        let sqlite = try await SQLiteStore.open(path: path, logger: logger)
        let store = FailingStore(wrapping: sqlite)
        let broker = Broker(
            configuration: .defaults(registry: Endpoint(host: "127.0.0.1", port: 1)), store: store,
            directory: NoDirectory(), logger: logger
        )
        do {
            try await broker.recover()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await broker.run() }
                defer { group.cancelAll() }
                try await body(broker, store)
            }
        } catch {
            try? await sqlite.close()
            throw error
        }
        try await sqlite.close()
    }
}

/// A store that fails every write with `unavailable` while ``failing`` is set.
final class FailingStore: KeyValueStore {
    let base: SQLiteStore
    /// Whether writes fail.
    let failing = Mutex(false)
    /// How many writes failed so far.
    private let failures = Mutex(0)

    init(wrapping base: SQLiteStore) {
        self.base = base
    }

    /// Waits until at least `count` writes have failed.
    func waitForFailures(atLeast count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while failures.withLock({ $0 }) < count {
            guard ContinuousClock.now < deadline else { throw InboxTimeout(what: "\(count) failed writes") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    private func checkWrite() throws {
        guard failing.withLock({ $0 }) else { return }
        failures.withLock { $0 += 1 }
        throw StoreError.unavailable("the disk is gone")
    }

    func get(_ key: String) async throws -> KeyValue? { try await base.get(key) }
    func range(prefix: String) async throws -> [KeyValue] { try await base.range(prefix: prefix) }
    func snapshot(prefix: String) async throws -> StoreSnapshot { try await base.snapshot(prefix: prefix) }
    func put(_ key: String, value: [UInt8], lease: LeaseID?) async throws -> Revision {
        try checkWrite()
        return try await base.put(key, value: value, lease: lease)
    }
    func transaction(_ operations: [StoreOperation], conditions: [StoreCondition]) async throws -> TransactionResult {
        try checkWrite()
        return try await base.transaction(operations, conditions: conditions)
    }
    func delete(_ key: String) async throws -> Bool {
        try checkWrite()
        return try await base.delete(key)
    }
    func delete(prefix: String) async throws -> Int {
        try checkWrite()
        return try await base.delete(prefix: prefix)
    }
    func watch(prefix: String, fromRevision: Revision?) async throws -> WatchStream {
        try await base.watch(prefix: prefix, fromRevision: fromRevision)
    }
    func grantLease(ttl: Duration) async throws -> LeaseID { try await base.grantLease(ttl: ttl) }
    func keepAlive(_ lease: LeaseID) async throws { try await base.keepAlive(lease) }
    func revokeLease(_ lease: LeaseID) async throws { try await base.revokeLease(lease) }
    func campaign(election: String, candidate: String, lease: LeaseID) async throws -> LeaderKey {
        try await base.campaign(election: election, candidate: candidate, lease: lease)
    }
    func leader(election: String) async throws -> String? { try await base.leader(election: election) }
    func resign(_ leader: LeaderKey) async throws { try await base.resign(leader) }
    func currentRevision() async throws -> Revision { try await base.currentRevision() }
}

/// A framework directory for a broker that never asks the registry anything.
struct NoDirectory: FrameworkDirectory {
    func framework(_ id: String) async throws -> Keel_V1_FrameworkRecord {
        throw KeelError.notFound("no registry in this test")
    }
    func teardown(_ id: String, token: String?) async throws {}
    func update(_ info: Keel_V1_FrameworkInfo, token: String) async throws -> Keel_V1_FrameworkInfo { info }
}
