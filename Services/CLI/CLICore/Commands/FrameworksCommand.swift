import ArgumentParser
import GRPCCore
import KeelAPI
import KeelRPC
import SwiftProtobuf

/// `keel frameworks`: the frameworks the broker knows.
struct FrameworksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "frameworks", abstract: "List frameworks.")

    @OptionGroup var cluster: ClusterOptions

    @Flag(help: "Include frameworks that were torn down.")
    var all = false

    func run() async throws {
        let response = try await withKeelClient(try cluster.brokerEndpoint()) { client in
            try await Keel_V1_Operator.Client(wrapping: client).getFrameworks(Keel_V1_GetFrameworksRequest())
        }
        var frameworks = response.frameworks
        if !all { frameworks = frameworks.filter { !$0.completed } }
        if cluster.json { return try Output.json(Keel_V1_GetFrameworksResponse.with { $0.frameworks = frameworks }) }
        Output.table(
            ["ID", "NAME", "USER", "ROLES", "CONNECTED", "STATE", "ALLOCATED"],
            frameworks.map { framework in
                [
                    framework.frameworkInfo.id.value, framework.frameworkInfo.name, framework.frameworkInfo.user,
                    framework.frameworkInfo.roles.joined(separator: ","), framework.connected ? "yes" : "no",
                    framework.completed ? "COMPLETED" : "ACTIVE", Output.resources(framework.allocatedResources),
                ]
            }
        )
    }
}
