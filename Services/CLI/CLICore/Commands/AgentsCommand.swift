import ArgumentParser
import GRPCCore
import KeelAPI
import KeelRPC
import SwiftProtobuf

/// `keel agents`: the agents attached to the broker.
struct AgentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agents", abstract: "List the cluster's agents.")

    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        let response = try await withKeelClient(try cluster.brokerEndpoint()) { client in
            try await Keel_V1_Operator.Client(wrapping: client).getAgents(Keel_V1_GetAgentsRequest())
        }
        if cluster.json { return try Output.json(response) }
        Output.table(
            ["ID", "HOSTNAME", "STATE", "LAUNCHER", "TOTAL", "ALLOCATED"],
            response.agents.map { agent in
                let address = agent.agentInfo.launcherAddress
                return [
                    agent.agentInfo.id.value, agent.agentInfo.hostname, "\(agent.state)".uppercased(),
                    "\(address.ip):\(address.port)", Output.resources(agent.totalResources),
                    Output.resources(agent.allocatedResources),
                ]
            }
        )
    }
}
