import Foundation
import KeelAllocator
import KeelAPI
import Logging
import SwiftProtobuf
import KeelCore
import KeelRPC

extension BrokerState {
    /// Registers (or re-registers) an agent on a new stream; returns its id and connection.
    ///
    /// An agent that comes back with its old id keeps it (a launcher restarted in the same boot
    /// re-attaches so); its reported tasks update the task table, tasks it reports without a
    /// latest status (their updates are still on the way) are kept as they are, and tasks the
    /// broker thought were on it but that it no longer knows are lost.
    ///
    /// A new agent at the same launcher address (hostname, ip and port) as a known one replaces
    /// it: the old agent is removed and its unfinished tasks are lost (TASK_GONE for
    /// partition-aware frameworks) with reason AGENT_RESTARTED. This is how the tasks of a node
    /// that rebooted end: its launcher registers with a new agent id.
    mutating func attachAgent(
        _ register: Keel_V1_AgentMessage.Register,
        outbound: MessageOutbox<Keel_V1_BrokerMessage>,
        now: Date
    ) throws -> (AgentID, UInt64) {
        var info = register.agentInfo
        guard !info.hostname.isEmpty else {
            throw KeelError.invalidArgument("agent_info.hostname is empty; the launcher must report its hostname")
        }
        let advertised = try Resources(proto: info.resources)
        guard !advertised.isEmpty else {
            throw KeelError.invalidArgument("agent on \(info.hostname) advertises no resources")
        }
        let requested = info.id.value
        let id: AgentID
        if !requested.isEmpty, agents[AgentID(requested)] != nil {
            id = AgentID(requested)
        } else if !requested.isEmpty {
            id = try AgentID(validating: requested)
        } else {
            id = AgentID.random()
        }
        info.id = .with { $0.value = id.value }
        if agents[id] == nil {
            retireAgents(replacedBy: info, now: now)
        }
        let (total, unapplied) = effectiveTotal(of: id, reported: advertised)
        if !unapplied.isEmpty {
            pendingWarnings.append(
                "agent \(id) re-attached with too little to hold its dynamic reservations '\(unapplied)'; they stay recorded and are not offered"
            )
        }
        let connection = makeConnectionID()
        if let previous = agents[id]?.outbound {
            previous.finish()
        }
        for offer in offers.values where offer.agentID == id {
            rescindOffer(offer.id)
        }
        var entry = agents[id] ?? AgentEntry(
            info: info, id: id, state: .active, total: total, registeredAt: now, lastSeenAt: now
        )
        entry.info = info
        entry.total = total
        let draining = policy.draining.contains(id)
        entry.state = draining ? .draining : .active
        entry.lastSeenAt = now
        entry.connection = connection
        entry.outbound = outbound
        agents[id] = entry
        pendingWrites.append(.putAgent(info))
        if allocator.knows(agent: id) {
            ledger {
                try $0.updateAgent(id: id, total: total)
                if !draining { try $0.activateAgent(id: id) }
            }
        } else {
            ledger {
                try $0.addAgent(id: id, total: total, now: Instant(date: now))
                if draining { try $0.deactivateAgent(id: id) }
            }
        }

        let reported = Set(register.runningTasks.map {
            TaskKey(frameworkID: FrameworkID($0.frameworkID.value), taskID: TaskID($0.task.taskID.value))
        })
        for running in register.runningTasks where running.hasLatestStatus {
            applyStatus(running.latestStatus, frameworkID: FrameworkID(running.frameworkID.value), agentID: id, now: now)
        }
        // A task still running that its framework was told is over (LOST while the agent was
        // unreachable, or its framework torn down meanwhile) must not run on unseen: kill it.
        for running in register.runningTasks where !(running.hasLatestStatus && running.latestStatus.state.isTerminal) {
            let key = TaskKey(frameworkID: FrameworkID(running.frameworkID.value), taskID: TaskID(running.task.taskID.value))
            guard let task = tasks[key] else { continue }
            let frameworkGone = frameworks[key.frameworkID]?.completed ?? false
            if task.state.isTerminal || frameworkGone {
                pendingNotices.append(
                    "killing task \(key.taskID) on re-attached agent \(id): it is \(task.state.name) for its framework"
                        + (frameworkGone ? " (torn down)" : ""))
                sendKill(key, task: task, gracePeriod: nil)
            }
        }
        for (key, task) in tasks where task.agentID.value == id.value && !task.state.isTerminal && !reported.contains(key) {
            // Staging tasks may still be in flight to the new stream; only running ones are lost.
            guard task.state != .taskStaging else { continue }
            markLost(key, reason: .agentRestarted, message: "the agent re-attached without this task", now: now)
        }
        return (id, connection)
    }

    /// Removes the agents registered at the launcher address of `info` under another id, and
    /// ends their unfinished tasks.
    private mutating func retireAgents(replacedBy info: Keel_V1_AgentInfo, now: Date) {
        let address = info.launcherAddress
        guard address.port != 0 else { return }
        let replaced = agents.values.filter { entry in
            entry.id.value != info.id.value && entry.state != .removed && entry.info.hostname == info.hostname
                && entry.info.launcherAddress.ip == address.ip && entry.info.launcherAddress.port == address.port
        }
        for var entry in replaced {
            let rebooted = !entry.info.bootID.isEmpty && !info.bootID.isEmpty && entry.info.bootID != info.bootID
            let message = rebooted
                ? "agent \(entry.id) rebooted and registered again as agent \(info.id.value)"
                : "agent \(entry.id) was replaced by agent \(info.id.value) at the same address"
            pendingNotices.append("removed agent \(entry.id): \(message); its unfinished tasks are lost")
            entry.outbound?.finish()
            entry.outbound = nil
            entry.connection = nil
            entry.state = .removed
            agents[entry.id] = entry
            for offer in offers.values where offer.agentID == entry.id {
                rescindOffer(offer.id)
            }
            for (key, task) in tasks where task.agentID.value == entry.id.value && !task.state.isTerminal {
                markLost(key, reason: .agentRestarted, message: message, now: now)
            }
            if allocator.knows(agent: entry.id) {
                ledger { try $0.removeAgent(id: entry.id) }
            }
            // A removed agent does not come back after a broker restart, and what operators
            // decided for it (reservations, a drain) goes with it.
            pendingWrites.append(.deleteAgent(entry.id))
            if policy.reservations.removeValue(forKey: entry.id) != nil {
                pendingWrites.append(.deleteReservations(entry.id))
            }
            if policy.draining.remove(entry.id) != nil {
                pendingWrites.append(.deleteDraining(entry.id))
            }
        }
    }

    /// Records that the agent's stream is alive.
    mutating func agentHeartbeat(_ id: AgentID, connection: UInt64, now: Date) {
        guard var entry = agents[id], entry.connection == connection else { return }
        entry.lastSeenAt = now
        agents[id] = entry
    }

    /// The agent's stream ended: it can not be offered until it re-attaches. Its tasks keep
    /// their state until the health checker reports the agent unreachable.
    mutating func detachAgent(_ id: AgentID, connection: UInt64) {
        guard var entry = agents[id], entry.connection == connection else { return }
        entry.outbound = nil
        entry.connection = nil
        if entry.state == .active { entry.state = .disconnected }
        agents[id] = entry
        for offer in offers.values where offer.agentID == id {
            rescindOffer(offer.id)
        }
        ledger { try $0.deactivateAgent(id: id) }
    }

    /// Applies the health checker's verdict on an agent.
    mutating func setReachability(_ id: AgentID, reachable: Bool, message: String, now: Date) throws {
        guard var entry = agents[id] else {
            throw KeelError.notFound("agent \(id) is not known to the broker")
        }
        if reachable {
            if entry.state == .unreachable {
                entry.state = policy.draining.contains(id) ? .draining : entry.outbound == nil ? .disconnected : .active
            }
            agents[id] = entry
            if entry.state == .active { ledger { try $0.activateAgent(id: id) } }
            return
        }
        guard entry.state != .unreachable else { return }
        entry.state = .unreachable
        agents[id] = entry
        for offer in offers.values where offer.agentID == id {
            rescindOffer(offer.id)
        }
        ledger { try $0.deactivateAgent(id: id) }
        for (key, task) in tasks where task.agentID.value == id.value && !task.state.isTerminal {
            markUnreachable(key, message: message.isEmpty ? "agent \(id) is unreachable" : message, now: now)
        }
    }

    // MARK: Maintenance

    /// Drains an agent for an operator: no new offers (outstanding ones are rescinded) until
    /// ``reactivate(_:)``, and with `killTasks` its tasks are killed. Draining a draining agent
    /// again is allowed (e.g. to kill its tasks after all).
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown agent; nothing changes on error.
    mutating func drain(_ id: AgentID, killTasks: Bool) throws {
        var entry = try knownAgent(id)
        policy.draining.insert(id)
        pendingWrites.append(.putDraining(id))
        if entry.state != .unreachable { entry.state = .draining }
        agents[id] = entry
        for offer in offers.values where offer.agentID == id {
            rescindOffer(offer.id)
        }
        ledger { try $0.deactivateAgent(id: id) }
        guard killTasks else { return }
        for (key, task) in tasks where task.agentID.value == id.value && !task.state.isTerminal {
            sendKill(key, task: task, gracePeriod: nil)
        }
    }

    /// Ends an agent's drain: it is offered again once attached.
    ///
    /// Throws ``KeelError/Code/failedPrecondition`` (changing nothing) if it is not draining.
    mutating func reactivate(_ id: AgentID) throws {
        var entry = try knownAgent(id)
        guard policy.draining.contains(id) else {
            throw KeelError.failedPrecondition("agent \(id) is not draining; only a drained agent can be reactivated")
        }
        policy.draining.remove(id)
        pendingWrites.append(.deleteDraining(id))
        if entry.state == .draining { entry.state = entry.outbound == nil ? .disconnected : .active }
        agents[id] = entry
        if entry.state == .active { ledger { try $0.activateAgent(id: id) } }
    }

    /// The agent `id`, or an error that says how to find one. A removed agent is no longer in
    /// the allocator, so it is not found either.
    func knownAgent(_ id: AgentID) throws -> AgentEntry {
        guard !id.value.isEmpty else {
            throw KeelError.invalidArgument("agent_id is empty; name the agent (see keel agents)")
        }
        guard let agent = agents[id], allocator.knows(agent: id) else {
            throw KeelError.notFound("agent \(id) is not known to the broker; list them with keel agents")
        }
        return agent
    }

    /// Sends a message down an agent's stream; false when the agent is not attached.
    @discardableResult
    func send(_ message: Keel_V1_BrokerMessage, to id: AgentID) -> Bool {
        agents[id]?.outbound?.send(message) ?? false
    }
}
