import ArgumentParser
import Foundation
import GRPCCore
import KeelAPI
import KeelRPC
import SwiftProtobuf

/// `keel logs TASK`: a task's stdout (or stderr), read from its sandbox on its agent.
struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a task's output.")

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "The task id.")
    var task: String

    @Flag(help: "Print stderr instead of stdout.")
    var stderr = false

    @Flag(name: .shortAndLong, help: "Keep printing new output until the task ends.")
    var follow = false

    @Option(help: "Start this many bytes before the end.")
    var tail: UInt64 = 0

    func run() async throws {
        let launcher = try await LauncherLocator.launcher(forTask: task, broker: try cluster.brokerEndpoint())
        let request = Keel_V1_TailLogRequest.with {
            $0.taskID.value = task
            $0.stream = stderr ? .stderr : .stdout
            $0.follow = follow
            $0.lastBytes = tail
        }
        let json = cluster.json
        try await withKeelClient(launcher) { client in
            try await Keel_V1_Launcher.Client(wrapping: client).tailLog(request) { response in
                for try await chunk in response.messages {
                    if json {
                        // One LogChunk per line (data base64-encoded, as proto3 JSON does).
                        FileHandle.standardOutput.write(Data((try chunk.jsonString() + "\n").utf8))
                    } else if !chunk.data.isEmpty {
                        FileHandle.standardOutput.write(chunk.data)
                    }
                }
            }
        }
    }
}

/// Finds the launcher that runs a task, through the broker.
enum LauncherLocator {
    /// The launcher API address of the agent running `taskID`.
    static func launcher(forTask taskID: String, broker: KeelRPC.Endpoint) async throws -> KeelRPC.Endpoint {
        let (tasks, agents) = try await withKeelClient(broker) { client in
            let operator_ = Keel_V1_Operator.Client(wrapping: client)
            let tasks = try await operator_.getTasks(.with { $0.taskIds = [.with { $0.value = taskID }] })
            let agents = try await operator_.getAgents(Keel_V1_GetAgentsRequest())
            return (tasks, agents)
        }
        guard let task = tasks.tasks.last else {
            throw ValidationError("task \(taskID) is not known to the broker; `keel tasks` lists the known tasks")
        }
        return try launcher(forAgent: task.agentID.value, agents: agents.agents)
    }

    /// The launcher API address of `agentID`.
    static func launcher(forAgent agentID: String, agents: [Keel_V1_Agent]) throws -> KeelRPC.Endpoint {
        guard let agent = agents.first(where: { $0.agentInfo.id.value == agentID }) else {
            throw ValidationError("agent \(agentID) is not known to the broker")
        }
        let address = agent.agentInfo.launcherAddress
        let host = address.ip.isEmpty ? address.hostname : address.ip
        return KeelRPC.Endpoint(host: host, port: Int(address.port))
    }
}
