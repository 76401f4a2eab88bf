import ArgumentParser
import GRPCCore
import KeelAPI
import KeelRPC
import SwiftProtobuf

/// `keel teardown FRAMEWORK`: an operator ends a framework; its tasks are killed.
struct TeardownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "teardown",
        abstract: "Tear a framework down: its tasks are killed and it cannot subscribe again.",
        discussion: "With credentials configured, the principal (--principal or KEEL_PRINCIPAL, secret in KEEL_SECRET) must be allowed by the teardown_frameworks ACL."
    )

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "The framework's id (see keel frameworks).")
    var framework: String

    @Option(help: "The principal to act as when the registry requires credentials. [env: KEEL_PRINCIPAL]")
    var principal: String?

    func run() async throws {
        let credential = try CLICredential.resolve(principal: principal)
        let response = try await withKeelClient(try cluster.registryEndpoint()) { client in
            try await Keel_V1_Registry.Client(wrapping: client).teardownFramework(.with {
                $0.frameworkID.value = framework
                if let credential { $0.credential = credential }
            })
        }
        if cluster.json { return try Output.json(response) }
        Output.note("framework \(framework) (\(response.record.frameworkInfo.name)) torn down; its tasks are being killed")
    }
}
