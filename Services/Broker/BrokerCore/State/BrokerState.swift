import Foundation
import KeelAllocator
import KeelAPI
import Logging
import SwiftProtobuf
import KeelCore
import KeelRPC

/// The broker's in-memory view of the cluster: agents, frameworks, outstanding offers and the
/// task table. Its mutating methods are the legal changes; they validate fully before changing
/// anything, so a rejected request leaves the state as it was.
///
/// Messages to agents and frameworks are yielded to their stream continuations (non-blocking).
/// Changes the store must learn about and hops the tracer must learn about are collected in
/// ``pendingWrites`` and ``pendingHops`` for ``Broker`` to drain after the lock is released.
struct BrokerState: Sendable {
    var agents: [AgentID: AgentEntry] = [:]
    var frameworks: [FrameworkID: FrameworkEntry] = [:]
    var offers: [OfferID: OfferEntry] = [:]
    var tasks: [TaskKey: Keel_V1_Task] = [:]
    /// Task table watchers (operator API, keel-health).
    var taskWatchers: [UInt64: TaskWatcher] = [:]
    /// The DRF allocator: it decides which offers to make and holds what is offered or in use.
    var allocator = Allocator()
    /// Weights, quota and dynamic reservations set by operators (persisted).
    var policy = ClusterPolicy()
    /// Bookkeeping the allocator refused (a bug if it happens); logged by ``Broker``.
    var pendingWarnings: [String] = []
    /// Notable changes of the cluster (an agent replaced by another), logged by ``Broker``.
    var pendingNotices: [String] = []
    var pendingWrites: [StoreWrite] = []
    var pendingHops: [TaskHop] = []
    var nextConnection: UInt64 = 1
    /// Where round-robin allocation continues.
    var allocationCursor = 0
    let configuration: BrokerConfiguration

    init(configuration: BrokerConfiguration) {
        self.configuration = configuration
    }

    mutating func makeConnectionID() -> UInt64 {
        defer { nextConnection += 1 }
        return nextConnection
    }

    // MARK: Frameworks

    /// Learns of a framework from the registry. A framework first seen in the registry's
    /// snapshot (`fromSnapshot`) was registered before this broker started: unless it subscribes
    /// again, its failover timeout (plus the recovery grace) runs from now.
    mutating func upsertFramework(_ record: Keel_V1_FrameworkRecord, fromSnapshot: Bool = false, now: Date) {
        let id = FrameworkID(record.frameworkInfo.id.value)
        if frameworks[id] != nil {
            updateFrameworkInfo(record.frameworkInfo, now: now)
        } else {
            var entry = FrameworkEntry(info: record.frameworkInfo, id: id)
            if fromSnapshot, record.state != .completed {
                entry.recovered = true
                entry.disconnectedAt = now
            }
            frameworks[id] = entry
        }
        ensureAllocatorFramework(id, roles: record.frameworkInfo.roles, now: now)
        if record.state == .completed {
            completeFramework(id, now: now)
        }
    }

    /// Applies a framework's changed info (UpdateFramework): new roles are offered from the next
    /// cycle, offers made for roles it left are rescinded, and suppression of those roles ends.
    mutating func updateFrameworkInfo(_ info: Keel_V1_FrameworkInfo, now: Date) {
        let id = FrameworkID(info.id.value)
        guard var entry = frameworks[id] else { return }
        let oldRoles = entry.roles
        entry.info = info
        entry.suppressedRoles.formIntersection(entry.roles)
        frameworks[id] = entry
        guard oldRoles != entry.roles else { return }
        let kept = Set(AllocatorRoles.allocatorRoles(entry.roles))
        for offer in offers.values where offer.frameworkID == id && !kept.contains(offer.role) {
            rescindOffer(offer.id)
        }
        ledger { try $0.updateFramework(id: id, roles: AllocatorRoles.allocatorRoles(entry.roles)) }
    }

    /// Tears a framework down: kills its tasks, rescinds its offers, ends its subscription.
    mutating func completeFramework(_ id: FrameworkID, now: Date) {
        guard var entry = frameworks[id], !entry.completed else { return }
        entry.completed = true
        entry.outbound?.send(.with {
            $0.type = .error
            $0.error.message = "framework \(id) was torn down"
        })
        entry.outbound?.finish()
        entry.outbound = nil
        entry.subscription = nil
        frameworks[id] = entry
        for offer in offers.values where offer.frameworkID == id {
            removeOffer(offer.id)
        }
        // It keeps what its dying tasks hold until they end; it gets no more offers.
        ledger { try $0.deactivateFramework(id: id) }
        for (key, task) in tasks where key.frameworkID == id && !task.state.isTerminal {
            sendKill(key, task: task, gracePeriod: nil)
        }
    }

    /// Refuses a call that names a stream id (`keel-stream-id`) other than the framework's latest
    /// subscription's: it comes from a process that a failover superseded.
    func checkStream(_ frameworkID: String, streamID: String?) throws {
        guard let streamID, let current = frameworks[FrameworkID(frameworkID)]?.streamID, streamID != current else { return }
        throw KeelError.failedPrecondition(
            "stream \(streamID) of framework \(frameworkID) was superseded by a newer subscription; this process no longer acts for the framework"
        )
    }

    /// Checks that `frameworkID` is known, active and that `subscription` (if given) is its
    /// current one.
    func activeFramework(_ frameworkID: String) throws -> FrameworkEntry {
        guard !frameworkID.isEmpty else {
            throw KeelError.invalidArgument("framework_id is empty; pass the id the registry assigned")
        }
        guard let entry = frameworks[FrameworkID(frameworkID)] else {
            throw KeelError.notFound("framework \(frameworkID) is not known to the broker; register it with keel-registry first")
        }
        guard !entry.completed else {
            throw KeelError.failedPrecondition("framework \(frameworkID) was torn down; register a new framework")
        }
        return entry
    }

    /// Opens a subscription, replacing (and closing) any previous one.
    mutating func subscribe(
        _ id: FrameworkID,
        outbound: MessageOutbox<Keel_V1_Event>,
        now: Date
    ) throws -> UInt64 {
        var entry = try activeFramework(id.value)
        if let previous = entry.outbound {
            previous.send(.with {
                $0.type = .error
                $0.error.message = "a newer subscription of framework \(id) replaced this one"
            })
            previous.finish()
        }
        for offer in offers.values where offer.frameworkID == id {
            removeOffer(offer.id)
        }
        let connection = makeConnectionID()
        entry.subscription = connection
        entry.streamID = UUID().uuidString.lowercased()
        entry.outbound = outbound
        entry.subscribedAt = now
        entry.disconnectedAt = nil
        entry.recovered = false
        entry.suppressedRoles = []
        frameworks[id] = entry
        ensureAllocatorFramework(id, roles: entry.info.roles, now: now)
        ledger {
            try $0.activateFramework(id: id)
            try $0.revive(framework: id)
        }
        return connection
    }

    /// Ends a subscription when its stream closes; offers made to it return to the pool.
    mutating func unsubscribe(_ id: FrameworkID, connection: UInt64, now: Date) {
        guard var entry = frameworks[id], entry.subscription == connection else { return }
        entry.outbound = nil
        entry.subscription = nil
        entry.disconnectedAt = now
        frameworks[id] = entry
        for offer in offers.values where offer.frameworkID == id {
            removeOffer(offer.id)
        }
        ledger { try $0.deactivateFramework(id: id) }
    }

    /// Frameworks that stayed disconnected past their failover timeout.
    func expiredFrameworks(now: Date) -> [FrameworkID] {
        frameworks.values.filter { entry in
            guard !entry.completed, !entry.connected, let since = entry.disconnectedAt else { return false }
            let grace = entry.recovered ? Self.seconds(configuration.frameworkRecoveryGrace) : 0
            return now.timeIntervalSince(since) >= entry.failoverTimeout + grace
        }.map(\.id)
    }

    /// Suppresses or revives offers to a framework for `roles` (all its roles when empty).
    /// Reviving also drops the framework's decline filters, as in Mesos.
    ///
    /// Throws ``KeelError/Code/invalidArgument`` (changing nothing) for a role the framework is
    /// not subscribed to.
    static func seconds(_ duration: Duration) -> TimeInterval {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    mutating func setSuppressed(_ id: FrameworkID, _ suppressed: Bool, roles: [String] = []) throws {
        var entry = try activeFramework(id.value)
        for role in roles where !entry.roles.contains(role) {
            throw KeelError.invalidArgument(
                "framework \(id) is not subscribed to role '\(role)' (its roles: \(entry.roles.joined(separator: ", "))); name one of its roles or none for all"
            )
        }
        let chosen = roles.isEmpty ? entry.roles : roles
        if suppressed { entry.suppressedRoles.formUnion(chosen) } else { entry.suppressedRoles.subtract(chosen) }
        frameworks[id] = entry
        let allocatorRoles = roles.isEmpty ? nil : AllocatorRoles.allocatorRoles(roles)
        ledger { allocator in
            if suppressed {
                try allocator.suppress(framework: id, roles: allocatorRoles)
            } else {
                try allocator.revive(framework: id, roles: allocatorRoles)
            }
        }
    }

    // MARK: Offers

    /// Removes an offer and returns its resources to the free pool, filtered from its framework
    /// on that agent until `filterUntil` when given; with `recover` false the caller accounts
    /// for them itself (an accept that used part of them).
    mutating func removeOffer(_ id: OfferID, filterUntil: Date? = nil, recover: Bool = true) {
        guard let offer = offers.removeValue(forKey: id) else { return }
        if recover {
            ledger {
                try $0.recoverResources(
                    framework: offer.frameworkID, agent: offer.agentID, resources: offer.resources,
                    filterUntil: filterUntil.map(Instant.init(date:))
                )
            }
        }
    }

    /// Removes an offer and tells its framework (RESCIND).
    mutating func rescindOffer(_ id: OfferID) {
        guard let offer = offers[id] else { return }
        removeOffer(id)
        frameworks[offer.frameworkID]?.outbound?.send(.with {
            $0.type = .rescind
            $0.rescind.offerID = .with { $0.value = id.value }
        })
    }

    /// Declines offers: their resources return to the pool, filtered from the framework for
    /// `refuseSeconds` on those agents.
    mutating func decline(_ frameworkID: FrameworkID, offerIDs: [OfferID], refuseSeconds: Double?, now: Date) throws {
        _ = try activeFramework(frameworkID.value)
        let seconds = refuseSeconds ?? configuration.defaultRefuseSeconds
        guard seconds.isFinite, seconds >= 0 else {
            throw KeelError.invalidArgument("filters.refuse_seconds must be a finite number >= 0, got \(seconds)")
        }
        let found = try offerIDs.map { try ownedOffer($0, frameworkID: frameworkID) }
        for offer in found {
            removeOffer(offer.id, filterUntil: seconds > 0 ? now.addingTimeInterval(seconds) : nil)
        }
    }

    /// The offer `id` if it is outstanding and was made to `frameworkID`.
    func ownedOffer(_ id: OfferID, frameworkID: FrameworkID) throws -> OfferEntry {
        guard !id.value.isEmpty else { throw KeelError.invalidArgument("an offer id is empty") }
        guard let offer = offers[id] else {
            throw KeelError.notFound(
                "offer \(id) is not outstanding (already accepted, declined or rescinded); wait for new offers"
            )
        }
        guard offer.frameworkID == frameworkID else {
            throw KeelError.permissionDenied("offer \(id) was made to another framework")
        }
        return offer
    }
}

/// A change the store must record, applied in order by the persister.
enum StoreWrite: Sendable {
    case putTask(Keel_V1_Task)
    case putAgent(Keel_V1_AgentInfo)
    case deleteAgent(AgentID)
    case putWeight(Keel_V1_WeightInfo)
    case deleteWeight(role: String)
    case putQuota(Keel_V1_QuotaConfig)
    case deleteQuota(role: String)
    case putReservations(Keel_V1_AgentReservations)
    case deleteReservations(AgentID)
    case putDraining(AgentID)
    case deleteDraining(AgentID)
    /// Resumed once every write before it was tried: with nil when they were all stored, or
    /// the first failure since the previous barrier.
    case barrier(CheckedContinuation<String?, Never>)
    /// A message to a launcher that may go only once every write queued before it was tried:
    /// an acknowledgement, which lets the launcher forget a status update, so the broker must
    /// hold that update durably first (else a broker crash in between would lose the task's
    /// latest state on both sides). Not sent while the latest write of the key it depends on
    /// failed; the launcher then resends the update, which stores the task again.
    case sendWhenStored(AgentMessage)
}

/// A message for one agent's launcher, held until the store has the key it depends on.
struct AgentMessage: Sendable {
    var agentID: AgentID
    var message: Keel_V1_BrokerMessage
    /// The store key whose latest write must have succeeded; `nil` if none.
    var dependsOn: String?
}

/// One step of a task's life, recorded as a span for keel-tracer.
struct TaskHop: Sendable {
    var name: String
    var taskID: String
    var frameworkID: String
    var agentID: String
    var start: Date
    var end: Date
    var attributes: [String: String] = [:]
}
