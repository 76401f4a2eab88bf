package import ArgumentParser

/// The `keel` command: operate a Keel cluster and run tasks on it.
package struct KeelCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "keel",
        abstract: "Keel: run a data center as one computer.",
        discussion: """
            Every command that talks to the cluster takes --broker, --registry, --tracer (or \
            KEEL_BROKER, KEEL_REGISTRY, KEEL_TRACER); the defaults are the ports of `keel up`.
            """,
        subcommands: [
            UpCommand.self, RunCommand.self, AgentsCommand.self, TasksCommand.self, FrameworksCommand.self,
            LogsCommand.self, ExecCommand.self, ListSandboxCommand.self, CatSandboxCommand.self, TraceCommand.self,
            RolesCommand.self, QuotaCommand.self, WeightsCommand.self,
            ReserveCommand.self, UnreserveCommand.self, ExplainCommand.self, DrainCommand.self, ReactivateCommand.self,
            TeardownCommand.self,
        ]
    )

    package init() {}
}
