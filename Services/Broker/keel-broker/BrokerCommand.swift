import ArgumentParser
import BrokerCore
import Foundation
import Logging
import GRPCCore
import KeelAPI
import KeelCore
import KeelObservability
import KeelRPC
import KeelStore
import SwiftProtobuf

/// keel-broker: the resource broker (agents, allocator, offers, task table).
@main
struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keel-broker",
        abstract: "Keel resource broker: agents attach to it, frameworks get offers from it, and it keeps the task table."
    )

    @Option(help: "gRPC listen address for frameworks, launchers and operators. [env: KEEL_LISTEN] (default: 127.0.0.1:5050)")
    var listen: String?

    @Option(help: "Admin HTTP listen address (/metrics, /healthz, /readyz). [env: KEEL_ADMIN_LISTEN] (default: 127.0.0.1:5051)")
    var adminListen: String?

    @Option(help: "keel-registry gRPC address. [env: KEEL_REGISTRY] (default: 127.0.0.1:5052)")
    var registry: String?

    @Option(help: "Store: a SQLite file path. [env: KEEL_STORE] (default: DATA_DIR/broker.sqlite)")
    var store: String?

    @Option(help: "How often free resources are offered, e.g. 1s, 500ms. [env: KEEL_OFFER_INTERVAL] (default: 1s)")
    var offerInterval: String?

    @Option(help: "Rescind offers left unanswered this long, e.g. 30s; 0 keeps them until answered. [env: KEEL_OFFER_TIMEOUT] (default: 60s)")
    var offerTimeout: String?

    @Option(help: "ACL document (JSON) saying which principals may run tasks as which users and tear down which frameworks; unset allows all. [env: KEEL_ACLS_FILE]")
    var aclsFile: String?

    @Option(help: "The broker's own principal at keel-registry, needed when the registry requires credentials (to tear down frameworks whose failover timeout expired); its secret is read from KEEL_SECRET. [env: KEEL_PRINCIPAL]")
    var principal: String?

    @OptionGroup var common: CommonDaemonOptions

    /// Pins the time zone (``LocalTimeZone``) and puts Swift concurrency on the event loops
    /// (``ConcurrencyExecutor``) before anything runs.
    static func main() async {
        LocalTimeZone.pin()
        ConcurrencyExecutor.install()
        await main(nil)
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let options = EnvironmentOptions(environment)
        let daemon = try common.configuration(
            serviceName: "keel-broker",
            adminListen: options.string(adminListen, "KEEL_ADMIN_LISTEN", default: "127.0.0.1:5051"),
            environment: environment
        )
        let listenEndpoint = try Endpoint(parsing: options.string(listen, "KEEL_LISTEN", default: "127.0.0.1:5050"))
        let registryEndpoint = try Endpoint(parsing: options.string(registry, "KEEL_REGISTRY", default: "127.0.0.1:5052"))
        let dataDir = common.dataDirectory(environment: environment, default: "/var/lib/keel/broker")
        let storePath = options.string(store, "KEEL_STORE", default: "\(dataDir)/broker.sqlite")
        var configuration = BrokerConfiguration.defaults(registry: registryEndpoint)
        configuration.offerInterval = try options.duration(offerInterval, "KEEL_OFFER_INTERVAL", default: configuration.offerInterval)
        let timeout = try options.duration(offerTimeout, "KEEL_OFFER_TIMEOUT", default: .seconds(60))
        configuration.offerTimeout = timeout == .zero ? nil : timeout
        if let path = options.optionalString(aclsFile, "KEEL_ACLS_FILE") {
            configuration.acls = try ACLs.load(path: path)
        }
        var credential: Keel_V1_Credential?
        if let name = options.optionalString(principal, "KEEL_PRINCIPAL") {
            guard let secret = environment["KEEL_SECRET"], !secret.isEmpty else {
                throw ValidationError("principal '\(name)' needs its secret in the KEEL_SECRET variable")
            }
            credential = .with {
                $0.principal = name
                $0.secret = secret
            }
        }

        try await Daemon.run(configuration: daemon) { context in
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
            let store = try await SQLiteStore.open(path: storePath, logger: context.logger)
            let registryClient = try ManagedClient(endpoint: registryEndpoint)
            let broker = Broker(
                configuration: configuration,
                store: store,
                directory: RegistryDirectory(client: Keel_V1_Registry.Client(wrapping: registryClient.client), credential: credential),
                logger: context.logger
            )
            try await broker.recover()
            let server = RPCServer(
                serviceName: "keel-broker",
                endpoint: listenEndpoint,
                services: [SchedulerService(broker: broker), AgentStreamService(broker: broker), OperatorService(broker: broker)],
                interceptors: [
                    .apply(FrameworkAuthInterceptor(verifier: broker.verifier), to: .services([Keel_V1_Scheduler.descriptor]))
                ],
                logger: context.logger,
                onListening: { endpoint in await context.markReady(endpoint.port) }
            )
            return [SQLiteStoreService(store), registryClient, broker, RegistryFollower(broker: broker, client: registryClient), server]
        }
    }
}

