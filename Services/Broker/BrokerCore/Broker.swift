import Foundation
import KeelAllocator
import KeelAPI
import SwiftProtobuf
import KeelCore
package import KeelRPC
package import KeelStore
package import Logging
import ServiceLifecycle
import Synchronization

/// The resource broker: owns the cluster state and runs its background work (allocation,
/// heartbeats, persistence). The gRPC services are thin adapters over it.
///
/// State lives in a ``BrokerState`` value behind a `Mutex`; every change goes through
/// ``mutate(_:)``, which also hands the store writes the change produced to the persister in
/// the order the changes happened (see ``persist()``).
package final class Broker: Service {
    private let state: Mutex<BrokerState>
    let store: any KeyValueStore
    /// Store writes waiting for the persister.
    let writes = WriteQueue()
    private let allocationRequests: AsyncStream<Void>.Continuation
    private let allocationStream: AsyncStream<Void>
    /// Verifies framework tokens with the registry's keys.
    package let verifier: TokenVerifier
    package let configuration: BrokerConfiguration
    let directory: any FrameworkDirectory
    let logger: Logger

    static let taskPrefix = "/keel/broker/tasks/"
    static let agentPrefix = "/keel/broker/agents/"

    /// Creates the broker over an opened store; call ``recover()`` before serving.
    package init(
        configuration: BrokerConfiguration,
        store: any KeyValueStore,
        directory: any FrameworkDirectory,
        logger: Logger
    ) {
        self.directory = directory
        self.state = Mutex(BrokerState(configuration: configuration))
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.verifier = TokenVerifier()
        (allocationStream, allocationRequests) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Loads the task table and known agents from the store (agents start disconnected until
    /// their launchers re-attach).
    package func recover() async throws {
        let storedTasks = try await store.range(prefix: Self.taskPrefix)
        let storedAgents = try await store.range(prefix: Self.agentPrefix)
        let policy = try await loadPolicy()
        let now = Date()
        state.withLock { state in
            state.policy = policy
            for (role, weight) in policy.weights {
                state.ledger { try $0.setWeight(role: AllocatorRoles.allocatorRole(role), weight: weight) }
            }
            for config in policy.quotas.values {
                state.ledger {
                    try $0.setQuota(
                        role: config.role, guaranteeAmounts: config.guarantees,
                        limitAmounts: config.limits.isEmpty ? nil : config.limits
                    )
                }
            }
            for entry in storedAgents {
                guard let info = try? Keel_V1_AgentInfo(serializedBytes: entry.value) else { continue }
                let id = AgentID(info.id.value)
                let reported = (try? Resources(proto: info.resources)) ?? []
                state.agents[id] = AgentEntry(
                    info: info, id: id, state: policy.draining.contains(id) ? .draining : .disconnected, total: state.effectiveTotal(of: id, reported: reported).total,
                    registeredAt: now, lastSeenAt: now
                )
            }
            for entry in storedTasks {
                guard let task = try? Keel_V1_Task(serializedBytes: entry.value) else { continue }
                let key = TaskKey(frameworkID: FrameworkID(task.frameworkID.value), taskID: TaskID(task.taskID.value))
                state.tasks[key] = task
            }
            for id in state.agents.keys {
                if let agent = state.agents[id] {
                    state.ledger { allocator in
                        try allocator.addAgent(id: id, total: agent.total, now: Instant(date: now))
                        try allocator.deactivateAgent(id: id)
                    }
                }
            }
            for task in state.tasks.values { state.recoverTaskAllocation(task, now: now) }
        }
        logger.info("recovered state", metadata: [
            "keel.tasks": "\(storedTasks.count)", "keel.agents": "\(storedAgents.count)",
            "keel.quotas": "\(policy.quotas.count)", "keel.weights": "\(policy.weights.count)",
            "keel.reserved_agents": "\(policy.reservations.count)", "keel.draining_agents": "\(policy.draining.count)",
        ])
    }

    /// Reads weights, quota, dynamic reservations and drained agents from the store; a record that does not
    /// decode is logged and skipped (the rest still applies).
    private func loadPolicy() async throws -> ClusterPolicy {
        var policy = ClusterPolicy()
        for entry in try await store.range(prefix: ClusterPolicy.weightPrefix) {
            guard let weight = try? Keel_V1_WeightInfo(serializedBytes: entry.value), weight.weight.isFinite, weight.weight > 0 else {
                logger.error("skipping an unreadable weight record", metadata: ["keel.key": "\(entry.key)"])
                continue
            }
            policy.weights[weight.role] = weight.weight
        }
        for entry in try await store.range(prefix: ClusterPolicy.quotaPrefix) {
            guard let config = try? Keel_V1_QuotaConfig(serializedBytes: entry.value) else {
                logger.error("skipping an unreadable quota record", metadata: ["keel.key": "\(entry.key)"])
                continue
            }
            policy.quotas[config.role] = config
        }
        for entry in try await store.range(prefix: ClusterPolicy.reservationPrefix) {
            guard let record = try? Keel_V1_AgentReservations(serializedBytes: entry.value),
                let resources = try? Resources(proto: record.resources)
            else {
                logger.error("skipping an unreadable reservation record", metadata: ["keel.key": "\(entry.key)"])
                continue
            }
            policy.reservations[AgentID(record.agentID.value)] = resources
        }
        for entry in try await store.range(prefix: ClusterPolicy.drainingPrefix) {
            policy.draining.insert(AgentID(String(entry.key.dropFirst(ClusterPolicy.drainingPrefix.count))))
        }
        return policy
    }

    /// Applies a change to the state; store writes and task hops it produced are passed on.
    ///
    /// - Throws: whatever `body` throws; `body` must validate before it changes anything.
    func mutate<T>(_ body: (inout BrokerState) throws -> T) rethrows -> T {
        let (result, hops) = try state.withLock { state in
            let result = try body(&state)
            writes.enqueue(state.pendingWrites)
            state.pendingWrites.removeAll(keepingCapacity: true)
            let hops = state.pendingHops
            state.pendingHops.removeAll()
            for warning in state.pendingWarnings { logger.error("\(warning)") }
            state.pendingWarnings.removeAll()
            for notice in state.pendingNotices { logger.warning("\(notice)") }
            state.pendingNotices.removeAll()
            return (result, hops)
        }
        for hop in hops {
            TaskHopRecorder.record(
                hop.name, taskID: hop.taskID, frameworkID: hop.frameworkID, agentID: hop.agentID,
                start: hop.start, end: hop.end, attributes: hop.attributes
            )
        }
        return result
    }

    /// Like ``mutate(_:)``, and returns only once the store holds the writes of the change (and
    /// of every change before it), so that what an operator was told is done survives a crash.
    ///
    /// - Throws: what `body` throws; ``KeelError/Code/unavailable`` when a write could not be
    ///   stored (the change holds in this broker but would be lost on a restart; retry it).
    func mutateDurably<T: Sendable>(_ body: (inout BrokerState) throws -> T) async throws -> T {
        let result = try mutate(body)
        let failure: String? = await withCheckedContinuation { continuation in
            if !writes.enqueue(CollectionOfOne(.barrier(continuation))) {
                continuation.resume(returning: "the broker is shutting down")
            }
        }
        if let failure {
            throw KeelError.unavailable(
                "the change was applied but could not be stored (\(failure)); it would be lost on a broker restart, so retry it")
        }
        return result
    }

    /// Reads the state without changing it.
    @discardableResult
    func read<T>(_ body: (BrokerState) throws -> T) rethrows -> T {
        try state.withLock { try body($0) }
    }

    /// Asks the allocator to run soon (coalesced).
    package func requestAllocation() {
        allocationRequests.yield()
    }

    /// Runs allocation, heartbeats and persistence until graceful shutdown.
    package func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { await self.persist() }
                group.addTask { await self.allocationLoop() }
                group.addTask {
                    try? await cancelWhenGracefulShutdown {
                        try await self.tick(every: self.configuration.offerInterval) { self.requestAllocation() }
                    }
                }
                group.addTask {
                    try? await cancelWhenGracefulShutdown {
                        try await self.tick(every: self.configuration.frameworkHeartbeatInterval) { self.sendHeartbeats() }
                    }
                }
                group.addTask {
                    try? await cancelWhenGracefulShutdown { try await self.expireFrameworks() }
                }
            }
        } onGracefulShutdown: {
            self.writes.finish()
            self.allocationRequests.finish()
            self.closeStreams()
        }
    }

    private func tick(every interval: Duration, _ body: @Sendable () -> Void) async throws {
        while !Task.isCancelled {
            try await Task.sleep(for: interval)
            body()
        }
    }

    /// Tears down frameworks that stayed disconnected past their failover timeout: their tasks
    /// are killed and the registry completes them.
    private func expireFrameworks() async throws {
        while !Task.isCancelled {
            try await Task.sleep(for: .milliseconds(250))
            let expired = read { $0.expiredFrameworks(now: Date()) }
            for id in expired {
                logger.notice("framework failover timeout expired; tearing it down", metadata: ["keel.framework_id": "\(id)"])
                do {
                    try await teardownInRegistry(id)
                } catch {
                    // Kill its tasks all the same; the registry learns of it on the next try.
                    logger.error("could not complete the framework in the registry", metadata: [
                        "keel.framework_id": "\(id)", "keel.error": "\(error)",
                    ])
                    mutate { $0.completeFramework(id, now: Date()) }
                }
            }
        }
    }

    private func allocationLoop() async {
        for await _ in allocationStream {
            mutate { $0.allocate(now: Date()) }
        }
    }

    private func sendHeartbeats() {
        read { state in
            for framework in state.frameworks.values {
                framework.outbound?.send(.with { $0.type = .heartbeat })
            }
        }
    }

    /// Ends every framework and agent stream so that in-flight RPCs can finish on shutdown.
    private func closeStreams() {
        state.withLock { state in
            for framework in state.frameworks.values { framework.outbound?.finish() }
            for agent in state.agents.values { agent.outbound?.finish() }
            for watcher in state.taskWatchers.values { watcher.events.finish() }
        }
    }
}
