import ArgumentParser
import GRPCCore
import KeelAPI
import KeelRPC
import SwiftProtobuf

/// `keel drain AGENT`: stop offering an agent (for maintenance), optionally killing its tasks.
struct DrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Stop offering an agent's resources until it is reactivated (persisted).",
        discussion: "Running tasks keep running unless --kill-tasks is given. Undo with keel reactivate AGENT."
    )

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "The agent's id (see keel agents).")
    var agent: String

    @Flag(help: "Also kill the agent's tasks.")
    var killTasks = false

    func run() async throws {
        try await withKeelClient(try cluster.brokerEndpoint()) { client in
            _ = try await Keel_V1_Operator.Client(wrapping: client).drainAgent(.with {
                $0.agentID = .with { $0.value = agent }
                $0.killTasks = killTasks
            })
        }
        Output.note("agent \(agent) is draining\(killTasks ? "; its tasks are being killed" : "")")
    }
}

/// `keel reactivate AGENT`: offer a drained agent again.
struct ReactivateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reactivate", abstract: "Offer a drained agent's resources again.")

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "The agent's id.")
    var agent: String

    func run() async throws {
        try await withKeelClient(try cluster.brokerEndpoint()) { client in
            _ = try await Keel_V1_Operator.Client(wrapping: client).reactivateAgent(.with {
                $0.agentID = .with { $0.value = agent }
            })
        }
        Output.note("agent \(agent) is active again")
    }
}
