import Foundation
import GRPCCore
package import KeelAPI
import KeelRPC
package import Logging
import Metrics
import ServiceLifecycle
import SwiftProtobuf

/// Pings the launcher of every agent the broker knows (except REMOVED ones) every ping
/// interval, counts missed pings in an ``AgentLivenessState`` per agent, and reports each change
/// of reachability to the broker once.
///
/// The agent list is read from the broker before every round; when the broker cannot be reached
/// the last list is pinged again, and reports wait until it is back.
package struct AgentLivenessMonitor: Service {
    private struct TrackedAgent {
        var launcher: Endpoint?
        var state: AgentLivenessState
        var lastPong: Date?
        var lastError = ""
    }

    private let broker: any Keel_V1_Operator.ClientProtocol
    private let launchers: any LauncherConnector
    private let table: HealthTable
    private let configuration: HealthConfiguration
    private let logger: Logger
    private let answered = Counter(label: "keel_health_pings_total", dimensions: [("result", "answered")])
    private let missed = Counter(label: "keel_health_pings_total", dimensions: [("result", "missed")])

    /// Creates the monitor; pings go through `launchers`, results to `table` and the broker.
    package init(
        broker: any Keel_V1_Operator.ClientProtocol,
        launchers: any LauncherConnector,
        table: HealthTable,
        configuration: HealthConfiguration,
        logger: Logger
    ) {
        self.broker = broker
        self.launchers = launchers
        self.table = table
        self.configuration = configuration
        self.logger = logger
    }

    /// Pings every ping interval until cancelled or shut down gracefully.
    package func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            await loop()
        }
    }

    private func loop() async {
        let clock = ContinuousClock()
        var agents: [String: TrackedAgent] = [:]
        var brokerReachable = true
        var next = clock.now
        while !Task.isCancelled {
            brokerReachable = await refresh(&agents, brokerWasReachable: brokerReachable)
            await pingAll(&agents)
            if brokerReachable { await reportChanges(&agents) }
            table.replaceAgents(agents.map { id, agent in
                .with {
                    $0.agentID.value = id
                    $0.reachable = agent.state.reachable
                    $0.missedPings = UInt32(clamping: agent.state.missedPings)
                    if let lastPong = agent.lastPong { $0.lastPongAt = Google_Protobuf_Timestamp(date: lastPong) }
                    $0.lastError = agent.lastError
                }
            })
            next = max(next + configuration.pingInterval, clock.now)
            do {
                try await clock.sleep(until: next)
            } catch {
                return
            }
        }
    }

    /// Updates the tracked agents from the broker's list; false when the broker could not be asked.
    private func refresh(_ agents: inout [String: TrackedAgent], brokerWasReachable: Bool) async -> Bool {
        var options = CallOptions.defaults
        options.timeout = configuration.brokerCallTimeout
        let listed: [Keel_V1_Agent]
        do {
            listed = try await broker.getAgents(Keel_V1_GetAgentsRequest(), options: options).agents
        } catch {
            if brokerWasReachable && !Task.isCancelled {
                logger.warning("cannot list agents from the broker; pinging the last known ones", metadata: ["keel.error": "\(error)"])
            }
            return false
        }
        var current: [String: TrackedAgent] = [:]
        for agent in listed where agent.state != .removed && !agent.agentInfo.id.value.isEmpty {
            let id = agent.agentInfo.id.value
            var tracked = agents[id] ?? TrackedAgent(
                state: AgentLivenessState(budget: configuration.pingBudget, reachable: agent.state != .unreachable)
            )
            tracked.launcher = agent.agentInfo.launcherAddress.dialableEndpoint(fallbackHostname: agent.agentInfo.hostname)
            if agents[id] == nil {
                logger.info("pinging agent", metadata: ["keel.agent_id": "\(id)", "keel.launcher": "\(tracked.launcher.map { "\($0)" } ?? "none")"])
            }
            current[id] = tracked
        }
        for id in agents.keys where current[id] == nil {
            logger.info("stopped pinging agent: the broker no longer lists it", metadata: ["keel.agent_id": "\(id)"])
        }
        agents = current
        return true
    }

    /// Pings every agent with a launcher address at once and records the results.
    private func pingAll(_ agents: inout [String: TrackedAgent]) async {
        let results = await withTaskGroup(of: (String, String?).self) { group in
            for (id, agent) in agents {
                guard let launcher = agent.launcher else { continue }
                group.addTask { (id, await ping(id, at: launcher)) }
            }
            var results: [String: String?] = [:]
            for await (id, error) in group { results[id] = error }
            return results
        }
        guard !Task.isCancelled else { return }
        for (id, error) in results {
            guard var agent = agents[id] else { continue }
            let outcome = agent.state.record(answered: error == nil)
            (error == nil ? answered : missed).increment()
            if let error { agent.lastError = error } else { (agent.lastPong, agent.lastError) = (Date(), "") }
            let metadata: Logger.Metadata = [
                "keel.agent_id": "\(id)", "keel.missed_pings": "\(agent.state.missedPings)", "keel.error": "\(error ?? "")",
            ]
            switch outcome {
            case .answered: break
            case .missed: logger.log(level: agent.state.reachable ? .info : .debug, "agent missed a ping", metadata: metadata)
            case .becameUnreachable: logger.warning("agent is unreachable: it used up its ping budget", metadata: metadata)
            case .becameReachable: logger.notice("agent answers pings again", metadata: metadata)
            }
            agents[id] = agent
        }
        for (id, var agent) in agents where agent.launcher == nil {
            agent.lastError = "the broker has no launcher address for this agent; not pinged"
            agents[id] = agent
        }
    }

    /// One ping; nil when answered, else why not.
    private func ping(_ id: String, at launcher: Endpoint) async -> String? {
        var options = CallOptions.defaults
        options.timeout = configuration.pingTimeout
        options.waitForReady = false
        do {
            let response = try await launchers.launcher(at: launcher).ping(Keel_V1_PingRequest(), options: options)
            let served = response.agentID.value
            if !served.isEmpty && served != id {
                return "the launcher at \(launcher) now serves agent \(served)"
            }
            return nil
        } catch let error as RPCError {
            return "ping to \(launcher) failed: \(error.code): \(error.message)"
        } catch {
            return "ping to \(launcher) failed: \(error)"
        }
    }

    /// Sends every pending reachability verdict to the broker at once; accepted ones are marked.
    private func reportChanges(_ agents: inout [String: TrackedAgent]) async {
        let pending = agents.compactMap { id, agent in agent.state.pendingReport.map { (id, $0, agent) } }
        guard !pending.isEmpty else { return }
        let accepted = await withTaskGroup(of: (String, Bool)?.self) { group in
            for (id, reachable, agent) in pending {
                let message = reachable
                    ? "the launcher answers pings again"
                    : "missed \(agent.state.missedPings) pings in a row (budget \(agent.state.budget)): \(agent.lastError)"
                group.addTask { await report(id, reachable: reachable, message: message) ? (id, reachable) : nil }
            }
            var accepted: [(String, Bool)] = []
            for await result in group { if let result { accepted.append(result) } }
            return accepted
        }
        for (id, reachable) in accepted { agents[id]?.state.markReported(reachable) }
    }

    private func report(_ id: String, reachable: Bool, message: String) async -> Bool {
        var options = CallOptions.defaults
        options.timeout = configuration.brokerCallTimeout
        let metadata: Logger.Metadata = ["keel.agent_id": "\(id)", "keel.reachable": "\(reachable)"]
        do {
            _ = try await broker.reportAgentReachability(.with {
                $0.agentID.value = id
                $0.reachable = reachable
                $0.message = message
            }, options: options)
            logger.notice("agent reachability reported", metadata: metadata)
            return true
        } catch {
            if !Task.isCancelled {
                logger.warning("could not report agent reachability; retrying after the next ping", metadata: metadata.merging(["keel.error": "\(error)"]) { $1 })
            }
            return false
        }
    }
}
