import ArgumentParser
import GRPCCore
import KeelAPI
import KeelRPC
import SwiftProtobuf

/// `keel tasks`: the broker's task table.
struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tasks", abstract: "List tasks and their states.")

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "Only tasks of this framework.")
    var framework: String?

    func run() async throws {
        let request = Keel_V1_GetTasksRequest.with {
            if let framework { $0.frameworkID.value = framework }
        }
        let response = try await withKeelClient(try cluster.brokerEndpoint()) { client in
            try await Keel_V1_Operator.Client(wrapping: client).getTasks(request)
        }
        if cluster.json { return try Output.json(response) }
        Output.table(
            ["TASK", "NAME", "STATE", "FRAMEWORK", "AGENT", "RESOURCES", "MESSAGE"],
            response.tasks.map { task in
                let latest = task.statuses.last
                var state = task.state.name
                if let latest, latest.hasHealthy { state += latest.healthy ? " (healthy)" : " (unhealthy)" }
                return [
                    task.taskID.value, task.name, state, task.frameworkID.value, task.agentID.value,
                    Output.resources(task.resources), latest?.message ?? "",
                ]
            }
        )
    }
}
