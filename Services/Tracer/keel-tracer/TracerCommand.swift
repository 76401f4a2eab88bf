import ArgumentParser
import Foundation
import Logging
import KeelObservability
import KeelRPC
import TracerCore

/// keel-tracer: the span store and OTLP receiver behind `keel trace`.
@main
struct TracerCommand: AsyncParsableCommand {
    /// Pins the time zone (``LocalTimeZone``) and puts Swift concurrency on the event loops
    /// (``ConcurrencyExecutor``) before anything runs.
    static func main() async {
        LocalTimeZone.pin()
        ConcurrencyExecutor.install()
        await main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "keel-tracer",
        abstract: "Keel metrics and debug tracer: receives every daemon's spans over OTLP/gRPC and answers task timelines."
    )

    @Option(help: "gRPC listen address (OTLP receiver and keel.v1.Tracer). [env: KEEL_LISTEN] (default: 127.0.0.1:5058)")
    var listen: String?

    @Option(help: "Admin HTTP listen address (/metrics, /healthz, /readyz). [env: KEEL_ADMIN_LISTEN] (default: 127.0.0.1:5059)")
    var adminListen: String?

    @Option(help: "How long spans are kept, e.g. 24h, 7d. [env: KEEL_RETENTION] (default: 7d)")
    var retention: String?

    @Option(help: "The most spans kept; the oldest are dropped first. [env: KEEL_MAX_SPANS] (default: 1000000)")
    var maxSpans: Int?

    @OptionGroup var common: CommonDaemonOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let options = EnvironmentOptions(environment)
        var daemon = try common.configuration(
            serviceName: "keel-tracer",
            adminListen: options.string(adminListen, "KEEL_ADMIN_LISTEN", default: "127.0.0.1:5059"),
            environment: environment
        )
        // The tracer never exports its own spans: each export would record spans of its own ingestion.
        let ignoredTracer = daemon.tracerEndpoint
        daemon.tracerEndpoint = nil
        let listenEndpoint = try Endpoint(parsing: options.string(listen, "KEEL_LISTEN", default: "127.0.0.1:5058"))
        let dataDir = common.dataDirectory(environment: environment, default: "/var/lib/keel/tracer")
        let storePath = "\(dataDir)/tracer.sqlite"
        var configuration = TracerConfiguration.defaults
        configuration.retention = try options.duration(retention, "KEEL_RETENTION", default: configuration.retention)
        let maxSpansText = options.optionalString(maxSpans.map { "\($0)" }, "KEEL_MAX_SPANS")
        if let maxSpansText {
            guard let value = Int(maxSpansText) else {
                throw OptionError("KEEL_MAX_SPANS '\(maxSpansText)' is not a whole number; write e.g. 1000000")
            }
            configuration.maxSpans = value
        }
        try configuration.validate()

        try await Daemon.run(configuration: daemon) { context in
            if let ignoredTracer {
                context.logger.debug(
                    "ignoring the tracer endpoint: keel-tracer does not export its own spans",
                    metadata: ["keel.tracer": "\(ignoredTracer)"]
                )
            }
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
            let store = try await SpanStore.open(path: storePath, configuration: configuration, logger: context.logger)
            let server = RPCServer(
                serviceName: "keel-tracer",
                endpoint: listenEndpoint,
                services: [
                    OTLPReceiver(store: store, logger: context.logger),
                    TracerQueryService(store: store, configuration: configuration, logger: context.logger),
                ],
                logger: context.logger,
                onListening: { endpoint in await context.markReady(endpoint.port) }
            )
            return [SpanStoreService(store), server]
        }
    }
}
