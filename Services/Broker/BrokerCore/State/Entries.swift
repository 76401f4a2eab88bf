import Foundation
import KeelAPI
import Logging
import SwiftProtobuf
import KeelCore
import KeelRPC

/// An agent as the broker holds it.
struct AgentEntry: Sendable {
    var info: Keel_V1_AgentInfo
    var id: AgentID
    var state: Keel_V1_Agent.State
    /// What the agent offers: its launcher's report with dynamic reservations applied. What is
    /// allocated and offered on it is the allocator's to know (``BrokerState/agentViews()``).
    var total: Resources
    var registeredAt: Date
    var lastSeenAt: Date
    /// Identifies the current stream; a stale stream's end must not disconnect a newer one.
    var connection: UInt64?
    /// Sends messages down the agent's stream while it is attached.
    var outbound: MessageOutbox<Keel_V1_BrokerMessage>?


}

/// A framework as the broker holds it.
struct FrameworkEntry: Sendable {
    var info: Keel_V1_FrameworkInfo
    var id: FrameworkID
    var completed = false
    var subscribedAt: Date?
    /// Identifies the current subscription; only it may act for the framework.
    var subscription: UInt64?
    /// The stream id sent in SUBSCRIBED to the current subscription (and kept after it ends,
    /// until a newer one replaces it): calls carrying another stream id come from a
    /// superseded process.
    var streamID: String?
    /// Sends events to the subscribed framework.
    var outbound: MessageOutbox<Keel_V1_Event>?
    /// Roles (API names) for which the framework suppressed offers.
    var suppressedRoles: Set<String> = []
    /// When the framework's subscription ended; its failover timeout runs from then.
    var disconnectedAt: Date?
    /// Known from the registry's snapshot when the broker started, not subscribed since: its
    /// failover timeout runs from the broker's start, with a grace period on top.
    var recovered = false

    var connected: Bool { outbound != nil }

    var isPartitionAware: Bool {
        info.capabilities.contains { $0.type == .partitionAware }
    }

    var wantsKillingState: Bool {
        info.capabilities.contains { $0.type == .taskKillingState }
    }

    /// How long the framework may stay disconnected before it is torn down (0 by default, as
    /// in Mesos: a framework that wants its tasks to outlive it sets a failover timeout).
    var failoverTimeout: TimeInterval {
        guard info.hasFailoverTimeout else { return 0 }
        return max(0, Double(info.failoverTimeout.seconds) + Double(info.failoverTimeout.nanos) / 1e9)
    }

    /// The role offers are allocated to (the first subscribed role).
    var role: String {
        info.roles.first ?? "*"
    }

    /// Every subscribed role (`*` when none is named).
    var roles: [String] {
        info.roles.isEmpty ? ["*"] : info.roles
    }

    /// Whether the framework suppressed offers for all its roles.
    var suppressedAll: Bool {
        !suppressedRoles.isEmpty && suppressedRoles.isSuperset(of: roles)
    }
}

/// An outstanding offer.
struct OfferEntry: Sendable {
    var id: OfferID
    var frameworkID: FrameworkID
    var agentID: AgentID
    var resources: Resources
    /// The allocator role the resources were allocated to.
    var role: String
    var createdAt: Date
}

/// Identifies a task: task ids are unique per framework.
struct TaskKey: Hashable, Sendable {
    var frameworkID: FrameworkID
    var taskID: TaskID
}
