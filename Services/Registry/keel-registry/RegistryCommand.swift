import ArgumentParser
import Foundation
import Logging
import KeelCore
import KeelObservability
import KeelRPC
import KeelStore
import RegistryCore

/// keel-registry: the framework registry (identities, failover, tokens).
@main
struct RegistryCommand: AsyncParsableCommand {
    /// Pins the time zone (``LocalTimeZone``) and puts Swift concurrency on the event loops
    /// (``ConcurrencyExecutor``) before anything runs.
    static func main() async {
        LocalTimeZone.pin()
        ConcurrencyExecutor.install()
        await main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "keel-registry",
        abstract: "Keel framework registry: registers frameworks, issues their tokens, and streams changes to the broker.",
        subcommands: [HashSecretCommand.self]
    )

    @Option(help: "gRPC listen address. [env: KEEL_LISTEN] (default: 127.0.0.1:5052)")
    var listen: String?

    @Option(help: "Admin HTTP listen address (/metrics, /healthz, /readyz). [env: KEEL_ADMIN_LISTEN] (default: 127.0.0.1:5053)")
    var adminListen: String?

    @Option(help: "Store: a SQLite file path. [env: KEEL_STORE] (default: DATA_DIR/registry.sqlite)")
    var store: String?

    @Option(help: "How long framework tokens are valid, e.g. 5m, 1h; the SDK refreshes them before they expire. [env: KEEL_TOKEN_TTL] (default: 15m)")
    var tokenTTL: String?

    @Option(help: "File of PRINCIPAL:HASH lines (hashes from `keel-registry hash-secret`); unset runs the cluster open. [env: KEEL_CREDENTIALS_FILE]")
    var credentialsFile: String?

    @Option(help: "ACL document (JSON) saying which principals may register which roles; unset allows all. [env: KEEL_ACLS_FILE]")
    var aclsFile: String?

    @OptionGroup var common: CommonDaemonOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let options = EnvironmentOptions(environment)
        let daemon = try common.configuration(
            serviceName: "keel-registry",
            adminListen: options.string(adminListen, "KEEL_ADMIN_LISTEN", default: "127.0.0.1:5053"),
            environment: environment
        )
        let listenEndpoint = try Endpoint(parsing: options.string(listen, "KEEL_LISTEN", default: "127.0.0.1:5052"))
        let dataDir = common.dataDirectory(environment: environment, default: "/var/lib/keel/registry")
        let storePath = options.string(store, "KEEL_STORE", default: "\(dataDir)/registry.sqlite")
        var configuration = RegistryConfiguration.defaults
        configuration.tokenTTL = try options.duration(tokenTTL, "KEEL_TOKEN_TTL", default: configuration.tokenTTL)
        if let path = options.optionalString(credentialsFile, "KEEL_CREDENTIALS_FILE") {
            configuration.credentials = try CredentialStore.load(path: path)
        }
        if let path = options.optionalString(aclsFile, "KEEL_ACLS_FILE") {
            configuration.acls = try ACLs.load(path: path)
        }

        try await Daemon.run(configuration: daemon) { context in
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
            let store = try await SQLiteStore.open(path: storePath, logger: context.logger)
            let authority = try await TokenAuthority.load(store: store, tokenTTL: configuration.tokenTTL, logger: context.logger)
            if configuration.credentials.isEmpty {
                context.logger.warning("no credentials configured: any client may register frameworks (open cluster)")
            } else {
                context.logger.notice("frameworks must authenticate", metadata: [
                    "keel.principals": "\(configuration.credentials.principals.count)"
                ])
            }
            if configuration.acls == .allowAll {
                context.logger.notice("no ACLs configured: every principal may register every role")
            }
            let service = RegistryService(store: store, authority: authority, configuration: configuration, logger: context.logger)
            let server = RPCServer(
                serviceName: "keel-registry",
                endpoint: listenEndpoint,
                services: [service],
                interceptors: try await RegistryService.interceptors(authority: authority),
                logger: context.logger,
                onListening: { endpoint in await context.markReady(endpoint.port) }
            )
            return [SQLiteStoreService(store), server]
        }
    }
}

