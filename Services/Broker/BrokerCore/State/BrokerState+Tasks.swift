import Foundation
import KeelAllocator
import KeelAPI
import Logging
import KeelCore
import KeelRPC
import SwiftProtobuf

extension BrokerState {
    // MARK: Accept

    /// Accepts offers with LAUNCH, LAUNCH_GROUP, RESERVE and UNRESERVE operations: validates every operation in
    /// order against what is left of the offers first, then applies the reservations, records
    /// each task as STAGING and sends it to its agent, and returns what was left of the offers
    /// to the pool (filtered from this framework for `refuseSeconds`).
    mutating func accept(_ request: Keel_V1_AcceptRequest, now: Date) throws -> [TaskID] {
        let frameworkID = FrameworkID(request.frameworkID.value)
        let framework = try activeFramework(frameworkID.value)
        guard framework.connected else {
            throw KeelError.failedPrecondition("framework \(frameworkID) is not subscribed; open Subscribe before accepting offers")
        }
        guard !request.offerIds.isEmpty else {
            throw KeelError.invalidArgument("offer_ids is empty; accept at least one offer")
        }
        guard Set(request.offerIds.map(\.value)).count == request.offerIds.count else {
            throw KeelError.invalidArgument("offer_ids names the same offer twice")
        }
        let accepted = try request.offerIds.map { try ownedOffer(OfferID($0.value), frameworkID: frameworkID) }
        let agentID = accepted[0].agentID
        guard accepted.allSatisfy({ $0.agentID == agentID }) else {
            throw KeelError.invalidArgument("the accepted offers are from different agents; accept offers of one agent per call")
        }
        guard let agent = agents[agentID], agent.outbound != nil else {
            throw KeelError.unavailable("agent \(agentID) is not attached any more; wait for new offers")
        }
        let offered = accepted.reduce(Resources()) { $0 + $1.resources }
        let refuseSeconds = request.filters.hasRefuseSeconds ? request.filters.refuseSeconds : configuration.defaultRefuseSeconds
        guard refuseSeconds.isFinite, refuseSeconds >= 0 else {
            throw KeelError.invalidArgument("filters.refuse_seconds must be a finite number >= 0")
        }

        // Validate every operation against what remains of the offers before changing anything.
        var remaining = offered
        var launches: [(Keel_V1_TaskInfo, Resources)] = []
        var reservations: [ReservationChange] = []
        var dynamic = policy.reservations[agentID] ?? []
        let offerRoles = Set(accepted.map(\.role))
        var seen = Set<String>()
        for operation in request.operations {
            switch operation.type {
            case .launch:
                for task in operation.launch.taskInfos {
                    let resources = try validateLaunch(task, frameworkID: frameworkID, seen: &seen)
                    guard remaining.contains(resources) else {
                        throw KeelError.invalidArgument(
                            "task \(task.taskID.value) asks for \(resources) but the offers only have \(remaining) left"
                        )
                    }
                    remaining -= resources
                    launches.append((task, resources))
                }
            case .reserve:
                reservations.append(try checkReserve(operation.reserve.resources, pool: &remaining, offerRoles: offerRoles))
            case .unreserve:
                reservations.append(
                    try checkUnreserve(operation.unreserve.resources, pool: &remaining, dynamic: &dynamic, agent: agentID))
            case .launchGroup:
                // A task group lands on one agent all together or not at all: the whole Accept
                // is refused if any of its tasks is invalid or they do not fit together.
                let group = operation.launchGroup.taskGroup.tasks
                guard !group.isEmpty else {
                    throw KeelError.invalidArgument("a LAUNCH_GROUP has no tasks; put the group's tasks in task_group.tasks")
                }
                var needed = Resources()
                for task in group {
                    let resources = try validateLaunch(task, frameworkID: frameworkID, seen: &seen)
                    needed += resources
                    launches.append((task, resources))
                }
                guard remaining.contains(needed) else {
                    throw KeelError.invalidArgument(
                        "the task group \(group.map(\.taskID.value)) asks for \(needed) together but the offers only have \(remaining) left"
                    )
                }
                remaining -= needed
            case .unspecified, .UNRECOGNIZED:
                throw KeelError.invalidArgument("an operation has no type; set type to LAUNCH, RESERVE or UNRESERVE")
            }
        }

        for offer in accepted { removeOffer(offer.id, recover: false) }
        // Reservations change the form of what the framework holds, not how much: launches
        // validated against the changed pool stay valid when applied after them.
        for change in reservations {
            for role in change.resources.roles.sorted() {
                let part = ReservationChange(reserving: change.reserving, resources: change.resources.reserved(role: role))
                let allocationRole = AllocatorRoles.allocatorRole(role)
                applyReservation(
                    part, framework: frameworkID, agent: agentID,
                    role: offerRoles.contains(allocationRole) ? allocationRole : offerRoles.sorted()[0]
                )
            }
        }
        var launched: [TaskID] = []
        for (info, resources) in launches {
            var info = info
            info.agentID = .with { $0.value = agentID.value }
            let key = TaskKey(frameworkID: frameworkID, taskID: TaskID(info.taskID.value))
            let task = Keel_V1_Task.with {
                $0.name = info.name
                $0.taskID = info.taskID
                $0.frameworkID = request.frameworkID
                $0.agentID = info.agentID
                $0.state = .taskStaging
                $0.resources = resources.proto
                $0.labels = info.labels
                if info.hasHealthCheck { $0.healthCheck = info.healthCheck }
                $0.user = info.command.user.isEmpty ? framework.info.user : info.command.user
                $0.role = framework.role
                $0.command = info.command
                $0.createdAt = Google_Protobuf_Timestamp(date: now)
                $0.statuses = [.with {
                    $0.taskID = info.taskID
                    $0.state = .taskStaging
                    $0.source = .broker
                    $0.agentID = info.agentID
                    $0.frameworkID = request.frameworkID
                    $0.timestamp = Google_Protobuf_Timestamp(date: now)
                }]
            }
            tasks[key] = task
            let delivered = send(.with {
                $0.launch.frameworkInfo = framework.info
                $0.launch.task = info
            }, to: agentID)
            recordTaskChange(key)
            if !delivered {
                // The agent's stream closed after validation: the task never reaches it.
                // TASK_DROPPED for partition-aware frameworks, TASK_LOST for the others.
                brokerStatus(
                    key, state: framework.isPartitionAware ? .taskDropped : .taskLost, reason: .agentDisconnected,
                    message: "agent \(agentID) went away before the launch reached it; launch the task again", now: now
                )
            }
            let offer = accepted.first { $0.resources.contains(resources) } ?? accepted[0]
            pendingHops.append(TaskHop(
                name: "offer", taskID: key.taskID.value, frameworkID: frameworkID.value, agentID: agentID.value,
                start: offer.createdAt, end: now, attributes: ["keel.offer_id": offer.id.value]
            ))
            pendingHops.append(TaskHop(
                name: "launch", taskID: key.taskID.value, frameworkID: frameworkID.value, agentID: agentID.value,
                start: now, end: Date(), attributes: ["keel.resources": "\(resources)"]
            ))
            launched.append(key.taskID)
        }
        // What the launches did not use is declined, filtered for refuse_seconds.
        if !remaining.isEmpty {
            let until = refuseSeconds > 0 ? now.addingTimeInterval(refuseSeconds) : nil
            ledger {
                try $0.recoverResources(
                    framework: frameworkID, agent: agentID, resources: remaining, filterUntil: until.map(Instant.init(date:))
                )
            }
        }
        return launched
    }

    /// Checks one TaskInfo of a LAUNCH and returns its resources.
    private func validateLaunch(_ task: Keel_V1_TaskInfo, frameworkID: FrameworkID, seen: inout Set<String>) throws -> Resources {
        let id = try TaskID(validating: task.taskID.value)
        guard seen.insert(id.value).inserted else {
            throw KeelError.invalidArgument("task id \(id) appears twice in this Accept")
        }
        if let existing = tasks[TaskKey(frameworkID: frameworkID, taskID: id)], !existing.state.isTerminal {
            throw KeelError.alreadyExists("task \(id) of framework \(frameworkID) is already \(existing.state.name); choose a new task id")
        }
        guard !task.name.isEmpty else {
            throw KeelError.invalidArgument("task \(id) has no name; set TaskInfo.name")
        }
        switch task.command.command {
        case .argv(let argv):
            guard let first = argv.args.first, !first.isEmpty else {
                throw KeelError.invalidArgument("task \(id) has an empty command: give argv with at least the executable")
            }
        case .shell(let shell):
            guard !shell.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw KeelError.invalidArgument("task \(id) has an empty shell command")
            }
        case nil:
            throw KeelError.invalidArgument("task \(id) has no command: set command.argv or command.shell")
        }
        let resources = try Resources(proto: task.resources)
        guard resources.cpus > 0 || resources.mem > 0 else {
            throw KeelError.invalidArgument("task \(id) asks for no cpus and no mem; every task needs some cpus or mem")
        }
        return resources
    }

    // MARK: Status updates

    /// What became of a status update from a launcher.
    enum StatusDelivery: Equatable {
        /// Applied (or a resend of one applied before) and passed on to the framework, which
        /// acknowledges it.
        case forwarded
        /// Applied, but its framework was torn down: no one will acknowledge it.
        case frameworkGone
        /// Stale or illegal (unknown task, another agent's task, a transition the task cannot
        /// make): not applied.
        case dropped

        /// Whether the broker must acknowledge the update itself so the launcher stops resending
        /// it and goes on with the task's next one.
        var acknowledgedByBroker: Bool { self != .forwarded }
    }

    /// Applies a status update from a launcher and forwards it to the framework.
    @discardableResult
    mutating func applyStatus(
        _ status: Keel_V1_TaskStatus, frameworkID: FrameworkID, agentID: AgentID, now: Date
    ) -> StatusDelivery {
        let key = TaskKey(frameworkID: frameworkID, taskID: TaskID(status.taskID.value))
        guard var task = tasks[key] else { return .dropped }
        guard task.agentID.value == agentID.value else { return .dropped }
        let isRetry = !status.uuid.isEmpty && task.statuses.contains { $0.uuid == status.uuid }
        if isRetry {
            // Stored again: the launcher resends an update whose acknowledgement it did not get,
            // which is also what happens when the store failed to hold it.
            pendingWrites.append(.putTask(task))
        } else {
            guard let current = TaskState(proto: task.state), let next = TaskState(proto: status.state) else { return .dropped }
            var machine = TaskStateMachine(taskID: key.taskID, state: current)
            guard (try? machine.transition(to: next)) != nil else { return .dropped }
            let wasTerminal = task.state.isTerminal
            task.state = status.state
            task.statuses.append(status)
            if task.statuses.count > configuration.statusHistoryLimit {
                task.statuses.removeFirst(task.statuses.count - configuration.statusHistoryLimit)
            }
            if !status.uuid.isEmpty {
                task.statusUpdateState = status.state
                task.statusUpdateUuid = status.uuid
            }
            tasks[key] = task
            if status.state.isTerminal && !wasTerminal {
                if let resources = try? Resources(proto: task.resources), !resources.isEmpty {
                    ledger { try $0.recoverResources(framework: frameworkID, agent: agentID, resources: resources) }
                }
            }
            recordTaskChange(key)
            pendingHops.append(TaskHop(
                name: "status \(status.state.name)", taskID: key.taskID.value, frameworkID: frameworkID.value,
                agentID: agentID.value, start: status.hasTimestamp ? status.timestamp.date : now, end: now,
                attributes: statusAttributes(status)
            ))
        }
        guard frameworks[frameworkID]?.completed != true else { return .frameworkGone }
        forward(status, to: frameworkID)
        return .forwarded
    }

    /// Sends an UPDATE event to the framework if it is subscribed.
    func forward(_ status: Keel_V1_TaskStatus, to frameworkID: FrameworkID) {
        frameworks[frameworkID]?.outbound?.send(.with {
            $0.type = .update
            $0.update.status = status
        })
    }

    private func statusAttributes(_ status: Keel_V1_TaskStatus) -> [String: String] {
        var attributes = ["keel.state": status.state.name]
        if status.hasExitCode { attributes["keel.exit_code"] = "\(status.exitCode)" }
        if status.reason != .unspecified { attributes["keel.reason"] = "\(status.reason)" }
        if !status.message.isEmpty { attributes["keel.message"] = status.message }
        return attributes
    }

    /// Records a state the broker decided itself (no uuid: needs no acknowledgement).
    mutating func brokerStatus(
        _ key: TaskKey,
        state: Keel_V1_TaskState,
        reason: Keel_V1_TaskStatus.Reason,
        message: String,
        now: Date
    ) {
        guard let task = tasks[key] else { return }
        let status = Keel_V1_TaskStatus.with {
            $0.taskID = task.taskID
            $0.state = state
            $0.reason = reason
            $0.message = message
            $0.source = .broker
            $0.agentID = task.agentID
            $0.frameworkID = task.frameworkID
            $0.timestamp = Google_Protobuf_Timestamp(date: now)
        }
        applyStatus(status, frameworkID: key.frameworkID, agentID: AgentID(task.agentID.value), now: now)
    }

    mutating func markLost(_ key: TaskKey, reason: Keel_V1_TaskStatus.Reason, message: String, now: Date) {
        let partitionAware = frameworks[key.frameworkID]?.isPartitionAware ?? false
        brokerStatus(key, state: partitionAware ? .taskGone : .taskLost, reason: reason, message: message, now: now)
    }

    mutating func markUnreachable(_ key: TaskKey, message: String, now: Date) {
        let partitionAware = frameworks[key.frameworkID]?.isPartitionAware ?? false
        brokerStatus(
            key, state: partitionAware ? .taskUnreachable : .taskLost, reason: .agentDisconnected,
            message: message, now: now
        )
    }

    // MARK: Acknowledge, kill, reconcile, health

    /// The most acknowledgements one call may carry.
    static let maxAcknowledgementsPerCall = 10_000

    /// Applies a framework's acknowledgement(s) and passes each on to the task's launcher.
    ///
    /// One acknowledgement (`task_id`, `uuid`) that cannot be applied is an error. With
    /// `acknowledgements`, malformed input refuses the whole call before anything changes;
    /// an entry naming an unknown task or uuid is skipped and returned with the reason.
    mutating func acknowledge(_ request: Keel_V1_AcknowledgeRequest) throws -> [String] {
        let frameworkID = FrameworkID(request.frameworkID.value)
        _ = try activeFramework(frameworkID.value)
        guard !request.acknowledgements.isEmpty else {
            guard !request.uuid.isEmpty else {
                throw KeelError.invalidArgument("uuid is empty; acknowledge the uuid of the update you received")
            }
            if let refusal = acknowledge(frameworkID: frameworkID, taskID: request.taskID.value, uuid: request.uuid) {
                throw refusal
            }
            return []
        }
        guard request.taskID.value.isEmpty, request.uuid.isEmpty else {
            throw KeelError.invalidArgument(
                "both task_id/uuid and acknowledgements are set; put every update in acknowledgements")
        }
        guard request.acknowledgements.count <= Self.maxAcknowledgementsPerCall else {
            throw KeelError.invalidArgument(
                "\(request.acknowledgements.count) acknowledgements in one call; send at most \(Self.maxAcknowledgementsPerCall) per call")
        }
        if let index = request.acknowledgements.firstIndex(where: { $0.uuid.isEmpty || $0.taskID.value.isEmpty }) {
            throw KeelError.invalidArgument(
                "acknowledgement \(index) has no task_id or no uuid; give both for every update acknowledged")
        }
        return request.acknowledgements.compactMap { entry in
            acknowledge(frameworkID: frameworkID, taskID: entry.taskID.value, uuid: entry.uuid)?.message
        }
    }

    /// Applies one acknowledgement; returns why it was refused, if it was.
    private mutating func acknowledge(frameworkID: FrameworkID, taskID: String, uuid: Data) -> KeelError? {
        let key = TaskKey(frameworkID: frameworkID, taskID: TaskID(taskID))
        guard var task = tasks[key] else {
            return KeelError.notFound("task \(taskID) of framework \(frameworkID) is not known")
        }
        guard task.statuses.contains(where: { $0.uuid == uuid }) || task.statusUpdateUuid == uuid else {
            return KeelError.notFound("task \(key.taskID) has no update with that uuid; acknowledge only uuids you received")
        }
        if task.statusUpdateUuid == uuid {
            task.statusUpdateUuid = Data()
            task.statusUpdateState = .unspecified
            tasks[key] = task
        }
        acknowledgeWhenStored(
            frameworkID: frameworkID.value, taskID: taskID, uuid: uuid, agentID: AgentID(task.agentID.value))
        return nil
    }

    /// Passes an acknowledgement on to the launcher once the store holds every change made so
    /// far, the acknowledged update's included (see ``StoreWrite/sendWhenStored(_:)``).
    mutating func acknowledgeWhenStored(frameworkID: String, taskID: String, uuid: Data, agentID: AgentID) {
        let message = Keel_V1_BrokerMessage.with {
            $0.acknowledge.frameworkID.value = frameworkID
            $0.acknowledge.taskID.value = taskID
            $0.acknowledge.uuid = uuid
        }
        let taskKey = tasks[TaskKey(frameworkID: FrameworkID(frameworkID), taskID: TaskID(taskID))].map(\.storeKey)
        pendingWrites.append(.sendWhenStored(AgentMessage(agentID: agentID, message: message, dependsOn: taskKey)))
    }

    /// Kills a task; returns false when it already ended.
    mutating func kill(_ request: Keel_V1_KillRequest, now: Date) throws {
        let frameworkID = FrameworkID(request.frameworkID.value)
        let framework = try activeFramework(frameworkID.value)
        guard !request.taskID.value.isEmpty else { throw KeelError.invalidArgument("task_id is empty; say which task to kill") }
        let key = TaskKey(frameworkID: frameworkID, taskID: TaskID(request.taskID.value))
        guard let task = tasks[key] else {
            throw KeelError.notFound("task \(request.taskID.value) of framework \(frameworkID) is not known")
        }
        guard !task.state.isTerminal else { return }
        if framework.wantsKillingState, task.state != .taskKilling {
            brokerStatus(key, state: .taskKilling, reason: .unspecified, message: "kill requested", now: now)
        }
        let grace = request.hasKillPolicy && request.killPolicy.hasGracePeriod ? request.killPolicy : nil
        sendKill(key, task: task, gracePeriod: grace)
    }

    func sendKill(_ key: TaskKey, task: Keel_V1_Task, gracePeriod: Keel_V1_KillPolicy?) {
        send(.with {
            $0.kill.frameworkID = task.frameworkID
            $0.kill.taskID = task.taskID
            if let gracePeriod { $0.kill.killPolicy = gracePeriod }
        }, to: AgentID(task.agentID.value))
    }

    /// Sends the latest state of the listed tasks (all when empty) as UPDATE events.
    func reconcile(_ request: Keel_V1_ReconcileRequest, now: Date) throws {
        let frameworkID = FrameworkID(request.frameworkID.value)
        let framework = try activeFramework(frameworkID.value)
        let keys: [TaskKey] = request.tasks.isEmpty
            ? tasks.keys.filter { $0.frameworkID == frameworkID }
            : request.tasks.map { TaskKey(frameworkID: frameworkID, taskID: TaskID($0.taskID.value)) }
        for key in keys {
            let status: Keel_V1_TaskStatus
            if let task = tasks[key], var latest = task.statuses.last {
                latest.reason = .reconciliation
                latest.uuid = Data()
                latest.timestamp = Google_Protobuf_Timestamp(date: now)
                status = latest
            } else {
                status = .with {
                    $0.taskID = .with { $0.value = key.taskID.value }
                    $0.state = framework.isPartitionAware ? .taskUnknown : .taskLost
                    $0.reason = .reconciliation
                    $0.source = .broker
                    $0.message = "the broker has no record of this task"
                    $0.frameworkID = request.frameworkID
                    $0.timestamp = Google_Protobuf_Timestamp(date: now)
                }
            }
            forward(status, to: frameworkID)
        }
    }

    /// Applies a health verdict: when the healthy flag changes, the framework gets an update.
    mutating func reportHealth(_ request: Keel_V1_ReportTaskHealthRequest, now: Date) throws {
        let key = TaskKey(frameworkID: FrameworkID(request.frameworkID.value), taskID: TaskID(request.taskID.value))
        guard var task = tasks[key] else {
            throw KeelError.notFound("task \(request.taskID.value) of framework \(request.frameworkID.value) is not known")
        }
        guard task.state == .taskRunning else { return }
        guard var latest = task.statuses.last else { return }
        if latest.hasHealthy && latest.healthy == request.healthy { return }
        latest.healthy = request.healthy
        latest.source = .healthChecker
        latest.reason = .taskHealthCheckStatusUpdated
        latest.message = request.message
        latest.uuid = Data()
        latest.timestamp = Google_Protobuf_Timestamp(date: now)
        task.statuses.append(latest)
        if task.statuses.count > configuration.statusHistoryLimit { task.statuses.removeFirst() }
        tasks[key] = task
        recordTaskChange(key)
        pendingHops.append(TaskHop(
            name: request.healthy ? "healthy" : "unhealthy", taskID: key.taskID.value,
            frameworkID: key.frameworkID.value, agentID: task.agentID.value, start: now, end: now,
            attributes: ["keel.message": request.message]
        ))
        forward(latest, to: key.frameworkID)
    }

    // MARK: Task table changes

    /// Queues the task for the store and tells task watchers.
    mutating func recordTaskChange(_ key: TaskKey) {
        guard let task = tasks[key] else { return }
        pendingWrites.append(.putTask(task))
        guard !taskWatchers.isEmpty else { return }
        var event: Keel_V1_TaskEvent?
        for watcher in taskWatchers.values where watcher.wants(task) {
            if event == nil { event = taskEvent(task) }
            watcher.events.yield(event!)
        }
    }

    /// A task with where it runs, for watchers.
    func taskEvent(_ task: Keel_V1_Task) -> Keel_V1_TaskEvent {
        let agent = agents[AgentID(task.agentID.value)]
        return .with {
            $0.task = task
            if let agent {
                $0.launcherAddress = agent.info.launcherAddress
                $0.hostname = agent.info.hostname
            }
        }
    }
}

/// A WatchTasks caller: where its events go and which tasks it asked for.
struct TaskWatcher {
    let events: AsyncStream<Keel_V1_TaskEvent>.Continuation
    /// Only tasks with a health check (keel-health).
    let healthCheckedOnly: Bool

    func wants(_ task: Keel_V1_Task) -> Bool {
        !healthCheckedOnly || task.hasHealthCheck
    }
}
