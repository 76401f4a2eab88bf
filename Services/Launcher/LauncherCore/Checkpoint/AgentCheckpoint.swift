import Foundation
package import Logging

/// The launcher's identity on disk: the agent id the broker assigned and the boot id of the
/// machine it was assigned in (`/proc/sys/kernel/random/boot_id`), kept in
/// `<workDir>/checkpoint/agent.json`.
///
/// After a restart in the same boot the launcher registers with the same agent id, so the
/// broker keeps its tasks. After a reboot the id is dropped: every task of the old boot is
/// gone, the launcher registers as a new agent, and the broker retires the old one (see
/// `BrokerState.attachAgent`).
package struct AgentCheckpoint: Codable, Sendable, Hashable {
    /// The agent id the broker assigned.
    package var agentID: String
    /// The boot id of the machine when it was assigned.
    package var bootID: String

    /// Creates a record.
    package init(agentID: String, bootID: String) {
        self.agentID = agentID
        self.bootID = bootID
    }

    /// What a starting launcher makes of its checkpoint.
    package enum Recovery: Sendable, Hashable {
        /// No checkpoint: a fresh node.
        case fresh
        /// The same boot: re-attach with this agent id and recover the tasks.
        case sameBoot(agentID: String)
        /// The machine rebooted since `agentID` was assigned: its tasks are gone.
        case rebooted(previousAgentID: String)
        /// The file exists but cannot be read or decoded: start as a new agent.
        case unreadable(String)

        /// The agent id to register with, if any.
        package var agentID: String? {
            if case .sameBoot(let id) = self { id } else { nil }
        }
    }

    /// The file under `workDir`.
    package static func path(workDir: String) -> String {
        TaskCheckpointStore.checkpointDirectory(workDir: workDir) + "/agent.json"
    }

    /// Reads the checkpoint of `workDir` and compares it with the current `bootID`, logging the outcome.
    package static func recover(workDir: String, bootID: String, logger: Logger) -> Recovery {
        let path = path(workDir: workDir)
        let recovery: Recovery
        do {
            if let bytes = try CheckpointFile.read(path) {
                let record = try JSONDecoder().decode(AgentCheckpoint.self, from: Data(bytes))
                recovery = record.bootID == bootID
                    ? .sameBoot(agentID: record.agentID) : .rebooted(previousAgentID: record.agentID)
            } else {
                recovery = .fresh
            }
        } catch {
            recovery = .unreadable("\(error)")
        }
        switch recovery {
        case .fresh:
            logger.info("no agent checkpoint; registering as a new agent", metadata: ["keel.checkpoint": "\(path)"])
        case .sameBoot(let id):
            logger.notice("recovered the agent id; re-attaching as the same agent", metadata: ["keel.agent_id": "\(id)"])
        case .rebooted(let id):
            logger.warning(
                "the machine rebooted since the last run; registering as a new agent, the tasks of the old one are gone",
                metadata: ["keel.previous_agent_id": "\(id)", "keel.boot_id": "\(bootID)"])
        case .unreadable(let reason):
            logger.error(
                "the agent checkpoint is unreadable; registering as a new agent",
                metadata: ["keel.checkpoint": "\(path)", "keel.error": "\(reason)"])
        }
        return recovery
    }

    /// Writes the record atomically into `workDir`.
    package func save(workDir: String) throws(LauncherError) {
        let data: Data
        do {
            data = try JSONEncoder().encode(self)
        } catch {
            throw LauncherError(code: .internalError, message: "cannot encode the agent checkpoint: \(error)")
        }
        try CheckpointFile.write(Array(data), to: Self.path(workDir: workDir))
    }
}
