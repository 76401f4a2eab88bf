import Foundation
import KeelAllocator
import KeelAPI
import KeelCore
import KeelRPC
import SwiftProtobuf

extension BrokerState {
    /// Runs one allocation cycle of the DRF allocator and sends the offers it makes.
    ///
    /// The allocator decides (weighted DRF over the role tree, quota, reservations, decline
    /// filters, suppression); the broker gives each offer an id, remembers it until it is
    /// accepted, declined or rescinded, and sends each framework its offers in one OFFERS event.
    mutating func allocate(now: Date) {
        rescindExpiredOffers(now: now)
        let made = allocator.allocate(now: Instant(date: now))
        guard !made.isEmpty else { return }
        var batches: [FrameworkID: [Keel_V1_Offer]] = [:]
        for offer in made {
            guard let agent = agents[offer.agent], let framework = frameworks[offer.framework], framework.connected else {
                // The allocator and the broker disagree about who can take offers: give it back.
                ledger { try $0.recoverResources(framework: offer.framework, agent: offer.agent, resources: offer.resources) }
                continue
            }
            let entry = OfferEntry(
                id: OfferID.random(), frameworkID: offer.framework, agentID: offer.agent, resources: offer.resources,
                role: offer.role, createdAt: now
            )
            offers[entry.id] = entry
            batches[offer.framework, default: []].append(.with {
                $0.id = .with { $0.value = entry.id.value }
                $0.frameworkID = .with { $0.value = offer.framework.value }
                $0.agentID = .with { $0.value = offer.agent.value }
                $0.hostname = agent.info.hostname
                $0.resources = offer.resources.proto(markingDynamic: policy.reservations[offer.agent])
                $0.attributes = agent.info.attributes
                $0.domain = agent.info.domain
                $0.allocationInfo.role = AllocatorRoles.keelRole(offer.role)
                $0.createdAt = Google_Protobuf_Timestamp(date: now)
            })
        }
        for (frameworkID, offers) in batches {
            frameworks[frameworkID]?.outbound?.send(.with {
                $0.type = .offers
                $0.offers.offers = offers
            })
        }
    }

    /// Rescinds offers left unanswered longer than the offer timeout, so that their resources
    /// can go to someone else (a framework that hoards offers cannot starve the others).
    mutating func rescindExpiredOffers(now: Date) {
        guard let timeout = configuration.offerTimeout else { return }
        let seconds = Self.seconds(timeout)
        for offer in offers.values where now.timeIntervalSince(offer.createdAt) >= seconds {
            rescindOffer(offer.id)
        }
    }

    /// Makes sure the allocator knows a framework with the given roles.
    mutating func ensureAllocatorFramework(_ id: FrameworkID, roles: [String], now: Date) {
        guard !allocator.knows(framework: id) else { return }
        let connected = frameworks[id]?.connected ?? false
        ledger { allocator in
            try allocator.addFramework(id: id, roles: AllocatorRoles.allocatorRoles(roles), now: Instant(date: now))
            if !connected { try allocator.deactivateFramework(id: id) }
        }
    }

    /// Records in the allocator the resources of a task found at startup.
    mutating func recoverTaskAllocation(_ task: Keel_V1_Task, now: Date) {
        guard !task.state.isTerminal, let resources = try? Resources(proto: task.resources), !resources.isEmpty else { return }
        let frameworkID = FrameworkID(task.frameworkID.value)
        let agentID = AgentID(task.agentID.value)
        guard allocator.knows(agent: agentID) else { return }
        ensureAllocatorFramework(frameworkID, roles: task.role.isEmpty ? [] : [task.role], now: now)
        ledger { try $0.allocate(framework: frameworkID, agent: agentID, resources: resources) }
    }

    /// Applies a change to the allocator's books; a refusal means the broker and the allocator
    /// disagree, which is a bug: it is logged (the broker stays up) rather than thrown.
    mutating func ledger(_ body: (inout Allocator) throws -> Void) {
        do {
            try body(&allocator)
        } catch {
            pendingWarnings.append("allocator bookkeeping refused: \(error)")
        }
    }
}

/// Role names between Keel's API and the allocator: the API's default role `*` is the
/// allocator's `default` role (the allocator reserves `*` for "unreserved").
enum AllocatorRoles {
    static let defaultRole = "default"

    static func allocatorRoles(_ roles: [String]) -> [String] {
        let mapped = roles.map(allocatorRole)
        var seen = Set<String>()
        let unique = mapped.filter { seen.insert($0).inserted }
        return unique.isEmpty ? [defaultRole] : unique
    }

    static func allocatorRole(_ role: String) -> String {
        role == ResourceRole.unreserved || role.isEmpty ? defaultRole : role
    }

    static func keelRole(_ role: String) -> String {
        role == defaultRole ? ResourceRole.unreserved : role
    }
}

extension Instant {
    /// The instant of a wall-clock date (nanoseconds since 1970).
    init(date: Date) {
        self.init(nanoseconds: Int64(date.timeIntervalSince1970 * 1_000_000_000))
    }
}
